package harness

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// process is one child process in its own process group, with stdout and
// stderr appended to a log file (a restart appends to the same file).
type process struct {
	name string
	log  string
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
	err  error         // the exit status, valid after done
}

// startProcess starts argv in dir with env, in a new process group, and
// reaps it in the background.
func startProcess(name, logPath, dir string, env []string, bin string, args ...string) (*process, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(f, "==== %s start %s: %s %s\n", time.Now().Format(time.RFC3339Nano), name, bin, strings.Join(args, " "))
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = env
	cmd.Stdout = f
	cmd.Stderr = f
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// Own group: stop signals reach every process it forks.
		Setpgid: true,
		// The child dies with the test binary even when cleanup never runs
		// (a panic, a timeout's os.Exit, SIGKILL).
		Pdeathsig: syscall.SIGKILL,
	}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, err
	}
	p := &process{name: name, log: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

// stop sends SIGTERM to the process group, SIGKILL after grace (at once
// when grace is 0), and waits for the exit. Stopping an exited process is a
// no-op. Any process left in the group is killed too.
func (p *process) stop(grace time.Duration) error {
	pgid := p.cmd.Process.Pid
	select {
	case <-p.done:
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		return nil
	default:
	}
	sig := syscall.SIGTERM
	if grace == 0 {
		sig = syscall.SIGKILL
	}
	if err := syscall.Kill(-pgid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("signal %s: %w", p.name, err)
	}
	// A paused (SIGSTOPped) process handles the SIGTERM only once resumed.
	_ = syscall.Kill(-pgid, syscall.SIGCONT)
	if grace > 0 {
		select {
		case <-p.done:
		case <-time.After(grace):
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			<-p.done
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			return fmt.Errorf("%s ignored SIGTERM for %v; killed", p.name, grace)
		}
	} else {
		<-p.done
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	return nil
}

// signal sends sig to the process group; an exited process is a no-op.
func (p *process) signal(sig syscall.Signal) error {
	select {
	case <-p.done:
		return nil
	default:
	}
	if err := syscall.Kill(-p.cmd.Process.Pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("signal %s %s: %w", p.name, sig, err)
	}
	return nil
}

// tail returns the last n lines of the process's log file.
func (p *process) tail(n int) string {
	b, err := os.ReadFile(p.log)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}
