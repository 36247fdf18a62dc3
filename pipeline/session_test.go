package pipeline

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestSessionRestart: when the transaction cannot be ended (the broker is
// unreachable longer than the client's retries), the stage does not stop.
// Run starts a new client with the same transactional id, the open
// transaction is aborted, the batch comes again, and the output is still
// exactly once.
func TestSessionRestart(t *testing.T) {
	c, kc := newCluster(t, 3, "in", "out", TopicDLQ)
	produceN(t, kc, "in", 0, 600)

	// Close the connection of the first EndTxn requests: with one retry
	// and a short retry timeout, End gives up, as after a broker outage.
	var failed atomic.Int32
	const failures = 3
	c.ControlKey(int16(kmsg.EndTxn), func(kmsg.Request) (kmsg.Response, error, bool) {
		if failed.Load() >= failures {
			return nil, nil, false
		}
		c.KeepControl()
		failed.Add(1)
		return nil, errors.New("injected: broker unreachable"), true
	})
	st := &copyStage{out: "out"}
	rc := testRunnerConfig()
	// The new client waits for the aborted transaction's offsets to become
	// stable, up to the transaction timeout: keep it short here.
	rc.TxnTimeout = 2 * time.Second
	r := newTestRunner(t, st, kc, rc, "in",
		WithClientOpts(kgo.RequestRetries(0), kgo.RetryTimeout(500*time.Millisecond)))
	stop := startRunner(t, r)
	recs := readCommitted(t, kc, "out", 600, 60*time.Second)
	if err := stop(); err != nil {
		t.Fatalf("Run returned %v; a failed session must restart, not stop the stage", err)
	}
	if failed.Load() < failures {
		t.Fatalf("only %d EndTxn failures injected; the test did not exercise a session failure", failed.Load())
	}
	assertExactlyOnce(t, recs, 0, 600)
}

// limitedSink bounds its batches (BatchLimiter) and records the largest.
type limitedSink struct {
	recordingSink
	limit   int
	largest atomic.Int64
}

func (s *limitedSink) MaxBatchRecords() int { return s.limit }

func (s *limitedSink) Write(ctx context.Context, b *Batch) error {
	if n := int64(len(b.Records)); n > s.largest.Load() {
		s.largest.Store(n)
	}
	return s.recordingSink.Write(ctx, b)
}

// A stage's own batch limit wins over the runtime's larger one.
func TestBatchLimiter(t *testing.T) {
	_, kc := newCluster(t, 1, "in", TopicDLQ)
	produceN(t, kc, "in", 0, 500)
	st := &limitedSink{limit: 7}
	rc := testRunnerConfig()
	rc.SinkBatchRecords, rc.SinkBatchWait = 300, 200*time.Millisecond
	stop := startRunner(t, newTestRunner(t, st, kc, rc, "in"))
	waitFor(t, 30*time.Second, "500 records written", func() bool { return st.count() == 500 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if l := st.largest.Load(); l > 7 || l == 0 {
		t.Fatalf("largest batch %d, want 1..7", l)
	}
}

// EmptyForReadCommitted: a range with committed records is not empty; a
// range past the last record is; an aborted transaction's range is not
// (its abort marker is received).
func TestEmptyForReadCommitted(t *testing.T) {
	_, kc := newCluster(t, 1, "t")
	produceN(t, kc, "t", 0, 5)
	opts := []kgo.Opt{kgo.SeedBrokers(kc.BrokerList()...)}
	ctx := context.Background()
	for _, tc := range []struct {
		from, to int64
		empty    bool
	}{
		{0, 5, false},
		{4, 5, false},
		{5, 5, true},
		{5, 9, true}, // nothing there (yet)
	} {
		got, err := EmptyForReadCommitted(ctx, opts, "t", 0, tc.from, tc.to, 500*time.Millisecond)
		if err != nil || got != tc.empty {
			t.Errorf("[%d, %d): empty = %v, %v; want %v", tc.from, tc.to, got, err, tc.empty)
		}
	}
	// An aborted transaction: data records skipped, the abort marker kept.
	cl, err := kgo.NewClient(kgo.SeedBrokers(kc.BrokerList()...), kgo.TransactionalID("gap-test"), kgo.DefaultProduceTopic("t"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("aborted")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if err := cl.EndTransaction(ctx, kgo.TryAbort); err != nil {
		t.Fatal(err)
	}
	if got, err := EmptyForReadCommitted(ctx, opts, "t", 0, 5, 7, 2*time.Second); err != nil || got {
		t.Errorf("aborted transaction with its marker: empty = %v, %v; want false (the marker is received)", got, err)
	}
}
