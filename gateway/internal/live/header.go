package live

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// sendHeader sends the response headers now, so that the client learns
// the stream is open before the first event.
func sendHeader(ctx context.Context) error {
	return grpc.SendHeader(ctx, metadata.MD{})
}
