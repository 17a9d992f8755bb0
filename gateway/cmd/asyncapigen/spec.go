package main

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/shopgateway/shop/gateway/internal/events"
	"github.com/shopgateway/shop/gateway/internal/reqinfo"
)

// kafkaBindingVersion is the version of the AsyncAPI Kafka bindings used.
const kafkaBindingVersion = "0.5.0"

// traceparentPattern is a W3C traceparent, version 00.
const traceparentPattern = "^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$"

// obj is a JSON object; encoding/json writes its keys sorted, so the
// document is the same on every run.
type obj = map[string]any

const description = `The events the shop gateway emits to Kafka after each successful mutation, one message type per event.

Every record uses the CloudEvents 1.0 Kafka protocol binding in binary content mode: the attributes are record headers prefixed "ce_" and the record value is the payload, JSON by the proto3 JSON mapping (proto field names, 64-bit integers as strings, every field present) or, when the gateway runs with -event-format=protobuf, the binary protobuf encoding of the same message (content-type application/protobuf).

Consumers deduplicate on ce_source and ce_id together (a redelivered event keeps both), and find the resource an event is about in ce_subject. The record key keeps one user's cart and order events, and one product's stock events, in order on one partition. ce_dataschema points at the payload's schema in this document.

The channel addresses are the gateway's default topic names; a deployment may map them to others (-kafka-topics).`

// Build returns the AsyncAPI 3 document of the events the methods of
// services declare, as indented JSON.
func Build(services []protoreflect.ServiceDescriptor) ([]byte, error) {
	decls, err := events.Declarations(services, nil)
	if err != nil {
		return nil, err
	}
	if len(decls) == 0 {
		return nil, fmt.Errorf("no RPC declares an event")
	}
	g := &generator{schemas: obj{}}
	channels, operations, messages := obj{}, obj{}, obj{}
	byType := map[protoreflect.FullName]events.Declaration{}
	for _, d := range decls {
		name := d.Payload.FullName()
		if prev, ok := byType[name]; ok {
			if prev.Topic != d.Topic || prev.Key != d.Key || prev.Subject != d.Subject || prev.Split != d.Split {
				return nil, fmt.Errorf("%s is emitted by %s and %s with different topics, keys, subjects or splits", name, prev.RPC.FullName(), d.RPC.FullName())
			}
		} else {
			byType[name] = d
			msg, err := g.message(d)
			if err != nil {
				return nil, err
			}
			messages[string(name)] = msg
		}
		chID := channelID(d.Topic)
		ch, ok := channels[chID].(obj)
		if !ok {
			ch = obj{
				"address":     d.Topic,
				"title":       d.Topic,
				"description": "Kafka topic " + d.Topic + " (the default name).",
				"messages":    obj{},
				"bindings":    obj{"kafka": obj{"topic": d.Topic, "bindingVersion": kafkaBindingVersion}},
				"servers":     []any{obj{"$ref": "#/servers/" + serverKafka}},
			}
			channels[chID] = ch
		}
		ch["messages"].(obj)[string(d.Payload.Name())] = obj{"$ref": "#/components/messages/" + string(name)}
		opID := strings.ReplaceAll(string(d.RPC.FullName()), ".", "_")
		operations[opID] = obj{
			"action":   "send",
			"title":    string(d.RPC.Name()),
			"summary":  fmt.Sprintf("After a successful %s, the gateway sends %s.", d.RPC.FullName(), d.Payload.Name()),
			"channel":  obj{"$ref": "#/channels/" + chID},
			"messages": []any{obj{"$ref": "#/channels/" + chID + "/messages/" + string(d.Payload.Name())}},
		}
	}
	security, err := addStreams(services, g, channels, operations, messages)
	if err != nil {
		return nil, err
	}
	doc := obj{
		"asyncapi": "3.0.0",
		"id":       "urn:shop:gateway:events",
		"info": obj{
			"title":       "Shop events",
			"version":     "1.0.0",
			"description": description + "\n\n" + streamsDescription,
		},
		"servers":            servers(),
		"defaultContentType": "application/json",
		"channels":           channels,
		"operations":         operations,
		"components":         obj{"messages": messages, "schemas": g.schemas, "securitySchemes": security},
	}
	out, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}

// channelID is the id of a topic's channel: its name with the dots as
// underscores, which AsyncAPI ids allow.
func channelID(topic string) string { return strings.NewReplacer(".", "_").Replace(topic) }

// generator collects the JSON schemas of the payload messages and of the
// messages they use, by full name.
type generator struct {
	schemas obj
}

// message returns the AsyncAPI message of one event type.
func (g *generator) message(d events.Declaration) (obj, error) {
	name := string(d.Payload.FullName())
	if err := g.define(d.Payload); err != nil {
		return nil, err
	}
	keyField, err := fieldAt(d.Payload, d.Key)
	if err != nil {
		return nil, fmt.Errorf("%s key: %w", name, err)
	}
	key := obj{"type": "string", "description": fmt.Sprintf("The payload's %s, as text.", d.Key)}
	if isInteger(keyField.Kind()) {
		key["pattern"] = "^-?[0-9]+$"
		key["description"] = fmt.Sprintf("The payload's %s, in decimal.", d.Key)
	}
	summary := fmt.Sprintf("%s, emitted by %s.", d.Payload.Name(), d.RPC.FullName())
	if d.Split != "" {
		summary += fmt.Sprintf(" One event per element of %s, each payload holding only that element.", d.Split)
	}
	return obj{
		"name":        string(d.Payload.Name()),
		"title":       name,
		"summary":     summary,
		"contentType": "application/json",
		"headers":     headers(d),
		"payload":     obj{"$ref": "#/components/schemas/" + name},
		"correlationId": obj{
			"description": "The event id; with ce_source, what consumers deduplicate on.",
			"location":    "$message.header#/" + events.HeaderID,
		},
		"bindings": obj{"kafka": obj{"key": key, "bindingVersion": kafkaBindingVersion}},
	}, nil
}

// headers is the schema of an event's Kafka record headers.
func headers(d events.Declaration) obj {
	name := string(d.Payload.FullName())
	str := func(desc string) obj { return obj{"type": "string", "description": desc} }
	props := obj{
		events.HeaderSpecVersion: obj{"type": "string", "const": "1.0", "description": "CloudEvents version."},
		events.HeaderID:          str("Event id, unique per event within its source; a UUID. An event redelivered, or emitted again for a client's retry with the same Idempotency-Key, keeps its id."),
		events.HeaderSource: obj{"type": "string", "format": "uri-reference", "maxLength": events.MaxSourceLen,
			"description": "The deployment that emitted the event (gateway flag -event-source; by default /shop-gateway/ and an id made once per outbox directory)."},
		events.HeaderType: obj{"type": "string", "const": name, "description": "The payload message's full name."},
		events.HeaderTime: obj{"type": "string", "format": "date-time", "description": "When the mutation succeeded, RFC 3339 in UTC."},
		events.HeaderDataSchema: obj{"type": "string", "format": "uri",
			"description": "This document's URL, at the gateway that emitted the event, with the fragment " + events.SchemaPointer(name) + "."},
		events.HeaderContentType: obj{"type": "string", "enum": []any{"application/json", "application/protobuf"},
			"description": "Encoding of the record value: the proto3 JSON mapping, or binary protobuf (-event-format=protobuf)."},
		events.HeaderTraceparent: obj{"type": "string", "pattern": traceparentPattern,
			"description": "W3C trace context of the request (CloudEvents distributed-tracing extension)."},
		events.HeaderTracestate: str("W3C tracestate of the request, when it had a valid one."),
		events.HeaderRequestID: obj{"type": "string", "maxLength": reqinfo.MaxRequestIDLen,
			"description": "The request's X-Request-Id (the caller's when short and printable, else one the gateway made)."},
	}
	required := []any{events.HeaderSpecVersion, events.HeaderID, events.HeaderSource, events.HeaderType, events.HeaderTime,
		events.HeaderDataSchema, events.HeaderContentType}
	if d.Subject != "" {
		props[events.HeaderSubject] = str(fmt.Sprintf("The payload's %s: the resource the event is about.", d.Subject))
		required = append(required, events.HeaderSubject)
	}
	return obj{"type": "object", "properties": props, "required": required}
}

// fieldAt returns the field at a dotted path of md.
func fieldAt(md protoreflect.MessageDescriptor, path string) (protoreflect.FieldDescriptor, error) {
	var fd protoreflect.FieldDescriptor
	for _, part := range strings.Split(path, ".") {
		if md == nil {
			return nil, fmt.Errorf("%q: %s is not a message", path, fd.Name())
		}
		fd = md.Fields().ByName(protoreflect.Name(part))
		if fd == nil {
			return nil, fmt.Errorf("%q: %s has no field %s", path, md.FullName(), part)
		}
		md = fd.Message()
	}
	return fd, nil
}

// define adds the schema of md, and of the messages it uses, to the
// components. A message field may be null: every field is written, an unset
// message as null.
func (g *generator) define(md protoreflect.MessageDescriptor) error {
	name := string(md.FullName())
	if _, ok := g.schemas[name]; ok {
		return nil
	}
	props := obj{}
	var required []any
	s := obj{"type": "object", "title": string(md.Name()), "properties": props}
	g.schemas[name] = s // before the fields: a message may refer to itself
	fields := md.Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		fs, err := g.field(fd)
		if err != nil {
			return fmt.Errorf("%s.%s: %w", name, fd.Name(), err)
		}
		props[string(fd.Name())] = fs
		required = append(required, string(fd.Name()))
	}
	if len(required) > 0 {
		s["required"] = required
	}
	return nil
}

// field is the schema of one field under the proto3 JSON mapping.
func (g *generator) field(fd protoreflect.FieldDescriptor) (obj, error) {
	switch {
	case fd.IsMap():
		v, err := g.value(fd.MapValue())
		if err != nil {
			return nil, err
		}
		return obj{"type": "object", "additionalProperties": v}, nil
	case fd.IsList():
		v, err := g.value(fd)
		if err != nil {
			return nil, err
		}
		return obj{"type": "array", "items": v}, nil
	}
	v, err := g.value(fd)
	if err != nil {
		return nil, err
	}
	if fd.Message() != nil && fd.Message().FullName() != "google.protobuf.Value" {
		return obj{"oneOf": []any{v, obj{"type": "null"}}}, nil
	}
	return v, nil
}

// value is the schema of one value of fd's type.
func (g *generator) value(fd protoreflect.FieldDescriptor) (obj, error) {
	switch fd.Kind() {
	case protoreflect.BoolKind:
		return obj{"type": "boolean"}, nil
	case protoreflect.StringKind:
		return obj{"type": "string"}, nil
	case protoreflect.BytesKind:
		return obj{"type": "string", "contentEncoding": "base64"}, nil
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return obj{"type": "integer", "format": "int32"}, nil
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return obj{"type": "integer", "minimum": 0, "maximum": uint32(1<<32 - 1)}, nil
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return obj{"type": "string", "format": "int64", "pattern": "^-?[0-9]+$", "description": "A 64-bit integer, in decimal."}, nil
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return obj{"type": "string", "format": "uint64", "pattern": "^[0-9]+$", "description": "An unsigned 64-bit integer, in decimal."}, nil
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		return obj{"oneOf": []any{obj{"type": "number"}, obj{"type": "string", "enum": []any{"NaN", "Infinity", "-Infinity"}}}}, nil
	case protoreflect.EnumKind:
		var names []any
		vals := fd.Enum().Values()
		for i := range vals.Len() {
			names = append(names, string(vals.Get(i).Name()))
		}
		return obj{"type": "string", "enum": names}, nil
	case protoreflect.MessageKind, protoreflect.GroupKind:
		md := fd.Message()
		if s, ok := wellKnown(md.FullName()); ok {
			return s, nil
		}
		if md.ParentFile().Package() == "google.protobuf" {
			return nil, fmt.Errorf("well-known type %s has no JSON schema here", md.FullName())
		}
		if err := g.define(md); err != nil {
			return nil, err
		}
		return obj{"$ref": "#/components/schemas/" + string(md.FullName())}, nil
	}
	return nil, fmt.Errorf("kind %s has no JSON schema here", fd.Kind())
}

// wellKnown returns the schema of a well-known type the proto3 JSON
// mapping writes in a form of its own.
func wellKnown(name protoreflect.FullName) (obj, bool) {
	switch name {
	case "google.protobuf.Timestamp":
		return obj{"type": "string", "format": "date-time", "description": "RFC 3339, in UTC."}, true
	case "google.protobuf.Duration":
		return obj{"type": "string", "pattern": `^-?[0-9]+(\.[0-9]{1,9})?s$`}, true
	case "google.protobuf.FieldMask":
		return obj{"type": "string"}, true
	case "google.protobuf.StringValue":
		return obj{"type": "string"}, true
	case "google.protobuf.BoolValue":
		return obj{"type": "boolean"}, true
	case "google.protobuf.Int32Value", "google.protobuf.UInt32Value":
		return obj{"type": "integer"}, true
	case "google.protobuf.Int64Value", "google.protobuf.UInt64Value":
		return obj{"type": "string", "pattern": "^-?[0-9]+$"}, true
	case "google.protobuf.Struct", "google.protobuf.Empty":
		return obj{"type": "object"}, true
	case "google.protobuf.ListValue":
		return obj{"type": "array"}, true
	case "google.protobuf.Value":
		return obj{}, true
	}
	return nil, false
}

func isInteger(k protoreflect.Kind) bool {
	return slices.Contains([]protoreflect.Kind{
		protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind, protoreflect.Uint32Kind, protoreflect.Fixed32Kind,
		protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind, protoreflect.Uint64Kind, protoreflect.Fixed64Kind,
	}, k)
}
