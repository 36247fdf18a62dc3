package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// newCluster starts an in-process kfake cluster with the given topics.
func newCluster(t testing.TB, partitions int32, topics ...string) (*kfake.Cluster, KafkaConfig) {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, topics...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	kc := KafkaConfig{Brokers: c.ListenAddrs()[0], ClientID: "test", DialTimeout: 5 * time.Second, TopicPartitions: int(partitions), TopicReplication: 1}
	return c, kc
}

func testRunnerConfig() RunnerConfig {
	return RunnerConfig{
		PollRecords: 200, MaxBufferedBytes: 8 << 20, FetchMaxBytes: 4 << 20,
		Transactions: true, SinkBatchRecords: 300, SinkBatchWait: 50 * time.Millisecond,
		RetryMinBackoff: 5 * time.Millisecond, RetryMaxBackoff: 50 * time.Millisecond,
		SessionTimeout: 6 * time.Second, TxnTimeout: 10 * time.Second, ReplicaID: "r0",
	}
}

func quietLogger() *slog.Logger {
	if os.Getenv("MEMOFLOW_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(discard{}, nil))
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

func newTestRunner(t testing.TB, st Stage, kc KafkaConfig, rc RunnerConfig, in string, opts ...Option) *Runner {
	t.Helper()
	opts = append([]Option{WithLogger(quietLogger()), WithMetrics(NewMetrics(prometheus.NewRegistry()))}, opts...)
	r, err := NewRunner(st, []string{in}, kc, rc, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// startRunner runs r in the background; the returned stop cancels it and
// returns Run's error.
func startRunner(t testing.TB, r *Runner) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(30 * time.Second):
				err = fmt.Errorf("runner did not stop within 30s")
			}
		})
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

// produceN writes n records key k%06d, value v%06d to topic.
func produceN(t testing.TB, kc KafkaConfig, topic string, from, n int) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(kc.BrokerList()...), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	recs := make([]*kgo.Record, 0, n)
	for i := from; i < from+n; i++ {
		recs = append(recs, &kgo.Record{Key: fmt.Appendf(nil, "k%06d", i), Value: fmt.Appendf(nil, "v%06d", i)})
	}
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// readCommitted returns every committed record of topic (read_committed),
// waiting until at least want arrived or the timeout passed.
func readCommitted(t testing.TB, kc KafkaConfig, topic string, want int, timeout time.Duration) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(kc.BrokerList()...), kgo.ConsumeTopics(topic),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var out []*kgo.Record
	deadline := time.Now().Add(timeout)
	for len(out) < want && time.Now().Before(deadline) {
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		f := cl.PollFetches(ctx)
		cancel()
		f.EachRecord(func(r *kgo.Record) { out = append(out, r) })
	}
	// Drain a little longer to catch duplicates beyond want.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	for {
		f := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			break
		}
		f.EachRecord(func(r *kgo.Record) { out = append(out, r) })
	}
	return out
}

// committedTotal sums the group's committed offsets on topic.
func committedTotal(t testing.TB, kc KafkaConfig, group, topic string) int64 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(kc.BrokerList()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	offs, err := kadm.NewClient(cl).FetchOffsets(context.Background(), group)
	if errors.Is(err, kerr.GroupIDNotFound) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	var sum int64
	offs.Each(func(o kadm.OffsetResponse) {
		if o.Topic == topic && o.At > 0 {
			sum += o.At
		}
	})
	return sum
}

// assertExactlyOnce checks keys k000000..k(n-1) each appear exactly once.
func assertExactlyOnce(t testing.TB, recs []*kgo.Record, from, n int) {
	t.Helper()
	seen := make(map[string]int, n)
	for _, r := range recs {
		seen[string(r.Key)]++
	}
	var missing, dups int
	for i := from; i < from+n; i++ {
		switch c := seen[fmt.Sprintf("k%06d", i)]; {
		case c == 0:
			missing++
		case c > 1:
			dups += c - 1
		}
	}
	if missing != 0 || dups != 0 || len(recs) != n {
		t.Fatalf("want %d records exactly once; got %d records, %d missing, %d duplicates", n, len(recs), missing, dups)
	}
}

func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
