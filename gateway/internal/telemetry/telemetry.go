// Package telemetry sets up the gateway's OpenTelemetry tracing. Tracing is
// off unless an OTLP endpoint is configured; off, the gateway installs no
// instrumentation at all (no spans, no context lookups on the hot path) and
// keeps passing the caller's W3C traceparent on as it is.
//
// On, spans are exported over OTLP in batches, configured by the standard
// OpenTelemetry environment variables, which the exporter and the SDK read
// themselves: OTEL_EXPORTER_OTLP_ENDPOINT (or ..._TRACES_ENDPOINT),
// OTEL_EXPORTER_OTLP_PROTOCOL ("http/protobuf", the default, or "grpc"),
// OTEL_EXPORTER_OTLP_HEADERS, OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES,
// OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG (default parentbased_always_on).
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"google.golang.org/grpc/stats"
)

// Protocols of OTEL_EXPORTER_OTLP_PROTOCOL.
const (
	ProtocolHTTP = "http/protobuf"
	ProtocolGRPC = "grpc"
)

// DefaultServiceName is the service.name of the gateway's spans when
// OTEL_SERVICE_NAME does not set one.
const DefaultServiceName = "shop-gateway"

// tracerName is the instrumentation scope of the gateway's own spans.
const tracerName = "github.com/shopgateway/shop/gateway"

// Config turns tracing on and picks the exporter's protocol; everything else
// comes from the OTEL_* environment variables. FromEnv fills it the way
// OpenTelemetry SDKs decide.
type Config struct {
	// Enabled turns tracing on. Default false: no spans, no exporter.
	Enabled bool
	// Protocol is the OTLP protocol: ProtocolHTTP (the default) or
	// ProtocolGRPC.
	Protocol string
	// Exporter, when set, receives the spans instead of an OTLP exporter
	// (tests and benchmarks).
	Exporter sdktrace.SpanExporter
}

func (c *Config) setDefaults() {
	if c.Protocol == "" {
		c.Protocol = ProtocolHTTP
	}
}

// Validate reports an unknown protocol.
func (c *Config) Validate() error {
	switch c.Protocol {
	case ProtocolHTTP, ProtocolGRPC:
		return nil
	}
	return fmt.Errorf("OTLP protocol %q: want %s or %s", c.Protocol, ProtocolHTTP, ProtocolGRPC)
}

// Tracing is the gateway's tracing: a tracer provider and the W3C trace
// context propagator, or nothing when off. A nil *Tracing is off.
type Tracing struct {
	provider   *sdktrace.TracerProvider
	propagator propagation.TextMapPropagator
}

// New sets tracing up from cfg. Off, it returns nil and no error.
func New(ctx context.Context, cfg Config) (*Tracing, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if !cfg.Enabled {
		return nil, nil
	}
	var (
		exp sdktrace.SpanExporter
		err error
	)
	switch {
	case cfg.Exporter != nil:
		exp = cfg.Exporter
	case cfg.Protocol == ProtocolGRPC:
		exp, err = otlptracegrpc.New(ctx)
	default:
		exp, err = otlptracehttp.New(ctx)
	}
	if err != nil {
		return nil, fmt.Errorf("OTLP exporter: %w", err)
	}
	res, err := resource.Merge(
		resource.NewSchemaless(semconv.ServiceName(DefaultServiceName)),
		resource.Default(), // OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win
	)
	if err != nil && !errors.Is(err, resource.ErrSchemaURLConflict) {
		return nil, fmt.Errorf("trace resource: %w", err)
	}
	return &Tracing{
		provider: sdktrace.NewTracerProvider(
			sdktrace.WithBatcher(exp),
			sdktrace.WithResource(res),
		),
		propagator: propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}),
	}, nil
}

// Enabled reports whether tracing is on.
func (t *Tracing) Enabled() bool { return t != nil }

// Shutdown flushes the spans not exported yet and stops the exporter.
func (t *Tracing) Shutdown(ctx context.Context) error {
	if t == nil {
		return nil
	}
	return t.provider.Shutdown(ctx)
}

// Tracer returns a tracer of the gateway, or a no-op one when off.
func (t *Tracing) Tracer(name string) trace.Tracer {
	if t == nil {
		return noop.NewTracerProvider().Tracer(name)
	}
	return t.provider.Tracer(name)
}

// Propagator is the W3C trace context (and baggage) propagator.
func (t *Tracing) Propagator() propagation.TextMapPropagator {
	if t == nil {
		return propagation.TraceContext{}
	}
	return t.propagator
}

// GRPCServerHandler is the otelgrpc stats handler of the gRPC server: one
// server span per call, continuing the caller's trace. Nil when off.
func (t *Tracing) GRPCServerHandler() stats.Handler {
	if t == nil {
		return nil
	}
	return otelgrpc.NewServerHandler(otelgrpc.WithTracerProvider(t.provider), otelgrpc.WithPropagators(t.propagator))
}

// HTTPHandler wraps the REST API in one server span per request, continuing
// the caller's trace. Off, it returns h.
func (t *Tracing) HTTPHandler(h http.Handler) http.Handler {
	if t == nil {
		return h
	}
	return otelhttp.NewHandler(h, "rest",
		otelhttp.WithTracerProvider(t.provider),
		otelhttp.WithPropagators(t.propagator),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return r.Method }),
	)
}

// Transport wraps an upstream round tripper in one client span per attempt
// and sends the span's context as traceparent. Off, it returns rt.
func (t *Tracing) Transport(rt http.RoundTripper) http.RoundTripper {
	if t == nil {
		return rt
	}
	return otelhttp.NewTransport(rt,
		otelhttp.WithTracerProvider(t.provider),
		otelhttp.WithPropagators(t.propagator),
	)
}

// ClientSpan starts the client span of one upstream attempt, a child of
// ctx's span, and writes its trace context into header (traceparent), so
// that the service's spans hang under it. It returns the attempt's context
// and the function that ends the span with the answer's HTTP status (0 for
// none) and the transport error. Off, it returns ctx and a no-op.
func (t *Tracing) ClientSpan(ctx context.Context, method, url string, header http.Header) (context.Context, func(status int, err error)) {
	if t == nil {
		return ctx, func(int, error) {}
	}
	ctx, span := t.provider.Tracer(tracerName).Start(ctx, method,
		trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(semconv.HTTPRequestMethodKey.String(method), semconv.URLFull(url)))
	t.propagator.Inject(ctx, propagation.HeaderCarrier(header))
	return ctx, func(status int, err error) {
		switch {
		case err != nil:
			span.RecordError(err)
			span.SetStatus(otelcodes.Error, "no answer")
		case status >= 500:
			span.SetStatus(otelcodes.Error, http.StatusText(status))
		}
		if status != 0 {
			span.SetAttributes(semconv.HTTPResponseStatusCode(status))
		}
		span.End()
	}
}

// FromEnv reads whether tracing is on from the standard variables, through
// getenv: on when an OTLP endpoint is set (OTEL_EXPORTER_OTLP_ENDPOINT or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT), unless OTEL_SDK_DISABLED is "true" or
// OTEL_TRACES_EXPORTER is "none"; the protocol from
// OTEL_EXPORTER_OTLP_TRACES_PROTOCOL or OTEL_EXPORTER_OTLP_PROTOCOL.
func FromEnv(getenv func(string) string) Config {
	endpoint := getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != ""
	off := strings.EqualFold(getenv("OTEL_SDK_DISABLED"), "true") || strings.EqualFold(getenv("OTEL_TRACES_EXPORTER"), "none")
	protocol := getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
	if protocol == "" {
		protocol = getenv("OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	return Config{Enabled: endpoint && !off, Protocol: protocol}
}
