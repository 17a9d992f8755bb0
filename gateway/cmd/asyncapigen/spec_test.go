package main

import (
	"bytes"
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	cartv1 "github.com/shopgateway/shop/gen/shop/cart/v1"
	eventsv1 "github.com/shopgateway/shop/gen/shop/events/v1"

	"github.com/shopgateway/shop/gateway/internal/events"
)

// build returns the generated document, decoded.
func build(tb testing.TB) map[string]any {
	tb.Helper()
	raw, err := Build(services())
	if err != nil {
		tb.Fatalf("Build: %v", err)
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		tb.Fatalf("not JSON: %v", err)
	}
	return doc
}

func get(tb testing.TB, v any, path ...string) any {
	tb.Helper()
	for _, k := range path {
		m, ok := v.(map[string]any)
		if !ok {
			tb.Fatalf("no object at %s", strings.Join(path, "/"))
		}
		if v, ok = m[k]; !ok {
			tb.Fatalf("no %s", strings.Join(path, "/"))
		}
	}
	return v
}

func TestEveryEventMessageIsDescribed(t *testing.T) {
	t.Parallel()
	doc := build(t)
	if got := doc["asyncapi"]; got != "3.0.0" {
		t.Errorf("asyncapi %v, want 3.0.0", got)
	}
	msgs := eventsv1.File_shop_events_v1_events_proto.Messages()
	if msgs.Len() == 0 {
		t.Fatal("no event messages")
	}
	for i := range msgs.Len() {
		name := string(msgs.Get(i).FullName())
		get(t, doc, "components", "messages", name)
		get(t, doc, "components", "schemas", name)
		if got := get(t, doc, "components", "messages", name, "payload", "$ref"); got != events.SchemaPointer(name) {
			t.Errorf("%s payload $ref %v, want %s", name, got, events.SchemaPointer(name))
		}
	}
}

func TestTopicsAndKeys(t *testing.T) {
	t.Parallel()
	doc := build(t)
	channels := get(t, doc, "channels").(map[string]any)
	var addrs []string
	for _, ch := range channels {
		if _, kafka := ch.(map[string]any)["bindings"]; kafka {
			addrs = append(addrs, get(t, ch, "address").(string))
		}
	}
	slices.Sort(addrs)
	if want := []string{"shop.cart.v1", "shop.order.v1", "shop.stock.v1"}; !slices.Equal(addrs, want) {
		t.Errorf("channel addresses %q, want %q", addrs, want)
	}
	cases := []struct {
		message, topic, key, subject string
	}{
		{"shop.events.v1.CartItemAdded", "shop.cart.v1", "item.user_id", "item.item_id"},
		{"shop.events.v1.CartItemRemoved", "shop.cart.v1", "item.user_id", "item.item_id"},
		{"shop.events.v1.OrderPaid", "shop.order.v1", "order.user_id", "order.order_id"},
		{"shop.events.v1.StockCreated", "shop.stock.v1", "item.product_id", "item.product_id"},
		{"shop.events.v1.StockUpdated", "shop.stock.v1", "item.product_id", "item.product_id"},
		{"shop.events.v1.StockDeleted", "shop.stock.v1", "item.product_id", "item.product_id"},
		{"shop.events.v1.StockProcessed", "shop.stock.v1", "items.product_id", ""},
	}
	for _, tc := range cases {
		msg := get(t, doc, "components", "messages", tc.message)
		key := get(t, msg, "bindings", "kafka", "key").(map[string]any)
		if desc, _ := key["description"].(string); !strings.Contains(desc, " "+tc.key+",") {
			t.Errorf("%s key %q, want it to name %s", tc.message, desc, tc.key)
		}
		if key["pattern"] != "^-?[0-9]+$" {
			t.Errorf("%s key pattern %v, want a decimal integer", tc.message, key["pattern"])
		}
		ch := get(t, doc, "channels", channelID(tc.topic))
		short := tc.message[strings.LastIndex(tc.message, ".")+1:]
		if ref := get(t, ch, "messages", short, "$ref"); ref != "#/components/messages/"+tc.message {
			t.Errorf("%s: channel %s refers to %v", tc.message, tc.topic, ref)
		}
		props := get(t, msg, "headers", "properties").(map[string]any)
		if tc.subject == "" {
			if _, ok := props[events.HeaderSubject]; ok {
				t.Errorf("%s declares ce_subject, but its EventSpec has none", tc.message)
			}
		} else if desc := get(t, props, events.HeaderSubject, "description").(string); !strings.Contains(desc, tc.subject) {
			t.Errorf("%s ce_subject %q, want it to name %s", tc.message, desc, tc.subject)
		}
	}
}

func TestHeaders(t *testing.T) {
	t.Parallel()
	doc := build(t)
	all := []string{"ce_specversion", "ce_id", "ce_source", "ce_type", "ce_time", "ce_dataschema", "content-type",
		"ce_traceparent", "ce_tracestate", "x-request-id"}
	must := []string{"ce_specversion", "ce_id", "ce_source", "ce_type", "ce_time", "ce_dataschema", "content-type"}
	for name, msg := range get(t, doc, "components", "messages").(map[string]any) {
		if strings.HasPrefix(name, "stream.") { // a stream's message has SSE fields (TestStreams)
			continue
		}
		props := get(t, msg, "headers", "properties").(map[string]any)
		for _, h := range all {
			if _, ok := props[h]; !ok {
				t.Errorf("%s: no header %s", name, h)
			}
		}
		var required []string
		for _, r := range get(t, msg, "headers", "required").([]any) {
			required = append(required, r.(string))
		}
		for _, h := range must {
			if !slices.Contains(required, h) {
				t.Errorf("%s: header %s not required", name, h)
			}
		}
		if got := get(t, props, "ce_type", "const"); got != name {
			t.Errorf("%s: ce_type const %v", name, got)
		}
	}
}

// The payload schemas follow the proto3 JSON mapping as the gateway writes
// it: proto field names, 64-bit integers as strings, timestamps as RFC 3339,
// every field present.
func TestPayloadSchemasFollowTheJSONMapping(t *testing.T) {
	t.Parallel()
	doc := build(t)
	item := get(t, doc, "components", "schemas", "shop.cart.v1.CartItem")
	if got := get(t, item, "properties", "user_id", "type"); got != "string" {
		t.Errorf("int64 user_id: type %v, want string", got)
	}
	if got := get(t, item, "properties", "quantity", "type"); got != "integer" {
		t.Errorf("int32 quantity: type %v, want integer", got)
	}
	if got := get(t, item, "properties", "added_at", "oneOf").([]any)[0].(map[string]any)["format"]; got != "date-time" {
		t.Errorf("added_at: format %v, want date-time", got)
	}
	if _, ok := get(t, item, "properties").(map[string]any)["userId"]; ok {
		t.Error("camelCase property userId; the gateway writes proto names")
	}
	// An event as the gateway writes it has every property the schema
	// requires, and no other.
	added := &eventsv1.CartItemAdded{Item: &cartv1.CartItem{ItemId: 1, UserId: 2, ProductId: 3, Quantity: 4, AddedAt: timestamppb.Now()}}
	b, err := protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true}.Marshal(added)
	if err != nil {
		t.Fatal(err)
	}
	var value map[string]any
	if err := json.Unmarshal(b, &value); err != nil {
		t.Fatal(err)
	}
	for _, k := range get(t, item, "required").([]any) {
		if _, ok := value["item"].(map[string]any)[k.(string)]; !ok {
			t.Errorf("required %v missing from the gateway's JSON %s", k, b)
		}
	}
	for k, v := range value["item"].(map[string]any) {
		if _, ok := get(t, item, "properties").(map[string]any)[k]; !ok {
			t.Errorf("the gateway writes %s, the schema does not declare it", k)
		}
		if k == "user_id" {
			if _, isString := v.(string); !isString {
				t.Errorf("the gateway writes user_id as %T, the schema says string", v)
			}
		}
	}
}

// The committed document is what the generator makes now (make
// checkgenerate says so too, but needs the whole toolchain).
func TestCommittedDocumentIsCurrent(t *testing.T) {
	t.Parallel()
	want, err := Build(services())
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("../../../gen/asyncapi/" + DocumentFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Error("gen/asyncapi is out of date: run make generate")
	}
}

// TestStreams: the three Watch streams are channels of the gateway server
// at their REST paths, listing their events (named by ce_type, the SSE
// event field, with the Kafka payload's schema), the position and the
// error; the owner streams need a token, the stock stream does not.
func TestStreams(t *testing.T) {
	t.Parallel()
	doc := build(t)
	cases := []struct {
		channel, path, op string
		events            []string
		owner             bool
	}{
		{"cart_events", "/cart/events", "shop.cart.v1.CartService_WatchCart", []string{"shop.events.v1.CartItemAdded", "shop.events.v1.CartItemRemoved"}, true},
		{"order_events", "/order/events", "shop.order.v1.OrderService_WatchOrders", []string{"shop.events.v1.OrderPaid"}, true},
		{"stock_events", "/stock/events", "shop.stock.v1.StockService_WatchStock",
			[]string{"shop.events.v1.StockCreated", "shop.events.v1.StockDeleted", "shop.events.v1.StockProcessed", "shop.events.v1.StockUpdated"}, false},
	}
	for _, tc := range cases {
		ch := get(t, doc, "channels", tc.channel)
		if got := get(t, ch, "address"); got != tc.path {
			t.Errorf("%s address %v, want %s", tc.channel, got, tc.path)
		}
		if got := get(t, ch, "servers").([]any)[0].(map[string]any)["$ref"]; got != "#/servers/gateway" {
			t.Errorf("%s server %v, want the gateway", tc.channel, got)
		}
		msgs := get(t, ch, "messages").(map[string]any)
		if len(msgs) != len(tc.events)+2 {
			t.Errorf("%s lists %d messages, want %d events, the position and the error", tc.channel, len(msgs), len(tc.events))
		}
		for _, typ := range tc.events {
			short := typ[strings.LastIndex(typ, ".")+1:]
			ref := get(t, msgs, short, "$ref").(string)
			msg := get(t, doc, strings.Split(strings.TrimPrefix(ref, "#/"), "/")...)
			if get(t, msg, "name") != typ || get(t, msg, "payload", "$ref") != events.SchemaPointer(typ) ||
				get(t, msg, "headers", "properties", "event", "const") != typ {
				t.Errorf("%s %s: message %v, want it named %s with the Kafka payload's schema", tc.channel, short, msg, typ)
			}
		}
		for _, short := range []string{"position", "error"} {
			get(t, msgs, short, "$ref")
		}
		op := get(t, doc, "operations", tc.op)
		if get(t, op, "bindings", "http", "method") != "GET" {
			t.Errorf("%s: not a GET", tc.op)
		}
		query := get(t, op, "bindings", "http", "query", "properties").(map[string]any)
		if _, ok := query["resume_token"]; !ok {
			t.Errorf("%s: no resume_token query parameter", tc.op)
		}
		_, hasToken := query["access_token"]
		_, secured := op.(map[string]any)["security"]
		if hasToken != tc.owner || secured != tc.owner {
			t.Errorf("%s: access_token %v, security %v, want both %v", tc.op, hasToken, secured, tc.owner)
		}
	}
	if got := get(t, doc, "components", "securitySchemes", "accessToken", "name"); got != "access_token" {
		t.Errorf("accessToken scheme names %v", got)
	}
}
