package live

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/timestamppb"

	cartv1 "github.com/shopgateway/shop/gen/shop/cart/v1"
	_ "github.com/shopgateway/shop/gen/shop/events/v1" // the payload types, by ce_type
	orderv1 "github.com/shopgateway/shop/gen/shop/order/v1"
	stockv1 "github.com/shopgateway/shop/gen/shop/stock/v1"
)

// Full method names of the streams the gateway serves from Kafka.
const (
	WatchCart   = "/shop.cart.v1.CartService/WatchCart"
	WatchOrders = "/shop.order.v1.OrderService/WatchOrders"
	WatchStock  = "/shop.stock.v1.StockService/WatchStock"
)

// filterBy says what a stream's records are filtered by: the record key,
// which is the user id on the cart and order topics and the product id on
// the stock topic.
type filterBy int

const (
	byOwner   filterBy = iota // the request's user_id (filled by the owner policy)
	byProduct                 // the request's product_ids, when any
)

// kind is one stream: the logical topic it reads, its response type, and
// for each event type the response's oneof field that carries it.
type kind struct {
	method string
	topic  string
	filter filterBy
	out    protoreflect.MessageType
	fields map[string]protoreflect.FieldDescriptor // ce_type → oneof field
	// payloads are the event payload types by ce_type; each has one field,
	// the resource (or a list of one resource) that the oneof field holds.
	payloads map[string]protoreflect.MessageType
	attr     attrFields
}

// attrFields are the response fields that carry the CloudEvents attributes
// and the resume token; every stream's response has them by these names.
type attrFields struct {
	token, id, source, typ, subject, time protoreflect.FieldDescriptor
}

// kinds are the three streams, checked against the descriptors at start
// (newKinds): a renamed field is an error at start-up, not a panic later.
var kindSpecs = []struct {
	method string
	topic  string
	filter filterBy
	out    proto.Message
	fields map[string]string
}{
	{WatchCart, "shop.cart.v1", byOwner, &cartv1.WatchCartResponse{}, map[string]string{
		"shop.events.v1.CartItemAdded":   "item_added",
		"shop.events.v1.CartItemRemoved": "item_removed",
	}},
	{WatchOrders, "shop.order.v1", byOwner, &orderv1.WatchOrdersResponse{}, map[string]string{
		"shop.events.v1.OrderPaid": "order_paid",
	}},
	{WatchStock, "shop.stock.v1", byProduct, &stockv1.WatchStockResponse{}, map[string]string{
		"shop.events.v1.StockCreated":   "stock_created",
		"shop.events.v1.StockUpdated":   "stock_updated",
		"shop.events.v1.StockDeleted":   "stock_deleted",
		"shop.events.v1.StockProcessed": "stock_processed",
	}},
}

func newKinds() (map[string]*kind, error) {
	out := map[string]*kind{}
	for _, s := range kindSpecs {
		md := s.out.ProtoReflect().Descriptor()
		k := &kind{method: s.method, topic: s.topic, filter: s.filter, out: s.out.ProtoReflect().Type(),
			fields: map[string]protoreflect.FieldDescriptor{}, payloads: map[string]protoreflect.MessageType{}}
		f := func(name string) protoreflect.FieldDescriptor { return md.Fields().ByName(protoreflect.Name(name)) }
		k.attr = attrFields{token: f("resume_token"), id: f("id"), source: f("source"), typ: f("type"), subject: f("subject"), time: f("time")}
		if k.attr.token == nil || k.attr.id == nil || k.attr.source == nil || k.attr.typ == nil || k.attr.subject == nil || k.attr.time == nil {
			return nil, fmt.Errorf("live: %s lacks a CloudEvents attribute field", md.FullName())
		}
		for ceType, name := range s.fields {
			fd := f(name)
			if fd == nil || fd.ContainingOneof() == nil || fd.Message() == nil {
				return nil, fmt.Errorf("live: %s.%s is not a message field of a oneof", md.FullName(), name)
			}
			pt, err := protoregistry.GlobalTypes.FindMessageByName(protoreflect.FullName(ceType))
			if err != nil {
				return nil, fmt.Errorf("live: event type %s: %w", ceType, err)
			}
			pf := pt.Descriptor().Fields()
			if pf.Len() != 1 || pf.Get(0).Message() == nil || pf.Get(0).Message().FullName() != fd.Message().FullName() {
				return nil, fmt.Errorf("live: %s does not carry one %s", ceType, fd.Message().FullName())
			}
			k.fields[ceType] = fd
			k.payloads[ceType] = pt
		}
		out[s.method] = k
	}
	return out, nil
}

// headers are a Kafka record's headers by key (the last of repeated keys).
type headers map[string]string

// decode makes the stream response of one Kafka record: the CloudEvents
// attributes from the headers and the resource from the payload. A record
// of a type the stream does not carry, or that does not decode, is nil.
func (k *kind) decode(h headers, value []byte) (proto.Message, error) {
	ceType := h["ce_type"]
	fd, ok := k.fields[ceType]
	if !ok {
		return nil, nil
	}
	payload := k.payloads[ceType].New()
	var err error
	if h["content-type"] == "application/protobuf" {
		err = proto.Unmarshal(value, payload.Interface())
	} else {
		err = protojson.UnmarshalOptions{DiscardUnknown: true}.Unmarshal(value, payload.Interface())
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ceType, err)
	}
	pf := payload.Descriptor().Fields().Get(0)
	var res protoreflect.Value
	switch {
	case pf.IsList():
		l := payload.Get(pf).List()
		if l.Len() != 1 {
			return nil, fmt.Errorf("%s: %d resources, want 1", ceType, l.Len())
		}
		res = l.Get(0)
	case payload.Has(pf):
		res = payload.Get(pf)
	default:
		return nil, fmt.Errorf("%s: no resource", ceType)
	}
	m := k.out.New()
	m.Set(fd, res)
	m.Set(k.attr.typ, protoreflect.ValueOfString(ceType))
	m.Set(k.attr.id, protoreflect.ValueOfString(h["ce_id"]))
	m.Set(k.attr.source, protoreflect.ValueOfString(h["ce_source"]))
	m.Set(k.attr.subject, protoreflect.ValueOfString(h["ce_subject"]))
	if t, err := time.Parse(time.RFC3339Nano, h["ce_time"]); err == nil {
		m.Set(k.attr.time, protoreflect.ValueOfMessage(timestamppb.New(t).ProtoReflect()))
	}
	return m.Interface(), nil
}

// PayloadJSON is the event payload of a stream response as JSON, as it is
// on Kafka (shop.events.v1 message, proto field names, every field
// present), for the data of a Server-Sent Event; ok is false for a message
// that carries no event.
func PayloadJSON(resp proto.Message) (ceType string, data []byte, ok bool) {
	m := resp.ProtoReflect()
	tf := m.Descriptor().Fields().ByName("type")
	if tf == nil || tf.Kind() != protoreflect.StringKind {
		return "", nil, false
	}
	ceType = m.Get(tf).String()
	pt, err := protoregistry.GlobalTypes.FindMessageByName(protoreflect.FullName(ceType))
	if err != nil {
		return "", nil, false
	}
	od := m.Descriptor().Oneofs().ByName("event")
	if od == nil {
		return "", nil, false
	}
	set := m.WhichOneof(od)
	if set == nil {
		return "", nil, false
	}
	payload := pt.New()
	pf := payload.Descriptor().Fields().Get(0)
	if pf.IsList() {
		payload.Mutable(pf).List().Append(m.Get(set))
	} else {
		payload.Set(pf, m.Get(set))
	}
	data, err = protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true}.Marshal(payload.Interface())
	if err != nil {
		return "", nil, false
	}
	return ceType, data, true
}

// keyOf is the filter key of a request: the owner's user id, or the set of
// product ids (empty: every product).
func keysOf(k *kind, req proto.Message) (user int64, products map[string]bool) {
	m := req.ProtoReflect()
	switch k.filter {
	case byOwner:
		return m.Get(m.Descriptor().Fields().ByName("user_id")).Int(), nil
	default:
		l := m.Get(m.Descriptor().Fields().ByName("product_ids")).List()
		if l.Len() == 0 {
			return 0, nil
		}
		products = make(map[string]bool, l.Len())
		for i := range l.Len() {
			products[strconv.FormatInt(l.Get(i).Int(), 10)] = true
		}
		return 0, products
	}
}

// tokenOf is the resume_token the request carries.
func tokenOf(req proto.Message) string {
	m := req.ProtoReflect()
	return m.Get(m.Descriptor().Fields().ByName("resume_token")).String()
}

func protoValueString(s string) protoreflect.Value { return protoreflect.ValueOfString(s) }

// Stream describes one Watch stream for documentation: its full method
// name, the logical topic it reads, and the event types (ce_type) it
// carries, sorted.
type Stream struct {
	Method     string
	Topic      string
	EventTypes []string
}

// Streams are the Watch streams the hub serves, in a fixed order.
func Streams() []Stream {
	out := make([]Stream, 0, len(kindSpecs))
	for _, s := range kindSpecs {
		out = append(out, Stream{Method: s.method, Topic: s.topic, EventTypes: slices.Sorted(maps.Keys(s.fields))})
	}
	return out
}
