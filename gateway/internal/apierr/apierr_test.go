package apierr

import (
	"strings"
	"testing"
	"unicode/utf8"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestBoundMessage(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		in       string
		wantSame bool
		wantTail string
	}{
		{name: "short", in: "product 7 not found", wantSame: true},
		{name: "exactly the bound", in: strings.Repeat("a", MaxMessageBytes), wantSame: true},
		{name: "700 KB", in: strings.Repeat("id 123456789, ", 50000), wantTail: "more bytes)"},
		{name: "multi-byte runes", in: strings.Repeat("é", MaxMessageBytes), wantTail: "more bytes)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := BoundMessage(tc.in)
			if tc.wantSame {
				if got != tc.in {
					t.Errorf("BoundMessage changed a message that fits: %q", got)
				}
				return
			}
			if len(got) > MaxMessageBytes {
				t.Errorf("len = %d, want at most %d", len(got), MaxMessageBytes)
			}
			if !strings.HasSuffix(got, tc.wantTail) {
				t.Errorf("got %q, want it to end in %q", got, tc.wantTail)
			}
			if !utf8.ValidString(got) {
				t.Errorf("got invalid UTF-8: %q", got)
			}
			head, _, _ := strings.Cut(got, "... (")
			if !strings.HasPrefix(tc.in, head) {
				t.Errorf("head %q is not a prefix of the message", head)
			}
		})
	}
}

func TestBoundKeepsCodeAndDetails(t *testing.T) {
	t.Parallel()
	st, err := status.New(codes.NotFound, strings.Repeat("x", 5000)).WithDetails(&errdetails.ErrorInfo{Reason: "R"})
	if err != nil {
		t.Fatal(err)
	}
	got := status.Convert(Bound(st.Err()))
	if got.Code() != codes.NotFound || len(got.Details()) != 1 || len(got.Message()) > MaxMessageBytes {
		t.Errorf("Bound = %v (%d details, %d bytes), want NOT_FOUND with its detail, bounded", got.Code(), len(got.Details()), len(got.Message()))
	}
	if Bound(nil) != nil {
		t.Error("Bound(nil) != nil")
	}
}

func TestInvalidArgument(t *testing.T) {
	t.Parallel()
	st := status.Convert(InvalidArgument(FieldViolation{Field: "item.price_cents", Description: "must not be null"}, FieldViolation{Description: "trailing data"}))
	if got, want := st.Code(), codes.InvalidArgument; got != want {
		t.Errorf("code = %v, want %v", got, want)
	}
	if got, want := st.Message(), "invalid request: item.price_cents: must not be null; trailing data"; got != want {
		t.Errorf("message = %q, want %q", got, want)
	}
}

func TestInvalidArgumentBadRequest(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		in   []FieldViolation
		want []FieldViolation // nil: no BadRequest detail
	}{
		{"one field", []FieldViolation{{"quantity", "must be greater than 0"}}, []FieldViolation{{"quantity", "must be greater than 0"}}},
		{"one entry per field, in order", []FieldViolation{
			{"item.price_cents", "must not be negative"}, {"user_id", "is required"}, {"item.price_cents", "is not a number"},
		}, []FieldViolation{{"item.price_cents", "must not be negative; is not a number"}, {"user_id", "is required"}}},
		{"whole request only", []FieldViolation{{"", "malformed JSON"}}, nil},
		{"whole request left out", []FieldViolation{{"", "malformed JSON"}, {"items[2].quantity", "is required"}},
			[]FieldViolation{{"items[2].quantity", "is required"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := InvalidArgument(tc.in...)
			if got := status.Code(err); got != codes.InvalidArgument {
				t.Fatalf("code %v, want InvalidArgument", got)
			}
			got := Violations(err)
			if len(got) != len(tc.want) {
				t.Fatalf("violations %v, want %v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("violation %d = %v, want %v", i, got[i], tc.want[i])
				}
			}
		})
	}
}

func TestWithReason(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		reason string
		want   bool
	}{
		{"OUT_OF_STOCK", true}, {"A1_B", true}, {"", false}, {"out_of_stock", false}, {"TRAILING_", false},
		{"1ABC", false}, {strings.Repeat("A", 64), false}, {"BAD REASON", false},
	} {
		st := WithReason(status.New(codes.FailedPrecondition, "m"), tc.reason)
		var got *errdetails.ErrorInfo
		for _, d := range st.Details() {
			if ei, ok := d.(*errdetails.ErrorInfo); ok {
				got = ei
			}
		}
		if (got != nil) != tc.want {
			t.Errorf("WithReason(%q): ErrorInfo %v, want one: %v", tc.reason, got, tc.want)
		}
		if got != nil && (got.GetReason() != tc.reason || got.GetDomain() != ErrorDomain) {
			t.Errorf("WithReason(%q) = %v, want reason %q in %q", tc.reason, got, tc.reason, ErrorDomain)
		}
	}
}

func TestFinishAddsRetryInfoToUnavailable(t *testing.T) {
	t.Parallel()
	retries := func(err error) int {
		n := 0
		for _, d := range status.Convert(err).Details() {
			if ri, ok := d.(*errdetails.RetryInfo); ok && ri.GetRetryDelay().AsDuration() > 0 {
				n++
			}
		}
		return n
	}
	if got := retries(Finish(status.Error(codes.Unavailable, "down"))); got != 1 {
		t.Errorf("UNAVAILABLE: %d RetryInfo, want 1", got)
	}
	if got := retries(Finish(Finish(status.Error(codes.Unavailable, "down")))); got != 1 {
		t.Errorf("finished twice: %d RetryInfo, want 1", got)
	}
	for _, c := range []codes.Code{codes.NotFound, codes.InvalidArgument, codes.DeadlineExceeded, codes.Internal} {
		if got := retries(Finish(status.Error(c, "x"))); got != 0 {
			t.Errorf("%v: %d RetryInfo, want none", c, got)
		}
	}
	if Finish(nil) != nil {
		t.Error("Finish(nil) != nil")
	}
	if got := len(status.Convert(Finish(status.Error(codes.Unavailable, strings.Repeat("x", 1000)))).Message()); got > MaxMessageBytes {
		t.Errorf("message of %d bytes, want at most %d", got, MaxMessageBytes)
	}
}

func TestPrefixFields(t *testing.T) {
	t.Parallel()
	err := PrefixFields(InvalidArgument(FieldViolation{"product_name", "is required"}, FieldViolation{"", "whole"}), "item.")
	got := Violations(err)
	if len(got) != 1 || got[0].Field != "item.product_name" || status.Code(err) != codes.InvalidArgument {
		t.Fatalf("PrefixFields: %v (%v), want item.product_name", got, err)
	}
	if got, want := status.Convert(err).Message(), "invalid request: item.product_name: is required; whole"; got != want {
		t.Errorf("message %q, want %q: the message names the fields by their new paths", got, want)
	}
	own := New(codes.InvalidArgument, "a message of its own").WithViolations(FieldViolation{"quantity", "x"})
	if got := status.Convert(PrefixFields(own, "item.")).Message(); got != "a message of its own" {
		t.Errorf("PrefixFields changed a message not made by InvalidArgument: %q", got)
	}
	plain := status.Error(codes.NotFound, "x")
	if PrefixFields(plain, "item.") != plain {
		t.Fatal("PrefixFields changed an error without BadRequest")
	}
}
