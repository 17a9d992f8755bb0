package server_test

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/shopgateway/shop/gateway/internal/apierr"
	"github.com/shopgateway/shop/gateway/internal/app"
	"github.com/shopgateway/shop/gateway/internal/server"
	cartv1 "github.com/shopgateway/shop/gen/shop/cart/v1"
)

// streamServer serves WatchCart with two events for user 7; its
// interceptor denies user 9 with a challenge header, as the authorizer does.
func streamServer(t *testing.T) (*httptest.Server, *grpc.ClientConn, *int) {
	t.Helper()
	handled := new(int)
	deny := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if r, ok := req.(*cartv1.WatchCartRequest); ok && r.GetUserId() == 9 {
			_ = grpc.SetHeader(ctx, metadata.Pairs("www-authenticate", `Bearer realm="shop"`))
			return nil, apierr.New(codes.Unauthenticated, "no")
		}
		return handler(ctx, req)
	}
	streams := func(ctx context.Context, method string, req proto.Message, send func(proto.Message) error) error {
		*handled++
		for i, tok := range []string{"t1", "t2"} {
			if err := send(&cartv1.WatchCartResponse{ResumeToken: tok, Type: "shop.events.v1.CartItemAdded",
				Event: &cartv1.WatchCartResponse_ItemAdded{ItemAdded: &cartv1.CartItem{ItemId: int64(i + 1), UserId: 7}}}); err != nil {
				return err
			}
		}
		return apierr.New(codes.ResourceExhausted, "too slow")
	}
	srv, err := server.New(server.Config{
		Services: app.Services(), Register: app.Registers(), Handler: fakeHandler,
		Streams: streams, StreamEvent: func(m proto.Message) (string, []byte, bool) {
			r := m.(*cartv1.WatchCartResponse)
			if r.GetType() == "" {
				return "", nil, false
			}
			return r.GetType(), []byte(`{"item":{}}`), true
		},
		Interceptors: []grpc.UnaryServerInterceptor{deny},
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	hs, cc := serveTest(t, srv)
	return hs, cc, handled
}

func get(t *testing.T, url, accept string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(bufio.NewReader(resp.Body))
	return resp, string(b)
}

func TestStreamsOverRESTAndGRPC(t *testing.T) {
	t.Parallel()
	hs, cc, handled := streamServer(t)

	resp, body := get(t, hs.URL+"/cart/events?user_id=7", "text/event-stream")
	want := ": heartbeat\n\nid: t1\nevent: shop.events.v1.CartItemAdded\ndata: {\"item\":{}}\n\n" +
		"id: t2\nevent: shop.events.v1.CartItemAdded\ndata: {\"item\":{}}\n\nevent: error\ndata: {"
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" || !strings.HasPrefix(body, want) ||
		!strings.Contains(strings.ReplaceAll(body, " ", ""), `data:{"code":8,`) {
		t.Errorf("SSE: %d %q\n%q, want prefix %q", resp.StatusCode, resp.Header.Get("Content-Type"), body, want)
	}

	resp, body = get(t, hs.URL+"/cart/events?user_id=7", "")
	lines := strings.Split(strings.ReplaceAll(strings.TrimSpace(body), " ", ""), "\n")
	if resp.StatusCode != 200 || len(lines) != 3 || !strings.HasPrefix(lines[0], `{"result":{"resume_token":"t1"`) || !strings.HasPrefix(lines[2], `{"error":{"code":8`) {
		t.Errorf("NDJSON: %d %q", resp.StatusCode, body)
	}

	// A denial comes before the stream: a plain error answer with the
	// interceptor's header, and the stream handler never runs.
	before := *handled
	resp, body = get(t, hs.URL+"/cart/events?user_id=9", "text/event-stream")
	if resp.StatusCode != 401 || resp.Header.Get("Www-Authenticate") != `Bearer realm="shop"` ||
		resp.Header.Get("Content-Type") != "application/json" || !strings.HasPrefix(strings.ReplaceAll(body, " ", ""), `{"code":16`) || *handled != before {
		t.Errorf("denied: %d %v %q (handler ran: %v)", resp.StatusCode, resp.Header, body, *handled != before)
	}

	// A non-stream route never answers as an event stream.
	if resp, _ := get(t, hs.URL+"/stock/1", "text/event-stream"); resp.Header.Get("Content-Type") != "application/json" {
		t.Errorf("GET /stock/1 with Accept: text/event-stream: Content-Type %q", resp.Header.Get("Content-Type"))
	}

	st, err := cartv1.NewCartServiceClient(cc).WatchCart(context.Background(), &cartv1.WatchCartRequest{UserId: 7})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for {
		m, err := st.Recv()
		if err != nil {
			if status.Code(err) != codes.ResourceExhausted {
				t.Errorf("gRPC stream ended with %v", err)
			}
			break
		}
		got = append(got, m.GetResumeToken())
	}
	if strings.Join(got, ",") != "t1,t2" {
		t.Errorf("gRPC stream: %v", got)
	}
	st, _ = cartv1.NewCartServiceClient(cc).WatchCart(context.Background(), &cartv1.WatchCartRequest{UserId: 9})
	if _, err := st.Recv(); status.Code(err) != codes.Unauthenticated {
		t.Errorf("gRPC denied: %v", err)
	}
}
