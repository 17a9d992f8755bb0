package outbox

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// crashDirEnv, when set, makes TestCrashRecovery the child: it appends
// and acks until it is killed, with the SyncInterval in crashSyncEnv.
const (
	crashDirEnv  = "OUTBOX_CRASH_DIR"
	crashSyncEnv = "OUTBOX_CRASH_SYNC_INTERVAL"
)

var crashOpts = Options{SegmentBytes: 16 << 10, AckInterval: 5 * time.Millisecond}

// TestCrashRecovery SIGKILLs a child process that appends from several
// goroutines (reporting each id only after its Append returned) while it
// reads and acks, then reopens the outbox and checks that every reported
// record that was not acked is there. Three kills on the same directory
// also recover what earlier recoveries left.
func TestCrashRecovery(t *testing.T) {
	if dir := os.Getenv(crashDirEnv); dir != "" {
		crashChild(dir)
		return
	}
	if testing.Short() && os.Getenv("CI") == "" {
		t.Skip("spawns child processes")
	}
	t.Parallel()
	// A process crash loses nothing an Append returned, whether each batch
	// is synced before it returns or the writer syncs on a ticker.
	for _, sync := range []time.Duration{0, 100 * time.Millisecond} {
		t.Run("sync interval "+sync.String(), func(t *testing.T) {
			t.Parallel()
			crashRecovery(t, sync)
		})
	}
}

func crashRecovery(t *testing.T, sync time.Duration) {
	dir := t.TempDir()
	appended := map[ID]string{}
	var lastAck ID
	for round, after := range []time.Duration{150 * time.Millisecond, 300 * time.Millisecond, 500 * time.Millisecond} {
		acked := runAndKill(t, dir, sync, after, appended)
		lastAck = max(lastAck, acked)

		o, err := Open(dir, crashOpts)
		if err != nil {
			t.Fatalf("round %d: Open after kill: %v", round, err)
		}
		st := o.Stats()
		if st.AckedID > lastAck {
			t.Fatalf("round %d: recovered ack %d is past the last ack %d", round, st.AckedID, lastAck)
		}
		var maxID ID
		for id := range appended {
			maxID = max(maxID, id)
		}
		if st.LastID < maxID {
			t.Fatalf("round %d: last id %d, but %d was reported appended", round, st.LastID, maxID)
		}
		es := nextN(t, o, int(st.Depth))
		got := make(map[ID]string, len(es))
		for _, e := range es {
			got[e.ID] = string(e.Value)
		}
		missing := 0
		for id, v := range appended {
			if id <= st.AckedID {
				continue
			}
			if got[id] != v {
				missing++
				if missing < 5 {
					t.Errorf("round %d: record %d = %q, want %q", round, id, got[id], v)
				}
			}
		}
		if missing > 0 {
			t.Fatalf("round %d: %d reported records lost", round, missing)
		}
		t.Logf("round %d: %d appended in all, recovered ack %d, depth %d, last %d",
			round, len(appended), st.AckedID, st.Depth, st.LastID)
		if err := o.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// runAndKill runs the child on dir, SIGKILLs it the given time after its
// first reported append (so a slow start on a loaded machine does not leave
// it killed before it wrote anything) and records what it reported; it
// returns the highest ack it reported.
func runAndKill(t *testing.T, dir string, sync, after time.Duration, appended map[ID]string) ID {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashRecovery$")
	cmd.Env = append(os.Environ(), crashDirEnv+"="+dir, crashSyncEnv+"="+sync.String())
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var lastAck ID
	lines := 0
	done := make(chan struct{})
	started := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) < 2 {
				continue
			}
			id, err := strconv.ParseUint(f[1], 10, 64)
			if err != nil {
				continue
			}
			switch {
			case f[0] == "appended" && len(f) == 3:
				appended[ID(id)] = f[2]
				if lines++; lines == 1 {
					close(started)
				}
			case f[0] == "acked":
				lastAck = max(lastAck, ID(id))
			}
		}
	}()
	select {
	case <-started:
		time.Sleep(after)
	case <-done: // the child exited on its own; its stderr says why
	case <-time.After(time.Minute):
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-done
	_ = cmd.Wait()
	if lines == 0 {
		t.Fatal("child reported no appends before it was killed")
	}
	return lastAck
}

// crashChild appends from 8 goroutines and acks what it reads, forever.
// It reports on stdout with one write per line, so lines never interleave.
func crashChild(dir string) {
	opts := crashOpts
	opts.SyncInterval, _ = time.ParseDuration(os.Getenv(crashSyncEnv))
	o, err := Open(dir, opts)
	if err != nil {
		os.Stderr.WriteString("child: " + err.Error() + "\n")
		os.Exit(2)
	}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				v := "w" + strconv.Itoa(w) + "-" + strconv.Itoa(i) + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)
				id, err := o.Append(context.Background(), Record{Topic: "t", Value: []byte(v)})
				if err != nil {
					os.Stderr.WriteString("child: append: " + err.Error() + "\n")
					os.Exit(2)
				}
				os.Stdout.WriteString("appended " + strconv.FormatUint(uint64(id), 10) + " " + v + "\n")
			}
		})
	}
	for {
		// Read in small steps and ack only some of what was read, so that
		// the kill finds delivered but un-acked records too.
		es, err := o.Next(context.Background(), 50)
		if err != nil {
			os.Exit(2)
		}
		if id := es[len(es)-1].ID; id%3 != 0 {
			// Reported before the ack, so the parent's view is an upper bound.
			os.Stdout.WriteString("acked " + strconv.FormatUint(uint64(id), 10) + "\n")
			if err := o.Ack(id); err != nil {
				os.Exit(2)
			}
		}
	}
}
