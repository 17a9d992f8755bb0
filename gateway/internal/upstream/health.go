package upstream

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Ready reports whether at least one instance answers GET /healthz with a
// 2xx. With the prober on it trusts the prober's last result and asks
// only instances not probed yet; with it off it asks every instance, at
// most 1 s each (less if ctx says so), in parallel. The error names the
// service, never an address.
func (p *Pool) Ready(ctx context.Context) error {
	unknown := make([]*instance, 0, len(p.instances))
	for _, inst := range p.instances {
		switch inst.health.Load() {
		case healthUp:
			return nil
		case healthUnknown:
			unknown = append(unknown, inst)
		}
	}
	if len(unknown) == 0 {
		return fmt.Errorf("%s: no instance passes GET %s", p.name, healthPath)
	}
	ctx, cancel := context.WithTimeout(ctx, p.healthTimeout)
	defer cancel()
	results := make(chan error, len(unknown))
	for _, inst := range unknown {
		go func() { results <- p.probe(ctx, inst) }()
	}
	for range unknown {
		if <-results == nil {
			return nil
		}
	}
	return fmt.Errorf("%s: none of %d instances answered GET %s", p.name, len(unknown), healthPath)
}

// watch probes inst every HealthInterval until ctx ends, and logs changes.
func (p *Pool) watch(ctx context.Context, inst *instance) {
	ticker := time.NewTicker(p.opts.HealthInterval)
	defer ticker.Stop()
	for {
		p.check(ctx, inst)
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

// check probes inst once and records whether it is up.
func (p *Pool) check(ctx context.Context, inst *instance) {
	probeCtx, cancel := context.WithTimeout(ctx, p.healthTimeout)
	err := p.probe(probeCtx, inst)
	cancel()
	if ctx.Err() != nil {
		return // Closing: the probe was cut short, it says nothing.
	}
	state := healthUp
	if err != nil {
		state = healthDown
	}
	prev := inst.health.Swap(state)
	switch {
	case prev == state:
	case state == healthDown:
		p.log.Warn("upstream instance failed health check", "instance", inst.base, "error", err)
	case prev == healthDown:
		p.log.Info("upstream instance passed health check again", "instance", inst.base)
	default:
		p.log.Info("upstream instance healthy", "instance", inst.base)
	}
}

// errUnhealthy is a health probe's non-2xx answer.
var errUnhealthy = errors.New("unhealthy")

// probe sends GET /healthz to inst.
func (p *Pool) probe(ctx context.Context, inst *instance) error {
	c := call{req: &Request{Method: http.MethodGet, Path: healthPath, Header: http.Header{"Accept": jsonContentType}}, path: healthPath}
	p.roundTrip(ctx, inst, &c)
	if c.err != nil {
		return fmt.Errorf("health probe: %w", c.err)
	}
	if c.status < 200 || c.status > 299 {
		return fmt.Errorf("health probe: HTTP %d: %w", c.status, errUnhealthy)
	}
	return nil
}
