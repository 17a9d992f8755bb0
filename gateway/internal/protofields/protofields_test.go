package protofields

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"

	cartv1 "github.com/shopgateway/shop/gen/shop/cart/v1"
	orderv1 "github.com/shopgateway/shop/gen/shop/order/v1"
)

func TestCopyByNameCopiesTwins(t *testing.T) {
	src := &cartv1.GetCartResponse{UserId: 7, Items: []*cartv1.CartItem{{ItemId: 1, UserId: 7, ProductId: 3, Quantity: 2}}}
	dst := &cartv1.GetFallbackCartResponse{}
	if err := CopyByName(dst.ProtoReflect(), src.ProtoReflect()); err != nil {
		t.Fatal(err)
	}
	if dst.GetUserId() != 7 || len(dst.GetItems()) != 1 || dst.GetItems()[0].GetProductId() != 3 {
		t.Errorf("copied %v, want user 7 with the one item", dst)
	}
	// Unset source fields leave the destination alone.
	dst2 := &cartv1.GetFallbackCartRequest{UserId: 9}
	if err := CopyByName(dst2.ProtoReflect(), (&cartv1.GetCartRequest{}).ProtoReflect()); err != nil || dst2.GetUserId() != 9 {
		t.Errorf("an unset field overwrote the destination: %v, %v", dst2, err)
	}
}

// twoMessages builds messages A and B that share field names: x differs in
// type (int64 vs string), y does not.
func twoMessages(t *testing.T) (a, b protoreflect.MessageDescriptor) {
	t.Helper()
	i64, str := descriptorpb.FieldDescriptorProto_TYPE_INT64, descriptorpb.FieldDescriptorProto_TYPE_STRING
	opt := descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL
	field := func(name string, n int32, typ descriptorpb.FieldDescriptorProto_Type) *descriptorpb.FieldDescriptorProto {
		return &descriptorpb.FieldDescriptorProto{Name: proto.String(name), Number: proto.Int32(n), Type: typ.Enum(), Label: opt.Enum(), JsonName: proto.String(name)}
	}
	fdp := &descriptorpb.FileDescriptorProto{
		Name: proto.String("protofields_test.proto"), Package: proto.String("pft"), Syntax: proto.String("proto3"),
		MessageType: []*descriptorpb.DescriptorProto{
			{Name: proto.String("A"), Field: []*descriptorpb.FieldDescriptorProto{field("x", 1, i64), field("y", 2, str)}},
			{Name: proto.String("B"), Field: []*descriptorpb.FieldDescriptorProto{field("x", 1, str), field("y", 2, str)}},
		},
	}
	fd, err := protodesc.NewFile(fdp, nil)
	if err != nil {
		t.Fatal(err)
	}
	return fd.Messages().ByName("A"), fd.Messages().ByName("B")
}

func TestCopyByNameRefusesATwinOfAnotherType(t *testing.T) {
	a, b := twoMessages(t)
	src := dynamicpb.NewMessage(b)
	src.Set(b.Fields().ByName("x"), protoreflect.ValueOfString("seven"))
	err := CopyByName(dynamicpb.NewMessage(a), src)
	if err == nil || !strings.Contains(err.Error(), "field x") {
		t.Errorf("CopyByName = %v, want an error naming field x", err)
	}
}

func TestPaths(t *testing.T) {
	order := (&orderv1.Order{}).ProtoReflect().Descriptor()
	for _, bad := range []string{"", "nope", "order_id.x", "items", "items.nope"} {
		if _, err := Compile(order, bad); err == nil {
			t.Errorf("Compile(%q) accepted a path that is not a singular scalar", bad)
		}
	}
	first, err := Compile(order, "items.product_id")
	if err != nil {
		t.Fatal(err)
	}
	status, err := Compile(order, "status")
	if err != nil {
		t.Fatal(err)
	}
	m := &orderv1.Order{OrderId: 5, Status: orderv1.OrderStatus_ORDER_STATUS_PAID}
	if _, ok := first.Value(m.ProtoReflect()); ok {
		t.Error("a path through an empty list has a value")
	}
	m.Items = []*orderv1.OrderItem{{ProductId: 11}, {ProductId: 12}}
	if s, ok := first.String(m.ProtoReflect()); !ok || s != "11" {
		t.Errorf("items.product_id = %q, %v; want the first element's 11", s, ok)
	}
	if s, ok := status.String(m.ProtoReflect()); !ok || s != "ORDER_STATUS_PAID" {
		t.Errorf("status = %q, %v; want the enum's name", s, ok)
	}
	unknown := protoreflect.ValueOfEnum(99)
	if s := FormatScalar(status[0], unknown); s != "99" {
		t.Errorf("an unknown enum number formats as %q, want 99", s)
	}
}
