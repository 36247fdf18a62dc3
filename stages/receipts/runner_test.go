package receipts

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/memoflow/memoflow/pipeline"
	"github.com/memoflow/memoflow/schemas/records"
)

// crashingSink stores a batch and then dies before the runtime can commit
// it, the n-th time it is called: a SIGKILL between the insert and the
// offset commit, as the runtime sees it.
type crashingSink struct {
	*Sink
	crashOn int
	calls   atomic.Int32
}

func (c *crashingSink) Write(ctx context.Context, b *pipeline.Batch) error {
	if err := c.Sink.Write(ctx, b); err != nil {
		return err
	}
	if int(c.calls.Add(1)) == c.crashOn {
		return pipeline.Fatal(errors.New("simulated crash after the insert"))
	}
	return nil
}

type kafkaRig struct {
	brokers string
	kc      pipeline.KafkaConfig
	rc      pipeline.RunnerConfig
}

func newKafkaRig(t *testing.T) kafkaRig {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, topic, pipeline.TopicDLQ))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	brokers := c.ListenAddrs()[0]
	return kafkaRig{
		brokers: brokers,
		kc:      pipeline.KafkaConfig{Brokers: brokers, ClientID: "t", DialTimeout: 5 * time.Second, TopicPartitions: 3, TopicReplication: 1},
		rc: pipeline.RunnerConfig{PollRecords: 100, MaxBufferedBytes: 8 << 20, FetchMaxBytes: 4 << 20, Transactions: true,
			SinkBatchRecords: 60, SinkBatchWait: 30 * time.Millisecond, RetryMinBackoff: 10 * time.Millisecond, RetryMaxBackoff: 100 * time.Millisecond,
			SessionTimeout: 6 * time.Second, TxnTimeout: 10 * time.Second, ReplicaID: "r"},
	}
}

func (k kafkaRig) client(t *testing.T, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(k.brokers)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func (k kafkaRig) produce(t *testing.T, recs []*kgo.Record) {
	t.Helper()
	for _, r := range recs {
		r.Partition, r.Offset = 0, 0 // the key partitions them
	}
	if err := k.client(t).ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// run runs stage until the group has committed everything in the topic,
// or until the stage stops by itself; it returns Run's error.
func (k kafkaRig) run(t *testing.T, stage pipeline.Stage) error {
	t.Helper()
	r, err := pipeline.NewRunner(stage, []string{topic}, k.kc, k.rc,
		pipeline.WithLogger(quietLogger()), pipeline.WithMetrics(pipeline.NewMetrics(prometheus.NewRegistry())))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	adm := kadm.NewClient(k.client(t))
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-done:
			return err
		case <-time.After(50 * time.Millisecond):
		}
		if k.caughtUp(t, adm, r.Group()) {
			cancel()
			return <-done
		}
	}
	t.Fatal("the stage did not catch up within 30 s")
	return nil
}

func (k kafkaRig) caughtUp(t *testing.T, adm *kadm.Client, group string) bool {
	ctx := context.Background()
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return false
	}
	committed, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		return false
	}
	ok := true
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset == 0 {
			return
		}
		c, found := committed.Lookup(topic, o.Partition)
		ok = ok && found && c.At >= o.Offset
	})
	return ok
}

func (k kafkaRig) dlq(t *testing.T) map[string]int {
	t.Helper()
	cl := k.client(t, kgo.ConsumeTopics(pipeline.TopicDLQ), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	codes := map[string]int{}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	for ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			for _, h := range r.Headers {
				if h.Key == "memoflow.dlq.code" {
					codes[string(h.Value)]++
				}
			}
		})
	}
	return codes
}

// TestRunner runs the sink through the pipeline runtime on in-process
// Kafka: a lost insert answer (retried by the runtime), a crash after an
// insert and before its commit, a restart, duplicates produced again and
// poison records; every receipt ends up stored once and the poison in the
// DLQ.
func TestRunner(t *testing.T) {
	f := newFixture(t)
	k := newKafkaRig(t)
	g := gen{senders: 5}

	first := g.records(0, 0, 0, 300, 1)
	poison := []*kgo.Record{
		{Topic: topic, Key: []byte("sys-0"), Value: []byte("{not json")},
		records.NewReceiptRecord(topic, &records.Receipt{TransmissionID: "t", ReceiptStatus: "LOST", SenderSystem: "sys-1"}),
	}
	k.produce(t, append(first, poison...))

	// Run 1: the first insert's answer is lost (the runtime retries the
	// batch), and the process dies after its third batch is stored.
	lossy := &lossyConn{Conn: f.conn, written: true, lose: 1}
	crashing := &crashingSink{Sink: f.sinkOn(t, lossy), crashOn: 3}
	if err := k.run(t, crashing); pipeline.ClassOf(err) != pipeline.ClassFatal {
		t.Fatalf("run 1 = %v, want the simulated crash", err)
	}
	if lossy.inserts < 3 {
		t.Fatalf("run 1 made %d inserts, want at least 3 (one lost, retried, more)", lossy.inserts)
	}

	// Run 2: a new process takes over from the last commit; meanwhile a
	// producer re-sent 50 receipts (same ids, new offsets, later times).
	again := make([]*kgo.Record, 50)
	for i := range again {
		rc := g.receipt(i * 3)
		at, _ := time.Parse(time.RFC3339Nano, rc.TimeStamp)
		rc.TimeStamp = records.TimeStampOf(at.Add(5 * time.Minute))
		again[i] = records.NewReceiptRecord(topic, rc)
	}
	k.produce(t, append(again, g.records(0, 0, 300, 100, 1)...))
	if err := k.run(t, f.sink(t)); err != nil {
		t.Fatalf("run 2: %v", err)
	}
	f.checkExactlyOnce(t, 400)
	if codes := k.dlq(t); codes[CodeDecode] != 1 || codes[CodeInvalid] != 1 || len(codes) != 2 {
		t.Fatalf("DLQ codes %v, want one %s and one %s", codes, CodeDecode, CodeInvalid)
	}
}
