package upstream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"
	"github.com/valyala/fasthttp"
)

// healthPath is what the prober and Ready ask every instance.
const healthPath = "/healthz"

// maxHealthTimeout bounds one health probe.
const maxHealthTimeout = time.Second

// Health of an instance as the prober last saw it.
const (
	healthUnknown int32 = iota // No probe finished yet, or the prober is off.
	healthUp
	healthDown
)

// Outcomes of an attempt for an instance's circuit breaker.
var (
	errInstanceFailed = errors.New("instance failed")
	errNotCounted     = errors.New("not the instance's fault")
)

// instance is one base URL of a pool.
type instance struct {
	base    string // scheme://host[/prefix], no trailing slash.
	scheme  string
	host    string
	prefix  string // Escaped path prefix, no trailing slash; often "".
	breaker *gobreaker.CircuitBreaker[struct{}]
	health  atomic.Int32
	client  *fasthttp.HostClient
	// hung: the instance let a call's deadline pass without answering.
	// It gets no traffic, not even in panic mode, until a health probe
	// answers (see passOver).
	hung atomic.Bool
}

// Pool is one upstream service with one or more instances. It is safe for
// concurrent use. Close it to stop its health prober.
type Pool struct {
	name          string
	opts          Options
	log           *slog.Logger
	instances     []*instance
	maxAttempts   int
	healthTimeout time.Duration
	errs          poolErrors

	next      atomic.Uint64 // Round-robin position.
	panicking atomic.Bool   // Whether calls are in panic mode (no healthy instance).

	proberCtx  context.Context
	stopProber context.CancelFunc
	probers    sync.WaitGroup
	closeOnce  sync.Once
}

// NewPool returns a pool for the service called name (used in log lines
// and in client-facing error messages, such as "service_b unavailable")
// with one instance per base URL ("http://host:port", optionally with a
// path prefix). It returns every configuration problem at once and never
// panics. When the health prober is on (the default), it starts probing
// at once; Close stops it.
func NewPool(name string, baseURLs []string, opts Options) (*Pool, error) {
	var errs []error
	if err := opts.Validate(); err != nil {
		errs = append(errs, err)
	}
	opts.setDefaults()
	if strings.TrimSpace(name) == "" {
		errs = append(errs, errors.New("service name is empty"))
	}
	if len(baseURLs) == 0 {
		errs = append(errs, errors.New("no instance URL"))
	}
	p := &Pool{
		name: name,
		opts: opts,
		log:  opts.Logger.With("service", name),
		errs: newPoolErrors(name),
	}
	seen := make(map[string]bool, len(baseURLs))
	for _, raw := range baseURLs {
		inst, err := parseInstance(raw)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if seen[inst.base] {
			errs = append(errs, fmt.Errorf("instance %s is listed twice", inst.base))
			continue
		}
		seen[inst.base] = true
		inst.breaker = gobreaker.NewCircuitBreaker[struct{}](p.breakerSettings(inst.base))
		inst.client = newHostClient(inst, opts)
		p.instances = append(p.instances, inst)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	p.maxAttempts = min(opts.MaxAttempts, len(p.instances))
	p.healthTimeout = maxHealthTimeout
	if opts.HealthInterval > 0 {
		p.healthTimeout = min(opts.HealthInterval, maxHealthTimeout)
	}
	ctx, stop := context.WithCancel(context.Background())
	p.proberCtx, p.stopProber = ctx, stop
	if opts.HealthInterval > 0 {
		for _, inst := range p.instances {
			p.probers.Go(func() { p.watch(ctx, inst) })
		}
	}
	return p, nil
}

// parseInstance checks one base URL: absolute http or https, a host, no
// credentials (they would land in logs), no query or fragment.
func parseInstance(raw string) (*instance, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return nil, fmt.Errorf("instance URL: %w", err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("instance URL %q: scheme must be http or https", u.Redacted())
	case u.Host == "":
		return nil, fmt.Errorf("instance URL %q: no host", u.Redacted())
	case u.User != nil:
		return nil, fmt.Errorf("instance URL %q: credentials are not supported", u.Redacted())
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return nil, fmt.Errorf("instance URL %q: query and fragment are not supported", u.Redacted())
	}
	prefix := strings.TrimRight(u.EscapedPath(), "/")
	return &instance{
		base:   u.Scheme + "://" + u.Host + prefix,
		scheme: u.Scheme,
		host:   u.Host,
		prefix: prefix,
	}, nil
}

// breakerSettings make an instance's circuit breaker: EjectAfter
// consecutive failures open it for EjectFor, then one request probes it.
func (p *Pool) breakerSettings(base string) gobreaker.Settings {
	ejectAfter := uint32(p.opts.EjectAfter)
	return gobreaker.Settings{
		Name:        base,
		MaxRequests: 1,
		Timeout:     p.opts.EjectFor,
		ReadyToTrip: func(c gobreaker.Counts) bool {
			return c.ConsecutiveFailures >= ejectAfter
		},
		IsExcluded: func(err error) bool {
			return errors.Is(err, errNotCounted)
		},
		OnStateChange: func(instance string, from, to gobreaker.State) {
			switch {
			case to == gobreaker.StateOpen && from == gobreaker.StateClosed:
				p.log.Warn("upstream instance ejected", "instance", instance, "eject_for", p.opts.EjectFor)
			case to == gobreaker.StateOpen:
				p.log.Warn("upstream instance failed its probe, ejected again", "instance", instance, "eject_for", p.opts.EjectFor)
			case to == gobreaker.StateClosed:
				p.log.Info("upstream instance re-admitted", "instance", instance)
			default:
				p.log.Debug("upstream instance on probation", "instance", instance)
			}
		},
	}
}

// Close stops the health prober and closes idle connections. Calls in
// flight finish normally. Close is idempotent; Do still works after it,
// without health checks.
func (p *Pool) Close() {
	p.closeOnce.Do(func() {
		p.stopProber()
		p.probers.Wait()
		for _, inst := range p.instances {
			inst.client.CloseIdleConnections()
		}
	})
}
