package relay

import (
	"testing"

	"github.com/shopgateway/shop/gateway/internal/outbox"
)

func TestWindow(t *testing.T) {
	t.Parallel()
	type step struct {
		id           outbox.ID
		wantMark     outbox.ID
		wantAdvanced bool
	}
	tests := []struct {
		name  string
		first outbox.ID
		steps []step
	}{
		{
			name:  "in order",
			first: 1,
			steps: []step{{1, 1, true}, {2, 2, true}, {3, 3, true}},
		},
		{
			name:  "reverse order moves once at the end",
			first: 1,
			steps: []step{{3, 0, false}, {2, 0, false}, {1, 3, true}},
		},
		{
			name:  "interleaved partitions",
			first: 10,
			steps: []step{{11, 9, false}, {10, 11, true}, {13, 11, false}, {14, 11, false}, {12, 14, true}, {15, 15, true}},
		},
		{
			name:  "duplicate acknowledgements change nothing",
			first: 1,
			steps: []step{{1, 1, true}, {1, 1, false}, {3, 1, false}, {3, 1, false}, {2, 3, true}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w := newWindow(tt.first)
			for i, s := range tt.steps {
				mark, advanced := w.complete(s.id)
				if mark != s.wantMark || advanced != s.wantAdvanced {
					t.Fatalf("step %d complete(%d) = %d, %t; want %d, %t", i, s.id, mark, advanced, s.wantMark, s.wantAdvanced)
				}
			}
			if got := len(w.done); got != 0 {
				t.Errorf("%d ids left above the watermark, want 0", got)
			}
		})
	}
}
