package harness

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The broker is shared by every test on the machine, in every test process
// (go test runs packages in parallel). A test that stops it would break the
// others, so the harness holds a reader-writer lock on a file for it: every
// test that starts a Stack or an EventReader holds it shared until its
// cleanup, and StopKafka turns the holder's lock exclusive, waiting until
// every other test is done, until StartKafka turns it back to shared.
//
// The lock belongs to a top-level test: its subtests, stacks and readers
// share one lock, so that a test can stop the broker under its own reader.

type kafkaLock struct {
	f    *os.File
	refs int
}

var (
	kafkaLocksMu sync.Mutex
	kafkaLocks   = map[string]*kafkaLock{} // top-level test name -> lock
)

var unsafeChars = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

func kafkaLockPath() string {
	return filepath.Join(os.TempDir(), "shop-harness-kafka-"+unsafeChars.ReplaceAllString(strings.Join(Brokers(), "_"), "_")+".lock")
}

func topLevel(tb testing.TB) string {
	name, _, _ := strings.Cut(tb.Name(), "/")
	return name
}

// HoldKafka keeps other tests from stopping the broker (Stack.StopKafka)
// until tb's cleanup, waiting first while another test has it stopped.
// Start and NewEventReader call it; call it before talking to the broker
// any other way.
func HoldKafka(tb testing.TB) {
	tb.Helper()
	key := topLevel(tb)
	kafkaLocksMu.Lock()
	l, ok := kafkaLocks[key]
	if ok {
		l.refs++
		kafkaLocksMu.Unlock()
	} else {
		kafkaLocksMu.Unlock()
		f, err := os.OpenFile(kafkaLockPath(), os.O_CREATE|os.O_RDWR, 0o666)
		if err != nil {
			tb.Fatalf("harness: broker lock: %v", err)
		}
		if err := flock(tb, f, syscall.LOCK_SH, "another test has stopped the broker"); err != nil {
			f.Close()
			tb.Fatalf("harness: broker lock: %v", err)
		}
		kafkaLocksMu.Lock()
		if l2, ok := kafkaLocks[key]; ok { // a parallel subtest won the race
			l2.refs++
			kafkaLocksMu.Unlock()
			f.Close()
		} else {
			kafkaLocks[key] = &kafkaLock{f: f, refs: 1}
			kafkaLocksMu.Unlock()
		}
	}
	tb.Cleanup(func() {
		kafkaLocksMu.Lock()
		defer kafkaLocksMu.Unlock()
		l := kafkaLocks[key]
		if l.refs--; l.refs == 0 {
			l.f.Close() // releases the lock
			delete(kafkaLocks, key)
		}
	})
}

// setKafkaLock turns tb's top-level test's lock exclusive (LOCK_EX) or back
// to shared (LOCK_SH).
func setKafkaLock(tb testing.TB, how int) {
	tb.Helper()
	kafkaLocksMu.Lock()
	l := kafkaLocks[topLevel(tb)]
	kafkaLocksMu.Unlock()
	if l == nil {
		tb.Fatalf("harness: %s holds no broker lock; start a Stack first", topLevel(tb))
	}
	if err := flock(tb, l.f, how, "other tests are using the broker"); err != nil {
		tb.Fatalf("harness: broker lock: %v", err)
	}
}

// flock applies how to f, logging why when it has to wait.
func flock(tb testing.TB, f *os.File, how int, why string) error {
	tb.Helper()
	err := syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB)
	if !errors.Is(err, syscall.EWOULDBLOCK) {
		return err
	}
	start := time.Now()
	tb.Logf("harness: waiting for the broker lock %s: %s", f.Name(), why)
	for {
		err = syscall.Flock(int(f.Fd()), how)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err == nil {
		tb.Logf("harness: got the broker lock after %v", time.Since(start).Round(time.Millisecond))
	}
	return err
}
