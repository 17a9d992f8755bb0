package events_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	stockv1 "github.com/shopgateway/shop/gen/shop/stock/v1"

	"github.com/shopgateway/shop/gateway/internal/events"
	"github.com/shopgateway/shop/gateway/internal/outbox"
)

// nopOutbox accepts everything without storing it: the benchmark measures
// the emitter's own work (payload, envelope, idempotency), not the disk.
type nopOutbox struct{}

func (nopOutbox) Admit() error                                             { return nil }
func (nopOutbox) Append(context.Context, outbox.Record) (outbox.ID, error) { return 1, nil }

// BenchmarkInterceptor is the per-mutation cost of emitting an event, by
// format and with or without an Idempotency-Key (a fresh key per call).
func BenchmarkInterceptor(b *testing.B) {
	resp := &stockv1.SetStockLevelResponse{Item: tea}
	handler := func(context.Context, any) (any, error) { return resp, nil }
	info := &grpc.UnaryServerInfo{FullMethod: setStockLevel}
	req := setLevelReq(5)
	for _, format := range []events.Format{events.FormatJSON, events.FormatProtobuf} {
		for _, keyed := range []bool{false, true} {
			b.Run(fmt.Sprintf("%s/key=%v", format, keyed), func(b *testing.B) {
				em := newEmitter(b, nopOutbox{}, func(c *events.Config) { c.Format = format })
				ic := em.Interceptor()
				var n atomic.Int64
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						md := metadata.Pairs("x-request-id", "req-1", "traceparent", traceparent)
						if keyed {
							md.Set("idempotency-key", fmt.Sprint(n.Add(1)))
						}
						ctx := metadata.NewIncomingContext(context.Background(), md)
						if _, err := ic(ctx, req, info, handler); err != nil {
							b.Fatal(err)
						}
					}
				})
			})
		}
	}
}

// BenchmarkIntents is the per-mutation cost of the intent log against a
// real outbox (fsync per group commit, as -outbox-sync=always), with
// intents off and on: the intent is one more write, but no fsync.
func BenchmarkIntents(b *testing.B) {
	resp := &stockv1.SetStockLevelResponse{Item: tea}
	handler := func(context.Context, any) (any, error) { return resp, nil }
	info := &grpc.UnaryServerInfo{FullMethod: setStockLevel}
	req := setLevelReq(5)
	lookup := func(context.Context, string, proto.Message, string, proto.Message) (string, error) {
		return "unknown", nil
	}
	for _, on := range []bool{false, true} {
		b.Run(fmt.Sprintf("intents=%v", on), func(b *testing.B) {
			ob, err := outbox.Open(b.TempDir(), outbox.Options{CommitDelay: time.Millisecond})
			if err != nil {
				b.Fatal(err)
			}
			defer ob.Close()
			var il *outbox.Outbox
			if on {
				if il, err = outbox.Open(b.TempDir(), outbox.Options{NoSync: true}); err != nil {
					b.Fatal(err)
				}
				defer il.Close()
			}
			em := newEmitter(b, ob, func(c *events.Config) {
				if il != nil {
					c.Intents, c.Lookup = il, lookup
				}
			})
			ic := em.Interceptor()
			b.ReportAllocs()
			b.SetParallelism(8)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs("x-request-id", "req-1", "traceparent", traceparent))
					if _, err := ic(ctx, req, info, handler); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}
