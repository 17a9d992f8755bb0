package server_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/shopgateway/shop/gateway/internal/apierr"
)

// rawCodec sends a []byte as the request message as it is, for requests a
// protobuf library would not encode.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return *v.(*[]byte), nil }
func (rawCodec) Unmarshal([]byte, any) error   { return nil }
func (rawCodec) Name() string                  { return "proto" }

// TestGRPCDecodeErrorDetails sends gRPC requests that do not decode and
// checks that the fields at fault are named in a google.rpc.BadRequest by
// their proto paths, as REST bodies' are, and the service is never called.
func TestGRPCDecodeErrorDetails(t *testing.T) {
	t.Parallel()
	str := func(num protowire.Number, s string) []byte {
		return protowire.AppendString(protowire.AppendTag(nil, num, protowire.BytesType), s)
	}
	msg := func(num protowire.Number, inner ...[]byte) []byte {
		return protowire.AppendBytes(protowire.AppendTag(nil, num, protowire.BytesType), slices.Concat(inner...))
	}
	varint := func(num protowire.Number, v uint64) []byte {
		return protowire.AppendVarint(protowire.AppendTag(nil, num, protowire.VarintType), v)
	}
	cut := func(b []byte) []byte { return b[:len(b)-1] }
	for _, tc := range []struct {
		name, method string
		body         []byte
		wantFields   []string
		wantInMsg    string
	}{
		{"string not UTF-8 in a body field", "/shop.stock.v1.StockService/CreateStock",
			msg(1, varint(1, 5), str(2, "caf\xe9"), varint(3, 1)), []string{"item.product_name"}, "item.product_name: must be valid UTF-8"},
		{"page token not UTF-8", "/shop.stock.v1.StockService/ListStock",
			str(2, "\xff"), []string{"page_token"}, "page_token: must be valid UTF-8"},
		{"value cut short in a list's element", "/shop.order.v1.OrderService/ProcessOrderStock",
			slices.Concat(msg(1, varint(1, 1), varint(2, 1)), msg(1, varint(1, 1), append(protowire.AppendTag(nil, 2, protowire.VarintType), 0xff))),
			[]string{"items[1].quantity"}, "items[1].quantity: is cut short or malformed"},
		{"message cut short", "/shop.cart.v1.CartService/AddCartItem",
			cut(varint(2, 300)), []string{"product_id"}, "product_id: is cut short or malformed"},
		{"tag cut short", "/shop.cart.v1.CartService/AddCartItem",
			[]byte{0x80}, nil, "is not a valid shop.cart.v1.AddCartItemRequest message"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ts := newTestServer(t)
			var out []byte
			err := ts.grpc.Invoke(context.Background(), tc.method, &tc.body, &out, grpc.ForceCodec(rawCodec{}))
			if got := status.Code(err); got != codes.InvalidArgument {
				t.Fatalf("code %v (%v), want InvalidArgument", got, err)
			}
			var fields []string
			for _, v := range apierr.Violations(err) {
				fields = append(fields, v.Field)
			}
			if !slices.Equal(fields, tc.wantFields) {
				t.Errorf("BadRequest fields %q, want %q (%v)", fields, tc.wantFields, err)
			}
			if msg := status.Convert(err).Message(); !strings.Contains(msg, tc.wantInMsg) {
				t.Errorf("message %q, want it to contain %q", msg, tc.wantInMsg)
			}
			if got := ts.calls.Load(); got != 0 {
				t.Errorf("the service chain was called %d times, want none", got)
			}
		})
	}
}
