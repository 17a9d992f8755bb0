package server

import (
	"context"
	"net/http"

	"google.golang.org/grpc/metadata"

	"github.com/shopgateway/shop/gateway/internal/reqinfo"
)

// The request id and trace context of a request are resolved in one place
// for both edges: the REST middleware reads and writes HTTP headers, the
// gRPC access interceptor metadata, through a carrier.
type carrier interface {
	get(key string) string
	set(key, value string)
	del(key string)
}

// headerCarrier is an http.Header as a carrier (keys are canonicalized).
type headerCarrier http.Header

func (h headerCarrier) get(k string) string { return http.Header(h).Get(k) }
func (h headerCarrier) set(k, v string)     { http.Header(h).Set(k, v) }
func (h headerCarrier) del(k string)        { http.Header(h).Del(k) }

// mdCarrier is gRPC metadata as a carrier; it copies the metadata before
// its first write, as incoming metadata is shared.
type mdCarrier struct {
	md     metadata.MD
	copied bool
}

func (c *mdCarrier) get(k string) string { return reqinfo.First(c.md, k) }
func (c *mdCarrier) set(k, v string)     { c.own(); c.md.Set(k, v) }
func (c *mdCarrier) del(k string)        { c.own(); c.md.Delete(k) }

func (c *mdCarrier) own() {
	if !c.copied {
		c.md, c.copied = c.md.Copy(), true
		if c.md == nil {
			c.md = metadata.MD{}
		}
	}
}

// resolveIDs resolves the ids of a request arriving with in: the caller's
// when valid, else fresh (reqinfo.Resolve); with tracing, the traceparent
// of the server span in ctx. When they differ from what the caller sent
// they are written back into in, so that every layer below passes on the
// same ids.
func resolveIDs(ctx context.Context, in carrier, traced bool) reqinfo.IDs {
	ids := reqinfo.Resolve(in.get(reqinfo.RequestIDKey), in.get(reqinfo.TraceparentKey), in.get(reqinfo.TracestateKey))
	if traced {
		ids = withSpan(ctx, ids)
	}
	if ids.Changed {
		setIDs(in, ids)
	}
	return ids
}

// setIDs writes ids to c: the request id, the traceparent, and the
// tracestate, removed when there is none.
func setIDs(c carrier, ids reqinfo.IDs) {
	c.set(reqinfo.RequestIDKey, ids.RequestID)
	c.set(reqinfo.TraceparentKey, ids.Traceparent)
	c.del(reqinfo.TracestateKey)
	if ids.Tracestate != "" {
		c.set(reqinfo.TracestateKey, ids.Tracestate)
	}
}
