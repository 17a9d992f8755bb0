package events

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"

	annotationsv1 "github.com/shopgateway/shop/gen/shop/annotations/v1"
	cartv1 "github.com/shopgateway/shop/gen/shop/cart/v1"
	orderv1 "github.com/shopgateway/shop/gen/shop/order/v1"
	stockv1 "github.com/shopgateway/shop/gen/shop/stock/v1"
)

func shopServices() []protoreflect.ServiceDescriptor {
	return []protoreflect.ServiceDescriptor{
		stockv1.File_shop_stock_v1_stock_proto.Services().ByName("StockService"),
		cartv1.File_shop_cart_v1_cart_proto.Services().ByName("CartService"),
		orderv1.File_shop_order_v1_order_proto.Services().ByName("OrderService"),
	}
}

// TestCompileSpecs pins the event of every RPC of the API: each mutation
// emits the event its (shop.annotations.v1.emits) option names, keyed by
// product for stock and by user for cart and order, and no read emits
// anything.
func TestCompileSpecs(t *testing.T) {
	t.Parallel()
	type want struct {
		ceType, topic, key, subject string
	}
	cases := map[string]*want{
		"/shop.stock.v1.StockService/ListStock":         nil,
		"/shop.stock.v1.StockService/GetStock":          nil,
		"/shop.stock.v1.StockService/CreateStock":       {"shop.events.v1.StockCreated", "shop.stock.v1", "item.product_id", "item.product_id"},
		"/shop.stock.v1.StockService/UpdateStock":       {"shop.events.v1.StockUpdated", "shop.stock.v1", "item.product_id", "item.product_id"},
		"/shop.stock.v1.StockService/DeleteStock":       {"shop.events.v1.StockDeleted", "shop.stock.v1", "item.product_id", "item.product_id"},
		"/shop.stock.v1.StockService/SetStockLevel":     {"shop.events.v1.StockUpdated", "shop.stock.v1", "item.product_id", "item.product_id"},
		"/shop.cart.v1.CartService/AddCartItem":         {"shop.events.v1.CartItemAdded", "shop.cart.v1", "item.user_id", "item.item_id"},
		"/shop.cart.v1.CartService/GetFallbackCart":     nil,
		"/shop.cart.v1.CartService/GetCart":             nil,
		"/shop.cart.v1.CartService/RemoveCartItem":      {"shop.events.v1.CartItemRemoved", "shop.cart.v1", "item.user_id", "item.item_id"},
		"/shop.order.v1.OrderService/ListOrders":        nil,
		"/shop.order.v1.OrderService/GetOrder":          nil,
		"/shop.order.v1.OrderService/PayOrder":          {"shop.events.v1.OrderPaid", "shop.order.v1", "order.user_id", "order.order_id"},
		"/shop.order.v1.OrderService/ProcessOrderStock": {"shop.events.v1.StockProcessed", "shop.stock.v1", "items.product_id", ""},
		// The Watch streams read events; they emit none.
		"/shop.stock.v1.StockService/WatchStock":  nil,
		"/shop.cart.v1.CartService/WatchCart":     nil,
		"/shop.order.v1.OrderService/WatchOrders": nil,
	}
	specs, err := compileSpecs(shopServices(), nil)
	if err != nil {
		t.Fatalf("compileSpecs: %v", err)
	}
	n := 0
	for _, sd := range shopServices() {
		n += sd.Methods().Len()
	}
	if got, want := n, len(cases); got != want {
		t.Fatalf("the services have %d methods, the table %d: add the new ones", got, want)
	}
	if got, want := len(specs), 8; got != want {
		t.Errorf("%d methods emit, want %d", got, want)
	}
	for method, w := range cases {
		t.Run(method, func(t *testing.T) {
			t.Parallel()
			s := specs[method]
			if w == nil {
				if s != nil {
					t.Fatalf("a read emits %s", s.ceType)
				}
				return
			}
			if s == nil {
				t.Fatal("emits nothing")
			}
			got := want{string(s.ceType), s.topic, s.keyPath, s.subjPath}
			if got != *w {
				t.Errorf("got %+v, want %+v", got, *w)
			}
			if got, want := s.subject == nil, w.subject == ""; got != want {
				t.Errorf("compiled subject present = %v, want %v", !got, !want)
			}
		})
	}
}

func TestCompileSpecsTopicMap(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		topics  map[string]string
		method  string
		want    string
		wantErr string
	}{
		{name: "identity", method: "/shop.cart.v1.CartService/AddCartItem", want: "shop.cart.v1"},
		{name: "mapped", topics: map[string]string{"shop.cart.v1": "prod.cart"}, method: "/shop.cart.v1.CartService/AddCartItem", want: "prod.cart"},
		{name: "other topic unmapped", topics: map[string]string{"shop.cart.v1": "prod.cart"}, method: "/shop.order.v1.OrderService/PayOrder", want: "shop.order.v1"},
		{name: "unknown logical topic", topics: map[string]string{"shop.carts.v1": "x"}, wantErr: `no method emits to logical topic "shop.carts.v1"`},
		{name: "invalid kafka name", topics: map[string]string{"shop.cart.v1": "bad topic"}, wantErr: `"bad topic" is not a valid Kafka topic name`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			specs, err := compileSpecs(shopServices(), tc.topics)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("compileSpecs: %v", err)
			}
			if got, want := specs[tc.method].topic, tc.want; got != want {
				t.Errorf("topic: got %q, want %q", got, want)
			}
		})
	}
}

// TestCompileSpecsBad builds a service whose EventSpecs are wrong in every
// way at once and checks that start-up names every problem.
func TestCompileSpecsBad(t *testing.T) {
	t.Parallel()
	method := func(name, out string, es *annotationsv1.EventSpec) *descriptorpb.MethodDescriptorProto {
		opts := &descriptorpb.MethodOptions{}
		proto.SetExtension(opts, annotationsv1.E_Emits, es)
		return &descriptorpb.MethodDescriptorProto{
			Name:       proto.String(name),
			InputType:  proto.String(".shop.stock.v1.GetStockRequest"),
			OutputType: proto.String(out),
			Options:    opts,
		}
	}
	const stockOut = ".shop.stock.v1.SetStockLevelResponse"
	fdp := &descriptorpb.FileDescriptorProto{
		Name:       proto.String("shop/bad/v1/bad.proto"),
		Package:    proto.String("shop.bad.v1"),
		Syntax:     proto.String("proto3"),
		Dependency: []string{"shop/stock/v1/stock.proto", "shop/cart/v1/cart.proto", "shop/annotations/v1/annotations.proto"},
		Service: []*descriptorpb.ServiceDescriptorProto{{
			Name: proto.String("BadService"),
			Method: []*descriptorpb.MethodDescriptorProto{
				method("UnknownType", stockOut, &annotationsv1.EventSpec{Type: "shop.events.v1.Nope", Topic: "shop.stock.v1", Key: "item.product_id"}),
				method("NoTopic", stockOut, &annotationsv1.EventSpec{Type: "shop.events.v1.StockUpdated", Key: "item.product_id"}),
				method("NoKey", stockOut, &annotationsv1.EventSpec{Type: "shop.events.v1.StockUpdated", Topic: "shop.stock.v1"}),
				method("BadKey", stockOut, &annotationsv1.EventSpec{Type: "shop.events.v1.StockUpdated", Topic: "shop.stock.v1", Key: "item.sku"}),
				method("KeyNotScalar", stockOut, &annotationsv1.EventSpec{Type: "shop.events.v1.StockUpdated", Topic: "shop.stock.v1", Key: "item"}),
				method("BadSubject", stockOut, &annotationsv1.EventSpec{Type: "shop.events.v1.StockUpdated", Topic: "shop.stock.v1", Key: "item.product_id", Subject: "item.nope"}),
				method("NoTwin", ".shop.stock.v1.ListStockResponse", &annotationsv1.EventSpec{Type: "shop.events.v1.StockUpdated", Topic: "shop.stock.v1", Key: "item.product_id"}),
				method("WrongTwinType", ".shop.cart.v1.AddCartItemResponse", &annotationsv1.EventSpec{Type: "shop.events.v1.StockUpdated", Topic: "shop.stock.v1", Key: "item.product_id"}),
				method("BadTopicName", stockOut, &annotationsv1.EventSpec{Type: "shop.events.v1.StockUpdated", Topic: "shop/stock", Key: "item.product_id"}),
				method("SplitNotRepeated", stockOut, &annotationsv1.EventSpec{Type: "shop.events.v1.StockUpdated", Topic: "shop.stock.v1", Key: "item.product_id", Split: "item"}),
				method("SplitUnknown", stockOut, &annotationsv1.EventSpec{Type: "shop.events.v1.StockUpdated", Topic: "shop.stock.v1", Key: "item.product_id", Split: "items"}),
			},
		}},
	}
	fd, err := protodesc.NewFile(fdp, protoregistry.GlobalFiles)
	if err != nil {
		t.Fatalf("protodesc.NewFile: %v", err)
	}
	_, err = compileSpecs([]protoreflect.ServiceDescriptor{fd.Services().Get(0)}, nil)
	if err == nil {
		t.Fatal("compileSpecs accepted bad specs")
	}
	for _, want := range []string{
		`UnknownType: emits: payload type "shop.events.v1.Nope"`,
		`NoTopic: emits: no topic`,
		`NoKey: emits: no key`,
		`BadKey: emits: key: field path "item.sku"`,
		`KeyNotScalar: emits: key: field path "item": "item" must be a singular scalar`,
		`BadSubject: emits: subject: field path "item.nope"`,
		`NoTwin: emits: payload field item has no twin in shop.stock.v1.ListStockResponse`,
		`WrongTwinType: emits: field item: shop.events.v1.StockUpdated and shop.cart.v1.AddCartItemResponse differ in type`,
		`BadTopicName: emits: "shop/stock" is not a valid Kafka topic name`,
		`SplitNotRepeated: emits: split: shop.events.v1.StockUpdated has no repeated message field "item"`,
		`SplitUnknown: emits: split: shop.events.v1.StockUpdated has no repeated message field "items"`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not report %q:\n%v", want, err)
		}
	}
}
