package httprule_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	cartv1 "github.com/shopgateway/shop/gen/shop/cart/v1"
	stockv1 "github.com/shopgateway/shop/gen/shop/stock/v1"

	"github.com/shopgateway/shop/gateway/internal/httprule"
)

func method(tb testing.TB, sd protoreflect.ServiceDescriptor, name protoreflect.Name) protoreflect.MethodDescriptor {
	tb.Helper()
	md := sd.Methods().ByName(name)
	if md == nil {
		tb.Fatalf("%s has no method %s", sd.FullName(), name)
	}
	return md
}

func TestFullMethod(t *testing.T) {
	t.Parallel()
	md := method(t, stockv1.File_shop_stock_v1_stock_proto.Services().Get(0), "GetStock")
	if got, want := httprule.FullMethod(md), "/shop.stock.v1.StockService/GetStock"; got != want {
		t.Errorf("FullMethod = %q, want %q", got, want)
	}
}

func TestBindings(t *testing.T) {
	t.Parallel()
	stock := stockv1.File_shop_stock_v1_stock_proto.Services().Get(0)
	cart := cartv1.File_shop_cart_v1_cart_proto.Services().Get(0)
	tests := []struct {
		name string
		md   protoreflect.MethodDescriptor
		want []httprule.Binding
	}{
		{
			name: "get with response body",
			md:   method(t, stock, "GetStock"),
			want: []httprule.Binding{{Method: http.MethodGet, Template: "/stock/{product_id}", ResponseBody: "item"}},
		},
		{
			name: "put with body field",
			md:   method(t, stock, "UpdateStock"),
			want: []httprule.Binding{{Method: http.MethodPut, Template: "/stock/{product_id}", Body: "item", ResponseBody: "item"}},
		},
		{
			name: "delete",
			md:   method(t, stock, "DeleteStock"),
			want: []httprule.Binding{{Method: http.MethodDelete, Template: "/stock/{product_id}", ResponseBody: "item"}},
		},
		{
			name: "additional binding after the primary",
			md:   method(t, cart, "GetFallbackCart"),
			want: []httprule.Binding{
				{Method: http.MethodPost, Template: "/cart/fallback", Body: "*"},
				{Method: http.MethodGet, Template: "/cart/fallback/{user_id}"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := httprule.Bindings(tt.md); !slices.Equal(got, tt.want) {
				t.Errorf("Bindings = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestCompileTemplate(t *testing.T) {
	t.Parallel()
	req := (&stockv1.UpdateStockRequest{}).ProtoReflect().Descriptor()
	tests := []struct {
		name      string
		tmpl      string
		wantErr   string
		wantParts []string
		wantVars  []protoreflect.Name
	}{
		{name: "literal", tmpl: "/stock", wantParts: []string{"stock"}},
		{name: "variable", tmpl: "/stock/{product_id}", wantParts: []string{"stock", "{product_id}"}, wantVars: []protoreflect.Name{"product_id"}},
		{name: "dotted variable with pattern", tmpl: "/stock/{item.product_id=*}/x", wantParts: []string{"stock", "{item.product_id=*}", "x"}, wantVars: []protoreflect.Name{"item"}},
		{name: "no leading slash", tmpl: "stock", wantErr: "must start with /"},
		{name: "custom verb", tmpl: "/stock/{product_id}:undo", wantErr: "custom verbs are not supported"},
		{name: "variable not filling its segment", tmpl: "/stock/{product_id}x", wantErr: "must fill its segment"},
		{name: "unknown field", tmpl: "/stock/{nope}", wantErr: "nope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := httprule.CompileTemplate(tt.tmpl, req)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("CompileTemplate(%q) error = %v, want one containing %q", tt.tmpl, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("CompileTemplate(%q): %v", tt.tmpl, err)
			}
			if !slices.Equal(got.Parts, tt.wantParts) {
				t.Errorf("Parts = %q, want %q", got.Parts, tt.wantParts)
			}
			if g, w := len(got.Vars), len(tt.wantVars); g != w {
				t.Errorf("%d vars, want %d", g, w)
			}
			for _, v := range tt.wantVars {
				if !got.Vars[v] {
					t.Errorf("Vars lacks %s", v)
				}
			}
		})
	}
}

func TestTemplateMatch(t *testing.T) {
	t.Parallel()
	tmpl, err := httprule.CompileTemplate("/stock/{product_id}", (&stockv1.GetStockRequest{}).ProtoReflect().Descriptor())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path string
		want bool
	}{
		{"/stock/7", true},
		{"/stock/-7", true},
		{"/stock/7/", true},
		{"/stock/abc", false},
		{"/stock/-", false},
		{"/stock/", false},
		{"/stock", false},
		{"/stock/7/x", false},
		{"/order/7", false},
		{"stock/7", false},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			t.Parallel()
			if got := tmpl.Match(tt.path); got != tt.want {
				t.Errorf("Match(%q) = %v, want %v", tt.path, got, tt.want)
			}
		})
	}
}

func TestTemplateAppendPath(t *testing.T) {
	t.Parallel()
	req := (&stockv1.UpdateStockRequest{}).ProtoReflect().Descriptor()
	tests := []struct {
		name    string
		tmpl    string
		msg     proto.Message
		want    string
		wantErr string
	}{
		{name: "literal", tmpl: "/stock", msg: &stockv1.UpdateStockRequest{}, want: "/stock"},
		{name: "variable", tmpl: "/stock/{product_id}/x", msg: &stockv1.UpdateStockRequest{ProductId: 42}, want: "/stock/42/x"},
		{name: "zero value is written", tmpl: "/stock/{product_id}", msg: &stockv1.UpdateStockRequest{}, want: "/stock/0"},
		{name: "escaped", tmpl: "/stock/{item.product_name}", msg: &stockv1.UpdateStockRequest{Item: &stockv1.StockItem{ProductName: "a/b c"}}, want: "/stock/a%2Fb%20c"},
		{name: "unset parent", tmpl: "/stock/{item.product_id}", msg: &stockv1.UpdateStockRequest{}, wantErr: "product_id is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tmpl, err := httprule.CompileTemplate(tt.tmpl, req)
			if err != nil {
				t.Fatal(err)
			}
			var b strings.Builder
			err = tmpl.AppendPath(&b, tt.msg.ProtoReflect())
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("AppendPath error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := b.String(); got != tt.want {
				t.Errorf("AppendPath = %q, want %q", got, tt.want)
			}
		})
	}
}
