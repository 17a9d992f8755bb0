package protofields_test

import (
	"slices"
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/shopgateway/shop/gateway/internal/protofields"
	orderv1 "github.com/shopgateway/shop/gen/shop/order/v1"
)

func TestEachField(t *testing.T) {
	t.Parallel()
	var got []string
	protofields.EachField((&orderv1.ListOrdersResponse{}).ProtoReflect().Descriptor(), func(fd protoreflect.FieldDescriptor) {
		got = append(got, string(fd.FullName()))
	})
	for _, want := range []string{
		"shop.order.v1.ListOrdersResponse.orders",
		"shop.order.v1.Order.items",
		"shop.order.v1.OrderItem.price_cents",
		"google.protobuf.Timestamp.seconds",
	} {
		if !slices.Contains(got, want) {
			t.Errorf("EachField visited %v, want %s among them", got, want)
		}
	}
	seen := map[string]bool{}
	for _, f := range got {
		if seen[f] {
			t.Errorf("field %s visited twice", f)
		}
		seen[f] = true
	}
}
