package events

import (
	"crypto/sha256"
	"fmt"
	"strconv"
	"time"

	"github.com/google/uuid"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/shopgateway/shop/gateway/internal/outbox"
	"github.com/shopgateway/shop/gateway/internal/protofields"
)

// Format is the encoding of an event's data (the Kafka record value).
type Format string

// Values of Config.Format.
const (
	// FormatJSON is protojson with proto field names and every field
	// present, as the REST API answers; content-type application/json.
	FormatJSON Format = "json"
	// FormatProtobuf is the binary protobuf encoding; content-type
	// application/protobuf.
	FormatProtobuf Format = "protobuf"
)

// Kafka record headers of an event: the CloudEvents 1.0 Kafka protocol
// binding in binary content mode puts each attribute in a header prefixed
// "ce_" and the media type of the data (the record value) in the plain
// "content-type" header.
const (
	// HeaderSpecVersion is the CloudEvents version, always "1.0".
	HeaderSpecVersion = "ce_specversion"
	// HeaderID is the event id, unique per event; consumers dedupe on it.
	HeaderID = "ce_id"
	// HeaderSource is Config.Source: the deployment that emitted the event.
	// Consumers deduplicate on source and id together.
	HeaderSource = "ce_source"
	// HeaderType is the payload message's full name, for example
	// "shop.events.v1.CartItemAdded".
	HeaderType = "ce_type"
	// HeaderTime is when the mutation succeeded, RFC 3339 in UTC.
	HeaderTime = "ce_time"
	// HeaderSubject is the value at the EventSpec's subject path; absent
	// when the spec has none.
	HeaderSubject = "ce_subject"
	// HeaderDataSchema is the URI of the payload's JSON schema: the
	// AsyncAPI document (Config.DataSchema) with the fragment
	// SchemaPointer(type); absent when Config.DataSchema is empty.
	HeaderDataSchema = "ce_dataschema"
	// HeaderContentType is "application/json" or "application/protobuf".
	HeaderContentType = "content-type"
	// HeaderTraceparent is the W3C traceparent of the request, as the
	// CloudEvents distributed-tracing extension attribute (validated at the
	// edge: the caller's when valid, else a new trace).
	HeaderTraceparent = "ce_traceparent"
	// HeaderTracestate is the W3C tracestate of the request, the extension's
	// second attribute; absent when the request had none (or an invalid one).
	HeaderTracestate = "ce_tracestate"
	// HeaderRequestID is the X-Request-Id of the request (validated at the
	// edge: the caller's when short and printable, else a fresh one).
	HeaderRequestID = "x-request-id"
)

var (
	hSpecVersion = []byte(HeaderSpecVersion)
	hID          = []byte(HeaderID)
	hSource      = []byte(HeaderSource)
	hType        = []byte(HeaderType)
	hTime        = []byte(HeaderTime)
	hSubject     = []byte(HeaderSubject)
	hDataSchema  = []byte(HeaderDataSchema)
	hContentType = []byte(HeaderContentType)
	hTraceparent = []byte(HeaderTraceparent)
	hTracestate  = []byte(HeaderTracestate)
	hRequestID   = []byte(HeaderRequestID)

	specVersion1 = []byte("1.0")
	ctJSON       = []byte("application/json")
	ctProtobuf   = []byte("application/protobuf")
)

// SchemaPointer is the fragment of the AsyncAPI document that holds the
// JSON schema of the payload message called fullName (the CloudEvents type),
// "#/components/schemas/shop.events.v1.CartItemAdded".
func SchemaPointer(fullName string) string { return "#/components/schemas/" + fullName }

var (
	jsonOpts  = protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true}
	protoOpts = proto.MarshalOptions{Deterministic: true}
)

// idNamespace is the UUIDv5 namespace of event ids derived from an
// Idempotency-Key. Changing it changes every derived id, so it is fixed.
var idNamespace = uuid.MustParse("6f1d7c58-2d0b-4c59-9a52-0b7c1e3f4a10")

// eventID returns the ce_id of an event. Without an idempotency key it is a
// random UUID (version 4). With one it is a UUID version 5 of the method,
// the key and the request's digest, so that a client's retry of the same
// request after a gateway crash produces the same id and consumers that
// dedupe on ce_id drop the repeat; the digest keeps a key reused for a
// different request from colliding with an old event.
func eventID(method, key string, digest *[sha256.Size]byte) string {
	if key == "" {
		return uuid.NewString()
	}
	name := make([]byte, 0, len(method)+len(key)+2+len(digest))
	name = append(name, method...)
	name = append(name, 0)
	name = append(name, key...)
	name = append(name, 0)
	name = append(name, digest[:]...)
	return uuid.NewSHA1(idNamespace, name).String()
}

// eventMeta is what an event takes from its request.
type eventMeta struct {
	id          string
	time        time.Time
	traceparent string
	tracestate  string
	requestID   string
}

// build makes the Kafka records of the events s declares for a successful
// response: the payload copied by field name from the response, the key and
// subject read from it, and the CloudEvents headers. That is one record, or
// with a split field one per element of it: the first has the id m gives,
// the others ids derived from it (splitID). keyed is false when a payload
// has no value at the key path (its record then has a nil key).
func (e *Emitter) build(s *spec, resp proto.Message, m eventMeta) (recs []outbox.Record, keyed bool, err error) {
	payload := s.payload.New()
	if err := protofields.CopyByName(payload, resp.ProtoReflect()); err != nil {
		return nil, false, fmt.Errorf("events: %s payload: %w", s.ceType, err)
	}
	var all protoreflect.List
	if s.split != nil {
		all = payload.Get(s.split).List()
	}
	if all == nil || all.Len() <= 1 {
		rec, keyed, err := e.record(s, payload, m)
		if err != nil {
			return nil, false, err
		}
		return []outbox.Record{rec}, keyed, nil
	}
	recs = make([]outbox.Record, 0, all.Len())
	keyed = true
	base := m.id
	for i := range all.Len() {
		one := s.payload.New()
		payload.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
			if fd != s.split {
				one.Set(fd, v) // shared, not copied: the payloads are only marshalled
			}
			return true
		})
		one.Mutable(s.split).List().Append(all.Get(i))
		if i > 0 {
			m.id = splitID(base, i)
		}
		rec, k, err := e.record(s, one, m)
		if err != nil {
			return nil, false, err
		}
		recs = append(recs, rec)
		keyed = keyed && k
	}
	return recs, keyed, nil
}

// splitID is the ce_id of the i-th (i > 0) event of a split call whose first
// event has id base: unique, and the same whenever base is (so a retry with
// the same Idempotency-Key repeats every id of the set).
func splitID(base string, i int) string {
	return uuid.NewSHA1(idNamespace, []byte(base+"/"+strconv.Itoa(i))).String()
}

// record makes the Kafka record of one payload.
func (e *Emitter) record(s *spec, payload protoreflect.Message, m eventMeta) (rec outbox.Record, keyed bool, err error) {
	var value []byte
	var ct []byte
	switch e.format {
	case FormatProtobuf:
		value, err = protoOpts.Marshal(payload.Interface())
		ct = ctProtobuf
	default:
		value, err = jsonOpts.Marshal(payload.Interface())
		ct = ctJSON
	}
	if err != nil {
		return outbox.Record{}, false, fmt.Errorf("events: marshal %s: %w", s.ceType, err)
	}
	if value == nil {
		// An empty protobuf encoding is an empty value, not a tombstone.
		value = []byte{}
	}
	rec = outbox.Record{Topic: s.topic, Value: value, Headers: make([]outbox.Header, 0, 11)}
	if k, ok := s.key.String(payload); ok {
		rec.Key, keyed = []byte(k), true
	}
	rec.Headers = append(rec.Headers,
		outbox.Header{Key: hSpecVersion, Value: specVersion1},
		outbox.Header{Key: hID, Value: []byte(m.id)},
		outbox.Header{Key: hSource, Value: e.source},
		outbox.Header{Key: hType, Value: s.ceType},
		outbox.Header{Key: hTime, Value: m.time.UTC().AppendFormat(nil, time.RFC3339Nano)},
	)
	if s.subject != nil {
		if subj, ok := s.subject.String(payload); ok {
			rec.Headers = append(rec.Headers, outbox.Header{Key: hSubject, Value: []byte(subj)})
		}
	}
	if s.dataSchema != nil {
		rec.Headers = append(rec.Headers, outbox.Header{Key: hDataSchema, Value: s.dataSchema})
	}
	rec.Headers = append(rec.Headers, outbox.Header{Key: hContentType, Value: ct})
	if m.traceparent != "" {
		rec.Headers = append(rec.Headers, outbox.Header{Key: hTraceparent, Value: []byte(m.traceparent)})
	}
	if m.tracestate != "" {
		rec.Headers = append(rec.Headers, outbox.Header{Key: hTracestate, Value: []byte(m.tracestate)})
	}
	if m.requestID != "" {
		rec.Headers = append(rec.Headers, outbox.Header{Key: hRequestID, Value: []byte(m.requestID)})
	}
	return rec, keyed, nil
}
