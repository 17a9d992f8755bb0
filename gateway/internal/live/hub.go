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
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/protobuf/proto"

	"github.com/shopgateway/shop/gateway/internal/apierr"
	"github.com/shopgateway/shop/gateway/internal/reqinfo"
)

// Defaults of Config.
const (
	DefaultMaxStreams        = 10000
	DefaultMaxStreamsPerUser = 8
	DefaultBuffer            = 256
	DefaultMaxAge            = time.Hour
	// DefaultCatchUpTimeout bounds the reading of the events missed since a
	// resume token.
	DefaultCatchUpTimeout = 30 * time.Second
	// DefaultHeartbeat is how often a stream without events is sent its
	// position.
	DefaultHeartbeat = 15 * time.Second
	// MinHeartbeat is the shortest Heartbeat allowed.
	MinHeartbeat = 100 * time.Millisecond
)

// Config configures a Hub.
type Config struct {
	// Brokers are the Kafka bootstrap brokers. Required.
	Brokers []string
	// Topics maps logical topics (shop.cart.v1, ...) to Kafka topic names;
	// unmapped ones keep their name.
	Topics map[string]string
	// MaxStreams caps the open streams of this instance. Default 10000.
	MaxStreams int
	// MaxStreamsPerUser caps the open streams of one caller (the token's
	// user, or the client address when anonymous). Default 8.
	MaxStreamsPerUser int
	// Buffer is how many events a subscriber may fall behind before its
	// stream is ended with RESOURCE_EXHAUSTED. Default 256.
	Buffer int
	// MaxAge ends a stream after this long (the client resumes with its
	// last token); a stream also ends when the caller's token expires.
	// Default 1h.
	MaxAge time.Duration
	// CatchUpTimeout bounds the replay of the events after a resume token.
	// Default 30s.
	CatchUpTimeout time.Duration
	// Heartbeat is how long a stream may go without a message: after it,
	// the stream is sent its position (a response with only the resume
	// token). Default 15s, at least MinHeartbeat.
	Heartbeat time.Duration
	// Sarama, when set, is the client configuration. Default: sarama's,
	// with the gateway's client id.
	Sarama *sarama.Config
	// Logger receives the hub's logs. Required.
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	c.MaxStreams = cmp.Or(c.MaxStreams, DefaultMaxStreams)
	c.MaxStreamsPerUser = cmp.Or(c.MaxStreamsPerUser, DefaultMaxStreamsPerUser)
	c.Buffer = cmp.Or(c.Buffer, DefaultBuffer)
	c.MaxAge = cmp.Or(c.MaxAge, DefaultMaxAge)
	c.CatchUpTimeout = cmp.Or(c.CatchUpTimeout, DefaultCatchUpTimeout)
	c.Heartbeat = cmp.Or(c.Heartbeat, DefaultHeartbeat)
}

// Validate reports every configuration problem at once.
func (c *Config) Validate() error {
	var errs []error
	if len(c.Brokers) == 0 {
		errs = append(errs, errors.New("live: no brokers"))
	}
	if c.Logger == nil {
		errs = append(errs, errors.New("live: no logger"))
	}
	if c.MaxStreams < 0 || c.MaxStreamsPerUser < 0 || c.Buffer < 0 || c.MaxAge < 0 || c.CatchUpTimeout < 0 || c.Heartbeat < 0 {
		errs = append(errs, errors.New("live: negative limit"))
	}
	if c.Heartbeat != 0 && c.Heartbeat < MinHeartbeat {
		errs = append(errs, fmt.Errorf("live: heartbeat %s is shorter than %s", c.Heartbeat, MinHeartbeat))
	}
	return errors.Join(errs...)
}

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

func (h *Hub) saramaConfig() *sarama.Config {
	if h.cfg.Sarama != nil {
		return h.cfg.Sarama
	}
	sc := sarama.NewConfig()
	sc.ClientID = "shop-gateway-live"
	sc.Version = sarama.V2_8_0_0
	sc.Consumer.Return.Errors = true
	sc.Metadata.Full = false
	sc.Net.DialTimeout = 5 * time.Second
	return sc
}

// run connects (retrying) and starts a reader per topic partition.
func (h *Hub) run() {
	defer close(h.done)
	var client sarama.Client
	for {
		var err error
		client, err = sarama.NewClient(h.cfg.Brokers, h.saramaConfig())
		if err == nil {
			break
		}
		h.cfg.Logger.Debug("live: kafka not reachable yet", slog.Any("error", err))
		select {
		case <-h.stop:
			return
		case <-time.After(2 * time.Second):
		}
	}
	h.mu.Lock()
	h.client = client
	h.mu.Unlock()
	defer client.Close()
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		h.cfg.Logger.Error("live: consumer", slog.Any("error", err))
		return
	}
	defer consumer.Close()
	var wg sync.WaitGroup
	for _, f := range h.feeds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h.readFeed(client, consumer, f)
		}()
	}
	wg.Wait()
}

// readFeed waits for the topic to exist, then consumes every partition
// from its newest offset and dispatches each record.
func (h *Hub) readFeed(client sarama.Client, consumer sarama.Consumer, f *feed) {
	var parts []int32
	pos := position{}
	for {
		var err error
		if parts, err = client.Partitions(f.topic); err == nil && len(parts) > 0 {
			for _, p := range parts {
				off, err2 := client.GetOffset(f.topic, p, sarama.OffsetNewest)
				if err2 != nil {
					err = err2
					break
				}
				pos[p] = off
			}
			if err == nil {
				break
			}
		}
		h.cfg.Logger.Debug("live: topic not readable yet", slog.String("topic", f.topic), slog.Any("error", err))
		select {
		case <-h.stop:
			return
		case <-time.After(2 * time.Second):
		}
		_ = client.RefreshMetadata(f.topic)
	}
	var pcs []sarama.PartitionConsumer
	for _, p := range parts {
		pc, err := consumer.ConsumePartition(f.topic, p, pos[p])
		if err != nil {
			h.cfg.Logger.Error("live: consume", slog.String("topic", f.topic), slog.Int("partition", int(p)), slog.Any("error", err))
			for _, pc := range pcs {
				pc.AsyncClose()
			}
			return
		}
		pcs = append(pcs, pc)
	}
	f.mu.Lock()
	f.pos, f.ready = pos, true
	f.mu.Unlock()
	h.cfg.Logger.Info("live: reading", slog.String("topic", f.topic), slog.Any("from", pos))
	var wg sync.WaitGroup
	for _, pc := range pcs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer pc.AsyncClose()
			for {
				select {
				case <-h.stop:
					return
				case err := <-pc.Errors():
					if err != nil {
						h.cfg.Logger.Warn("live: read", slog.String("topic", f.topic), slog.Any("error", err))
					}
				case m := <-pc.Messages():
					if m != nil {
						h.dispatch(f, m)
					}
				}
			}
		}()
	}
	wg.Wait()
}

func headersOf(m *sarama.ConsumerMessage) headers {
	h := make(headers, len(m.Headers))
	for _, r := range m.Headers {
		if r != nil {
			h[string(r.Key)] = string(r.Value)
		}
	}
	return h
}

// dispatch hands one record to the subscribers that want it. A subscriber
// whose buffer is full is cut off (its stream ends with RESOURCE_EXHAUSTED)
// rather than let memory grow or hold up the others.
func (h *Hub) dispatch(f *feed, m *sarama.ConsumerMessage) {
	key := string(m.Key)
	f.mu.Lock()
	defer f.mu.Unlock()
	if m.Offset+1 > f.pos[m.Partition] {
		f.pos[m.Partition] = m.Offset + 1
	}
	var msg proto.Message
	var pos position
	decoded := false
	for s := range f.subs {
		if !s.wants(f, key, m.Partition, m.Offset) {
			continue
		}
		if !decoded {
			decoded = true
			var err error
			if msg, err = f.kind.decode(headersOf(m), m.Value); err != nil {
				h.cfg.Logger.Warn("live: undecodable record skipped", slog.String("topic", f.topic),
					slog.Int("partition", int(m.Partition)), slog.Int64("offset", m.Offset), slog.Any("error", err))
			}
			pos = maps.Clone(f.pos)
		}
		if msg == nil {
			return
		}
		select {
		case s.ch <- event{msg: msg, pos: pos}:
		default:
			delete(f.subs, s)
			close(s.slow)
		}
	}
}

// caller names the stream's owner for the per-user cap: the token's user,
// else the client's address.
func callerKey(ctx context.Context) string {
	if c := reqinfo.CallerFrom(ctx); c != nil {
		return "sub:" + strconv.FormatInt(c.UserID, 10)
	}
	if ri := reqinfo.FromContext(ctx); ri != nil && ri.ClientIP != "" {
		return "ip:" + ri.ClientIP
	}
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		host, _, err := net.SplitHostPort(p.Addr.String())
		if err == nil {
			return "ip:" + host
		}
		return "ip:" + p.Addr.String()
	}
	return "ip:unknown"
}

func (h *Hub) acquire(who string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.total >= h.cfg.MaxStreams {
		return apierr.New(codes.ResourceExhausted, "this gateway instance has no room for another stream; retry later").WithRetryDelay(time.Second)
	}
	if h.perUser[who] >= h.cfg.MaxStreamsPerUser {
		return apierr.Errorf(codes.ResourceExhausted, "at most %d open streams per caller; close one first", h.cfg.MaxStreamsPerUser)
	}
	h.total++
	h.perUser[who]++
	return nil
}

func (h *Hub) release(who string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.total--
	if h.perUser[who]--; h.perUser[who] <= 0 {
		delete(h.perUser, who)
	}
}

// LastEventIDKey is the metadata key of the SSE Last-Event-ID header, the
// resume token of a reconnecting EventSource.
const LastEventIDKey = "last-event-id"

// Serve runs one stream: req is the Watch request (already authorized; the
// owner field filled), send delivers a response to the client. It returns
// when the client goes away (its context's error), the caller's token
// expires (UNAUTHENTICATED), the stream reaches MaxAge or the gateway
// shuts down (UNAVAILABLE: resume with the last token), or the client falls
// too far behind (RESOURCE_EXHAUSTED).
func (h *Hub) Serve(ctx context.Context, fullMethod string, req proto.Message, send func(proto.Message) error) error {
	k := h.kinds[fullMethod]
	if k == nil {
		return apierr.Errorf(codes.Unimplemented, "method %s not implemented", fullMethod)
	}
	f := h.feeds[k.topic]
	tok := tokenOf(req)
	if tok == "" {
		if md, ok := metadata.FromIncomingContext(ctx); ok {
			if v := md.Get(LastEventIDKey); len(v) == 1 {
				tok = v[0]
			}
		}
	}
	var from position
	if tok != "" {
		var err error
		if from, err = decodeToken(k.topic, tok); err != nil {
			return apierr.InvalidArgument(apierr.FieldViolation{Field: "resume_token", Description: err.Error()})
		}
	}
	who := callerKey(ctx)
	if err := h.acquire(who); err != nil {
		return err
	}
	defer h.release(who)

	user, products := keysOf(k, req)
	s := &sub{user: user, products: products, ch: make(chan event, h.cfg.Buffer), slow: make(chan struct{})}
	f.mu.Lock()
	if !f.ready {
		f.mu.Unlock()
		return apierr.New(codes.Unavailable, "live updates are not available yet (the event topics are not readable)").WithRetryDelay(2 * time.Second)
	}
	snap := maps.Clone(f.pos)
	s.from = merged(snap, from)
	f.subs[s] = struct{}{}
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		delete(f.subs, s)
		f.mu.Unlock()
	}()

	deadline := time.Now().Add(h.cfg.MaxAge)
	expired := apierr.New(codes.Unavailable, "the stream reached its maximum age; resume with the last resume_token").WithRetryDelay(0)
	if c := reqinfo.CallerFrom(ctx); c != nil && !c.Expiry.IsZero() && c.Expiry.Before(deadline) {
		deadline = c.Expiry
		expired = apierr.New(codes.Unauthenticated, "the access token expired; resume with a fresh token and the last resume_token")
	}
	parent := ctx
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()

	cur := maps.Clone(s.from)
	var spans []span
	if from != nil {
		// A token that cannot be resumed is refused before the stream
		// begins, so that REST answers it with an HTTP error status.
		var err error
		if cur, spans, err = h.planCatchUp(f, from, snap); err != nil {
			return err
		}
	}
	// Headers go out at once, so that a client knows it is subscribed
	// before the first event.
	_ = sendHeader(ctx)
	if len(spans) > 0 {
		var err error
		if cur, err = h.catchUp(ctx, f, s, cur, spans, send); err != nil {
			return h.ended(parent, ctx, err, expired)
		}
	}
	// The position at once and after each quiet heartbeat interval, so
	// that a client shown no event yet can resume exactly where it is.
	cur = f.here(s, cur)
	if err := send(positionMsg(k, encodeToken(k.topic, cur))); err != nil {
		return err
	}
	beat := time.NewTimer(h.cfg.Heartbeat)
	defer beat.Stop()
	for {
		select {
		case ev := <-s.ch:
			cur = merged(ev.pos, cur)
			if err := send(withToken(k, ev.msg, encodeToken(k.topic, cur))); err != nil {
				return err
			}
			beat.Reset(h.cfg.Heartbeat)
		case <-beat.C:
			cur = f.here(s, cur)
			if err := send(positionMsg(k, encodeToken(k.topic, cur))); err != nil {
				return err
			}
			beat.Reset(h.cfg.Heartbeat)
		case <-s.slow:
			return apierr.New(codes.ResourceExhausted, "the client fell too far behind the events and was disconnected; resume with the last resume_token")
		case <-h.stop:
			return apierr.New(codes.Unavailable, "the gateway is shutting down; resume with the last resume_token on another instance").WithRetryDelay(time.Second)
		case <-ctx.Done():
			return h.ended(parent, ctx, ctx.Err(), expired)
		}
	}
}

// ended is the status of a stream whose context ended: the client going
// away or its own deadline (parent's), else the deadline set by Serve
// (token expiry or max age).
func (h *Hub) ended(parent, ctx context.Context, err, expired error) error {
	switch {
	case errors.Is(parent.Err(), context.Canceled):
		return apierr.New(codes.Canceled, "the client closed the stream")
	case errors.Is(parent.Err(), context.DeadlineExceeded):
		return apierr.New(codes.DeadlineExceeded, "the call's deadline passed; resume with the last resume_token")
	case errors.Is(err, context.DeadlineExceeded) && errors.Is(ctx.Err(), context.DeadlineExceeded):
		return expired
	}
	return err
}

// here is the position of a subscriber that has sent everything it took
// from its buffer, at cur: past every record dispatched so far (records
// filtered out for it advance it too) when nothing waits in its buffer,
// else (or once it was cut off) cur.
func (f *feed) here(s *sub, cur position) position {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, open := f.subs[s]; !open || len(s.ch) > 0 {
		return cur
	}
	return merged(f.pos, cur)
}

// positionMsg is a response without an event that carries only tok.
func positionMsg(k *kind, tok string) proto.Message {
	m := k.out.New()
	m.Set(k.attr.token, protoValueString(tok))
	return m.Interface()
}

func withToken(k *kind, msg proto.Message, tok string) proto.Message {
	out := proto.Clone(msg)
	out.ProtoReflect().Set(k.attr.token, protoValueString(tok))
	return out
}

// catchUp sends the records from the token's offsets up to snap (where the
// live feed took over), filtered like the live ones, and returns the
// stream's position after them. A token older than the topic's retention
// is FAILED_PRECONDITION; one ahead of the topic is INVALID_ARGUMENT.
func (h *Hub) planCatchUp(f *feed, from, snap position) (position, []span, error) {
	h.mu.Lock()
	client := h.client
	h.mu.Unlock()
	if client == nil {
		return nil, nil, apierr.New(codes.Unavailable, "live updates are not available yet").WithRetryDelay(2 * time.Second)
	}
	cur := merged(snap, from)
	var spans []span
	for p := range from {
		if _, ok := snap[p]; !ok {
			return nil, nil, apierr.InvalidArgument(apierr.FieldViolation{Field: "resume_token", Description: errBadToken.Error()})
		}
	}
	for p, to := range snap {
		start, ok := from[p]
		if !ok {
			start = sarama.OffsetOldest
		}
		oldest, err := client.GetOffset(f.topic, p, sarama.OffsetOldest)
		if err != nil {
			return nil, nil, apierr.New(codes.Unavailable, "cannot read the event topic to resume; retry").WithRetryDelay(time.Second)
		}
		newest, err := client.GetOffset(f.topic, p, sarama.OffsetNewest)
		if err != nil {
			return nil, nil, apierr.New(codes.Unavailable, "cannot read the event topic to resume; retry").WithRetryDelay(time.Second)
		}
		if start == sarama.OffsetOldest {
			start = oldest
		}
		if start < oldest {
			return nil, nil, apierr.New(codes.FailedPrecondition,
				"the resume token is older than the events kept (the topic's retention); start a new stream without it and reload the state").
				WithReason("RESUME_TOKEN_EXPIRED")
		}
		if start > newest {
			return nil, nil, apierr.InvalidArgument(apierr.FieldViolation{Field: "resume_token", Description: "the resume token is ahead of the event topic"})
		}
		if start < to {
			spans = append(spans, span{p, start, to})
		}
	}
	// Until a partition is replayed, the position claims only what the
	// token claimed for it.
	for _, sp := range spans {
		cur[sp.p] = sp.from
	}
	return cur, spans, nil
}

// span is one partition's records to replay: [from, to).
type span struct {
	p        int32
	from, to int64
}

// catchUp replays spans to the subscriber, filtered like the live records,
// and returns the stream's position after them.
func (h *Hub) catchUp(ctx context.Context, f *feed, s *sub, cur position, spans []span, send func(proto.Message) error) (position, error) {
	h.mu.Lock()
	client := h.client
	h.mu.Unlock()
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		return nil, apierr.New(codes.Unavailable, "cannot read the event topic to resume; retry").WithRetryDelay(time.Second)
	}
	defer consumer.Close()
	timeout := time.NewTimer(h.cfg.CatchUpTimeout)
	defer timeout.Stop()
	for _, sp := range spans {
		pc, err := consumer.ConsumePartition(f.topic, sp.p, sp.from)
		if err != nil {
			return nil, apierr.New(codes.Unavailable, "cannot read the event topic to resume; retry").WithRetryDelay(time.Second)
		}
		err = func() error {
			defer pc.AsyncClose()
			for {
				select {
				case m := <-pc.Messages():
					if m == nil {
						return apierr.New(codes.Unavailable, "the event topic's reader stopped; retry").WithRetryDelay(time.Second)
					}
					if m.Offset >= sp.to {
						cur[sp.p] = max(cur[sp.p], sp.to)
						return nil
					}
					cur[sp.p] = max(cur[sp.p], m.Offset+1)
					if s.matches(f.kind, string(m.Key)) {
						msg, err := f.kind.decode(headersOf(m), m.Value)
						if err != nil || msg == nil {
							continue
						}
						if err := send(withToken(f.kind, msg, encodeToken(f.kind.topic, cur))); err != nil {
							return err
						}
					}
					if m.Offset+1 >= sp.to {
						return nil
					}
				case <-s.slow:
					return apierr.New(codes.ResourceExhausted, "the client fell too far behind the events and was disconnected; resume with the last resume_token")
				case <-h.stop:
					return apierr.New(codes.Unavailable, "the gateway is shutting down; resume with the last resume_token").WithRetryDelay(time.Second)
				case <-timeout.C:
					return apierr.New(codes.Unavailable, "replaying the missed events took too long; resume again").WithRetryDelay(time.Second)
				case <-ctx.Done():
					return ctx.Err()
				}
			}
		}()
		if err != nil {
			return nil, err
		}
	}
	return cur, nil
}

// Streams is the number of open streams (for metrics and tests).
func (h *Hub) Streams() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.total
}
