package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shopgateway/shop/tests/harness"
)

// TestEventsDescribeThemselves reads an event back from Kafka and follows
// its ce_dataschema to the gateway's /asyncapi.json: the fragment must
// resolve to the schema of the event's payload, which the payload must fit.
// ce_source names the deployment (the id kept in the outbox directory) and
// stays the same across a gateway restart. /readyz reports that the real
// services' APIs match the proto (the start-up contract check).
func TestEventsDescribeThemselves(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{})
	r := harness.NewEventReader(t, harness.TopicStock)

	eventOf := func(rid string) harness.Event {
		t.Helper()
		evs := r.WaitMatching(t, 1, eventTimeout, func(e harness.Event) bool { return e.Headers["x-request-id"] == rid })
		return evs[0]
	}
	create := func() string {
		t.Helper()
		rid := "asyncapi-" + randHex(8)
		do(t, s, http.StatusOK, "POST", "/stock",
			fmt.Sprintf(`{"product_id":%d,"product_name":"described","quantity":1,"price_cents":5}`, newID()), "X-Request-Id", rid)
		return rid
	}

	e := eventOf(create())
	typ := e.Headers["ce_type"]
	if typ != "shop.events.v1.StockCreated" {
		t.Fatalf("ce_type %q, want shop.events.v1.StockCreated", typ)
	}

	// ce_dataschema: this gateway's document, the payload's schema in it.
	ds := e.Headers["ce_dataschema"]
	docURL, fragment, ok := strings.Cut(ds, "#")
	if want := s.RESTURL() + "/asyncapi.json"; !ok || docURL != want {
		t.Fatalf("ce_dataschema %q, want %s#<pointer>", ds, want)
	}
	resp, err := http.Get(docURL)
	if err != nil {
		t.Fatalf("GET %s: %v", docURL, err)
	}
	defer resp.Body.Close()
	if got, want := resp.StatusCode, http.StatusOK; got != want {
		t.Fatalf("GET %s: status %d, want %d", docURL, got, want)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("GET %s: Content-Type %q, want application/json", docURL, ct)
	}
	var doc map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatalf("GET %s: %v", docURL, err)
	}
	schema := resolvePointer(t, doc, fragment)
	props, _ := schema["properties"].(map[string]any)
	if props == nil {
		t.Fatalf("%s resolves to %v, want an object schema", fragment, schema)
	}
	// The payload fits its schema: every required property present, none
	// undeclared, and the nested item's schema resolves too.
	payload := decode(t, e)
	fitsKeys(t, schema, payload, fragment)
	itemRef := props["item"].(map[string]any)["oneOf"].([]any)[0].(map[string]any)["$ref"].(string)
	item := resolvePointer(t, doc, strings.TrimPrefix(itemRef, "#"))
	for k, v := range payload["item"].(map[string]any) {
		p, ok := item["properties"].(map[string]any)[k].(map[string]any)
		if !ok {
			t.Errorf("payload item has %s, which %s does not declare", k, itemRef)
			continue
		}
		if _, isString := v.(string); p["type"] == "string" && !isString {
			t.Errorf("payload item %s = %#v, the schema says string", k, v)
		}
	}
	// The message the channel lists for this type names the same schema.
	msg := resolvePointer(t, doc, "/components/messages/"+typ)
	if got := msg["payload"].(map[string]any)["$ref"]; got != "#"+fragment {
		t.Errorf("message %s payload %v, want #%s", typ, got, fragment)
	}

	// The stock stream as the document describes it: a channel at the REST
	// path of the gateway server, listing a message named as the SSE event,
	// whose data fits the payload's schema, the same as on Kafka.
	watched := newID()
	st, code, body := openSSE(t, s.RESTURL(), "/stock/events?product_ids="+str(watched), "", "")
	if st == nil {
		t.Fatalf("GET /stock/events: %d %s", code, body)
	}
	do(t, s, http.StatusOK, "POST", "/stock", fmt.Sprintf(`{"product_id":%d,"product_name":"streamed","quantity":1,"price_cents":5}`, watched))
	ev, ok := st.next(t, eventTimeout)
	if !ok || ev.id == "" {
		t.Fatalf("stock stream: %+v (ok %v), want the StockCreated", ev, ok)
	}
	st.cancel()
	ch := resolvePointer(t, doc, "/channels/stock_events")
	if ch["address"] != "/stock/events" {
		t.Errorf("channel stock_events address %v, want /stock/events", ch["address"])
	}
	var described map[string]any
	for _, ref := range ch["messages"].(map[string]any) {
		if m := resolvePointer(t, doc, strings.TrimPrefix(ref.(map[string]any)["$ref"].(string), "#")); m["name"] == ev.event {
			described = m
		}
	}
	if described == nil {
		t.Fatalf("channel stock_events lists no message named %s", ev.event)
	}
	var data map[string]any
	if err := json.Unmarshal([]byte(ev.data), &data); err != nil {
		t.Fatalf("event data %q: %v", ev.data, err)
	}
	ref := described["payload"].(map[string]any)["$ref"].(string)
	fitsKeys(t, resolvePointer(t, doc, strings.TrimPrefix(ref, "#")), data, ref)

	// ce_source: the deployment's id, kept next to the outbox.
	idFile, err := os.ReadFile(filepath.Join(s.OutboxDir(), "source-id"))
	if err != nil {
		t.Fatalf("the source id is not kept in the outbox directory: %v", err)
	}
	source := "/shop-gateway/" + strings.TrimSpace(string(idFile))
	if got := e.Headers["ce_source"]; got != source {
		t.Errorf("ce_source %q, want %q", got, source)
	}
	s.StopGateway()
	s.StartGateway()
	if got := eventOf(create()).Headers["ce_source"]; got != source {
		t.Errorf("after a restart: ce_source %q, want %q as before", got, source)
	}

	// The real services speak the proto: the contract check is ok for each.
	eventually(t, 20*time.Second, func() string {
		// The details are on the admin listener; the public /readyz says one word.
		resp, err := http.Get(s.AdminURL() + "/readyz")
		if err != nil {
			return err.Error()
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var body struct {
			Contract struct {
				OK     bool                        `json:"ok"`
				Detail map[string][]map[string]any `json:"detail"`
			} `json:"contract"`
		}
		if err := json.Unmarshal(raw, &body); err != nil {
			return fmt.Sprintf("/readyz %q: %v", raw, err)
		}
		for _, svc := range []string{"service_a", "service_b"} {
			insts := body.Contract.Detail[svc]
			if !body.Contract.OK || len(insts) != 1 || insts[0]["state"] != "ok" {
				return fmt.Sprintf("/readyz contract %s, want ok with service_a and service_b in state ok", raw)
			}
		}
		return ""
	})
}

// fitsKeys checks that payload has every property schema requires and
// none it does not declare.
func fitsKeys(tb testing.TB, schema, payload map[string]any, what string) {
	tb.Helper()
	props, _ := schema["properties"].(map[string]any)
	for _, k := range schema["required"].([]any) {
		if _, ok := payload[k.(string)]; !ok {
			tb.Errorf("payload %v lacks %v, which %s requires", payload, k, what)
		}
	}
	for k := range payload {
		if _, ok := props[k]; !ok {
			tb.Errorf("payload has %s, which %s does not declare", k, what)
		}
	}
}

// resolvePointer follows a JSON pointer ("/components/schemas/x") in doc
// to an object.
func resolvePointer(tb testing.TB, doc map[string]any, pointer string) map[string]any {
	tb.Helper()
	cur := doc
	for _, tok := range strings.Split(strings.TrimPrefix(pointer, "/"), "/") {
		tok = strings.NewReplacer("~1", "/", "~0", "~").Replace(tok)
		next, ok := cur[tok].(map[string]any)
		if !ok {
			tb.Fatalf("JSON pointer %q: no object at %q", pointer, tok)
		}
		cur = next
	}
	return cur
}
