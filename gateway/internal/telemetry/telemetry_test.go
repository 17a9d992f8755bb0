package telemetry_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/shopgateway/shop/gateway/internal/telemetry"
)

func TestFromEnv(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		env  map[string]string
		want telemetry.Config
	}{
		{"nothing set", nil, telemetry.Config{}},
		{"endpoint", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, telemetry.Config{Enabled: true}},
		{"traces endpoint and protocol", map[string]string{
			"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
		}, telemetry.Config{Enabled: true, Protocol: "grpc"}},
		{"traces protocol wins", map[string]string{
			"OTEL_EXPORTER_OTLP_ENDPOINT": "x", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf",
		}, telemetry.Config{Enabled: true, Protocol: "http/protobuf"}},
		{"sdk disabled", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "x", "OTEL_SDK_DISABLED": "true"}, telemetry.Config{}},
		{"exporter none", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "x", "OTEL_TRACES_EXPORTER": "none"}, telemetry.Config{}},
		{"protocol alone", map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, telemetry.Config{Protocol: "grpc"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := telemetry.FromEnv(func(k string) string { return tc.env[k] })
			if got != tc.want {
				t.Errorf("FromEnv = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestOffInstallsNothing(t *testing.T) {
	t.Parallel()
	tr, err := telemetry.New(context.Background(), telemetry.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if tr.Enabled() || tr.GRPCServerHandler() != nil {
		t.Fatalf("off: Enabled %v, stats handler %v; want neither", tr.Enabled(), tr.GRPCServerHandler())
	}
	h := &struct{ http.Handler }{http.NotFoundHandler()}
	if got := tr.HTTPHandler(h); got != http.Handler(h) {
		t.Fatalf("off: HTTPHandler wrapped the handler")
	}
	rt := http.DefaultTransport
	if got := tr.Transport(rt); got != rt {
		t.Fatalf("off: Transport wrapped the round tripper")
	}
	if err := tr.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestUnknownProtocol(t *testing.T) {
	t.Parallel()
	if _, err := telemetry.New(context.Background(), telemetry.Config{Enabled: true, Protocol: "carrier-pigeon"}); err == nil {
		t.Fatal("New accepted an unknown OTLP protocol")
	}
}
