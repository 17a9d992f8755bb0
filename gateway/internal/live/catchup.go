package live

import (
	"context"
	"time"

	"github.com/IBM/sarama"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/shopgateway/shop/gateway/internal/apierr"
)

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
