package events

import (
	"errors"
	"fmt"
	"regexp"
	"sort"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/dynamicpb"

	annotationsv1 "github.com/shopgateway/shop/gen/shop/annotations/v1"
	// The payload messages must be in the global registry to be resolved
	// by the full name an EventSpec gives.
	_ "github.com/shopgateway/shop/gen/shop/events/v1"

	"github.com/shopgateway/shop/gateway/internal/httprule"
	"github.com/shopgateway/shop/gateway/internal/protofields"
)

// spec is the compiled EventSpec of one RPC.
type spec struct {
	method  string // full method, "/shop.cart.v1.CartService/AddCartItem"
	payload protoreflect.MessageType
	ceType  []byte // payload full name, the CloudEvents type
	// dataSchema is the ce_dataschema of its events; nil for none.
	dataSchema []byte
	logical    string // topic as declared in the proto
	topic      string // Kafka topic it maps to
	key        protofields.Path
	subject    protofields.Path // nil when the spec declares no subject
	keyPath    string
	subjPath   string
	split      protoreflect.FieldDescriptor // nil: one event per call
	input      protoreflect.MessageType     // the RPC's request, to decode intents
	output     protoreflect.MessageType     // the RPC's response, filled by a lookup
}

// kafkaTopic is what Kafka accepts as a topic name.
var kafkaTopic = regexp.MustCompile(`^[a-zA-Z0-9._-]{1,249}$`)

// compileSpecs reads the (shop.annotations.v1.emits) option of every method of
// services and compiles it. topics maps logical topic names to Kafka topic
// names; a logical topic without an entry keeps its name. Every problem is
// reported at once: an unknown payload type, a payload field with no twin
// of the same type in the response, a key or subject path that does not
// resolve to a scalar, a missing key, an invalid topic name, and a mapping
// entry for a topic no method declares.
func compileSpecs(services []protoreflect.ServiceDescriptor, topics map[string]string) (map[string]*spec, error) {
	specs := map[string]*spec{}
	declared := map[string]bool{}
	var errs []error
	for _, sd := range services {
		for i := 0; i < sd.Methods().Len(); i++ {
			md := sd.Methods().Get(i)
			es := eventSpecOf(md)
			if es == nil {
				continue
			}
			declared[es.GetTopic()] = true
			s, err := compileSpec(md, es, topics)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", md.FullName(), err))
				continue
			}
			specs[s.method] = s
		}
	}
	var unknown []string
	for logical := range topics {
		if !declared[logical] {
			unknown = append(unknown, logical)
		}
	}
	sort.Strings(unknown)
	for _, logical := range unknown {
		errs = append(errs, fmt.Errorf("topic mapping: no method emits to logical topic %q", logical))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("events: %w", err)
	}
	return specs, nil
}

// eventSpecOf returns the EventSpec option of md, or nil when it has none.
func eventSpecOf(md protoreflect.MethodDescriptor) *annotationsv1.EventSpec {
	opts := md.Options()
	if opts == nil || !proto.HasExtension(opts, annotationsv1.E_Emits) {
		return nil
	}
	es, _ := proto.GetExtension(opts, annotationsv1.E_Emits).(*annotationsv1.EventSpec)
	return es
}

func compileSpec(md protoreflect.MethodDescriptor, es *annotationsv1.EventSpec, topics map[string]string) (*spec, error) {
	var errs []error
	s := &spec{
		method:   httprule.FullMethod(md),
		logical:  es.GetTopic(),
		keyPath:  es.GetKey(),
		subjPath: es.GetSubject(),
	}
	var err error
	if s.input, err = protoregistry.GlobalTypes.FindMessageByName(md.Input().FullName()); err != nil {
		errs = append(errs, fmt.Errorf("emits: request type: %w", err))
	}
	if s.output, err = protoregistry.GlobalTypes.FindMessageByName(md.Output().FullName()); err != nil {
		errs = append(errs, fmt.Errorf("emits: response type: %w", err))
	}
	s.topic = s.logical
	if t, ok := topics[s.logical]; ok {
		s.topic = t
	}
	switch {
	case s.logical == "":
		errs = append(errs, errors.New("emits: no topic"))
	case !validTopic(s.topic):
		errs = append(errs, fmt.Errorf("emits: %q is not a valid Kafka topic name", s.topic))
	}
	mt, err := protoregistry.GlobalTypes.FindMessageByName(protoreflect.FullName(es.GetType()))
	if err != nil {
		errs = append(errs, fmt.Errorf("emits: payload type %q: %w", es.GetType(), err))
		return nil, errors.Join(errs...)
	}
	s.payload = mt
	s.ceType = []byte(mt.Descriptor().FullName())
	pd := mt.Descriptor()
	if err := checkTwins(pd, md.Output()); err != nil {
		errs = append(errs, err)
	}
	if s.keyPath == "" {
		errs = append(errs, errors.New("emits: no key"))
	} else if s.key, err = protofields.Compile(pd, s.keyPath); err != nil {
		errs = append(errs, fmt.Errorf("emits: key: %w", err))
	}
	if s.subjPath != "" {
		if s.subject, err = protofields.Compile(pd, s.subjPath); err != nil {
			errs = append(errs, fmt.Errorf("emits: subject: %w", err))
		}
	}
	if name := es.GetSplit(); name != "" {
		s.split = pd.Fields().ByName(protoreflect.Name(name))
		if s.split == nil || !s.split.IsList() || s.split.Message() == nil {
			errs = append(errs, fmt.Errorf("emits: split: %s has no repeated message field %q", pd.FullName(), name))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return s, nil
}

// checkTwins makes sure that the payload is filled in full from the
// response: every payload field has a field of the same name and type there.
func checkTwins(payload, output protoreflect.MessageDescriptor) error {
	var errs []error
	fields := payload.Fields()
	for i := 0; i < fields.Len(); i++ {
		if output.Fields().ByName(fields.Get(i).Name()) == nil {
			errs = append(errs, fmt.Errorf("emits: payload field %s has no twin in %s", fields.Get(i).Name(), output.FullName()))
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	// CopyByName checks the types of same-named fields whether set or not.
	if err := protofields.CopyByName(dynamicpb.NewMessage(payload), dynamicpb.NewMessage(output)); err != nil {
		return fmt.Errorf("emits: %w", err)
	}
	return nil
}

func validTopic(t string) bool {
	return kafkaTopic.MatchString(t) && t != "." && t != ".."
}

// Declaration is one RPC's event as its EventSpec declares it, checked and
// with the topic mapping applied: what describes the events to their
// consumers (the AsyncAPI document).
type Declaration struct {
	// RPC is the method that emits the event.
	RPC protoreflect.MethodDescriptor
	// Payload is the payload message; its full name is the ce_type.
	Payload protoreflect.MessageDescriptor
	// Topic is the Kafka topic.
	Topic string
	// Key and Subject are the payload field paths of the Kafka key and the
	// ce_subject ("" for none).
	Key, Subject string
	// Split is the repeated field split into one event per element, "" for
	// one event per call.
	Split string
}

// Declarations checks the EventSpecs of every method of services as New
// does and returns them in declaration order.
func Declarations(services []protoreflect.ServiceDescriptor, topics map[string]string) ([]Declaration, error) {
	specs, err := compileSpecs(services, topics)
	if err != nil {
		return nil, err
	}
	var out []Declaration
	for _, sd := range services {
		for i := 0; i < sd.Methods().Len(); i++ {
			md := sd.Methods().Get(i)
			s := specs[httprule.FullMethod(md)]
			if s == nil {
				continue
			}
			d := Declaration{RPC: md, Payload: s.payload.Descriptor(), Topic: s.topic, Key: s.keyPath, Subject: s.subjPath}
			if s.split != nil {
				d.Split = string(s.split.Name())
			}
			out = append(out, d)
		}
	}
	return out, nil
}
