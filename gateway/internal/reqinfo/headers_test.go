package reqinfo

import (
	"strings"
	"testing"
)

func TestValidTraceparent(t *testing.T) {
	t.Parallel()
	const ok = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	for _, tc := range []struct {
		name string
		in   string
		want bool
	}{
		{"valid", ok, true},
		{"unsampled", ok[:53] + "00", true},
		{"future version", "01" + ok[2:], true},
		{"future version with more fields", "01" + ok[2:] + "-what-ever", true},
		{"version 00 with more", ok + "-00", false},
		{"version ff", "ff" + ok[2:], false},
		{"uppercase hex", strings.ToUpper(ok), false},
		{"zero trace id", "00-00000000000000000000000000000000-00f067aa0ba902b7-01", false},
		{"zero parent id", "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", false},
		{"short", ok[:54], false},
		{"bad separator", strings.Replace(ok, "-", "_", 1), false},
		{"not hex", "00-4bf92f3577b34da6a3ce929d0e0e473z-00f067aa0ba902b7-01", false},
		{"empty", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got, want := ValidTraceparent(tc.in), tc.want; got != want {
				t.Errorf("ValidTraceparent(%q) = %v, want %v", tc.in, got, want)
			}
		})
	}
}

func TestValidTracestate(t *testing.T) {
	t.Parallel()
	many := strings.Repeat("a=1,", 33)
	for _, tc := range []struct {
		name string
		in   string
		want bool
	}{
		{"one member", "congo=t61rcWkgMzE", true},
		{"two members with spaces", "congo=t61rcWkgMzE , rojo=00f067aa0ba902b7", true},
		{"multi-tenant key", "1tenant@vendor=x", true},
		{"empty members", "a=1,,b=2", true},
		{"uppercase key", "Congo=1", false},
		{"no equals", "congo", false},
		{"empty value", "congo=", false},
		{"value with equals", "a=b=c", false},
		{"value ending in space", "a=b ", true}, // trimmed as optional white space
		{"33 members", many[:len(many)-1], false},
		{"too long", "a=" + strings.Repeat("b", MaxTracestateLen), false},
		{"control character", "a=b\x01", false},
		{"system starting with a digit", "t@1v=x", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got, want := ValidTracestate(tc.in), tc.want; got != want {
				t.Errorf("ValidTracestate(%q) = %v, want %v", tc.in, got, want)
			}
		})
	}
}

func TestResolve(t *testing.T) {
	t.Parallel()
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	for _, tc := range []struct {
		name                    string
		rid, tp, ts             string
		keepRID, keepTP, keepTS bool
	}{
		{name: "all valid", rid: "rid-1", tp: tp, ts: "a=1", keepRID: true, keepTP: true, keepTS: true},
		{name: "none given", keepTS: true},
		{name: "8 KB request id", rid: strings.Repeat("x", 8192), tp: tp, keepTP: true, keepTS: true},
		{name: "request id with newline", rid: "a\nb", tp: tp, keepTP: true, keepTS: true},
		{name: "non-ASCII request id", rid: "ñ", tp: tp, keepTP: true, keepTS: true},
		{name: "invalid traceparent drops tracestate", rid: "r", tp: "garbage", ts: "a=1", keepRID: true},
		{name: "invalid tracestate dropped alone", rid: "r", tp: tp, ts: "A=1", keepRID: true, keepTP: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := Resolve(tc.rid, tc.tp, tc.ts)
			if tc.keepRID != (got.RequestID == tc.rid) || !ValidRequestID(got.RequestID) {
				t.Errorf("request id %.40q from %.40q, want kept=%v and valid", got.RequestID, tc.rid, tc.keepRID)
			}
			if tc.keepTP != (got.Traceparent == tc.tp) || !ValidTraceparent(got.Traceparent) {
				t.Errorf("traceparent %q from %q, want kept=%v and valid", got.Traceparent, tc.tp, tc.keepTP)
			}
			if wantTS := map[bool]string{true: tc.ts, false: ""}[tc.keepTS]; got.Tracestate != wantTS {
				t.Errorf("tracestate %q, want %q", got.Tracestate, wantTS)
			}
			if got, want := got.Changed, !(tc.keepRID && tc.keepTP && tc.keepTS); got != want {
				t.Errorf("Changed = %v, want %v", got, want)
			}
		})
	}
}

func BenchmarkResolve(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		Resolve("5b0f6a2e-2b39-4c1f-9a53-3c3f0b7f9a11", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "congo=t61rcWkgMzE")
	}
}
