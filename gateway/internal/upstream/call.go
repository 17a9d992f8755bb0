package upstream

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/sony/gobreaker/v2"
)

// Request is one HTTP call to a service.
type Request struct {
	// Method is the HTTP method: GET, POST, PUT or DELETE.
	Method string
	// Path is the escaped path and raw query, "/stock?page_size=10". It
	// must start with a single "/"; it is appended to the instance's base
	// URL, path prefix included.
	Path string
	// Body is the JSON body, or nil for none.
	Body []byte
	// BodyField is the proto name of the request field sent as the body
	// ("item"), "" when the body is the whole request. The service's
	// validation errors about the body get it as their field paths' prefix,
	// so that the paths are relative to the request message.
	BodyField string
	// Header holds extra headers to send (X-Request-Id, traceparent). Do
	// sets Accept, and Content-Type when there is a body, in this map
	// rather than copying it (a copy per call costs allocations), so the
	// map must belong to this call. Nil is fine.
	Header http.Header
}

// Response is the answer of the last attempt of a call.
type Response struct {
	// Status is the HTTP status, or 0 when no answer was received.
	Status int
	// Body is the whole response body (at most Options.MaxResponseBytes).
	Body []byte
	// Header is the response header, nil when no answer was received.
	Header http.Header
	// Instance is the base URL of the instance of the last attempt, for
	// the access log. It is never part of an error message.
	Instance string
	// Attempts is how many instances were tried, 0 when none was.
	Attempts int
}

// Do sends req to an instance of the pool and reads the whole answer.
//
// It returns (resp, nil) for a 2xx answer. For anything else it returns a
// *apierr.Error (mapped as the package documentation says) along with a
// non-nil resp describing the last attempt, for the access log:
// resp.Status is 0 when no answer was received. The context's deadline
// bounds every attempt together; without one, Options.Timeout does.
func (p *Pool) Do(ctx context.Context, req *Request) (*Response, error) {
	resp := &Response{}
	c := call{req: req}
	var ok bool
	if c.path, c.query, ok = splitPath(req); !ok {
		return resp, p.errs.badRequest
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, p.opts.Timeout)
		defer cancel()
		c.ownDeadline = true
	}
	if req.Header == nil {
		req.Header = make(http.Header, 2)
	}
	req.Header["Accept"] = jsonContentType
	if len(req.Body) > 0 {
		req.Header["Content-Type"] = jsonContentType
	}

	var triedBuf [4]int
	tried := triedBuf[:0]
	for resp.Attempts < p.maxAttempts {
		idx := p.attempt(ctx, &c, tried, resp.Attempts == 0)
		if idx < 0 {
			break
		}
		tried = append(tried, idx)
		resp.Attempts++
		resp.Instance = p.instances[idx].base
		resp.Status, resp.Header, resp.Body = c.status, c.header, c.body
		if c.err == nil && c.status >= 200 && c.status < 300 {
			return resp, nil
		}
		if !retryable(ctx, req.Method, c.status, c.err) {
			break
		}
	}
	err := c.err
	if err == nil && c.status != 0 {
		return resp, statusFromHTTP(p.name, c.status, c.body, req.BodyField)
	}
	if err == nil {
		err = errNoInstance
	}
	if p.log.Enabled(ctx, slog.LevelDebug) {
		p.log.DebugContext(ctx, "upstream call failed", "instance", resp.Instance, "attempts", resp.Attempts, "error", err)
	}
	return resp, p.errs.statusFromError(ctx, err)
}

// call is one Do: its request and the result of its last attempt.
type call struct {
	req         *Request
	path, query string
	ownDeadline bool // Whether the deadline is the pool's Timeout.

	status int
	header http.Header
	body   []byte
	err    error
}

// jsonContentType is shared by every request: the transport only reads it.
var jsonContentType = []string{"application/json"}

// splitPath splits req.Path into escaped path and raw query, and checks it
// is a path: one leading slash (two would read as a host).
func splitPath(req *Request) (path, query string, ok bool) {
	if req == nil || len(req.Path) == 0 || req.Path[0] != '/' || strings.HasPrefix(req.Path, "//") {
		return "", "", false
	}
	path, query, _ = strings.Cut(req.Path, "?")
	return path, query, true
}

// attempt sends c to the next instance round-robin among the healthy ones
// not tried yet, through its circuit breaker, and returns its index. When
// no instance is admissible and panicOK is set, it sends c to one anyway
// (panic mode: better a likely failure than a certain one), around its
// breaker. It returns -1, sending nothing, when no instance is left.
func (p *Pool) attempt(ctx context.Context, c *call, tried []int, panicOK bool) int {
	n := len(p.instances)
	start := 0
	if n > 1 {
		start = int(p.next.Add(1) % uint64(n))
	}
	for i := range n {
		idx := start + i
		if idx >= n {
			idx -= n
		}
		inst := p.instances[idx]
		if inst.health.Load() == healthDown || inst.hung.Load() || slices.Contains(tried, idx) {
			continue
		}
		_, err := inst.breaker.Execute(func() (struct{}, error) {
			p.timedRoundTrip(ctx, inst, c)
			return struct{}{}, outcome(ctx, c)
		})
		if errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) {
			continue // Ejected, or another request is probing it.
		}
		if err == nil && p.panicking.Load() && p.panicking.CompareAndSwap(true, false) {
			p.log.Info("upstream has a healthy instance again")
		}
		return idx
	}
	if !panicOK {
		return -1
	}
	// Panic mode: an instance that is down or ejected may answer after
	// all, but one that let a deadline pass would only cost this call its
	// whole budget; without any other, fail fast.
	idx := -1
	for i := range n {
		if j := (start + i) % n; !p.instances[j].hung.Load() && !slices.Contains(tried, j) {
			idx = j
			break
		}
	}
	if idx < 0 {
		return -1
	}
	if p.panicking.CompareAndSwap(false, true) {
		p.log.Warn("upstream has no healthy instance, trying ejected ones")
	}
	p.timedRoundTrip(ctx, p.instances[idx], c)
	return idx
}

// timedRoundTrip is roundTrip, passing the instance over (passOver) when
// the call's deadline ran out while it waited at least MinHungBudget for
// the answer: a hung instance is left out after one such call instead of
// costing every later call its whole budget.
func (p *Pool) timedRoundTrip(ctx context.Context, inst *instance, c *call) {
	start := time.Now()
	p.roundTrip(ctx, inst, c)
	if c.err != nil && (errors.Is(c.err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded)) &&
		time.Since(start) >= p.opts.MinHungBudget {
		p.passOver(inst)
	}
}

// passOver takes inst out of every rotation until a health probe gets an
// answer from it: probes every probeEvery until one does or the pool closes.
// A probe that answers at once (the instance was only slow on that call)
// brings it back within one probe.
func (p *Pool) passOver(inst *instance) {
	if !inst.hung.CompareAndSwap(false, true) {
		return
	}
	p.log.Warn("upstream instance let a deadline pass; passed over until a health probe answers", "instance", inst.base)
	p.probers.Go(func() {
		for {
			probeCtx, cancel := context.WithTimeout(p.proberCtx, p.healthTimeout)
			err := p.probe(probeCtx, inst)
			cancel()
			if err == nil {
				inst.hung.Store(false)
				p.log.Info("upstream instance answers again", "instance", inst.base)
				return
			}
			select {
			case <-p.proberCtx.Done():
				return
			case <-time.After(probeEvery):
			}
		}
	})
}

// probeEvery is the pause between the probes of a passed-over instance.
const probeEvery = 250 * time.Millisecond

// outcome is what c's last attempt means for the instance's circuit
// breaker: connection errors, 5xx (except 501) and the pool's own timeout
// are failures; the caller's cancellation or deadline are nobody's fault.
func outcome(ctx context.Context, c *call) error {
	switch {
	case c.err != nil && (ctx.Err() != nil || errors.Is(c.err, context.DeadlineExceeded)):
		if c.ownDeadline && (errors.Is(ctx.Err(), context.DeadlineExceeded) || errors.Is(c.err, context.DeadlineExceeded)) {
			return errInstanceFailed
		}
		return errNotCounted
	case errors.Is(c.err, errTooLarge):
		return nil // The instance answered; the answer is the problem.
	case c.err != nil:
		return errInstanceFailed
	case c.status >= 500 && c.status != http.StatusNotImplemented:
		return errInstanceFailed
	default:
		return nil
	}
}

// retryable says whether a failed attempt may be repeated on another
// instance. A connection that could not be opened never carried the
// request, so that is retried for any method; a broken connection or a
// 502, 503 or 504 only for GET, PUT and DELETE, whose repetition is
// harmless.
func retryable(ctx context.Context, method string, status int, err error) bool {
	if ctx.Err() != nil || errors.Is(err, errTooLarge) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	if err != nil && notSent(err) {
		return true
	}
	switch method {
	case http.MethodGet, http.MethodPut, http.MethodDelete:
	default:
		return false
	}
	if err != nil {
		return true
	}
	switch status {
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// notSent reports whether err happened before the request left: the
// connection could not be opened (refused, unreachable, DNS, dial timeout).
func notSent(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}
