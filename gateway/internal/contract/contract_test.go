package contract_test

import (
	"slices"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"

	orderv1 "github.com/shopgateway/shop/gen/shop/order/v1"
	stockv1 "github.com/shopgateway/shop/gen/shop/stock/v1"

	"github.com/shopgateway/shop/gateway/internal/apierr"
	"github.com/shopgateway/shop/gateway/internal/contract"
)

func item(name string) *stockv1.StockItem {
	return &stockv1.StockItem{ProductId: 1, ProductName: name, Quantity: 1, PriceCents: 1}
}

// TestValidateText: a control character in any string field of a request
// is one violation naming the field, before the field's own rules; text
// without one passes.
func TestValidateText(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		req   proto.Message
		field string // "" for no violation
		desc  string
	}{
		{"plain name", &stockv1.CreateStockRequest{Item: item("green tea")}, "", ""},
		{"unicode name", &stockv1.CreateStockRequest{Item: item("Grüner Tee 緑茶\u00a0x")}, "", ""},
		{"NUL", &stockv1.CreateStockRequest{Item: item("a\x00b")}, "item.product_name", "control characters"},
		{"only NUL", &stockv1.CreateStockRequest{Item: item("\x00")}, "item.product_name", "control characters"},
		{"newline", &stockv1.UpdateStockRequest{ProductId: 1, Item: item("tea\n")}, "item.product_name", "control characters"},
		{"escape", &stockv1.CreateStockRequest{Item: item("\x1b[31mred")}, "item.product_name", "control characters"},
		{"DEL", &stockv1.CreateStockRequest{Item: item("x\x7f")}, "item.product_name", "control characters"},
		{"C1", &stockv1.CreateStockRequest{Item: item("x\u0085")}, "item.product_name", "control characters"},
		{"blank", &stockv1.CreateStockRequest{Item: item("   ")}, "item.product_name", "pattern"},
		{"page token", &stockv1.ListStockRequest{PageToken: "1\x00"}, "page_token", "control characters"},
		{"no strings", &orderv1.ProcessOrderStockRequest{Items: []*orderv1.StockLine{{ProductId: 1, Quantity: 1}}}, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			vs, err := contract.Validate(tc.req)
			if err != nil {
				t.Fatal(err)
			}
			if tc.field == "" {
				if len(vs) != 0 {
					t.Errorf("violations %v, want none", vs)
				}
				return
			}
			if len(vs) != 1 || vs[0].Field != tc.field || !strings.Contains(vs[0].Description, tc.desc) {
				t.Errorf("violations %v, want one on %s saying %q", vs, tc.field, tc.desc)
			}
		})
	}
}

// TestText walks nested messages and lists, naming each field by its path.
func TestText(t *testing.T) {
	t.Parallel()
	resp := &stockv1.ListStockResponse{Items: []*stockv1.StockItem{item("ok"), item("bad\x01")}, NextPageToken: "\x02"}
	got := contract.Text(resp.ProtoReflect())
	want := []apierr.FieldViolation{
		{Field: "items[1].product_name", Description: "must not contain control characters"},
		{Field: "next_page_token", Description: "must not contain control characters"},
	}
	if len(got) != len(want) {
		t.Fatalf("Text = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("Text[%d] = %v, want %v", i, got[i], want[i])
		}
	}
}

// FuzzValidateName: a product name holding a control character is always
// refused on item.product_name, and a name without one is never refused
// for holding one.
func FuzzValidateName(f *testing.F) {
	for _, s := range []string{"tea", "a\x00b", "\n", "\u0085", "緑茶", " x ", "\x7f", "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if !utf8.ValidString(name) {
			return // protojson and the gRPC codec refuse it before the contract
		}
		vs, err := contract.Validate(&stockv1.CreateStockRequest{Item: item(name)})
		if err != nil {
			t.Fatal(err)
		}
		refused := slices.ContainsFunc(vs, func(v apierr.FieldViolation) bool {
			return v.Field == "item.product_name" && strings.Contains(v.Description, "control characters")
		})
		if want := strings.IndexFunc(name, unicode.IsControl) >= 0; refused != want {
			t.Errorf("name %q: refused for control characters %v, want %v (%v)", name, refused, want, vs)
		}
	})
}

// TestCheckRequiredMessage: a required message field left out is one
// violation naming it; present, its own required fields are checked with
// their path.
func TestCheckRequiredMessage(t *testing.T) {
	t.Parallel()
	if got := contract.Check((&stockv1.CreateStockRequest{}).ProtoReflect()); len(got) != 1 || got[0].Field != "item" || got[0].Description != "is required" {
		t.Errorf("CreateStock without item: %v, want one violation of item", got)
	}
	if got := contract.Check((&stockv1.CreateStockRequest{Item: item("beans")}).ProtoReflect()); len(got) != 0 {
		t.Errorf("CreateStock with an item: %v, want none", got)
	}
	if got := contract.Check((&stockv1.CreateStockRequest{Item: &stockv1.StockItem{ProductId: 1}}).ProtoReflect()); !slices.ContainsFunc(got, func(v apierr.FieldViolation) bool { return v.Field == "item.product_name" }) {
		t.Errorf("CreateStock with an item without a name: %v, want item.product_name", got)
	}
}
