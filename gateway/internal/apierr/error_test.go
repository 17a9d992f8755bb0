package apierr

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestErrorGRPCStatus(t *testing.T) {
	t.Parallel()
	cause := errors.New("dial tcp 10.0.0.7:8002: connection refused")
	for _, tc := range []struct {
		name        string
		err         *Error
		wantCode    codes.Code
		wantMsg     string
		wantDetails []string // detail types, in order
	}{
		{name: "code and message", err: New(codes.NotFound, "product 7 not found"), wantCode: codes.NotFound, wantMsg: "product 7 not found"},
		{name: "formatted", err: Errorf(codes.Unimplemented, "method %s is not forwarded", "/x.Y/Z"), wantCode: codes.Unimplemented, wantMsg: "method /x.Y/Z is not forwarded"},
		{
			name:        "named violations, reason and retry, in that order",
			err:         New(codes.InvalidArgument, "bad").WithRetryDelay(time.Second).WithReason("OUT_OF_STOCK").WithViolations(FieldViolation{Field: "id", Description: "is required"}),
			wantCode:    codes.InvalidArgument,
			wantMsg:     "bad",
			wantDetails: []string{"BadRequest", "ErrorInfo", "RetryInfo"},
		},
		{name: "violation of the whole request: message only", err: New(codes.InvalidArgument, "bad").WithViolations(FieldViolation{Description: "empty"}), wantCode: codes.InvalidArgument, wantMsg: "bad"},
		{name: "invalid reason left out", err: New(codes.NotFound, "gone").WithReason("not-a-reason"), wantCode: codes.NotFound, wantMsg: "gone"},
		{name: "cause never reaches the client", err: New(codes.Unavailable, "service_b unavailable").WithCause(cause), wantCode: codes.Unavailable, wantMsg: "service_b unavailable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			st := status.Convert(tc.err)
			if got, want := st.Code(), tc.wantCode; got != want {
				t.Errorf("code = %v, want %v", got, want)
			}
			if got, want := st.Message(), tc.wantMsg; got != want {
				t.Errorf("message = %q, want %q", got, want)
			}
			var got []string
			for _, d := range st.Details() {
				got = append(got, strings.TrimPrefix(fmt.Sprintf("%T", d), "*errdetails."))
			}
			if g, w := strings.Join(got, ","), strings.Join(tc.wantDetails, ","); g != w {
				t.Errorf("details = %s, want %s", g, w)
			}
			if got, want := tc.err.Error(), status.New(tc.wantCode, tc.wantMsg).Err().Error(); got != want {
				t.Errorf("Error() = %q, want the status error's text %q", got, want)
			}
		})
	}
}

func TestErrorWithIsACopy(t *testing.T) {
	t.Parallel()
	base := New(codes.InvalidArgument, "bad").WithViolations(FieldViolation{Field: "a", Description: "x"})
	_ = base.WithViolations(FieldViolation{Field: "b", Description: "y"})
	_ = base.WithReason("OUT_OF_STOCK").WithRetryDelay(time.Second)
	if got, want := len(status.Convert(base).Details()), 1; got != want {
		t.Errorf("base has %d details after its copies were changed, want %d", got, want)
	}
	if got, want := len(base.Violations()), 1; got != want {
		t.Errorf("base has %d violations, want %d", got, want)
	}
}

func TestErrorUnwrap(t *testing.T) {
	t.Parallel()
	cause := errors.New("eof")
	err := fmt.Errorf("reading: %w", New(codes.Internal, "bad answer").WithCause(cause))
	if !errors.Is(err, cause) {
		t.Error("errors.Is(err, cause) = false, want true")
	}
	var e *Error
	if !errors.As(err, &e) || e.Code() != codes.Internal || e.Message() != "bad answer" {
		t.Errorf("errors.As = %v, want the Error", e)
	}
}

func TestFinishConvertsError(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		err       *Error
		wantDelay time.Duration // 0: no RetryInfo
		wantMax   int           // the message's bound in bytes
	}{
		{name: "unavailable gets the default delay", err: New(codes.Unavailable, "down"), wantDelay: RetryDelay, wantMax: 4},
		{name: "its own delay kept", err: New(codes.Unavailable, "down").WithRetryDelay(5 * time.Second), wantDelay: 5 * time.Second, wantMax: 4},
		{name: "others get none", err: New(codes.NotFound, "gone"), wantMax: 4},
		{name: "long message bounded", err: New(codes.Internal, strings.Repeat("x", 5000)), wantMax: MaxMessageBytes},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			out := Finish(tc.err)
			if _, ok := out.(*Error); ok {
				t.Fatal("Finish returned an *Error, want a gRPC status error")
			}
			st, ok := status.FromError(out)
			if !ok {
				t.Fatalf("Finish returned %T, want a status error", out)
			}
			if got, want := st.Code(), tc.err.Code(); got != want {
				t.Errorf("code = %v, want %v", got, want)
			}
			if got, want := len(st.Message()), tc.wantMax; got > want || got == 0 {
				t.Errorf("message is %d bytes, want 1 to %d", got, want)
			}
			var got time.Duration
			for _, d := range st.Details() {
				if ri, ok := d.(*errdetails.RetryInfo); ok {
					got = ri.GetRetryDelay().AsDuration()
				}
			}
			if got != tc.wantDelay {
				t.Errorf("retry delay = %v, want %v", got, tc.wantDelay)
			}
		})
	}
}

func TestPrefixFieldsOfError(t *testing.T) {
	t.Parallel()
	base := InvalidArgument(FieldViolation{Field: "price_cents", Description: "must be positive"}, FieldViolation{Description: "whole"})
	got := Violations(PrefixFields(base, "item."))
	if len(got) != 1 || got[0].Field != "item.price_cents" {
		t.Errorf("violations = %v, want item.price_cents", got)
	}
	if v := Violations(base); len(v) != 1 || v[0].Field != "price_cents" {
		t.Errorf("the original changed: %v", v)
	}
}

func TestStatus(t *testing.T) {
	t.Parallel()
	st := Status(New(codes.Unavailable, "down"))
	if got, want := st.Code(), codes.Unavailable; got != want {
		t.Errorf("code = %v, want %v", got, want)
	}
	if got, want := len(st.Details()), 1; got != want {
		t.Errorf("%d details, want %d (RetryInfo)", got, want)
	}
}
