package relay

import "github.com/shopgateway/shop/gateway/internal/outbox"

// window turns acknowledgements that arrive in any order (partitions are
// independent) into the contiguous prefix the outbox may ack: the
// watermark only moves past an id once every id before it is done.
type window struct {
	next outbox.ID              // lowest id not yet acknowledged
	done map[outbox.ID]struct{} // acknowledged ids above next
}

// newWindow starts a window whose first expected id is first.
func newWindow(first outbox.ID) *window {
	return &window{next: first, done: make(map[outbox.ID]struct{})}
}

// complete records that id was acknowledged. It returns the highest id up
// to which everything is acknowledged, and whether that moved. Ids below
// the watermark (a duplicate acknowledgement) change nothing.
func (w *window) complete(id outbox.ID) (watermark outbox.ID, advanced bool) {
	switch {
	case id < w.next:
		return w.next - 1, false
	case id > w.next:
		w.done[id] = struct{}{}
		return w.next - 1, false
	}
	w.next++
	for {
		if _, ok := w.done[w.next]; !ok {
			break
		}
		delete(w.done, w.next)
		w.next++
	}
	return w.next - 1, true
}

// watermark is the highest id up to which everything is acknowledged.
func (w *window) watermark() outbox.ID { return w.next - 1 }
