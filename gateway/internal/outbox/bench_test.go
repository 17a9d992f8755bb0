package outbox

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
)

// benchRecord is shaped like a gateway event: a CloudEvents header set and
// a small JSON body.
func benchRecord() Record {
	h := func(k, v string) Header { return Header{Key: []byte(k), Value: []byte(v)} }
	return Record{
		Topic: "shop.cart.v1",
		Key:   []byte("1042"),
		Headers: []Header{
			h("ce_specversion", "1.0"),
			h("ce_id", "6f1c0f0e-6a3e-4c57-9b8e-3b1d5e0f2a91"),
			h("ce_source", "//shop-gateway/cart"),
			h("ce_type", "shop.events.v1.CartItemAdded"),
			h("ce_time", "2026-01-02T03:04:05.123456Z"),
			h("ce_subject", "1042"),
			h("content-type", "application/json"),
			h("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
			h("x-request-id", "b3c5a9d2e1f04c6b"),
		},
		Value: []byte(`{"item":{"item_id":"90211","user_id":"1042","product_id":"7","quantity":2,"added_at":"2026-01-02T03:04:05Z"}` + strings.Repeat(" ", 64) + `}`),
	}
}

// BenchmarkAppend measures committed appends per second with 1, 16 and 64
// concurrent writers, with fsync and without (the NoSync baseline shows
// what the disk costs). A consumer acks behind the writers so the cap is
// never hit.
func BenchmarkAppend(b *testing.B) {
	for _, sync := range []bool{true, false} {
		for _, writers := range []int{1, 16, 64} {
			name := fmt.Sprintf("fsync/writers=%d", writers)
			if !sync {
				name = fmt.Sprintf("nosync/writers=%d", writers)
			}
			b.Run(name, func(b *testing.B) { benchAppend(b, writers, !sync) })
		}
	}
}

func benchAppend(b *testing.B, writers int, noSync bool) {
	o := openTB(b, b.TempDir(), Options{NoSync: noSync, MaxBytes: 1 << 40})
	rec := benchRecord()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for {
			es, err := o.Next(ctx, 4096)
			if err != nil {
				return
			}
			_ = o.Ack(es[len(es)-1].ID)
		}
	}()

	b.ReportAllocs()
	b.ResetTimer()
	var wg sync.WaitGroup
	for w := range writers {
		n := b.N / writers
		if w < b.N%writers {
			n++
		}
		wg.Go(func() {
			for range n {
				if _, err := o.Append(ctx, rec); err != nil {
					b.Errorf("Append: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
