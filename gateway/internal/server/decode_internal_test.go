package server

import (
	"errors"
	"testing"

	orderv1 "github.com/shopgateway/shop/gen/shop/order/v1"
)

func TestProtojsonMessage(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"proto: (line 1:42): unknown field \"x\"", "unknown field \"x\""},
		{"proto:\u00a0(line 1:42): unknown field \"x\"", "unknown field \"x\""},
		{"proto: syntax error (line 1:5): unexpected token", "unexpected token"},
		{"proto:\u00a0syntax error (line\u00a01:5): unexpected token", "unexpected token"},
		{"proto: invalid value for int32 field quantity: \"many\"", "invalid value for int32 field quantity: \"many\""},
	} {
		if got := protojsonMessage(errors.New(tc.in)); got != tc.want {
			t.Errorf("protojsonMessage(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestProtoNames(t *testing.T) {
	t.Parallel()
	md := (&orderv1.ProcessOrderStockRequest{}).ProtoReflect().Descriptor()
	for _, tc := range []struct{ in, want string }{
		{`invalid value for int64 field productId: "abc"`, `invalid value for int64 field product_id: "abc"`},
		{`unknown field "colourName"`, `unknown field "colourName"`},
		{"no names here", "no names here"},
	} {
		if got := protoNames(tc.in, md); got != tc.want {
			t.Errorf("protoNames(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
