//go:build tools

// Package tools pins the code generators and linters used by the Makefile.
// They live in their own module so that the gateway's go.mod carries none of
// their dependencies.
package tools

import (
	_ "github.com/bufbuild/buf/cmd/buf"
	_ "github.com/fullstorydev/grpcurl/cmd/grpcurl"
	_ "github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-grpc-gateway"
	_ "github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-openapiv2"
	_ "github.com/oapi-codegen/oapi-codegen/v2/cmd/oapi-codegen"
	// The runtime library of the client that oapi-codegen writes (make
	// check-clients compiles that client against this version).
	_ "github.com/oapi-codegen/runtime"
	_ "google.golang.org/grpc/cmd/protoc-gen-go-grpc"
	_ "google.golang.org/protobuf/cmd/protoc-gen-go"
)
