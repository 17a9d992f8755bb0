//go:build !unix

package outbox

import (
	"fmt"
	"os"
)

// lockDir only creates the lock file where advisory locks are unavailable.
func lockDir(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("outbox: open lock file: %w", err)
	}
	return f, nil
}
