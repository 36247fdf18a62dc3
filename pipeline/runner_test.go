package pipeline

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func TestCopyExactlyOnce(t *testing.T) {
	for _, tc := range []struct {
		name string
		txn  bool
	}{{"transactions", true}, {"at-least-once", false}} {
		t.Run(tc.name, func(t *testing.T) {
			_, kc := newCluster(t, 4, "in", "out", TopicDLQ)
			produceN(t, kc, "in", 0, 2000)
			rc := testRunnerConfig()
			rc.Transactions = tc.txn
			st := &copyStage{out: "out"}
			stop := startRunner(t, newTestRunner(t, st, kc, rc, "in"))
			assertExactlyOnce(t, readCommitted(t, kc, "out", 2000, 20*time.Second), 0, 2000)
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			if got := committedTotal(t, kc, "memoflow-copy", "in"); got != 2000 {
				t.Fatalf("committed offsets sum to %d, want 2000", got)
			}
		})
	}
}

// TestAbortedTransaction: the broker rejects the first produce of outputs;
// the runner aborts the transaction and the batch is processed again. The
// output holds every record exactly once.
func TestAbortedTransaction(t *testing.T) {
	c, kc := newCluster(t, 3, "in", "out", TopicDLQ)
	produceN(t, kc, "in", 0, 1000)
	var failed atomic.Bool
	c.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		pr := req.(*kmsg.ProduceRequest)
		if pr.TransactionID == nil || failed.Load() {
			return nil, nil, false
		}
		failed.Store(true)
		resp := pr.ResponseKind().(*kmsg.ProduceResponse)
		for _, tp := range pr.Topics {
			rt := kmsg.NewProduceResponseTopic()
			rt.Topic, rt.TopicID = tp.Topic, tp.TopicID
			for _, p := range tp.Partitions {
				rp := kmsg.NewProduceResponseTopicPartition()
				rp.Partition = p.Partition
				rp.ErrorCode = kerr.InvalidRecord.Code
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return resp, nil, true
	})
	st := &copyStage{out: "out"}
	r := newTestRunner(t, st, kc, testRunnerConfig(), "in")
	stop := startRunner(t, r)
	assertExactlyOnce(t, readCommitted(t, kc, "out", 1000, 30*time.Second), 0, 1000)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if !failed.Load() {
		t.Fatal("the produce failure was never injected")
	}
	if st.seen.Load() <= 1000 {
		t.Fatalf("stage saw %d records; the aborted batch should have been processed twice", st.seen.Load())
	}
}

// TestMemberLeavesMidBatch: a second member joins while the first is in
// the middle of a batch (its partitions are revoked under it, so its open
// transaction must abort), then leaves again. Exactly once throughout.
func TestMemberLeavesMidBatch(t *testing.T) {
	_, kc := newCluster(t, 6, "in", "out", TopicDLQ)
	const n = 3000
	produceN(t, kc, "in", 0, n)
	rc := testRunnerConfig()
	rc.PollRecords = 50
	m := NewMetrics(prometheus.NewRegistry())
	a := &copyStage{out: "out", delay: 20 * time.Millisecond}
	b := &copyStage{out: "out", delay: 20 * time.Millisecond}
	rcA, rcB := rc, rc
	rcA.ReplicaID, rcB.ReplicaID = "a", "b"
	stopA := startRunner(t, newTestRunner(t, a, kc, rcA, "in", WithMetrics(m)))
	waitFor(t, 20*time.Second, "the first member to work", func() bool { return a.seen.Load() > 100 })
	stopB := startRunner(t, newTestRunner(t, b, kc, rcB, "in", WithMetrics(m)))
	waitFor(t, 20*time.Second, "the second member to work", func() bool { return b.seen.Load() > 100 })
	if err := stopB(); err != nil { // leaves the group mid-stream
		t.Fatal(err)
	}
	assertExactlyOnce(t, readCommitted(t, kc, "out", n, 40*time.Second), 0, n)
	if err := stopA(); err != nil {
		t.Fatal(err)
	}
	if a.revoked.Load() == 0 {
		t.Error("the first member was never told about revoked partitions (RevokeListener)")
	}
	if aborts := testutil.ToFloat64(m.TxnAborts.WithLabelValues("copy")); aborts == 0 {
		t.Fatal("no transaction was aborted by the rebalance; the test did not exercise the abort path")
	} else {
		t.Logf("%v transactions aborted by rebalances; %d+%d records processed for %d outputs", aborts, a.seen.Load(), b.seen.Load(), n)
	}
}

// TestRestartResumes: a stopped stage resumes from its committed offsets.
func TestRestartResumes(t *testing.T) {
	_, kc := newCluster(t, 4, "in", "out", TopicDLQ)
	produceN(t, kc, "in", 0, 500)
	first := &copyStage{out: "out"}
	stop := startRunner(t, newTestRunner(t, first, kc, testRunnerConfig(), "in"))
	readCommitted(t, kc, "out", 500, 20*time.Second)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	produceN(t, kc, "in", 500, 300)
	second := &copyStage{out: "out"}
	stop = startRunner(t, newTestRunner(t, second, kc, testRunnerConfig(), "in"))
	assertExactlyOnce(t, readCommitted(t, kc, "out", 800, 20*time.Second), 0, 800)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if got := second.seen.Load(); got != 300 {
		t.Fatalf("restarted stage processed %d records, want only the 300 new ones", got)
	}
}

// TestPoisonToDLQ: a poison record goes to the DLQ with headers, the rest
// is copied and the offsets move on.
func TestPoisonToDLQ(t *testing.T) {
	_, kc := newCluster(t, 2, "in", "out", TopicDLQ)
	produceN(t, kc, "in", 0, 100)
	st := &copyStage{out: "out", poisonKey: []byte("k000042")}
	stop := startRunner(t, newTestRunner(t, st, kc, testRunnerConfig(), "in"))
	out := readCommitted(t, kc, "out", 99, 20*time.Second)
	dlq := readCommitted(t, kc, TopicDLQ, 1, 20*time.Second)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if len(out) != 99 {
		t.Fatalf("out has %d records, want 99", len(out))
	}
	if len(dlq) != 1 || string(dlq[0].Key) != "k000042" {
		t.Fatalf("dlq = %v, want the one poison record", dlq)
	}
	for h, want := range map[string]string{
		HeaderDLQStage: "copy", HeaderDLQCode: "TEST_POISON", HeaderDLQTopic: "in",
	} {
		if got := string(Header(dlq[0], h)); got != want {
			t.Errorf("header %s = %q, want %q", h, got, want)
		}
	}
	if Header(dlq[0], HeaderDLQOffset) == nil || Header(dlq[0], HeaderDLQError) == nil {
		t.Error("DLQ record lacks offset or error header")
	}
	if got := committedTotal(t, kc, "memoflow-copy", "in"); got != 100 {
		t.Fatalf("committed %d, want 100 (the stage goes on past poison)", got)
	}
}

// TestBatchPoisonIsolated: a stage returning Poison for a whole batch has
// its records retried one by one; only the bad one reaches the DLQ.
func TestBatchPoisonIsolated(t *testing.T) {
	_, kc := newCluster(t, 1, "in", "out", TopicDLQ)
	produceN(t, kc, "in", 0, 50)
	st := &batchPoisonStage{bad: "k000007"}
	stop := startRunner(t, newTestRunner(t, st, kc, testRunnerConfig(), "in"))
	out := readCommitted(t, kc, "out", 49, 20*time.Second)
	dlq := readCommitted(t, kc, TopicDLQ, 1, 10*time.Second)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if len(out) != 49 || len(dlq) != 1 || string(dlq[0].Key) != "k000007" {
		t.Fatalf("out=%d dlq=%d; want 49 and the one bad record", len(out), len(dlq))
	}
}

type batchPoisonStage struct{ bad string }

func (s *batchPoisonStage) Name() string { return "bpoison" }
func (s *batchPoisonStage) Transform(_ context.Context, b *Batch) error {
	for _, r := range b.Records {
		if string(r.Key) == s.bad {
			return Poison("TEST_BAD", errors.New("batch contains a bad record"))
		}
	}
	for _, r := range b.Records {
		b.Emit(&kgo.Record{Topic: "out", Key: r.Key, Value: r.Value})
	}
	return nil
}

// TestTransientRetriedOffsetHeld: while the stage fails transiently,
// nothing is committed; once it recovers, everything is, exactly once.
func TestTransientRetriedOffsetHeld(t *testing.T) {
	for _, txn := range []bool{true, false} {
		_, kc := newCluster(t, 2, "in", "out", TopicDLQ)
		produceN(t, kc, "in", 0, 100)
		rc := testRunnerConfig()
		rc.Transactions = txn
		rc.RetryMinBackoff, rc.RetryMaxBackoff = 50*time.Millisecond, 50*time.Millisecond
		st := &copyStage{out: "out"}
		st.failFirst.Store(1 << 40)
		stop := startRunner(t, newTestRunner(t, st, kc, rc, "in"))
		time.Sleep(700 * time.Millisecond)
		if got := committedTotal(t, kc, "memoflow-copy", "in"); got != 0 {
			t.Fatalf("txn=%v: committed %d while the stage was failing", txn, got)
		}
		st.failFirst.Store(0)
		assertExactlyOnce(t, readCommitted(t, kc, "out", 100, 20*time.Second), 0, 100)
		if err := stop(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestFatalStopsStage: a fatal error ends Run with that error.
func TestFatalStopsStage(t *testing.T) {
	_, kc := newCluster(t, 1, "in", "out", TopicDLQ)
	produceN(t, kc, "in", 0, 10)
	st := &copyStage{out: "out"}
	st.fatal.Store(true)
	r := newTestRunner(t, st, kc, testRunnerConfig(), "in")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := r.Run(ctx)
	var pe *Error
	if !errors.As(err, &pe) || pe.Class != ClassFatal {
		t.Fatalf("Run = %v, want a fatal *pipeline.Error", err)
	}
}

// TestSinkNeverCommitsPastFailure: a sink failing on one record holds the
// partition's offset below it; after recovery every record is written in
// per-partition order and the offsets reach the end.
func TestSinkNeverCommitsPastFailure(t *testing.T) {
	for _, txn := range []bool{true, false} {
		_, kc := newCluster(t, 3, "in", TopicDLQ)
		produceN(t, kc, "in", 0, 600)
		rc := testRunnerConfig()
		rc.Transactions = txn
		rc.RetryMinBackoff, rc.RetryMaxBackoff = 20*time.Millisecond, 20*time.Millisecond
		s := &recordingSink{failKey: []byte("k000300")}
		s.failures.Store(1 << 40)
		stop := startRunner(t, newTestRunner(t, s, kc, rc, "in"))
		waitFor(t, 10*time.Second, "the sink to hit the failing record", func() bool { return s.calls.Load() > 5 })
		time.Sleep(200 * time.Millisecond)
		committed := committedTotal(t, kc, "memoflow-recsink", "in")
		if committed >= 600 {
			t.Fatalf("txn=%v: committed %d while a record was failing", txn, committed)
		}
		if s.count() > int(committed)+rc.SinkBatchRecords {
			t.Fatalf("txn=%v: wrote %d but committed %d", txn, s.count(), committed)
		}
		s.failures.Store(0)
		waitFor(t, 20*time.Second, "all offsets committed", func() bool {
			return committedTotal(t, kc, "memoflow-recsink", "in") == 600
		})
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		s.mu.Lock()
		for p, keys := range s.written {
			for i := 1; i < len(keys); i++ {
				if keys[i] <= keys[i-1] {
					t.Fatalf("partition %d written out of order: %s after %s", p, keys[i], keys[i-1])
				}
			}
		}
		s.mu.Unlock()
		if s.count() != 600 {
			t.Fatalf("txn=%v: sink wrote %d records, want 600", txn, s.count())
		}
	}
}

// TestFuse: two fused transformers skip the topic between them.
func TestFuse(t *testing.T) {
	_, kc := newCluster(t, 2, "in", "mid", "out", TopicDLQ)
	produceN(t, kc, "in", 0, 300)
	first := &copyStage{out: "mid"}
	second := &copyStage{out: "out"}
	stop := startRunner(t, newTestRunner(t, Fuse(first, second, "mid"), kc, testRunnerConfig(), "in"))
	assertExactlyOnce(t, readCommitted(t, kc, "out", 300, 20*time.Second), 0, 300)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if mid := readCommitted(t, kc, "mid", 0, 200*time.Millisecond); len(mid) != 0 {
		t.Fatalf("fused stages wrote %d records to the topic between them", len(mid))
	}
}

func TestErrorClasses(t *testing.T) {
	base := errors.New("boom")
	for _, tc := range []struct {
		err   error
		class Class
		code  string
	}{
		{Transient(base), ClassTransient, "UNCLASSIFIED"},
		{Poison("X_BAD", base), ClassPoison, "X_BAD"},
		{Fatal(base), ClassFatal, "UNCLASSIFIED"},
		{base, ClassTransient, "UNCLASSIFIED"},
		{errors.Join(errors.New("ctx"), Poison("Y", base)), ClassPoison, "Y"},
	} {
		if got := ClassOf(tc.err); got != tc.class {
			t.Errorf("ClassOf(%v) = %v, want %v", tc.err, got, tc.class)
		}
		if got := CodeOf(tc.err); got != tc.code {
			t.Errorf("CodeOf(%v) = %v, want %v", tc.err, got, tc.code)
		}
		if !errors.Is(tc.err, base) {
			t.Errorf("%v does not wrap its cause", tc.err)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	good := testRunnerConfig()
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		mut  func(*RunnerConfig)
	}{
		{"poll", func(c *RunnerConfig) { c.PollRecords = 0 }},
		{"buffer", func(c *RunnerConfig) { c.MaxBufferedBytes = 10 }},
		{"backoff", func(c *RunnerConfig) { c.RetryMaxBackoff = time.Nanosecond }},
		{"session", func(c *RunnerConfig) { c.SessionTimeout = time.Second }},
		{"replica", func(c *RunnerConfig) { c.ReplicaID = "a b" }},
	} {
		c := good
		tc.mut(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("%s: Validate accepted a bad config", tc.name)
		}
	}
	for _, kc := range []KafkaConfig{
		{Brokers: "localhost", TopicPartitions: 1, TopicReplication: 1, DialTimeout: time.Second},
		{Brokers: "a:1", SASLMechanism: "GSSAPI", TopicPartitions: 1, TopicReplication: 1, DialTimeout: time.Second},
		{Brokers: "a:1", TLSCertFile: "x", TopicPartitions: 1, TopicReplication: 1, DialTimeout: time.Second},
	} {
		if err := kc.Validate(); err == nil {
			t.Errorf("KafkaConfig %+v: Validate accepted it", kc)
		}
	}
}
