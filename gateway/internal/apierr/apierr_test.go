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
