package harness

import "testing"

// TestFreePortsAreBelowTheEphemeralRangeAndNotReissued: ports come from the
// band below the kernel's range, and later calls (in any test process) do
// not get them again.
func TestFreePortsAreBelowTheEphemeralRangeAndNotReissued(t *testing.T) {
	lo, hi, ok := portRange()
	if !ok {
		t.Fatalf("no port band below the ephemeral range [%d, %d) on this machine", lo, hi)
	}
	seen := map[int]bool{}
	for range 3 {
		for _, p := range freePorts(t, 4) {
			if p < lo || p >= hi {
				t.Errorf("port %d outside [%d, %d)", p, lo, hi)
			}
			if seen[p] {
				t.Errorf("port %d handed out twice", p)
			}
			seen[p] = true
		}
	}
}
