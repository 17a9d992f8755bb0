package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/getkin/kin-openapi/openapi2"
	"github.com/getkin/kin-openapi/openapi2conv"
	"github.com/getkin/kin-openapi/openapi3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"

	"github.com/shopgateway/shop/gateway/internal/events"
	"github.com/shopgateway/shop/gateway/internal/httprule"
	"github.com/shopgateway/shop/gateway/internal/reqinfo"
	annotationsv1 "github.com/shopgateway/shop/gen/shop/annotations/v1"
	cartv1 "github.com/shopgateway/shop/gen/shop/cart/v1"
	orderv1 "github.com/shopgateway/shop/gen/shop/order/v1"
	stockv1 "github.com/shopgateway/shop/gen/shop/stock/v1"
)

// services are the services the gateway serves. openapigen cannot ask the
// gateway's app package for them: that package embeds this command's output,
// which make generate deletes before running it. A test checks that both
// lists agree.
func services() []protoreflect.ServiceDescriptor {
	return []protoreflect.ServiceDescriptor{
		stockv1.File_shop_stock_v1_stock_proto.Services().ByName("StockService"),
		cartv1.File_shop_cart_v1_cart_proto.Services().ByName("CartService"),
		orderv1.File_shop_order_v1_order_proto.Services().ByName("OrderService"),
	}
}

// licenseName is the document's info.license: the shop API is not
// licensed to anyone outside the project.
const licenseName = "Proprietary"

// Names of the shared components the document defines.
const (
	bearerScheme     = "bearer"
	statusSchema     = "Status"
	errorResponse    = "Error"
	paramGrpcTimeout = "GrpcTimeout"
	paramIdempotency = "IdempotencyKey"
	paramRequestID   = "RequestId"
	headerRequestID  = "X-Request-Id"
	headerReplayed   = "Idempotency-Replayed"
	headerCartSource = "X-Cart-Source"
)

// Build converts a Swagger 2.0 document of the services into the OpenAPI 3
// document the gateway serves, completed from the services' descriptors. The
// output is indented JSON with sorted keys, so that it is stable across runs.
func Build(swagger []byte, svcs []protoreflect.ServiceDescriptor) ([]byte, error) {
	var doc2 openapi2.T
	if err := json.Unmarshal(swagger, &doc2); err != nil {
		return nil, fmt.Errorf("reading the Swagger document: %w", err)
	}
	doc, err := openapi2conv.ToV3(&doc2)
	if err != nil {
		return nil, fmt.Errorf("converting to OpenAPI 3: %w", err)
	}
	doc.Info = &openapi3.Info{
		Title:   "Shop API",
		Version: "v1",
		Description: "REST interface of the shop gateway. Every operation is also a gRPC method " +
			"of the same name. Field names are the proto field names; int64 values (ids, " +
			"money) are accepted as numbers or strings and answered as strings. Errors are " +
			"google.rpc.Status objects whose `details` carry typed messages (`@type`).",
	}
	doc.Info.License = &openapi3.License{Name: licenseName}
	doc.Servers = openapi3.Servers{
		{URL: "/", Description: "The gateway that serves this document."},
		{URL: "http://127.0.0.1:8080", Description: "The gateway of `make run`, on this machine."},
	}
	addComponents(doc)
	schemas := schemaMessages(doc, svcs)
	for name, md := range schemas {
		applyMessageRules(doc.Components.Schemas[name].Value, md)
	}
	seen := map[string]bool{}
	omit := shadowedAliases(svcs)
	bodies := newRequestBodies(doc)
	for _, sd := range svcs {
		for i := 0; i < sd.Methods().Len(); i++ {
			md := sd.Methods().Get(i)
			var primary *openapi3.Operation
			for _, b := range httprule.Bindings(md) {
				item := doc.Paths.Value(b.Template)
				if item == nil || item.GetOperation(b.Method) == nil {
					return nil, fmt.Errorf("%s %s (%s) is missing from the Swagger document", b.Method, b.Template, md.FullName())
				}
				op := item.GetOperation(b.Method)
				seen[b.Method+" "+b.Template] = true
				if omit[b.Method+" "+b.Template] {
					item.SetOperation(b.Method, nil)
					if len(item.Operations()) == 0 {
						doc.Paths.Delete(b.Template)
					}
					primary.Description = strings.TrimSpace(primary.Description + "\n\nAlso served as `" + b.Method + " " + b.Template +
						"`, an alias left out of this document: its path template has the shape of another path's, which OpenAPI does not allow.")
					continue
				}
				if primary == nil {
					primary = op
				}
				completeOperation(op, md, b)
				if err := bodies.body(op, md, b); err != nil {
					return nil, err
				}
			}
		}
	}
	if err := bodies.unstated(svcs); err != nil {
		return nil, err
	}
	bodies.responsesRequireAll()
	if err := requestExamples(doc); err != nil {
		return nil, err
	}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			if !seen[method+" "+path] {
				return nil, fmt.Errorf("%s %s in the Swagger document is no RPC's binding", method, path)
			}
		}
	}
	raw, err := json.Marshal(doc)
	if err != nil {
		return nil, err
	}
	if raw, err = finish(raw); err != nil {
		return nil, err
	}
	// Validated as a client would read it: loaded afresh, references resolved.
	loaded, err := openapi3.NewLoader().LoadFromData(raw)
	if err != nil {
		return nil, fmt.Errorf("reading the OpenAPI document back: %w", err)
	}
	if err := validate(context.Background(), loaded); err != nil {
		return nil, fmt.Errorf("the OpenAPI document is not valid: %w", err)
	}
	// A round trip through any sorts every object's keys; json.Number keeps
	// every number as written.
	var tree any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&tree); err != nil {
		return nil, err
	}
	out, err := json.MarshalIndent(tree, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}

func addComponents(doc *openapi3.T) {
	c := doc.Components
	if c.SecuritySchemes == nil {
		c.SecuritySchemes = openapi3.SecuritySchemes{}
	}
	c.SecuritySchemes[bearerScheme] = &openapi3.SecuritySchemeRef{Value: &openapi3.SecurityScheme{
		Type:         "http",
		Scheme:       "bearer",
		BearerFormat: "JWT",
		Description:  "A JWT access token: `Authorization: Bearer <token>`.",
	}}
	// Each operation states its own requirement (see completeOperation):
	// a default at the top would be read by some generators as the rule
	// that public operations override, by others as the opposite.
	doc.Security = nil

	if st := c.Schemas[statusSchema]; st != nil && st.Value != nil {
		st.Value.Description = "google.rpc.Status: the gRPC status code, a message for developers, " +
			"and typed details (google.rpc.BadRequest with field_violations, google.rpc.ErrorInfo, " +
			"google.rpc.RetryInfo), each with its `@type`."
	}
	if c.Responses == nil {
		c.Responses = openapi3.ResponseBodies{}
	}
	c.Responses[errorResponse] = statusResponse("An error, as a google.rpc.Status.")
	for _, r := range errorResponses {
		c.Responses[r.name] = statusResponse(r.description)
	}

	if c.Parameters == nil {
		c.Parameters = openapi3.ParametersMap{}
	}
	maxKey := int64(events.MaxIdempotencyKeyLen)
	c.Parameters[paramIdempotency] = &openapi3.ParameterRef{Value: &openapi3.Parameter{
		Name: "Idempotency-Key", In: openapi3.ParameterInHeader,
		Description: "Makes a retried mutation safe: a repeat with the same key and body gets the first " +
			"answer (with `Idempotency-Replayed: true`) instead of a second change; the same key with " +
			"another body is refused with 400.",
		Schema: openapi3.NewStringSchema().WithMinLength(1).WithMaxLength(maxKey).NewRef(),
	}}
	c.Parameters[paramGrpcTimeout] = &openapi3.ParameterRef{Value: &openapi3.Parameter{
		Name: "Grpc-Timeout", In: openapi3.ParameterInHeader,
		Description: "Deadline of the call in gRPC form: up to 8 digits and a unit " +
			"(H hours, M minutes, S seconds, m milliseconds, u microseconds, n nanoseconds), for example `5S`. " +
			"Without it the gateway's default upstream timeout applies; past it the answer is 504. " +
			"A value of another form is refused with 400.",
		Schema: openapi3.NewStringSchema().WithPattern(reqinfo.GrpcTimeoutPattern).NewRef(),
	}}
	c.Parameters[paramRequestID] = &openapi3.ParameterRef{Value: &openapi3.Parameter{
		Name: headerRequestID, In: openapi3.ParameterInHeader,
		Description: "Request id, passed on to the services and echoed in the response; generated when absent.",
		Schema:      openapi3.NewStringSchema().NewRef(),
	}}
}

// errorResponses are the error answers that operations list, by HTTP status.
var errorResponses = map[int]struct{ name, description string }{
	http.StatusBadRequest:          {"BadRequest", "Bad input (INVALID_ARGUMENT, with a google.rpc.BadRequest detail listing each wrong field) or a failed precondition such as not enough stock or an empty cart (FAILED_PRECONDITION, with a google.rpc.ErrorInfo detail)."},
	http.StatusUnauthorized:        {"Unauthenticated", "No valid bearer token (UNAUTHENTICATED)."},
	http.StatusForbidden:           {"PermissionDenied", "The token does not allow this call (PERMISSION_DENIED)."},
	http.StatusNotFound:            {"NotFound", "A resource the request names does not exist, or belongs to another user (NOT_FOUND; an unknown product carries a google.rpc.ErrorInfo detail)."},
	http.StatusConflict:            {"Conflict", "The resource exists already (ALREADY_EXISTS), or a request with the same Idempotency-Key is in progress (ABORTED)."},
	http.StatusTooManyRequests:     {"ResourceExhausted", "Rate limit reached (RESOURCE_EXHAUSTED, with a google.rpc.RetryInfo detail)."},
	http.StatusInternalServerError: {"Internal", "An internal error (INTERNAL)."},
	http.StatusServiceUnavailable:  {"Unavailable", "A service or the event outbox is unavailable (UNAVAILABLE, with a google.rpc.RetryInfo detail); a mutation is safe to retry with the same Idempotency-Key."},
	http.StatusGatewayTimeout:      {"DeadlineExceeded", "The deadline passed before the service answered (DEADLINE_EXCEEDED)."},
}

func statusResponse(description string) *openapi3.ResponseRef {
	return &openapi3.ResponseRef{Value: openapi3.NewResponse().
		WithDescription(description).
		WithJSONSchemaRef(&openapi3.SchemaRef{Ref: "#/components/schemas/" + statusSchema})}
}

// completeOperation adds what the Swagger document cannot say about one
// binding of md: headers, security and the error responses.
func completeOperation(op *openapi3.Operation, md protoreflect.MethodDescriptor, b httprule.Binding) {
	op.Parameters = append(op.Parameters,
		&openapi3.ParameterRef{Ref: "#/components/parameters/" + paramRequestID},
		&openapi3.ParameterRef{Ref: "#/components/parameters/" + paramGrpcTimeout},
	)
	mutates := emits(md)
	if mutates {
		op.Parameters = append(op.Parameters, &openapi3.ParameterRef{Ref: "#/components/parameters/" + paramIdempotency})
	}
	for _, p := range op.Parameters {
		if p.Value == nil || p.Ref != "" {
			continue
		}
		// protoc-gen-openapiv2 writes a field's example on a Swagger 2.0
		// parameter as x-example, which OpenAPI 3 names example.
		if ex, ok := p.Value.Extensions["x-example"]; ok {
			p.Value.Example = ex
			delete(p.Value.Extensions, "x-example")
		}
		if fd := fieldByPath(md.Input(), p.Value.Name); fd != nil && p.Value.Schema != nil && p.Value.Schema.Value != nil {
			r := fieldRules(fd)
			r.apply(p.Value.Schema.Value)
			if pat := int64StringPattern(p.Value.Schema.Value, r, inURL); pat != "" {
				p.Value.Schema.Value.Pattern = pat
			}
			if r.required {
				p.Value.Required = true
			}
		}
	}
	if op.RequestBody != nil && op.RequestBody.Value != nil {
		for _, mt := range op.RequestBody.Value.Content {
			if mt.Schema != nil && mt.Schema.Ref == "" && mt.Schema.Value != nil {
				// An inline body (body "*" beside path fields) is the request
				// message less its path fields.
				applyMessageRules(mt.Schema.Value, md.Input())
			}
		}
	}

	ok := op.Responses.Status(http.StatusOK)
	if ok != nil && ok.Value != nil {
		ok.Value.Headers = openapi3.Headers{
			headerRequestID: &openapi3.HeaderRef{Value: &openapi3.Header{Parameter: openapi3.Parameter{
				Description: "The request id.", Schema: openapi3.NewStringSchema().NewRef()}}},
		}
		if mutates {
			ok.Value.Headers[headerReplayed] = &openapi3.HeaderRef{Value: &openapi3.Header{Parameter: openapi3.Parameter{
				Description: "`true` when this is the stored answer to an earlier request with the same Idempotency-Key.",
				Schema:      openapi3.NewStringSchema().WithEnum("true").NewRef()}}}
		}
		if md.Name() == "GetCart" {
			ok.Value.Headers[headerCartSource] = &openapi3.HeaderRef{Value: &openapi3.Header{Parameter: openapi3.Parameter{
				Description: "`fallback` when service B was unavailable and the cart came from service A's master copy.",
				Schema:      openapi3.NewStringSchema().WithEnum("fallback").NewRef()}}}
		}
	}
	if md.IsStreamingServer() {
		describeStream(op, ok)
	}
	codes := []int{http.StatusBadRequest, http.StatusUnauthorized}
	switch policy := authPolicy(md); policy.GetAccess() {
	case annotationsv1.Access_ACCESS_PUBLIC:
		// No token needed. A token that is sent must still be valid (401),
		// which the description says: an optional requirement ({} beside
		// bearer) reads to generators and Swagger UI as a protected one.
		op.Security = &openapi3.SecurityRequirements{}
		op.Description = joinText(op.Description, "Needs no token; a token that is sent must be valid.")
		completeErrors(op, md, b, codes)
		return
	case annotationsv1.Access_ACCESS_SCOPED:
		op.Description = joinText(op.Description, "Requires a token with scope "+strings.Join(policy.GetScopes(), " or ")+".")
		codes = append(codes, http.StatusForbidden)
	case annotationsv1.Access_ACCESS_OWNER:
		text := "Only for the caller's own data"
		if f := policy.GetOwnerField(); f != "" {
			text += "; `" + f + "` is taken from the token's subject when absent"
		}
		if sc := policy.GetScopes(); len(sc) > 0 {
			text += "; a token with scope " + strings.Join(sc, " or ") + " may act for any user"
		}
		op.Description = joinText(op.Description, text+".")
		codes = append(codes, http.StatusForbidden)
	default:
		codes = append(codes, http.StatusForbidden)
	}
	op.Security = &openapi3.SecurityRequirements{{bearerScheme: []string{}}}
	completeErrors(op, md, b, codes)
}

// completeErrors adds the error responses of op: codes, then those every
// operation may answer with.
func completeErrors(op *openapi3.Operation, md protoreflect.MethodDescriptor, b httprule.Binding, codes []int) {
	mutates := emits(md)
	if strings.Contains(b.Template, "{") || md.Input().Fields().ByName("product_id") != nil ||
		md.Input().Fields().ByName("items") != nil {
		codes = append(codes, http.StatusNotFound)
	}
	if mutates {
		codes = append(codes, http.StatusConflict)
	}
	codes = append(codes, http.StatusTooManyRequests, http.StatusInternalServerError,
		http.StatusServiceUnavailable, http.StatusGatewayTimeout)
	for _, c := range codes {
		op.Responses.Set(strconv.Itoa(c), &openapi3.ResponseRef{Ref: "#/components/responses/" + errorResponses[c].name})
	}
	op.Responses.Set("default", &openapi3.ResponseRef{Ref: "#/components/responses/" + errorResponse})
}

// describeStream documents a server-streaming operation's two REST forms:
// newline-delimited JSON (one {"result": ...} per line) and, for
// Accept: text/event-stream, Server-Sent Events resumable with
// Last-Event-ID.
func describeStream(op *openapi3.Operation, ok *openapi3.ResponseRef) {
	op.Description = joinText(op.Description, "A stream: newline-delimited JSON, one `{\"result\": ...}` per event "+
		"(`{\"error\": ...}` when it ends in error), and a `{\"result\": ...}` with only `resume_token` for the stream's position "+
		"(at once and after each heartbeat without an event); with `Accept: text/event-stream`, Server-Sent Events "+
		"(`id`: the resume token, `event`: the CloudEvents type, `data`: the event payload JSON; the position as an `id` without data, "+
		"with a heartbeat comment; a browser's `EventSource` may send the token as the `access_token` query parameter).")
	op.Parameters = append(op.Parameters, &openapi3.ParameterRef{Value: &openapi3.Parameter{
		In: openapi3.ParameterInHeader, Name: "Last-Event-ID",
		Description: "Server-Sent Events: the id of the last event received, to continue after it (as resume_token).",
		Schema:      openapi3.NewStringSchema().WithMaxLength(1024).NewRef(),
		Example:     "", // none: start from now
	}})
	if ok == nil || ok.Value == nil {
		return
	}
	sse := openapi3.NewStringSchema()
	sse.Description = "Server-Sent Events: `id: <resume token>`, `event: <ce_type>`, `data: <payload JSON>`, blank line."
	ok.Value.Content["text/event-stream"] = &openapi3.MediaType{Schema: sse.NewRef()}
}

// authPolicy returns the (shop.annotations.v1.auth) policy of md, or nil.
func authPolicy(md protoreflect.MethodDescriptor) *annotationsv1.AuthPolicy {
	opts, ok := md.Options().(*descriptorpb.MethodOptions)
	if !ok || opts == nil || !proto.HasExtension(opts, annotationsv1.E_Auth) {
		return nil
	}
	p, _ := proto.GetExtension(opts, annotationsv1.E_Auth).(*annotationsv1.AuthPolicy)
	return p
}

// joinText appends a sentence to an operation's description.
func joinText(desc, sentence string) string {
	if desc == "" {
		return sentence
	}
	return desc + "\n\n" + sentence
}

// emits reports whether md declares an event, which makes it a mutation
// that honours Idempotency-Key.
func emits(md protoreflect.MethodDescriptor) bool {
	opts, ok := md.Options().(*descriptorpb.MethodOptions)
	return ok && opts != nil && proto.HasExtension(opts, annotationsv1.E_Emits)
}

// schemaMessages maps each component schema to the message it was made
// from. protoc-gen-openapiv2's "simple" naming names a schema by the
// message's short name; a name that two messages share is left out.
func schemaMessages(doc *openapi3.T, svcs []protoreflect.ServiceDescriptor) map[string]protoreflect.MessageDescriptor {
	byName := map[string]protoreflect.MessageDescriptor{}
	dup := map[string]bool{}
	var walk func(md protoreflect.MessageDescriptor)
	walk = func(md protoreflect.MessageDescriptor) {
		name := string(md.Name())
		if prev, ok := byName[name]; ok {
			if prev.FullName() != md.FullName() {
				dup[name] = true
			}
			return
		}
		byName[name] = md
		for i := 0; i < md.Fields().Len(); i++ {
			if m := md.Fields().Get(i).Message(); m != nil {
				walk(m)
			}
		}
	}
	for _, sd := range svcs {
		for i := 0; i < sd.Methods().Len(); i++ {
			walk(sd.Methods().Get(i).Input())
			walk(sd.Methods().Get(i).Output())
		}
	}
	out := map[string]protoreflect.MessageDescriptor{}
	for name, md := range byName {
		if s := doc.Components.Schemas[name]; !dup[name] && s != nil && s.Value != nil {
			out[name] = md
		}
	}
	return out
}

// applyMessageRules sets, on the object schema s of message md, the field
// rules of md's fields that s has as properties.
func applyMessageRules(s *openapi3.Schema, md protoreflect.MessageDescriptor) {
	for name, prop := range s.Properties {
		fd := md.Fields().ByName(protoreflect.Name(name))
		if fd == nil || prop == nil {
			continue
		}
		r := fieldRules(fd)
		if r.required && !containsString(s.Required, name) {
			s.Required = append(s.Required, name)
		}
		if prop.Ref == "" && prop.Value != nil {
			r.apply(prop.Value)
		}
	}
	sort.Strings(s.Required)
}

// fieldByPath resolves a dotted path of proto field names.
func fieldByPath(md protoreflect.MessageDescriptor, path string) protoreflect.FieldDescriptor {
	var fd protoreflect.FieldDescriptor
	for _, part := range strings.Split(path, ".") {
		if md == nil {
			return nil
		}
		if fd = md.Fields().ByName(protoreflect.Name(part)); fd == nil {
			return nil
		}
		md = fd.Message()
	}
	return fd
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// shadowedAliases returns the additional bindings ("METHOD /template") to
// leave out of the document: those whose template has the shape of another
// binding's template with other parameter names, such as GET /cart/{user_id}
// beside DELETE /cart/{item_id}. OpenAPI forbids two templates of one shape
// even under different methods, and a client generator would merge them.
// The gateway still serves such an alias; the document names it in the
// description of the RPC's primary operation. A primary binding is never
// left out, so two primary bindings of one shape still fail validation.
func shadowedAliases(svcs []protoreflect.ServiceDescriptor) map[string]bool {
	type binding struct {
		key, template, shape string
		alias                bool
	}
	var all []binding
	templates := map[string]map[string]bool{} // shape -> templates
	for _, sd := range svcs {
		for i := 0; i < sd.Methods().Len(); i++ {
			for j, b := range httprule.Bindings(sd.Methods().Get(i)) {
				shape := pathParam.ReplaceAllString(b.Template, "{}")
				all = append(all, binding{b.Method + " " + b.Template, b.Template, shape, j > 0})
				if templates[shape] == nil {
					templates[shape] = map[string]bool{}
				}
				templates[shape][b.Template] = true
			}
		}
	}
	omit := map[string]bool{}
	for _, b := range all {
		if b.alias && len(templates[b.shape]) > 1 {
			omit[b.key] = true
		}
	}
	return omit
}

// pathParam matches a parameter of a path template.
var pathParam = regexp.MustCompile(`\{[^}]*\}`)

// validate checks doc against all of OpenAPI's rules, reporting every
// problem found rather than the first.
func validate(ctx context.Context, doc *openapi3.T) error {
	return errors.Join(leaves(doc.Validate(ctx, openapi3.EnableMultiError()))...)
}

// leaves flattens the lists of errors that multi-error validation returns.
func leaves(err error) []error {
	if err == nil {
		return nil
	}
	var list []error
	switch e := err.(type) {
	case openapi3.MultiError:
		list = e
	case interface{ Unwrap() []error }:
		list = e.Unwrap()
	default:
		if inner := errors.Unwrap(err); inner != nil {
			if sub := leaves(inner); len(sub) > 1 {
				return sub
			}
		}
		return []error{err}
	}
	var out []error
	for _, e := range list {
		out = append(out, leaves(e)...)
	}
	return out
}
