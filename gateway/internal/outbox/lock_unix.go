//go:build unix

package outbox

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"
)

// lockWait bounds how long lockDir waits for a lock that is held. A process
// that forks (any exec from the same process, os/exec in a test binary)
// lends its open files to the child until the child's exec closes them, so
// a lock just released can stay held for that moment; a second gateway on
// the same directory still fails within it.
const lockWait = 500 * time.Millisecond

// lockDir takes an exclusive advisory lock on path so that two processes
// never append to the same outbox. The kernel drops it when the process
// dies, so a crash never leaves a stale lock behind.
func lockDir(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("outbox: open lock file: %w", err)
	}
	deadline := time.Now().Add(lockWait)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			_ = f.Close()
			return nil, fmt.Errorf("outbox: lock %s: %w", path, err)
		}
		if time.Now().After(deadline) {
			_ = f.Close()
			return nil, fmt.Errorf("%w: %s", ErrLocked, path)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
