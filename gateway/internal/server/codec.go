package server

import (
	"github.com/fullstorydev/grpchan/inprocgrpc"
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

// targetCloner is grpchan's ProtoCloner taught about decodeTarget, for the
// RESTGrpchan channel, which hands requests to the same method handlers.
type targetCloner struct {
	inprocgrpc.ProtoCloner
}

// Copy copies in into out, or into out's message for a *decodeTarget.
func (c targetCloner) Copy(out, in any) error {
	if t, ok := out.(*decodeTarget); ok {
		t.err = c.ProtoCloner.Copy(t.msg, in)
		return nil
	}
	return c.ProtoCloner.Copy(out, in)
}
