package forward

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/shopgateway/shop/gateway/internal/apierr"
	"github.com/shopgateway/shop/gateway/internal/svcid"
	"github.com/shopgateway/shop/gateway/internal/upstream"
)

// Lookup states: what the owning service says became of a mutation sent
// with an Idempotency-Key.
const (
	// LookupApplied: the change was made; resp holds its answer.
	LookupApplied = "applied"
	// LookupUnknown: no record of that request from that caller: not
	// applied (or its window is over). Asked after the request's deadline,
	// it never will be.
	LookupUnknown = "unknown"
)

// lookupPath is the services' read-only lookup of their idempotency
// records (shopkit.idempotency).
const lookupPath = "/internal/idempotency/lookup"

// lookupRequest describes a mutation as it was sent, for the lookup.
type lookupRequest struct {
	Caller string `json:"caller"`
	Method string `json:"method"`
	Path   string `json:"path"`
	Query  string `json:"query"`
	Key    string `json:"key"`
	Body   string `json:"body"`
}

// Lookup asks the service that owns fullMethod what became of req sent with
// Idempotency-Key key by the caller in ctx (reqinfo.CallerFrom; none:
// anonymous), without running anything: one of the Lookup states. The
// service answers "applied" only for the same caller, key and request. For
// LookupApplied it fills resp, an empty response message, from the stored
// answer as Handle would have.
func (f *Forwarder) Lookup(ctx context.Context, fullMethod string, req proto.Message, key string, resp proto.Message) (string, error) {
	r, ok := f.routes[fullMethod]
	if !ok {
		return "", apierr.Errorf(codes.Unimplemented, "method %s is not forwarded", fullMethod)
	}
	ureq, err := r.build(ctx, req)
	if err != nil {
		return "", err
	}
	path, query, _ := strings.Cut(ureq.Path, "?")
	sent := lookupRequest{Method: ureq.Method, Path: path, Query: query, Key: key, Body: string(ureq.Body)}
	sent.Caller, _ = r.subject(ctx)
	body, err := json.Marshal(sent)
	if err != nil {
		return "", apierr.Errorf(codes.Internal, "encoding the idempotency lookup: %v", err)
	}
	// The lookup is the gateway's own call: internal, scope shop:service.
	assertion, err := r.asserter.Assertion(r.upstream, r.asserter.Self(), svcid.ServiceScope)
	if err != nil {
		return "", apierr.Errorf(codes.Internal, "signing the identity assertion: %v", err)
	}
	uresp, err := r.doer.Do(ctx, &upstream.Request{
		Method: http.MethodPost, Path: lookupPath, Body: body,
		Header: http.Header{svcid.Header: []string{assertion}},
	})
	if err != nil {
		return "", err
	}
	var answer struct {
		State string          `json:"state"`
		Body  json.RawMessage `json:"body"`
	}
	if err := json.Unmarshal(uresp.Body, &answer); err != nil {
		return "", apierr.Errorf(codes.Internal, "%s answered the idempotency lookup with malformed JSON", r.upstream)
	}
	switch answer.State {
	case LookupApplied:
		target := resp
		if r.respField != nil {
			target = resp.ProtoReflect().Mutable(r.respField).Message().Interface()
		}
		if err := unmarshalOpts.Unmarshal(answer.Body, target); err != nil {
			return "", apierr.Errorf(codes.Internal, "%s stored an answer that does not match %s", r.upstream, r.method.Output().FullName())
		}
	case LookupUnknown:
	default:
		return "", apierr.Errorf(codes.Internal, "%s answered the idempotency lookup with state %q", r.upstream, answer.State)
	}
	return answer.State, nil
}
