package upstream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
)

// The pool speaks HTTP/1.1 to its instances with valyala/fasthttp's
// HostClient as the connection pool and its request and response types,
// but sends and reads each request itself, in the caller's goroutine.
// net/http's Transport gives every connection a read and a write goroutine
// and hands each request between them over channels; here an attempt is
// one write and one read on a pooled connection, with no goroutine, no
// channel and pooled buffers, which is most of what a hop costs.
//
// What net/http did for free and is done here instead:
//   - the caller's cancellation: the connection's deadline is set to the
//     past when the context is done, which ends the write or read at once;
//     the connection is then closed, never reused;
//   - a keep-alive connection that the server closed while it was idle (no
//     background reader notices): one idle for more than staleAfter is
//     checked with a non-blocking peek before it is used, and a call
//     that still finds it closed before any answer is sent again once on
//     a new connection when repeating it is harmless (GET, PUT, DELETE, or
//     an Idempotency-Key).

// staleAfter is how long a connection may sit idle before it is checked
// for a close by the server before reuse. Servers close idle keep-alive
// connections after seconds (uvicorn: 5 s), so a connection used a moment
// ago needs no check, and a busy pool makes no extra system call.
const staleAfter = time.Second

// newHostClient makes the connection pool of one instance.
func newHostClient(inst *instance, opts Options) *fasthttp.HostClient {
	dialer := &net.Dialer{Timeout: opts.DialTimeout, KeepAlive: 30 * time.Second}
	addr := inst.host
	if _, _, err := net.SplitHostPort(addr); err != nil {
		port := "80"
		if inst.scheme == "https" {
			port = "443"
		}
		addr = net.JoinHostPort(strings.Trim(addr, "[]"), port)
	}
	return &fasthttp.HostClient{
		Addr:  addr,
		IsTLS: inst.scheme == "https",
		Dial: func(addr string) (net.Conn, error) {
			return dialer.Dial("tcp", addr)
		},
		MaxConns: opts.MaxConnsPerHost,
		// More concurrent calls than MaxConns wait for a connection, within
		// their own deadline, rather than fail.
		MaxConnWaitTimeout:       opts.Timeout,
		MaxIdleConnDuration:      opts.IdleConnTimeout,
		MaxResponseBodySize:      int(min(opts.MaxResponseBytes, int64(maxInt))),
		NoDefaultUserAgentHeader: true,
		DisablePathNormalizing:   true,
		// The most recently used connection first: the others go idle and
		// are closed after IdleConnTimeout, so the pool shrinks after a peak.
		ConnPoolStrategy: fasthttp.LIFO,
	}
}

const maxInt = int(^uint(0) >> 1)

// errClosedBeforeAnswer is an attempt on a kept-alive connection that the
// server had closed: it got no byte of an answer.
var errClosedBeforeAnswer = errors.New("connection closed before an answer")

// roundTrip makes one attempt of c on inst and reads the whole answer
// into c.
func (p *Pool) roundTrip(ctx context.Context, inst *instance, c *call) {
	c.status, c.header, c.body, c.err = 0, nil, nil, nil
	var a *Attempt
	if p.opts.Hook != nil {
		a = &Attempt{Method: c.req.Method, Instance: inst.base, Path: c.path, Header: c.req.Header}
		var done func(*Attempt)
		ctx, done = p.opts.Hook(ctx, a)
		defer func() {
			a.Status, a.Err = c.status, c.err
			done(a)
		}()
	}
	req := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(req)
	res := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseResponse(res)
	writeRequest(req, inst, c)

	err := exchange(ctx, inst.client, req, res)
	if errors.Is(err, errClosedBeforeAnswer) && repeatable(c.req) {
		err = exchange(ctx, inst.client, req, res)
	}
	if err != nil {
		if errors.Is(err, fasthttp.ErrBodyTooLarge) {
			err = fmt.Errorf("more than %d bytes: %w", p.opts.MaxResponseBytes, errTooLarge)
		}
		c.err = fmt.Errorf("%s %s: %w", c.req.Method, inst.base, err)
		return
	}
	c.status = res.StatusCode()
	c.header = make(http.Header, res.Header.Len())
	for k, v := range res.Header.All() {
		c.header.Add(string(k), string(v))
	}
	c.body = append([]byte(nil), res.Body()...)
}

// writeRequest fills req for c on inst: the request target verbatim (the
// path stays escaped exactly as the caller escaped it), Host, c's headers
// and body.
func writeRequest(req *fasthttp.Request, inst *instance, c *call) {
	req.Header.SetMethod(c.req.Method)
	uri := req.Header.RequestURI()[:0]
	uri = append(uri, inst.prefix...)
	uri = append(uri, c.path...)
	if c.query != "" {
		uri = append(uri, '?')
		uri = append(uri, c.query...)
	}
	req.Header.SetRequestURIBytes(uri)
	req.Header.SetHost(inst.host)
	for k, vs := range c.req.Header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	if len(c.req.Body) > 0 {
		req.SetBodyRaw(c.req.Body)
	}
}

// repeatable reports whether sending req twice is harmless.
func repeatable(req *Request) bool {
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodPut, http.MethodDelete:
		return true
	}
	return req.Header.Get("Idempotency-Key") != ""
}

// exchange sends req on a pooled connection of hc and reads the answer
// into res, within ctx: its deadline bounds the write and the read, and
// its cancellation ends them at once.
func exchange(ctx context.Context, hc *fasthttp.HostClient, req *fasthttp.Request, res *fasthttp.Response) error {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(DefaultTimeout) // Do always sets one; this is a guard.
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	// Idle connections closed by the server are dropped here, the most
	// recently used first; a new one is dialled when none is left.
	cc, err := hc.AcquireConn(time.Until(deadline), false)
	for err == nil && stale(cc.LastUseTime(), cc.Conn()) {
		hc.CloseConn(cc)
		cc, err = hc.AcquireConn(time.Until(deadline), false)
	}
	if err != nil {
		if errors.Is(err, fasthttp.ErrTimeout) || errors.Is(err, fasthttp.ErrNoFreeConns) {
			return context.DeadlineExceeded
		}
		return err
	}
	conn := cc.Conn()
	reused := !cc.LastUseTime().IsZero()
	if err := conn.SetDeadline(deadline); err != nil {
		hc.CloseConn(cc)
		return err
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })

	bw := hc.AcquireWriter(conn)
	err = req.Write(bw)
	if err == nil {
		err = bw.Flush()
	}
	hc.ReleaseWriter(bw)
	if err == nil {
		br := hc.AcquireReader(conn)
		err = res.ReadLimitBody(br, hc.MaxResponseBodySize)
		hc.ReleaseReader(br)
	}
	canceled := !stop()
	switch {
	case canceled && ctx.Err() != nil:
		hc.CloseConn(cc)
		return ctx.Err()
	case err != nil:
		hc.CloseConn(cc)
		if reused && closedBeforeAnswer(err) {
			return fmt.Errorf("%w: %w", errClosedBeforeAnswer, err)
		}
		if isTimeout(err) && !time.Now().Before(deadline) {
			// The connection's deadline is the context's; its timer may
			// fire a moment before the context's own.
			return context.DeadlineExceeded
		}
		return err
	case canceled || res.ConnectionClose():
		hc.CloseConn(cc)
	default:
		hc.ReleaseConn(cc)
	}
	return nil
}

// stale reports whether a connection last used at last (zero: never, a new
// one) has been idle long enough to be checked, and the server has closed it.
func stale(last time.Time, conn net.Conn) bool {
	return !last.IsZero() && time.Since(last) > staleAfter && !alive(conn)
}

// closedBeforeAnswer reports whether err is the peer closing or resetting
// the connection with no byte of an answer read.
func closedBeforeAnswer(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, fasthttp.ErrConnectionClosed) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

// Attempt is one try of a call on one instance, as a [Hook] sees it.
type Attempt struct {
	// Method is the HTTP method.
	Method string
	// Instance is the instance's base URL.
	Instance string
	// Path is the escaped request path, without the instance's prefix and
	// the query.
	Path string
	// Header is the request's header: a hook may add to it (a traceparent)
	// before the attempt.
	Header http.Header
	// Status is the HTTP status of the answer, 0 when none was received;
	// set after the attempt.
	Status int
	// Err is the attempt's transport error; set after the attempt.
	Err error
}

// Hook wraps every attempt of every call, for tracing: it is called before
// the attempt with the call's context and returns the context of the
// attempt (with a span, say) and a function called after the attempt with
// its outcome. A nil Hook costs nothing.
type Hook func(ctx context.Context, a *Attempt) (context.Context, func(*Attempt))
