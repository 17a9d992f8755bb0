package drift

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/shopgateway/shop/gateway/internal/forward"
	"github.com/shopgateway/shop/gateway/internal/upstream"
)

// Fetcher asks every instance of a service for a document, answers in
// instance order; *upstream.Pool implements it.
type Fetcher interface {
	GetEach(ctx context.Context, path string) []upstream.Fetched
}

// DocumentPath is where a service serves its OpenAPI document (FastAPI's
// default).
const DocumentPath = "/openapi.json"

// Defaults of WatchConfig.
const (
	// DefaultFetchTimeout bounds one round of fetching the documents.
	DefaultFetchTimeout = 5 * time.Second
	// DefaultRetryInterval is how soon every instance is asked again while
	// one could not be asked (down, or starting after the gateway).
	DefaultRetryInterval = 10 * time.Second
	// DefaultRecheckInterval is how often every instance is checked again
	// once all have been, so that a service redeployed behind the same URL
	// is checked too.
	DefaultRecheckInterval = 10 * time.Minute
)

// maxShown bounds the problems shown per instance in readiness; the log
// has them all.
const maxShown = 10

// States of an instance in the readiness detail.
const (
	statePending   = "pending"   // not asked yet
	stateOK        = "ok"        // its document matches the proto
	stateDrift     = "drift"     // its document differs from the proto
	stateUnchecked = "unchecked" // it could not be asked, or its answer is no OpenAPI 3 document
)

// WatchConfig configures a Watcher. Zero durations take the defaults
// above; Plans and Services are required.
type WatchConfig struct {
	// Plans are the forwarded RPCs (forward.Plans).
	Plans []forward.Plan
	// Services maps each upstream name of the plans to its instances.
	Services map[string]Fetcher
	// FetchTimeout bounds one round of fetching. Default
	// DefaultFetchTimeout (5s).
	FetchTimeout time.Duration
	// RetryInterval: see DefaultRetryInterval (10s).
	RetryInterval time.Duration
	// RecheckInterval: see DefaultRecheckInterval (10m).
	RecheckInterval time.Duration
	// Logger gets a line per instance whose state changes. Default:
	// discard.
	Logger *slog.Logger
}

// instanceState is what the last check of one instance found.
type instanceState struct {
	state    string
	problems []Problem
	reason   string
}

// Watcher checks each service instance's own OpenAPI document (GET
// /openapi.json, bounded by the fetch timeout and the pool's response size
// cap) against the proto, at start and then periodically, and reports the
// result for readiness.
type Watcher struct {
	cfg   WatchConfig
	names []string // sorted service names
	mu    sync.Mutex
	state map[string][]instanceState
}

// NewWatcher checks cfg and returns a Watcher; Run starts it.
func NewWatcher(cfg WatchConfig) (*Watcher, error) {
	cfg.FetchTimeout = cmp.Or(cfg.FetchTimeout, DefaultFetchTimeout)
	cfg.RetryInterval = cmp.Or(cfg.RetryInterval, DefaultRetryInterval)
	cfg.RecheckInterval = cmp.Or(cfg.RecheckInterval, DefaultRecheckInterval)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	var errs []error
	if cfg.FetchTimeout < 0 || cfg.RetryInterval < 0 || cfg.RecheckInterval < 0 {
		errs = append(errs, errors.New("drift: negative interval"))
	}
	w := &Watcher{cfg: cfg, state: map[string][]instanceState{}}
	for _, p := range cfg.Plans {
		if _, ok := cfg.Services[p.Upstream]; !ok && !slices.Contains(w.names, p.Upstream) {
			errs = append(errs, fmt.Errorf("drift: no instances for %s", p.Upstream))
		}
		if !slices.Contains(w.names, p.Upstream) {
			w.names = append(w.names, p.Upstream)
		}
	}
	slices.Sort(w.names)
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return w, nil
}

// Run checks every instance, then again every RetryInterval while one
// could not be asked, else every RecheckInterval, until ctx ends. A round
// asks every instance: it is a few small requests.
func (w *Watcher) Run(ctx context.Context) {
	for {
		wait := w.cfg.RecheckInterval
		if !w.round(ctx) {
			wait = w.cfg.RetryInterval
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// round checks every instance of every service once and reports whether
// each could be checked.
func (w *Watcher) round(ctx context.Context) bool {
	complete := true
	for _, name := range w.names {
		fctx, cancel := context.WithTimeout(ctx, w.cfg.FetchTimeout)
		answers := w.cfg.Services[name].GetEach(fctx, DocumentPath)
		cancel()
		if ctx.Err() != nil {
			return false
		}
		states := make([]instanceState, len(answers))
		for i, a := range answers {
			states[i] = w.judge(name, a)
			complete = complete && states[i].state != stateUnchecked
		}
		w.record(name, answers, states)
	}
	return complete
}

func (w *Watcher) judge(name string, a upstream.Fetched) instanceState {
	if a.Err != nil {
		reason := "no answer"
		if a.Status != 0 {
			reason = fmt.Sprintf("HTTP %d", a.Status)
		}
		return instanceState{state: stateUnchecked, reason: reason}
	}
	probs, err := Check(w.cfg.Plans, name, a.Body)
	switch {
	case err != nil:
		return instanceState{state: stateUnchecked, reason: "not an OpenAPI 3 document"}
	case len(probs) > 0:
		return instanceState{state: stateDrift, problems: probs}
	}
	return instanceState{state: stateOK}
}

// record keeps the states of name's instances and logs each change.
func (w *Watcher) record(name string, answers []upstream.Fetched, states []instanceState) {
	w.mu.Lock()
	prev := w.state[name]
	w.state[name] = states
	w.mu.Unlock()
	for i, st := range states {
		if i < len(prev) && prev[i].state == st.state && slices.Equal(prev[i].problems, st.problems) {
			continue
		}
		log := w.cfg.Logger.With(slog.String("service", name), slog.String("instance", answers[i].Instance))
		switch st.state {
		case stateOK:
			log.Info("service API matches the proto")
		case stateDrift:
			texts := make([]string, len(st.problems))
			for j, p := range st.problems {
				texts[j] = p.String()
			}
			log.Error("service API differs from the proto: calls of these RPCs may lose or misread fields", slog.Any("problems", texts))
		case stateUnchecked:
			log.Warn("service API not checked against the proto", slog.String("reason", st.reason), slog.Any("error", answers[i].Err))
		}
	}
}

// Ready is the readiness check: a detail per service and instance (by its
// 1-based position in the service's URL list; addresses stay in the log),
// and an error naming the instances whose API differs from the proto.
// Instances not checked yet, or that could not be, are no error: reaching
// them is the upstream checks' business.
func (w *Watcher) Ready(context.Context) (any, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	detail := map[string]any{}
	var errs []error
	for _, name := range w.names {
		states := w.state[name]
		list := make([]map[string]any, 0, len(states))
		for i, st := range states {
			e := map[string]any{"instance": i + 1, "state": st.state}
			if st.reason != "" {
				e["reason"] = st.reason
			}
			if len(st.problems) > 0 {
				shown := st.problems[:min(len(st.problems), maxShown)]
				texts := make([]string, len(shown))
				for j, p := range shown {
					texts[j] = p.String()
				}
				e["problems"] = texts
				if n := len(st.problems) - len(shown); n > 0 {
					e["more"] = n
				}
				errs = append(errs, fmt.Errorf("%s instance %d: %d differences from the proto", name, i+1, len(st.problems)))
			}
			list = append(list, e)
		}
		if len(states) == 0 {
			list = append(list, map[string]any{"state": statePending})
		}
		detail[name] = list
	}
	return detail, errors.Join(errs...)
}
