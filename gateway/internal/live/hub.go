// Package live serves the Watch streams: every gateway instance reads the
// event topics itself (sarama, no consumer group, nothing committed) and
// fans each record out in memory to the subscribers it concerns, filtered by
// the stream's policy (owner streams: records keyed to the user; the stock
// stream: stock records, optionally of some products). A resume token is
// the subscriber's position as offsets per partition, so any instance can
// continue a stream without missing or repeating an event.
package live

import (
	"cmp"
	"strconv"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"google.golang.org/protobuf/proto"
)

// Hub reads the event topics and serves the Watch streams.
type Hub struct {
	cfg   Config
	kinds map[string]*kind
	feeds map[string]*feed // by logical topic

	mu      sync.Mutex
	client  sarama.Client
	total   int
	perUser map[string]int

	stop     chan struct{} // closed by Close: streams end, the reader stops
	stopOnce sync.Once
	done     chan struct{}
}

// feed is one topic's live records and their subscribers.
type feed struct {
	kind  *kind
	topic string // Kafka name

	mu    sync.Mutex
	ready bool
	pos   position // next offset per partition, of the records dispatched
	subs  map[*sub]struct{}
}

// sub is one open stream's mailbox.
type sub struct {
	user     int64           // byOwner: the key wanted
	products map[string]bool // byProduct: the keys wanted (nil: all)
	from     position        // records before these offsets are not sent
	ch       chan event
	slow     chan struct{} // closed when the buffer overflowed
}

// event is one dispatched record: the response (shared, read-only) and the
// feed's position just after it.
type event struct {
	msg proto.Message
	pos position
}

func (s *sub) wants(f *feed, key string, partition int32, offset int64) bool {
	if from, ok := s.from[partition]; ok && offset < from {
		return false
	}
	return s.matches(f.kind, key)
}

func (s *sub) matches(k *kind, key string) bool {
	if k.filter == byOwner {
		return key == strconv.FormatInt(s.user, 10)
	}
	return s.products == nil || s.products[key]
}

// New starts a Hub: it connects to Kafka in the background (retrying, so
// the gateway starts and serves without Kafka) and reads each topic from
// its newest offsets.
func New(cfg Config) (*Hub, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	kinds, err := newKinds()
	if err != nil {
		return nil, err
	}
	h := &Hub{cfg: cfg, kinds: kinds, feeds: map[string]*feed{}, perUser: map[string]int{},
		stop: make(chan struct{}), done: make(chan struct{})}
	for _, k := range kinds {
		h.feeds[k.topic] = &feed{kind: k, topic: cmp.Or(cfg.Topics[k.topic], k.topic), subs: map[*sub]struct{}{}}
	}
	go h.run()
	return h, nil
}

// Methods are the full method names the Hub serves.
func (h *Hub) Methods() []string {
	return []string{WatchCart, WatchOrders, WatchStock}
}

// closeWait bounds Close's wait for the reader: a Kafka call in flight
// (a dial to a broker that is down) must not hold the gateway's exit.
const closeWait = 3 * time.Second

// Close ends every stream (UNAVAILABLE, resumable) and stops reading,
// waiting at most closeWait for the reader to let go of Kafka.
func (h *Hub) Close() {
	h.stopOnce.Do(func() { close(h.stop) })
	select {
	case <-h.done:
	case <-time.After(closeWait):
		h.cfg.Logger.Warn("live: the Kafka reader did not stop in time; leaving it")
	}
}

// Drain ends every stream without waiting for the reader: the graceful
// shutdown's first step, so that servers draining their calls are not held
// by streams that would never end.
func (h *Hub) Drain() { h.stopOnce.Do(func() { close(h.stop) }) }
