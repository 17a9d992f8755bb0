package live

import (
	"context"
	"errors"
	"maps"
	"net"
	"strconv"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/protobuf/proto"

	"github.com/shopgateway/shop/gateway/internal/apierr"
	"github.com/shopgateway/shop/gateway/internal/reqinfo"
)

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
	from, err := resumeFrom(ctx, k, req)
	if err != nil {
		return err
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
	return h.stream(ctx, parent, f, k, s, cur, send, expired)
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

// Streams is the number of open streams (for metrics and tests).
func (h *Hub) Streams() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.total
}

// resumeFrom is the position a stream resumes after: the request's
// resume_token, else an EventSource's Last-Event-ID; nil for none.
func resumeFrom(ctx context.Context, k *kind, req proto.Message) (position, error) {
	tok := tokenOf(req)
	if tok == "" {
		if md, ok := metadata.FromIncomingContext(ctx); ok {
			if v := md.Get(LastEventIDKey); len(v) == 1 {
				tok = v[0]
			}
		}
	}
	if tok == "" {
		return nil, nil
	}
	from, err := decodeToken(k.topic, tok)
	if err != nil {
		return nil, apierr.InvalidArgument(apierr.FieldViolation{Field: "resume_token", Description: err.Error()})
	}
	return from, nil
}

// stream sends s's events from cur on, each with the position after it,
// and the position alone after each quiet heartbeat, until the client is
// too slow, the hub stops or ctx ends (expired says why when the stream's
// own deadline did it).
func (h *Hub) stream(ctx, parent context.Context, f *feed, k *kind, s *sub, cur position, send func(proto.Message) error, expired error) error {
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
