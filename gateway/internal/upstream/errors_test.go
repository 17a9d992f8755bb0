package upstream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"unicode/utf8"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/shopgateway/shop/gateway/internal/apierr"
)

// httpStatusCases are the answers of service_b and the statuses they map
// to, checked on statusFromHTTP and end to end through Do.
var httpStatusCases = []struct {
	name     string
	status   int
	body     string
	wantCode codes.Code
	wantMsg  string
}{
	// A gRPC code in the body wins.
	{"body NOT_FOUND", 404, `{"code":"NOT_FOUND","message":"no stock item 7"}`, codes.NotFound, "no stock item 7"},
	{"body INVALID_ARGUMENT", 400, `{"code":"INVALID_ARGUMENT","message":"page_size must be positive"}`, codes.InvalidArgument, "page_size must be positive"},
	{"body ALREADY_EXISTS", 409, `{"code":"ALREADY_EXISTS","message":"product 7 exists"}`, codes.AlreadyExists, "product 7 exists"},
	{"body ABORTED on 409", 409, `{"code":"ABORTED","message":"concurrent update"}`, codes.Aborted, "concurrent update"},
	{"body FAILED_PRECONDITION on 400", 400, `{"code":"FAILED_PRECONDITION","message":"not enough stock"}`, codes.FailedPrecondition, "not enough stock"},
	{"body UNAVAILABLE", 503, `{"code":"UNAVAILABLE","message":"database unavailable, try again later"}`, codes.Unavailable, "database unavailable, try again later"},
	{"body INTERNAL", 500, `{"code":"INTERNAL","message":"internal error"}`, codes.Internal, "internal error"},
	{"body DEADLINE_EXCEEDED", 504, `{"code":"DEADLINE_EXCEEDED","message":"too slow"}`, codes.DeadlineExceeded, "too slow"},
	{"body code wins over status", 500, `{"code":"NOT_FOUND","message":"gone"}`, codes.NotFound, "gone"},
	{"body code lower case", 404, `{"code":"not_found","message":"x"}`, codes.NotFound, "x"},
	{"body code number (google.rpc.Status)", 404, `{"code":5,"message":"x"}`, codes.NotFound, "x"},
	{"body code OK ignored", 500, `{"code":"OK","message":"x"}`, codes.Internal, "x"},
	{"body code unknown keeps message", 400, `{"code":"OUT_OF_STOCK","message":"only 2 left"}`, codes.InvalidArgument, "only 2 left"},
	{"body code out of range", 400, `{"code":99,"message":"x"}`, codes.InvalidArgument, "x"},
	{"body code without message", 404, `{"code":"NOT_FOUND"}`, codes.NotFound, "service_b answered HTTP 404"},
	// FastAPI validation.
	{
		"422 FastAPI detail", 422,
		`{"detail":[{"type":"greater_than","loc":["body","quantity"],"msg":"Input should be greater than 0","input":0}]}`,
		codes.InvalidArgument, "quantity: Input should be greater than 0",
	},
	{
		"422 FastAPI detail, several with list index", 422,
		`{"detail":[{"loc":["body","items",0,"quantity"],"msg":"Field required"},{"loc":["query","page_size"],"msg":"Value error, too big"}]}`,
		codes.InvalidArgument, "items.0.quantity: Field required; page_size: too big",
	},
	{
		"422 detail without loc or msg", 422, `{"detail":[{}]}`,
		codes.InvalidArgument, "request: invalid value",
	},
	{
		"422 service form uses its message", 422,
		`{"code":"INVALID_ARGUMENT","message":"quantity: Input should be greater than 0","detail":[{"loc":["body","quantity"],"msg":"Input should be greater than 0"}]}`,
		codes.InvalidArgument, "quantity: Input should be greater than 0",
	},
	{
		"422 service form without message", 422,
		`{"code":"INVALID_ARGUMENT","detail":[{"loc":["body","user_id"],"msg":"Field required"}]}`,
		codes.InvalidArgument, "user_id: Field required",
	},
	{"422 empty body", 422, ``, codes.InvalidArgument, "service_b answered HTTP 422"},
	{"detail string", 404, `{"detail":"Not Found"}`, codes.NotFound, "Not Found"},
	{"not JSON is never echoed", 502, `<html>bad gateway at 10.0.0.7</html>`, codes.Unavailable, "service_b answered HTTP 502"},
	// By HTTP status alone.
	{"400", 400, ``, codes.InvalidArgument, "service_b answered HTTP 400"},
	// A 401 is the service refusing the gateway's own identity assertion:
	// never passed on as the client's 401.
	{"401", 401, ``, codes.Internal, "service_b did not accept the gateway's identity assertion"},
	{"401 service form", 401, `{"code":"UNAUTHENTICATED","message":"caller not authenticated: no key"}`, codes.Internal, "service_b did not accept the gateway's identity assertion"},
	{"403", 403, ``, codes.PermissionDenied, "service_b answered HTTP 403"},
	{"404", 404, ``, codes.NotFound, "service_b answered HTTP 404"},
	{"405", 405, ``, codes.Unimplemented, "service_b answered HTTP 405"},
	{"408", 408, ``, codes.DeadlineExceeded, "service_b answered HTTP 408"},
	{"409", 409, ``, codes.AlreadyExists, "service_b answered HTTP 409"},
	{"410", 410, ``, codes.NotFound, "service_b answered HTTP 410"},
	{"412", 412, ``, codes.FailedPrecondition, "service_b answered HTTP 412"},
	{"416", 416, ``, codes.OutOfRange, "service_b answered HTTP 416"},
	{"418 other 4xx", 418, ``, codes.InvalidArgument, "service_b answered HTTP 418"},
	{"429", 429, ``, codes.ResourceExhausted, "service_b answered HTTP 429"},
	{"499", 499, ``, codes.Canceled, "service_b answered HTTP 499"},
	{"500", 500, ``, codes.Internal, "service_b answered HTTP 500"},
	{"501", 501, ``, codes.Unimplemented, "service_b answered HTTP 501"},
	{"502", 502, ``, codes.Unavailable, "service_b answered HTTP 502"},
	{"503", 503, ``, codes.Unavailable, "service_b answered HTTP 503"},
	{"504", 504, ``, codes.DeadlineExceeded, "service_b answered HTTP 504"},
	{"505 other 5xx", 505, ``, codes.Unavailable, "service_b answered HTTP 505"},
	{"302", 302, ``, codes.Internal, "service_b answered HTTP 302"},
}

func TestStatusFromHTTP(t *testing.T) {
	t.Parallel()
	for _, tt := range httpStatusCases {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := statusFromHTTP("service_b", tt.status, []byte(tt.body), "")
			assertStatus(t, err, tt.wantCode, tt.wantMsg)
		})
	}
}

func TestStatusFromError(t *testing.T) {
	t.Parallel()
	canceled, expired := doneContexts(t)
	refused := &net.OpError{Op: "dial", Net: "tcp", Addr: &net.TCPAddr{IP: net.IPv4(10, 0, 0, 7), Port: 8001}, Err: syscall.ECONNREFUSED}
	reset := &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}
	tests := []struct {
		name     string
		ctx      context.Context
		err      error
		wantCode codes.Code
		wantMsg  string
	}{
		{"refused", context.Background(), fmt.Errorf("GET http://10.0.0.7:8001: %w", refused), codes.Unavailable, "service_b unavailable"},
		{"reset", context.Background(), fmt.Errorf("GET http://10.0.0.7:8001: %w", reset), codes.Unavailable, "service_b unavailable"},
		{"EOF", context.Background(), io.ErrUnexpectedEOF, codes.Unavailable, "service_b unavailable"},
		{"no instance", context.Background(), errNoInstance, codes.Unavailable, "service_b unavailable"},
		{"caller canceled", canceled, context.Canceled, codes.Canceled, "request canceled"},
		{"deadline exceeded", expired, fmt.Errorf("read body: %w", context.DeadlineExceeded), codes.DeadlineExceeded, "service_b did not answer in time"},
		{"deadline seen only on ctx", expired, reset, codes.DeadlineExceeded, "service_b did not answer in time"},
		{"too large", context.Background(), fmt.Errorf("5 bytes: %w", errTooLarge), codes.Internal, "service_b response too large"},
		{"bad request", context.Background(), errBadRequest, codes.Internal, "invalid request to service_b"},
	}
	errs := newPoolErrors("service_b")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			assertStatus(t, errs.statusFromError(tt.ctx, tt.err), tt.wantCode, tt.wantMsg)
		})
	}
}

func FuzzStatusFromHTTP(f *testing.F) {
	f.Add(404, []byte(`{"code":"NOT_FOUND","message":"x"}`))
	f.Add(422, []byte(`{"detail":[{"loc":["body","quantity"],"msg":"Input should be greater than 0"}]}`))
	f.Add(500, []byte(`{"code":5}`))
	f.Add(502, []byte("<html>\xff</html>"))
	f.Fuzz(func(t *testing.T, httpStatus int, body []byte) {
		err := statusFromHTTP("svc", httpStatus, body, "")
		st, ok := status.FromError(err)
		if !ok {
			t.Fatalf("not a status error: %v", err)
		}
		if st.Code() == codes.OK {
			t.Errorf("got code OK for HTTP %d", httpStatus)
		}
		if msg := st.Message(); msg == "" || !utf8.ValidString(msg) {
			t.Errorf("got message %q, want non-empty valid UTF-8", msg)
		}
	})
}

// assertStatus checks that err is a gRPC status error with code and
// message, and that it carries no address or Go error chain.
func assertStatus(tb testing.TB, err error, wantCode codes.Code, wantMsg string) {
	tb.Helper()
	st, ok := status.FromError(err)
	if !ok {
		tb.Fatalf("got error %v (%T), want a gRPC status error", err, err)
	}
	if got := st.Code(); got != wantCode {
		tb.Errorf("got code %v, want %v (message %q)", got, wantCode, st.Message())
	}
	if got := st.Message(); got != wantMsg {
		tb.Errorf("got message %q, want %q", got, wantMsg)
	}
	for _, leak := range []string{"127.0.0.1", "10.0.0.7", "http://", "dial", ": "} {
		if strings.Contains(wantMsg, leak) {
			continue // The expected message itself says so.
		}
		if strings.Contains(st.Message(), leak) {
			tb.Errorf("message %q leaks %q", st.Message(), leak)
		}
	}
	var target interface{ GRPCStatus() *status.Status }
	if !errors.As(err, &target) {
		tb.Errorf("error %v does not carry a status", err)
	}
}

// doneContexts returns a canceled context and one past its deadline.
func doneContexts(tb testing.TB) (canceled, expired context.Context) {
	tb.Helper()
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	expired, cancel = context.WithTimeout(context.Background(), 0)
	tb.Cleanup(cancel)
	return canceled, expired
}

func TestStatusFromHTTPDetails(t *testing.T) {
	t.Parallel()
	t.Run("FastAPI validation list becomes field violations", func(t *testing.T) {
		t.Parallel()
		body := `{"code":"INVALID_ARGUMENT","message":"items.0.quantity: Input should be greater than 0","detail":[` +
			`{"loc":["body","items",0,"quantity"],"msg":"Input should be greater than 0"},` +
			`{"loc":["body","user_id"],"msg":"Field required"},{"loc":["query","page_size"],"msg":"Value error, too big"}]}`
		err := statusFromHTTP("service_a", 422, []byte(body), "")
		if got := status.Code(err); got != codes.InvalidArgument {
			t.Fatalf("code %v, want InvalidArgument", got)
		}
		want := []apierr.FieldViolation{
			{Field: "items[0].quantity", Description: "Input should be greater than 0"},
			{Field: "user_id", Description: "Field required"},
			{Field: "page_size", Description: "too big"},
		}
		got := apierr.Violations(err)
		if len(got) != len(want) {
			t.Fatalf("violations %v, want %v", got, want)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("violation %d = %v, want %v", i, got[i], want[i])
			}
		}
	})
	t.Run("a body field prefixes the body's paths", func(t *testing.T) {
		t.Parallel()
		body := `{"code":"INVALID_ARGUMENT","detail":[{"loc":["body","price_cents"],"msg":"bad"},{"loc":["path","product_id"],"msg":"bad"}]}`
		got := apierr.Violations(statusFromHTTP("service_a", 422, []byte(body), "item"))
		if len(got) != 2 || got[0].Field != "item.price_cents" || got[1].Field != "product_id" {
			t.Fatalf("violations %v, want item.price_cents and product_id", got)
		}
	})
	t.Run("reason becomes ErrorInfo", func(t *testing.T) {
		t.Parallel()
		err := statusFromHTTP("service_a", 400, []byte(`{"code":"FAILED_PRECONDITION","message":"not enough stock","reason":"OUT_OF_STOCK"}`), "")
		var info *errdetails.ErrorInfo
		for _, d := range status.Convert(err).Details() {
			info, _ = d.(*errdetails.ErrorInfo)
		}
		if status.Code(err) != codes.FailedPrecondition || info.GetReason() != "OUT_OF_STOCK" || info.GetDomain() != apierr.ErrorDomain {
			t.Fatalf("status %v, ErrorInfo %v; want FAILED_PRECONDITION with OUT_OF_STOCK in %s", err, info, apierr.ErrorDomain)
		}
	})
	t.Run("an invalid reason is left out", func(t *testing.T) {
		t.Parallel()
		err := statusFromHTTP("service_a", 404, []byte(`{"code":"NOT_FOUND","message":"x","reason":"<script>"}`), "")
		if d := status.Convert(err).Details(); len(d) != 0 {
			t.Fatalf("details %v, want none", d)
		}
	})
}
