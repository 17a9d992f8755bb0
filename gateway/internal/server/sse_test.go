package server

import (
	"net/http"
	"strings"
	"testing"

	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/proto"

	cartv1 "github.com/shopgateway/shop/gen/shop/cart/v1"
)

func TestSSEMarshaler(t *testing.T) {
	t.Parallel()
	m := &sseMarshaler{json: jsonMarshaler, event: func(msg proto.Message) (string, []byte, bool) {
		r := msg.(*cartv1.WatchCartResponse)
		if r.GetType() == "" {
			return "", nil, false
		}
		return r.GetType(), []byte("{\"a\":1}\nevent: forged"), true
	}}
	b, err := m.Marshal(map[string]any{"result": &cartv1.WatchCartResponse{ResumeToken: "tok", Type: "shop.events.v1.CartItemAdded"}})
	if err != nil {
		t.Fatal(err)
	}
	// A line break in the data stays inside data lines: no field of its own.
	want := "id: tok\nevent: shop.events.v1.CartItemAdded\ndata: {\"a\":1}\ndata: event: forged\n"
	if string(b) != want {
		t.Errorf("event %q, want %q", b, want)
	}
	if b, _ := m.Marshal(map[string]any{"result": &cartv1.WatchCartResponse{}}); string(b) != ": heartbeat\n" {
		t.Errorf("heartbeat %q", b)
	}
	// A position: no event, so no data; the id alone.
	if b, _ := m.Marshal(map[string]any{"result": &cartv1.WatchCartResponse{ResumeToken: "pos"}}); string(b) != ": heartbeat\nid: pos\n" {
		t.Errorf("position %q", b)
	}
	b, _ = m.Marshal(map[string]proto.Message{"error": &spb.Status{Code: 8, Message: "slow"}})
	if !strings.HasPrefix(string(b), "event: error\ndata: {") || strings.Count(string(b), "\n") != 2 {
		t.Errorf("error event %q", b)
	}
	if m.ContentType(&spb.Status{}) != "application/json" || m.StreamContentType(nil) != mimeEventStream {
		t.Error("content types")
	}
}

func TestAcceptsEventStream(t *testing.T) {
	t.Parallel()
	for accept, want := range map[string]bool{
		"text/event-stream":                   true,
		"text/event-stream; charset=utf-8":    true,
		"application/json, text/event-stream": true,
		"application/json":                    false,
		"text/event-streams":                  false,
		"":                                    false,
	} {
		h := http.Header{}
		if accept != "" {
			h.Set("Accept", accept)
		}
		if got := acceptsEventStream(h); got != want {
			t.Errorf("Accept %q: %v, want %v", accept, got, want)
		}
	}
}
