package upstream

import (
	"context"
	"fmt"
	"net/http"
	"sync"
)

// Fetched is one instance's answer to GetEach.
type Fetched struct {
	// Instance is the instance's base URL, for logs; never put it in an
	// error a client sees.
	Instance string
	// Body is the answer's body, at most Options.MaxResponseBytes.
	Body []byte
	// Err is a transport failure or a non-2xx answer.
	Err error
	// Status is the HTTP status, 0 when no answer was received.
	Status int
}

// GetEach sends GET path to every instance at once and returns their
// answers in the order of the pool's base URLs. It goes around the load
// balancing, the health state and the circuit breakers, and its outcome
// counts for none of them: it is for asking each instance about itself
// (its API description), not for serving a call. ctx bounds it, or
// Options.Timeout when ctx has no deadline.
func (p *Pool) GetEach(ctx context.Context, path string) []Fetched {
	out := make([]Fetched, len(p.instances))
	req := &Request{Method: http.MethodGet, Path: path}
	cpath, query, ok := splitPath(req)
	if !ok {
		for i, inst := range p.instances {
			out[i] = Fetched{Instance: inst.base, Err: fmt.Errorf("path %q: must start with one /", path)}
		}
		return out
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, p.opts.Timeout)
		defer cancel()
	}
	var wg sync.WaitGroup
	for i, inst := range p.instances {
		wg.Go(func() {
			c := call{req: &Request{Method: http.MethodGet, Path: path, Header: http.Header{"Accept": jsonContentType}}, path: cpath, query: query}
			p.roundTrip(ctx, inst, &c)
			f := Fetched{Instance: inst.base, Body: c.body, Err: c.err, Status: c.status}
			if f.Err == nil && (c.status < 200 || c.status > 299) {
				f.Err = fmt.Errorf("GET %s: HTTP %d", path, c.status)
			}
			out[i] = f
		})
	}
	wg.Wait()
	return out
}
