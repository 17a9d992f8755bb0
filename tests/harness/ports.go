package harness

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
)

// Ports of the stacks' processes. They are chosen before the processes bind
// them, so something else could take one in between. Asking the kernel for
// a free port (bind to :0 and close) is not enough: the kernel hands the
// same port out again to another test process's :0, or as the local port of
// an outgoing connection, and a gateway then fails to bind while the
// harness's readiness probe reaches whatever took its port.
//
// So ports come from a band just below the kernel's ephemeral range
// (net.ipv4.ip_local_port_range), which the kernel never picks by itself,
// handed out in turn to every test process through a counter in a locked
// file: no two stacks of one run share a port until the band wraps around.
// Each port is also checked free when it is handed out.

// portBand is how many ports below the ephemeral range are used.
const portBand = 10000

// lowestPort is the bottom of the band whatever the ephemeral range says.
const lowestPort = 10000

func portCounterPath() string { return filepath.Join(os.TempDir(), "shop-harness-ports.counter") }

// portRange returns the band [lo, hi), or ok false when the ephemeral range
// leaves no room below it.
func portRange() (lo, hi int, ok bool) {
	hi = 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := bytes.Fields(b); len(f) == 2 {
			if n, err := strconv.Atoi(string(f[0])); err == nil {
				hi = n
			}
		}
	}
	lo = max(hi-portBand, lowestPort)
	return lo, hi, hi-lo >= 1000
}

// FreePorts returns n distinct loopback ports that nothing listens on and
// that no other test process of this run has been given, for servers a test
// starts itself (a private broker, say).
func FreePorts(tb testing.TB, n int) []int {
	tb.Helper()
	return freePorts(tb, n)
}

// freePorts returns n distinct loopback ports that nothing listens on and
// that no other stack of this run has been given.
func freePorts(tb testing.TB, n int) []int {
	tb.Helper()
	lo, hi, ok := portRange()
	if !ok {
		return kernelPorts(tb, n)
	}
	f, err := os.OpenFile(portCounterPath(), os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		tb.Fatalf("harness: port counter: %v", err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		tb.Fatalf("harness: lock the port counter: %v", err)
	}
	defer func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN) }()
	b, err := os.ReadFile(portCounterPath())
	if err != nil {
		tb.Fatalf("harness: read the port counter: %v", err)
	}
	next, err := strconv.Atoi(string(bytes.TrimSpace(b)))
	if err != nil || next < lo || next >= hi {
		next = lo
	}
	ports := make([]int, 0, n)
	for tries := 0; len(ports) < n && tries < hi-lo; tries++ {
		p := next
		if next++; next >= hi {
			next = lo
		}
		if l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p))); err == nil {
			l.Close()
			ports = append(ports, p)
		}
	}
	if len(ports) < n {
		tb.Fatalf("harness: only %d free ports in [%d, %d)", len(ports), lo, hi)
	}
	if err := writeCounter(f, next); err != nil {
		tb.Fatalf("harness: write the port counter: %v", err)
	}
	return ports
}

func writeCounter(f *os.File, next int) error {
	if err := f.Truncate(0); err != nil {
		return err
	}
	_, err := f.WriteAt([]byte(fmt.Sprintf("%d\n", next)), 0)
	return err
}

// kernelPorts asks the kernel for n free ports, for machines whose ephemeral
// range leaves no band below it.
func kernelPorts(tb testing.TB, n int) []int {
	tb.Helper()
	ports := make([]int, 0, n)
	var ls []net.Listener
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatalf("harness: free port: %v", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}
