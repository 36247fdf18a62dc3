// Package chaos runs memoflow as separate processes (the embedded broker,
// every stage as `memoflow stage NAME`, replicas of the busy ones) and
// injects faults on a seeded schedule: SIGKILL of a stage replica or the
// broker and restart after a pause, a ClickHouse outage. The verdict comes
// from outside the pipeline (the event log, the topics' offsets). See
// docs/reliability.md.
package chaos

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ReadyPrefix starts the line every memoflow server prints once it serves.
const ReadyPrefix = "memoflow ready:"

// Proc is one supervised memoflow process. Start and Kill may be called
// again and again: each Start runs a new process with the same arguments
// (the same replica id, the same data directory), as an orchestrator
// restarting a crashed pod would.
type Proc struct {
	Name string
	Bin  string
	Args []string
	Env  []string
	// LogPath receives the process's stdout and stderr, appended across
	// restarts, each start marked.
	LogPath string

	mu        sync.Mutex
	cmd       *exec.Cmd
	exited    chan struct{}
	readyLine string
	starts    int
	kills     int
	// held counts who is taking the process down or bringing it up on
	// purpose (the schedule, a restart by Watch, Close), so Watch leaves
	// it alone; a count, because those overlap.
	held int
}

func (p *Proc) setHeld(v bool) {
	p.mu.Lock()
	if v {
		p.held++
	} else {
		p.held--
	}
	p.mu.Unlock()
}

func (p *Proc) isHeld() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.held > 0
}

// Start runs the process and waits until it prints its ready line, the
// context ends or timeout passes (then it is killed).
func (p *Proc) Start(ctx context.Context, timeout time.Duration) error {
	p.mu.Lock()
	if p.cmd != nil {
		p.mu.Unlock()
		return fmt.Errorf("chaos: %s is already running", p.Name)
	}
	logf, err := os.OpenFile(p.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		p.mu.Unlock()
		return err
	}
	fmt.Fprintf(logf, "\n=== chaos: start %d of %s at %s: %s %s\n", p.starts+1, p.Name, time.Now().Format(time.RFC3339Nano), p.Bin, strings.Join(p.Args, " "))
	cmd := exec.Command(p.Bin, p.Args...)
	cmd.Env = append(os.Environ(), p.Env...)
	// Its own process group: a SIGKILL reaches the process and nothing
	// else, and our terminal's Ctrl-C does not reach it directly.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Stderr = logf
	out, err := cmd.StdoutPipe()
	if err != nil {
		logf.Close()
		p.mu.Unlock()
		return err
	}
	if err := cmd.Start(); err != nil {
		logf.Close()
		p.mu.Unlock()
		return fmt.Errorf("chaos: start %s: %w", p.Name, err)
	}
	p.cmd, p.starts = cmd, p.starts+1
	exited := make(chan struct{})
	p.exited = exited
	ready := make(chan string, 1)
	p.mu.Unlock()

	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		sent := false
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(logf, line)
			if !sent && strings.HasPrefix(line, ReadyPrefix) {
				ready <- line
				sent = true
			}
		}
		io.Copy(logf, out)
		cmd.Wait()
		logf.Close()
		p.mu.Lock()
		if p.cmd == cmd {
			p.cmd = nil
		}
		p.mu.Unlock()
		close(exited)
	}()

	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case line := <-ready:
		p.mu.Lock()
		p.readyLine = line
		p.mu.Unlock()
		return nil
	case <-exited:
		return fmt.Errorf("chaos: %s exited before it was ready (log: %s)", p.Name, p.LogPath)
	case <-t.C:
		p.Kill()
		return fmt.Errorf("chaos: %s not ready after %v (log: %s)", p.Name, timeout, p.LogPath)
	case <-ctx.Done():
		p.Kill()
		return ctx.Err()
	}
}

// ReadyField returns a key=value field of the last ready line
// ("api", "metrics", "kafka", ...), or "".
func (p *Proc) ReadyField(key string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, f := range strings.Fields(strings.TrimPrefix(p.readyLine, ReadyPrefix)) {
		if k, v, ok := strings.Cut(f, "="); ok && k == key {
			return v
		}
	}
	return ""
}

// Running reports whether the process is running.
func (p *Proc) Running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd != nil
}

// Kills returns how many times Kill ended a running process.
func (p *Proc) Kills() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.kills
}

// Kill sends SIGKILL and waits until the process is gone. Killing a
// process that is not running is a no-op.
func (p *Proc) Kill() error {
	return p.signal(syscall.SIGKILL, 10*time.Second, true)
}

// Stop sends SIGTERM and waits up to grace, then SIGKILL.
func (p *Proc) Stop(grace time.Duration) error {
	if err := p.signal(syscall.SIGTERM, grace, false); err == nil {
		return nil
	}
	return p.Kill()
}

var errStillRunning = errors.New("chaos: process did not exit")

func (p *Proc) signal(sig syscall.Signal, wait time.Duration, count bool) error {
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	if cmd == nil {
		p.mu.Unlock()
		return nil
	}
	if count {
		p.kills++
	}
	p.mu.Unlock()
	_ = cmd.Process.Signal(sig)
	select {
	case <-exited:
		return nil
	case <-time.After(wait):
		return fmt.Errorf("%w: %s after %v", errStillRunning, p.Name, sig)
	}
}
