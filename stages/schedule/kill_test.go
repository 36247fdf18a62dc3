package schedule

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/memoflow/memoflow/pipeline"
	"github.com/memoflow/memoflow/schemas/events"
)

// childStage runs the stage in this process until it is killed: the
// released-exactly-once-across-crashes test SIGKILLs it mid-release.
func childStage() int {
	brokers := os.Getenv("MEMOFLOW_SCHEDULE_BROKERS")
	nowMs, _ := strconv.ParseInt(os.Getenv("MEMOFLOW_SCHEDULE_NOW_MS"), 10, 64)
	rate, _ := strconv.ParseFloat(os.Getenv("MEMOFLOW_SCHEDULE_RATE"), 64)
	dir, err := os.MkdirTemp("", "schedule-child-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	kc := pipeline.KafkaConfig{Brokers: brokers, ClientID: "child", DialTimeout: 5 * time.Second, TopicPartitions: 3, TopicReplication: 1}
	opts, err := kc.ClientOpts()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	cfg := DefaultConfig()
	cfg.Dir, cfg.TickInterval, cfg.ReleaseRate = dir, 20*time.Millisecond, rate
	st, err := New(cfg, opts, mustPseudoChild(), WithClock(ClockFunc(func() time.Time { return time.UnixMilli(nowMs) })), WithLogger(quietLog()))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	r, err := pipeline.NewRunner(st, []string{pipeline.TopicValid, pipeline.TopicSchedule}, kc, runnerConfig("crash"),
		pipeline.WithLogger(quietLog()))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if err := st.StartTicker(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if err := r.Run(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

func mustPseudoChild() *events.Pseudonymizer {
	p, err := events.NewPseudonymizer(events.Key{ID: "k1", Secret: []byte("0123456789abcdef0123456789abcdef")})
	if err != nil {
		panic(err)
	}
	return p
}

// TestSIGKILLMidRelease: the stage runs in a child process and is killed
// (SIGKILL, no goodbye) twice during a release; a new child (same replica
// id: it fences the dead one's open transaction) goes on. Every held
// message is on memo.ready exactly once, with exactly one
// DELAYED_MEMO_SEND_SENT event.
func TestSIGKILLMidRelease(t *testing.T) {
	if testing.Short() {
		t.Skip("subprocess kill test skipped in -short mode")
	}
	const n = 3000
	midnight := cph(2026, time.June, 2, 0, 0)
	h := newHarness(t, 3, midnight)
	h.fillHeld(t, n, midnight)
	ready, evs := h.collect(pipeline.TopicReady), h.collect(pipeline.TopicEvents)
	start := func() *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "MEMOFLOW_SCHEDULE_CHILD=stage", "MEMOFLOW_SCHEDULE_BROKERS="+h.kc.Brokers,
			"MEMOFLOW_SCHEDULE_NOW_MS="+strconv.FormatInt(midnight.UnixMilli(), 10), "MEMOFLOW_SCHEDULE_RATE=250")
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			if s := stderr.String(); s != "" {
				t.Logf("child stderr: %s", s)
			}
		})
		return cmd
	}
	for _, at := range []int{n / 4, n / 2} {
		cmd := start()
		waitFor(t, 60*time.Second, fmt.Sprintf("%d released", at), func() bool { return ready.len() >= at })
		if err := cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait()
		t.Logf("killed after %d of %d released", ready.len(), n)
	}
	start()
	waitFor(t, 90*time.Second, "the whole release", func() bool { return ready.len() >= n })
	time.Sleep(time.Second)
	keys := ready.keys()
	for i := range n {
		if c := keys[scrambledUUID(i)]; c != 1 {
			t.Fatalf("message %d on memo.ready %d times", i, c)
		}
	}
	if ready.len() != n {
		t.Fatalf("memo.ready has %d records, want %d", ready.len(), n)
	}
	if got := evs.tags(t)[events.DelayedMemoSendSent]; got != n {
		t.Fatalf("%d DELAYED_MEMO_SEND_SENT events, want %d", got, n)
	}
}
