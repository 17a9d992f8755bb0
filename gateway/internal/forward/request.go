package forward

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/shopgateway/shop/gateway/internal/apierr"
	"github.com/shopgateway/shop/gateway/internal/protofields"
	"github.com/shopgateway/shop/gateway/internal/reqinfo"
	"github.com/shopgateway/shop/gateway/internal/svcid"
	"github.com/shopgateway/shop/gateway/internal/upstream"
)

func (r *route) call(ctx context.Context, req, resp proto.Message) error {
	ureq, err := r.build(ctx, req)
	if err != nil {
		return err
	}
	uresp, err := r.doer.Do(ctx, ureq)
	if info := reqinfo.FromContext(ctx); info != nil {
		info.Upstream = r.upstream
		if uresp != nil {
			info.Instance = uresp.Instance
			info.Attempts += uresp.Attempts
		}
	}
	if err != nil {
		return err
	}
	// A service's answer replayed for an Idempotency-Key is marked with the
	// same response metadata as the gateway's own replays.
	if uresp.Header.Get(reqinfo.ReplayedKey) == "true" {
		_ = grpc.SetHeader(ctx, metadata.Pairs(reqinfo.ReplayedKey, "true"))
	}
	target := resp
	if r.respField != nil {
		target = resp.ProtoReflect().Mutable(r.respField).Message().Interface()
	}
	if len(uresp.Body) == 0 {
		return nil
	}
	if err := unmarshalOpts.Unmarshal(uresp.Body, target); err != nil {
		return apierr.Errorf(codes.Internal, "%s returned a response that does not match %s", r.upstream, r.method.Output().FullName())
	}
	return nil
}

// build makes the upstream request for req: path from the template, query
// from the remaining fields, body by protojson, and the pass-through headers.
func (r *route) build(ctx context.Context, req proto.Message) (*upstream.Request, error) {
	m := req.ProtoReflect()
	var path strings.Builder
	if err := r.tmpl.AppendPath(&path, m); err != nil {
		return nil, apierr.New(codes.InvalidArgument, err.Error()).WithCause(err)
	}
	sep := byte('?')
	for _, fd := range r.queryFields {
		if !m.Has(fd) {
			continue
		}
		if fd.IsList() {
			l := m.Get(fd).List()
			for i := 0; i < l.Len(); i++ {
				writeQuery(&path, sep, fd, l.Get(i))
				sep = '&'
			}
			continue
		}
		writeQuery(&path, sep, fd, m.Get(fd))
		sep = '&'
	}
	ureq := &upstream.Request{Method: r.httpMethod, Path: path.String()}
	var err error
	switch {
	case r.bodyAll:
		ureq.Body, err = marshalOpts.Marshal(req)
	case r.bodyField != nil:
		ureq.Body, err = marshalOpts.Marshal(m.Get(r.bodyField).Message().Interface())
		ureq.BodyField = string(r.bodyField.Name())
	}
	if err != nil {
		return nil, apierr.Errorf(codes.InvalidArgument, "encoding the request: %v", err)
	}
	// The caller's identity comes only from the authorizer, signed for this
	// service; nothing the client sent names a caller upstream.
	sub, scope := r.subject(ctx)
	assertion, err := r.asserter.Assertion(r.upstream, sub, scope)
	if err != nil {
		return nil, apierr.Errorf(codes.Internal, "signing the identity assertion: %v", err)
	}
	ureq.Header = make(http.Header, len(passHeaders)+2)
	ureq.Header[svcid.Header] = []string{assertion}
	if dl, ok := ctx.Deadline(); ok {
		ureq.Header[DeadlineHeader] = []string{strconv.FormatInt(dl.UnixMilli(), 10)}
	}
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		for _, h := range passHeaders {
			if v := md.Get(h.md); len(v) > 0 && v[0] != "" {
				ureq.Header[h.http] = v[:1]
			}
		}
	}
	return ureq, nil
}

// subject is who a call to the service is made for: the authenticated
// caller's user id and scopes, else the gateway itself with no scope (a
// public read by an anonymous client).
func (r *route) subject(ctx context.Context) (sub, scope string) {
	if c := reqinfo.CallerFrom(ctx); c != nil {
		return strconv.FormatInt(c.UserID, 10), c.Scopes
	}
	return r.asserter.Self(), ""
}

func writeQuery(b *strings.Builder, sep byte, fd protoreflect.FieldDescriptor, v protoreflect.Value) {
	b.WriteByte(sep)
	b.WriteString(string(fd.Name()))
	b.WriteByte('=')
	b.WriteString(url.QueryEscape(protofields.FormatScalar(fd, v)))
}
