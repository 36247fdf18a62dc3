package pipeline

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The SIGKILL test runs a copy stage in a child process (this test binary,
// re-executed with MEMOFLOW_TEST_CHILD set), kills it mid-stream, starts it
// again and checks the output holds every record exactly once.
func TestMain(m *testing.M) {
	if os.Getenv("MEMOFLOW_TEST_CHILD") == "copy" {
		os.Exit(childCopy())
	}
	os.Exit(m.Run())
}

func childCopy() int {
	kc := KafkaConfig{Brokers: os.Getenv("MEMOFLOW_TEST_BROKERS"), ClientID: "child", DialTimeout: 5 * time.Second, TopicPartitions: 1, TopicReplication: 1}
	rc := testRunnerConfig()
	rc.PollRecords = 100
	st := &copyStage{out: "out", delay: 10 * time.Millisecond}
	r, err := NewRunner(st, []string{"in"}, kc, rc, WithLogger(quietLogger()))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if err := r.Run(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

func TestSIGKILLMidStream(t *testing.T) {
	if testing.Short() {
		t.Skip("subprocess kill test skipped in -short mode")
	}
	_, kc := newCluster(t, 4, "in", "out", TopicDLQ)
	const n = 20000
	produceN(t, kc, "in", 0, n)
	start := func() *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "MEMOFLOW_TEST_CHILD=copy", "MEMOFLOW_TEST_BROKERS="+kc.Brokers)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		return cmd
	}
	kills := 0
	for _, at := range []int64{3000, 9000} {
		child := start()
		waitFor(t, 60*time.Second, fmt.Sprintf("%d records committed before kill %d", at, kills+1), func() bool {
			return committedTotal(t, kc, "memoflow-copy", "in") >= at
		})
		if err := child.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = child.Wait()
		kills++
	}
	child := start()
	waitFor(t, 90*time.Second, "all records committed after restart", func() bool {
		return committedTotal(t, kc, "memoflow-copy", "in") == n
	})
	assertExactlyOnce(t, readCommitted(t, kc, "out", n, 30*time.Second), 0, n)
	_ = child.Process.Signal(syscall.SIGTERM)
	_ = child.Wait()
	t.Logf("%d SIGKILLs survived; %d records exactly once", kills, n)
}
