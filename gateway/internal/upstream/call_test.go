package upstream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"syscall"
	"testing"
)

func TestOutcome(t *testing.T) {
	t.Parallel()
	canceled, expired := doneContexts(t)
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	tests := []struct {
		name string
		ctx  context.Context
		c    call
		want error
	}{
		{"2xx", context.Background(), call{status: 200}, nil},
		{"4xx is the caller's", context.Background(), call{status: 404}, nil},
		{"500", context.Background(), call{status: 500}, errInstanceFailed},
		{"501 is not an outage", context.Background(), call{status: 501}, nil},
		{"503", context.Background(), call{status: 503}, errInstanceFailed},
		{"refused", context.Background(), call{err: refused}, errInstanceFailed},
		{"too large", context.Background(), call{status: 200, err: fmt.Errorf("x: %w", errTooLarge)}, nil},
		{"caller canceled", canceled, call{err: context.Canceled}, errNotCounted},
		{"caller deadline", expired, call{err: context.DeadlineExceeded}, errNotCounted},
		{"pool Timeout", expired, call{err: context.DeadlineExceeded, ownDeadline: true}, errInstanceFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := outcome(tt.ctx, &tt.c); !errors.Is(got, tt.want) || (got == nil) != (tt.want == nil) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestRetryable(t *testing.T) {
	t.Parallel()
	canceled, _ := doneContexts(t)
	refused := fmt.Errorf("POST http://x: %w", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED})
	reset := &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}
	tests := []struct {
		name   string
		ctx    context.Context
		method string
		status int
		err    error
		want   bool
	}{
		{"GET 503", context.Background(), http.MethodGet, 503, nil, true},
		{"PUT 502", context.Background(), http.MethodPut, 502, nil, true},
		{"DELETE 504", context.Background(), http.MethodDelete, 504, nil, true},
		{"GET 500", context.Background(), http.MethodGet, 500, nil, false},
		{"GET 429", context.Background(), http.MethodGet, 429, nil, false},
		{"GET reset", context.Background(), http.MethodGet, 0, reset, true},
		{"GET EOF", context.Background(), http.MethodGet, 0, io.ErrUnexpectedEOF, true},
		{"POST 503", context.Background(), http.MethodPost, 503, nil, false},
		{"POST reset", context.Background(), http.MethodPost, 0, reset, false},
		{"POST refused", context.Background(), http.MethodPost, 0, refused, true},
		{"GET too large", context.Background(), http.MethodGet, 200, errTooLarge, false},
		{"GET after cancel", canceled, http.MethodGet, 503, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := retryable(tt.ctx, tt.method, tt.status, tt.err); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}
