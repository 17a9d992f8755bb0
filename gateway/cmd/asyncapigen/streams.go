package main

import (
	"fmt"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/shopgateway/shop/gateway/internal/auth"
	"github.com/shopgateway/shop/gateway/internal/httprule"
	"github.com/shopgateway/shop/gateway/internal/live"
)

// httpBindingVersion is the version of the AsyncAPI HTTP bindings used.
const httpBindingVersion = "0.3.0"

// Servers of the document: the Kafka brokers the events are on, and the
// gateway's REST listener that streams them to clients. The hosts are the
// defaults of a local run; a deployment has its own.
const (
	serverKafka   = "kafka"
	serverGateway = "gateway"
)

// Security schemes of the streams of a user's own events.
const (
	securityBearer      = "bearer"
	securityAccessToken = "accessToken"
)

// Component ids of the stream messages that are not events.
const (
	messagePosition = "stream.position"
	messageError    = "stream.error"
	schemaStatus    = "google.rpc.Status"
)

const streamsDescription = `The gateway also streams these events to clients (channels /cart/events, /order/events and /stock/events on the gateway server): the Watch RPCs, over gRPC or REST. A REST request with Accept: text/event-stream gets Server-Sent Events, each event as

    id: <resume token>
    event: <ce_type, for example shop.events.v1.CartItemAdded>
    data: <the payload JSON, exactly as on Kafka>

followed by a blank line; otherwise grpc-gateway's newline-delimited JSON ({"result": <the WatchXResponse>} per line). The resume token is opaque: the stream's position just after the event (Kafka offsets per partition). Send it back as the Last-Event-ID header (an EventSource does so when it reconnects) or the resume_token query parameter, and the stream continues after it on any gateway instance, missing and repeating nothing. A stream also sends its position without an event (an id line without data, which sets EventSource.lastEventId and fires no event) at once and after each heartbeat interval without an event, so that a client shown no event resumes exactly where it was. A stream that ends with an error sends an "error" event whose data is the google.rpc.Status JSON (UNAVAILABLE at shutdown or the maximum age, UNAUTHENTICATED when the token expires, RESOURCE_EXHAUSTED for a client that fell behind: all resumable with the last token). The cart and order streams carry only the caller's own events and need a bearer token, in the Authorization header or, for a browser's EventSource (which cannot send headers), as the access_token query parameter; the stock stream is public.`

// addStreams adds the Watch streams to the document's channels,
// operations and components: one channel per stream's REST path on the
// gateway server, its events as messages named by their ce_type with the
// Kafka payload's schema, and the position and error messages.
func addStreams(services []protoreflect.ServiceDescriptor, g *generator, channels, operations, messages obj) (securitySchemes obj, err error) {
	methods := map[string]protoreflect.MethodDescriptor{}
	for _, sd := range services {
		for i := range sd.Methods().Len() {
			md := sd.Methods().Get(i)
			methods["/"+string(sd.FullName())+"/"+string(md.Name())] = md
		}
	}
	public := auth.PublicMethods(services)
	tokenField := obj{"type": "string", "maxLength": live.MaxTokenLen,
		"description": "The stream's position: a resume token the stream sent (id of an event or of a position)."}
	messages[messagePosition] = obj{
		"name":    "position",
		"title":   "Position",
		"summary": "The stream's position, without an event: an id line and no data.",
		"description": "Sent at once and after each heartbeat interval without an event. Its id continues after everything the stream has passed, " +
			"including the events not meant for this client; an EventSource takes it as lastEventId and fires no event.",
		"headers": obj{"type": "object", "properties": obj{"id": tokenField}, "required": []any{"id"}},
	}
	messages[messageError] = obj{
		"name":        "error",
		"title":       "Stream error",
		"summary":     "The end of a stream with an error: event error, data the google.rpc.Status JSON.",
		"contentType": "application/json",
		"headers": obj{"type": "object", "properties": obj{
			"event": obj{"type": "string", "const": "error"},
		}, "required": []any{"event"}},
		"payload": obj{"$ref": "#/components/schemas/" + schemaStatus},
	}
	g.schemas[schemaStatus] = obj{
		"type":  "object",
		"title": "Status",
		"properties": obj{
			"code":    obj{"type": "integer", "format": "int32", "description": "The gRPC status code."},
			"message": obj{"type": "string"},
			"details": obj{"type": "array", "items": obj{"type": "object", "properties": obj{"@type": obj{"type": "string"}}}},
		},
		"required": []any{"code", "message", "details"},
	}
	for _, st := range live.Streams() {
		md, ok := methods[st.Method]
		if !ok {
			return nil, fmt.Errorf("stream %s: no such method", st.Method)
		}
		if !md.IsStreamingServer() {
			return nil, fmt.Errorf("stream %s is not server-streaming", st.Method)
		}
		var path string
		for _, b := range httprule.Bindings(md) {
			if b.Method == "GET" {
				path = b.Template
			}
		}
		if path == "" {
			return nil, fmt.Errorf("stream %s has no GET binding", st.Method)
		}
		chID := strings.ReplaceAll(strings.Trim(path, "/"), "/", "_")
		chMessages := obj{"position": obj{"$ref": "#/components/messages/" + messagePosition},
			"error": obj{"$ref": "#/components/messages/" + messageError}}
		var refs []any
		for _, typ := range st.EventTypes {
			short := typ[strings.LastIndex(typ, ".")+1:]
			id := "stream." + typ
			messages[id] = obj{
				"name":        typ,
				"title":       typ + " on a stream",
				"summary":     fmt.Sprintf("One %s: id the resume token after it, event %s, data the payload as on Kafka.", typ, typ),
				"contentType": "application/json",
				"headers": obj{"type": "object", "properties": obj{
					"id":    tokenField,
					"event": obj{"type": "string", "const": typ},
				}, "required": []any{"id", "event"}},
				"payload": obj{"$ref": "#/components/schemas/" + typ},
			}
			if _, ok := g.schemas[typ]; !ok {
				return nil, fmt.Errorf("stream %s carries %s, which no RPC emits", st.Method, typ)
			}
			chMessages[short] = obj{"$ref": "#/components/messages/" + id}
			refs = append(refs, obj{"$ref": "#/channels/" + chID + "/messages/" + short})
		}
		refs = append(refs, obj{"$ref": "#/channels/" + chID + "/messages/position"}, obj{"$ref": "#/channels/" + chID + "/messages/error"})
		who := "the caller's own events (a shop:admin token may name another user_id)"
		if public[st.Method] {
			who = "every stock event, or those of the product_ids given; no token needed"
		}
		channels[chID] = obj{
			"address":     path,
			"title":       "GET " + path,
			"description": fmt.Sprintf("Server-Sent Events of %s, read from Kafka topic %s: %s.", strings.TrimPrefix(st.Method, "/"), st.Topic, who),
			"servers":     []any{obj{"$ref": "#/servers/" + serverGateway}},
			"messages":    chMessages,
		}
		query, err := g.query(md.Input(), !public[st.Method])
		if err != nil {
			return nil, fmt.Errorf("stream %s: %w", st.Method, err)
		}
		op := obj{
			"action":   "send",
			"title":    string(md.Name()),
			"summary":  fmt.Sprintf("The gateway streams %s to a client that GETs %s with Accept: text/event-stream.", st.Topic, path),
			"channel":  obj{"$ref": "#/channels/" + chID},
			"messages": refs,
			"bindings": obj{"http": obj{"method": "GET", "query": query, "bindingVersion": httpBindingVersion}},
		}
		if !public[st.Method] {
			op["security"] = []any{
				obj{"$ref": "#/components/securitySchemes/" + securityBearer},
				obj{"$ref": "#/components/securitySchemes/" + securityAccessToken},
			}
		}
		operations[strings.ReplaceAll(strings.TrimPrefix(st.Method, "/"), "/", "_")] = op
	}
	return obj{
		securityBearer: obj{"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
			"description": "Authorization: Bearer <access token>."},
		securityAccessToken: obj{"type": "httpApiKey", "name": "access_token", "in": "query",
			"description": "The access token as a query parameter (RFC 6750 section 2.3), for a browser's EventSource: accepted only on the event streams with Accept: text/event-stream, never together with Authorization."},
	}, nil
}

// query is the schema of a stream request's query parameters: the request
// message's fields, plus access_token where a token is needed.
func (g *generator) query(in protoreflect.MessageDescriptor, token bool) (obj, error) {
	props := obj{}
	fields := in.Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		fs, err := g.field(fd)
		if err != nil {
			return nil, err
		}
		props[string(fd.Name())] = fs
	}
	if token {
		props["access_token"] = obj{"type": "string", "description": "The bearer token, for a browser's EventSource (see securitySchemes accessToken)."}
	}
	return obj{"type": "object", "properties": props, "additionalProperties": false}, nil
}

// servers are the document's servers.
func servers() obj {
	return obj{
		serverKafka: obj{"host": "localhost:9092", "protocol": "kafka",
			"description": "The Kafka brokers the gateway emits to (-kafka-brokers); this is a local run's."},
		serverGateway: obj{"host": "localhost:8080", "protocol": "http",
			"description": "The gateway's REST listener (-http-addr), which streams the events to clients; this is a local run's."},
	}
}
