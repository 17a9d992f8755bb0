package jsonbody_test

import (
	"encoding/json"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/shopgateway/shop/gateway/internal/apierr"
	"github.com/shopgateway/shop/gateway/internal/jsonbody"
	cartv1 "github.com/shopgateway/shop/gen/shop/cart/v1"
	orderv1 "github.com/shopgateway/shop/gen/shop/order/v1"
	stockv1 "github.com/shopgateway/shop/gen/shop/stock/v1"
)

var (
	addItem = (&cartv1.AddCartItemRequest{}).ProtoReflect().Descriptor()
	process = (&orderv1.ProcessOrderStockRequest{}).ProtoReflect().Descriptor()
	order   = (&orderv1.Order{}).ProtoReflect().Descriptor()
	item    = (&cartv1.CartItem{}).ProtoReflect().Descriptor()
	stock   = (&stockv1.StockItem{}).ProtoReflect().Descriptor()
)

// TestCheckValues checks each kind of bad input the decoder meets: every
// one is found, named by its path in proto field names, and described
// without echoing the value; a body protojson accepts has none.
func TestCheckValues(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		md   protoreflect.MessageDescriptor
		body string
		want []apierr.FieldViolation
	}{
		{"valid", addItem, `{"user_id":"7","product_id":1,"quantity":2}`, nil},
		{"valid by JSON names", addItem, `{"userId":7,"productId":"1","quantity":"2"}`, nil},
		{"int64 not a number", addItem, `{"product_id":"abc","quantity":1}`, []apierr.FieldViolation{
			fv("product_id", "must be an integer from -9223372036854775808 to 9223372036854775807, as a number or a string")}},
		{"int64 by JSON name", addItem, `{"productId":"abc","quantity":1}`, []apierr.FieldViolation{
			fv("product_id", "must be an integer from -9223372036854775808 to 9223372036854775807, as a number or a string")}},
		{"int64 overflow", addItem, `{"product_id":9223372036854775808,"quantity":1}`, []apierr.FieldViolation{
			fv("product_id", "must be an integer from -9223372036854775808 to 9223372036854775807, as a number or a string")}},
		{"int32 fraction", addItem, `{"product_id":1,"quantity":1.5}`, []apierr.FieldViolation{
			fv("quantity", "must be an integer from -2147483648 to 2147483647")}},
		{"int32 overflow", addItem, `{"product_id":1,"quantity":2147483648}`, []apierr.FieldViolation{
			fv("quantity", "must be an integer from -2147483648 to 2147483647")}},
		{"int32 as a bool", addItem, `{"product_id":1,"quantity":true}`, []apierr.FieldViolation{
			fv("quantity", "must be an integer from -2147483648 to 2147483647")}},
		{"string as a number", stock, `{"product_name":5,"quantity":1,"price_cents":1}`, []apierr.FieldViolation{
			fv("product_name", "must be a string of valid UTF-8")}},
		{"string not UTF-8", stock, "{\"product_name\":\"\xff\",\"quantity\":1,\"price_cents\":1}", []apierr.FieldViolation{
			fv("product_name", "must be a string of valid UTF-8")}},
		{"unknown field", addItem, `{"product_id":1,"quantity":1,"colour":"red"}`, []apierr.FieldViolation{
			fv("colour", "is not a field of AddCartItemRequest")}},
		{"unknown field, long key", addItem, `{"product_id":1,"quantity":1,"` + strings.Repeat("k", 100) + `":1}`, []apierr.FieldViolation{
			fv(strings.Repeat("k", 64)+"…", "is not a field of AddCartItemRequest")}},
		{"given twice", addItem, `{"product_id":1,"productId":2,"quantity":1}`, []apierr.FieldViolation{
			fv("product_id", "is given more than once")}},
		{"key repeated", addItem, `{"product_id":1,"quantity":1,"quantity":2}`, []apierr.FieldViolation{
			fv("quantity", "is given more than once")}},
		{"bad enum name", order, `{"status":"ORDER_STATUS_LOST"}`, []apierr.FieldViolation{
			fv("status", "must be one of ORDER_STATUS_UNSPECIFIED, ORDER_STATUS_PENDING, ORDER_STATUS_PAID, ORDER_STATUS_FAILED")}},
		{"enum as an object", order, `{"status":{}}`, []apierr.FieldViolation{
			fv("status", "must be one of ORDER_STATUS_UNSPECIFIED, ORDER_STATUS_PENDING, ORDER_STATUS_PAID, ORDER_STATUS_FAILED")}},
		{"enum by name and number", order, `{"status":"ORDER_STATUS_PAID"}`, nil},
		{"bad timestamp", item, `{"added_at":"yesterday"}`, []apierr.FieldViolation{
			fv("added_at", "must be an RFC 3339 timestamp in UTC, such as 2024-05-01T12:00:00Z")}},
		{"timestamp", item, `{"added_at":"2024-05-01T12:00:00Z"}`, nil},
		{"nested wrong type", order, `{"items":[{"product_id":1},{"quantity":"x"}]}`, []apierr.FieldViolation{
			fv("items[1].quantity", "must be an integer from -2147483648 to 2147483647")}},
		{"nested unknown field", order, `{"items":[{"sku":1}]}`, []apierr.FieldViolation{
			fv("items[0].sku", "is not a field of OrderItem")}},
		{"list not an array", order, `{"items":{}}`, []apierr.FieldViolation{fv("items", "must be a JSON array")}},
		{"element not an object", order, `{"items":[1]}`, []apierr.FieldViolation{fv("items[0]", "must be a JSON object")}},
		{"required in a line", process, `{"items":[{"product_id":1}]}`, []apierr.FieldViolation{fv("items[0].quantity", "is required")}},
		{"null", addItem, `{"product_id":null,"quantity":1}`, []apierr.FieldViolation{fv("product_id", "must not be null")}},
		{"null element", process, `{"items":[null]}`, []apierr.FieldViolation{fv("items[0]", "must not be null")}},
		{"every problem, in body order", addItem, `{"quantity":"x","colour":1,"user_id":null}`, []apierr.FieldViolation{
			fv("quantity", "must be an integer from -2147483648 to 2147483647"),
			fv("colour", "is not a field of AddCartItemRequest"),
			fv("user_id", "must not be null"),
			fv("product_id", "is required")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := jsonbody.Check([]byte(tc.body), tc.md, jsonbody.Values)
			if len(got) != len(tc.want) {
				t.Fatalf("Check = %v, want %v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("violation %d = %v, want %v", i, got[i], tc.want[i])
				}
			}
			// A body without violations is one protojson reads, and one
			// with violations (other than required or null) is one it
			// refuses: the check agrees with the decoder it explains.
			perr := protojson.Unmarshal([]byte(tc.body), dynamicOf(tc.md))
			if len(tc.want) == 0 && perr != nil {
				t.Errorf("no violations, but protojson refuses the body: %v", perr)
			}
		})
	}
}

// TestCheckShape checks that Shape reports only nulls and required fields,
// which protojson lets through, and leaves the rest to protojson.
func TestCheckShape(t *testing.T) {
	t.Parallel()
	got := jsonbody.Check([]byte(`{"quantity":"x","colour":1,"user_id":null}`), addItem, jsonbody.Shape)
	want := []apierr.FieldViolation{fv("user_id", "must not be null"), fv("product_id", "is required")}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("Check(Shape) = %v, want %v", got, want)
	}
}

func TestCheckNotAnObject(t *testing.T) {
	t.Parallel()
	for _, body := range []string{`[]`, `1`, `"x"`, `{"a":`} {
		got := jsonbody.Check([]byte(body), addItem, jsonbody.Values)
		if len(got) != 1 || got[0].Field != "" {
			t.Errorf("Check(%s) = %v, want one violation of the whole body", body, got)
		}
	}
}

func dynamicOf(md protoreflect.MessageDescriptor) protoreflect.ProtoMessage {
	return dynamicpb.NewMessage(md)
}

func fv(field, description string) apierr.FieldViolation {
	return apierr.FieldViolation{Field: field, Description: description}
}

// FuzzCheck feeds arbitrary bodies to Check: it never panics; a JSON body
// that protojson refuses has a violation (the decoder's error names the
// fields, never protojson's text); and a body that protojson reads has no
// violation other than null or a required field left out (which protojson
// lets through).
func FuzzCheck(f *testing.F) {
	for _, seed := range []string{
		`{"user_id":"7","product_id":1,"quantity":2}`, `{"productId":"abc","quantity":1.5,"x":null}`,
		`{"items":[{"product_id":1,"quantity":1},null,7,{"sku":{}}]}`, `[`, `{"a":`, `{"items":{"0":1}}`,
		`{"product_id":1,"product_id":2}`, "{\"product_name\":\"\xff\"}", `{"status":"ORDER_STATUS_PAID","created_at":"x"}`,
	} {
		f.Add([]byte(seed))
	}
	mds := []protoreflect.MessageDescriptor{addItem, process, order, stock}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, md := range mds {
			vs := jsonbody.Check(body, md, jsonbody.Values)
			if err := protojson.Unmarshal(body, dynamicOf(md)); err != nil {
				if len(vs) == 0 && json.Valid(body) {
					t.Errorf("protojson refuses %q as %s (%v), but Check finds nothing", body, md.FullName(), err)
				}
				continue
			}
			for _, v := range vs {
				if v.Description != "must not be null" && v.Description != "is required" {
					t.Errorf("protojson reads %q as %s, but Check says %v", body, md.FullName(), v)
				}
			}
		}
	})
}
