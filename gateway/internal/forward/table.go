package forward

import "google.golang.org/protobuf/reflect/protoreflect"

// Names of the upstream services in the routing table.
const (
	// ServiceA owns stock, the master copy of carts and stock decrements.
	ServiceA = "service_a"
	// ServiceB owns the cart read model and orders.
	ServiceB = "service_b"
)

// Route says where one RPC goes.
type Route struct {
	// Upstream is the name of the service that owns the RPC.
	Upstream string
	// Fallback, when set, is the RPC answered instead when the owner is
	// unavailable. Its request and response must share field names with this
	// RPC's.
	Fallback protoreflect.FullName
}

// Table maps each RPC (by full method name, "pkg.Service.Method") to its
// route. It is the only per-RPC configuration of the forwarder: the HTTP
// method, path, query and body of the upstream call come from the RPC's
// google.api.http rule.
type Table map[protoreflect.FullName]Route

// DefaultTable is the routing of the shop: /stock*, /cart/add, /cart/fallback
// and /order/process_stock go to service A; the rest of /cart and /order go
// to service B, and GetCart falls back to service A's copy of the cart.
var DefaultTable = Table{
	"shop.stock.v1.StockService.ListStock":         {Upstream: ServiceA},
	"shop.stock.v1.StockService.GetStock":          {Upstream: ServiceA},
	"shop.stock.v1.StockService.CreateStock":       {Upstream: ServiceA},
	"shop.stock.v1.StockService.UpdateStock":       {Upstream: ServiceA},
	"shop.stock.v1.StockService.DeleteStock":       {Upstream: ServiceA},
	"shop.stock.v1.StockService.SetStockLevel":     {Upstream: ServiceA},
	"shop.cart.v1.CartService.AddCartItem":         {Upstream: ServiceA},
	"shop.cart.v1.CartService.GetFallbackCart":     {Upstream: ServiceA},
	"shop.cart.v1.CartService.GetCart":             {Upstream: ServiceB, Fallback: "shop.cart.v1.CartService.GetFallbackCart"},
	"shop.cart.v1.CartService.RemoveCartItem":      {Upstream: ServiceB},
	"shop.order.v1.OrderService.ListOrders":        {Upstream: ServiceB},
	"shop.order.v1.OrderService.GetOrder":          {Upstream: ServiceB},
	"shop.order.v1.OrderService.PayOrder":          {Upstream: ServiceB},
	"shop.order.v1.OrderService.ProcessOrderStock": {Upstream: ServiceA},
}
