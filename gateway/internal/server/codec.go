package server

import (
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	protov2 "google.golang.org/protobuf/proto"
)

// decodeTarget is what the API's method handlers decode a request into:
// the message and, instead of a failed decode, the error. grpc-go turns
// every codec error into INTERNAL before a handler sees it; with the error
// held here the handler answers INVALID_ARGUMENT, as a malformed request
// deserves.
type decodeTarget struct {
	msg protov2.Message
	err error
}

// strictCodec is the gRPC server's codec: the standard proto codec, except
// that a decodeTarget receives its decoding error rather than failing the
// call.
type strictCodec struct {
	encoding.CodecV2
}

func newStrictCodec() strictCodec {
	return strictCodec{encoding.GetCodecV2(proto.Name)}
}

// Unmarshal decodes data into v; for a *decodeTarget the error is kept in
// it and nil returned.
func (c strictCodec) Unmarshal(data mem.BufferSlice, v any) error {
	if t, ok := v.(*decodeTarget); ok {
		t.err = c.CodecV2.Unmarshal(data, t.msg)
		return nil
	}
	return c.CodecV2.Unmarshal(data, v)
}

// RequestCopier adapts copy, which copies one request message into another,
// to the method handlers, which decode into a wrapper of their own. A
// channel set with Config.RESTChannel that copies requests on their way to
// the handlers (grpchan's inprocgrpc does) must copy through it.
func RequestCopier(copy func(out, in any) error) func(out, in any) error {
	return func(out, in any) error {
		if t, ok := out.(*decodeTarget); ok {
			t.err = copy(t.msg, in)
			return nil
		}
		return copy(out, in)
	}
}
