package upstream

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"
)

// Defaults of [Options]. A zero field of Options takes the default below.
const (
	// DefaultTimeout bounds a call whose context has no deadline.
	DefaultTimeout = 10 * time.Second
	// DefaultDialTimeout bounds opening one TCP connection.
	DefaultDialTimeout = 2 * time.Second
	// DefaultMaxAttempts is how many instances one idempotent call may try.
	DefaultMaxAttempts = 3
	// DefaultEjectAfter is how many consecutive failures eject an instance.
	DefaultEjectAfter = 3
	// DefaultEjectFor is how long an ejected instance gets no traffic.
	DefaultEjectFor = 5 * time.Second
	// DefaultHealthInterval is the period of the background GET /healthz.
	DefaultHealthInterval = 2 * time.Second
	// DefaultMinHungBudget is the least time a call must have waited for
	// an answer before its deadline running out passes the instance over.
	DefaultMinHungBudget = 200 * time.Millisecond
	// DefaultMaxConnsPerHost is how many connections one instance may have open.
	DefaultMaxConnsPerHost = 512
	// DefaultIdleConnTimeout is how long an unused keep-alive connection is kept.
	DefaultIdleConnTimeout = 90 * time.Second
	// DefaultMaxResponseBytes is the largest response body accepted (4 MiB).
	DefaultMaxResponseBytes = 4 << 20
)

// Options tunes a [Pool]. The zero value is valid: every zero field takes
// its Default* value. Negative values are configuration errors, except for
// HealthInterval.
type Options struct {
	// Timeout bounds a whole call (every attempt) when the caller's context
	// has no deadline. A deadline on the context always wins.
	// Default 10 s.
	Timeout time.Duration

	// DialTimeout bounds opening one TCP connection to an instance. A dial
	// that times out counts as a refused connection, not as a call timeout.
	// Default 2 s.
	DialTimeout time.Duration

	// MaxAttempts is the most attempts one call makes, each on a different
	// instance, so it is also bounded by the number of instances. Only
	// GET, PUT and DELETE are retried after an answer or a broken
	// connection; any method is retried when the connection could not be
	// opened, because the instance then never saw the request.
	// Default 3.
	MaxAttempts int

	// EjectAfter is how many consecutive failures (connection errors, HTTP
	// 5xx except 501, timeouts of the pool's own Timeout) take an instance
	// out of the rotation. Default 3.
	EjectAfter int

	// EjectFor is how long an ejected instance stays out; after it one
	// request is let through as a probe, and its success re-admits the
	// instance. Default 5 s.
	EjectFor time.Duration
	// MinHungBudget: an instance is passed over (no traffic until a health
	// probe answers) when a call's deadline runs out after waiting at least
	// this long for its answer; shorter deadlines say more about the caller
	// than about the instance. Default 200 ms.
	MinHungBudget time.Duration

	// HealthInterval is the period of the background prober that sends
	// GET /healthz to every instance and takes instances that do not answer
	// 2xx out of the rotation until they do. Each probe times out after
	// the smaller of HealthInterval and 1 s.
	// Default 2 s; a negative value turns the prober off.
	HealthInterval time.Duration

	// MaxConnsPerHost is how many connections one instance may have open,
	// all kept alive between calls (until IdleConnTimeout); a call that
	// finds them all busy waits for one within its deadline. Default 512.
	MaxConnsPerHost int

	// IdleConnTimeout is how long an idle keep-alive connection is kept.
	// Default 90 s.
	IdleConnTimeout time.Duration

	// MaxResponseBytes is the largest response body read; a larger one
	// fails the call with INTERNAL. Default 4 MiB.
	MaxResponseBytes int64

	// Hook, when set, wraps every attempt (tracing: a span around the
	// attempt, a traceparent in its header). Default: none.
	Hook Hook

	// Logger receives instance state changes (ejected, re-admitted, health
	// check down or up, panic mode), not a line per request; only failed
	// calls, at debug level, with their cause. Default: discard.
	Logger *slog.Logger
}

// setDefaults replaces zero fields with their defaults.
func (o *Options) setDefaults() {
	o.Timeout = cmp.Or(o.Timeout, DefaultTimeout)
	o.DialTimeout = cmp.Or(o.DialTimeout, DefaultDialTimeout)
	o.MaxAttempts = cmp.Or(o.MaxAttempts, DefaultMaxAttempts)
	o.EjectAfter = cmp.Or(o.EjectAfter, DefaultEjectAfter)
	o.EjectFor = cmp.Or(o.EjectFor, DefaultEjectFor)
	o.MinHungBudget = cmp.Or(o.MinHungBudget, DefaultMinHungBudget)
	o.HealthInterval = cmp.Or(o.HealthInterval, DefaultHealthInterval)
	o.MaxConnsPerHost = cmp.Or(o.MaxConnsPerHost, DefaultMaxConnsPerHost)
	o.IdleConnTimeout = cmp.Or(o.IdleConnTimeout, DefaultIdleConnTimeout)
	o.MaxResponseBytes = cmp.Or(o.MaxResponseBytes, DefaultMaxResponseBytes)
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate reports every invalid field at once. Zero fields are valid
// (they take defaults); negative ones are not, except HealthInterval.
func (o Options) Validate() error {
	var errs []error
	nonNegative := func(name string, v int64) {
		if v < 0 {
			errs = append(errs, fmt.Errorf("%s must not be negative, got %d", name, v))
		}
	}
	nonNegativeDuration := func(name string, d time.Duration) {
		if d < 0 {
			errs = append(errs, fmt.Errorf("%s must not be negative, got %s", name, d))
		}
	}
	nonNegativeDuration("Timeout", o.Timeout)
	nonNegativeDuration("DialTimeout", o.DialTimeout)
	nonNegativeDuration("EjectFor", o.EjectFor)
	nonNegativeDuration("MinHungBudget", o.MinHungBudget)
	nonNegativeDuration("IdleConnTimeout", o.IdleConnTimeout)
	nonNegative("MaxAttempts", int64(o.MaxAttempts))
	nonNegative("EjectAfter", int64(o.EjectAfter))
	nonNegative("MaxConnsPerHost", int64(o.MaxConnsPerHost))
	nonNegative("MaxResponseBytes", o.MaxResponseBytes)
	if int64(o.EjectAfter) > math.MaxUint32 {
		errs = append(errs, fmt.Errorf("EjectAfter must be at most %d, got %d", uint32(math.MaxUint32), o.EjectAfter))
	}
	return errors.Join(errs...)
}
