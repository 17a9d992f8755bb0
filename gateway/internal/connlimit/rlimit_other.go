//go:build !unix

package connlimit

// DefaultMax is the default overall cap where the descriptor limit cannot be
// read.
func DefaultMax() int { return 1024 }
