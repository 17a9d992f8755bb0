// Package metrics exposes the gateway's Prometheus metrics: one observation
// per request (by protocol, RPC, gRPC code and upstream) and gauges read at
// scrape time from the parts that own them (outbox depth, Kafka state).
package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/shopgateway/shop/gateway/internal/reqinfo"
)

// Metrics is the gateway's metric registry. The zero value is not usable;
// use New.
type Metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	attempts *prometheus.CounterVec
	fallback *prometheus.CounterVec
}

// New returns a registry with the request metrics and the Go runtime and
// process collectors registered.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shop_gateway_requests_total",
			Help: "Requests served, by protocol (http or grpc), RPC (empty when no route matched), gRPC code and HTTP status (0 for gRPC).",
		}, []string{"protocol", "rpc", "code", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "shop_gateway_request_duration_seconds",
			Help:    "Time from the request's arrival to its answer, by protocol and RPC.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"protocol", "rpc"}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shop_gateway_upstream_attempts_total",
			Help: "Upstream HTTP attempts (retries included), by upstream service.",
		}, []string{"upstream"}),
		fallback: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shop_gateway_fallback_total",
			Help: "Answers served by a fallback route (GetCart from service A), by RPC.",
		}, []string{"rpc"}),
	}
	m.reg.MustRegister(m.requests, m.duration, m.attempts, m.fallback,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Observe records one finished request. It has the signature of
// server.Config.Observe.
func (m *Metrics) Observe(protocol string, ri *reqinfo.Info, httpStatus int, d time.Duration) {
	code := ""
	if ri.RPC != "" {
		code = ri.Code.String()
	}
	m.requests.WithLabelValues(protocol, ri.RPC, code, statusLabel(httpStatus)).Inc()
	m.duration.WithLabelValues(protocol, ri.RPC).Observe(d.Seconds())
	if ri.Upstream != "" && ri.Attempts > 0 {
		m.attempts.WithLabelValues(ri.Upstream).Add(float64(ri.Attempts))
	}
	if ri.Fallback {
		m.fallback.WithLabelValues(ri.RPC).Inc()
	}
}

// GaugeFunc registers a gauge whose value is read from f at scrape time.
func (m *Metrics) GaugeFunc(name, help string, f func() float64) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f))
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

func statusLabel(s int) string { return strconv.Itoa(s) }
