package validate

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/memoflow/memoflow/pipeline"
	"github.com/memoflow/memoflow/schemas/records"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// runValidate runs the stage with dedup over kfake until want records are
// on memo.valid+memo.receipts, then stops it.
func runValidate(t *testing.T, brokers string) {
	t.Helper()
	d, err := NewDedup([]kgo.Opt{kgo.SeedBrokers(brokers)}, DedupConfig{MaxEntries: 1000}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	s := newStage(t)
	s.Dedup = d
	kc := pipeline.KafkaConfig{Brokers: brokers, ClientID: "t", DialTimeout: 5 * time.Second, TopicPartitions: 3, TopicReplication: 1}
	rc := pipeline.RunnerConfig{PollRecords: 100, MaxBufferedBytes: 8 << 20, FetchMaxBytes: 4 << 20, Transactions: true,
		SinkBatchRecords: 1, SinkBatchWait: time.Second, RetryMinBackoff: 10 * time.Millisecond, RetryMaxBackoff: 100 * time.Millisecond,
		SessionTimeout: 6 * time.Second, TxnTimeout: 10 * time.Second, ReplicaID: "r"}
	r, err := pipeline.NewRunner(s, []string{pipeline.TopicIngest}, kc, rc, pipeline.WithLogger(quiet()), pipeline.WithMetrics(pipeline.NewMetrics(prometheus.NewRegistry())))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	// Wait until the group has committed everything produced so far.
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if lagZero(t, brokers) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func lagZero(t *testing.T, brokers string) bool {
	cl, _ := kgo.NewClient(kgo.SeedBrokers(brokers))
	defer cl.Close()
	total := int64(0)
	ends := map[int32]int64{}
	for _, c := range readAll(t, brokers, pipeline.TopicIngest, false) {
		if c.Offset+1 > ends[c.Partition] {
			ends[c.Partition] = c.Offset + 1
		}
	}
	for _, e := range ends {
		total += e
	}
	return committed(t, cl) == total
}

func produce(t *testing.T, brokers string, recs ...*kgo.Record) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

func readAll(t *testing.T, brokers, topic string, committedOnly bool) []*kgo.Record {
	opts := []kgo.Opt{kgo.SeedBrokers(brokers), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())}
	if committedOnly {
		opts = append(opts, kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var out []*kgo.Record
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	for ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) { out = append(out, r) })
	}
	return out
}

func TestIdempotencyAcrossRestarts(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, pipeline.TopicIngest, pipeline.TopicValid,
		pipeline.TopicEvents, pipeline.TopicReceipts, pipeline.TopicDLQ, pipeline.TopicDedup))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	brokers := c.ListenAddrs()[0]
	body := memoXML("")
	other := strings.Replace(body, "<memo:label>Test</memo:label>", "<memo:label>Other</memo:label>", 1)

	// The same message twice and once with other content under one uuid.
	produce(t, brokers, ingestRecord(body, false), ingestRecord(body, false), ingestRecord(other, false))
	runValidate(t, brokers)
	if n := len(readAll(t, brokers, pipeline.TopicValid, true)); n != 1 {
		t.Fatalf("memo.valid holds %d, want 1 (the duplicate dropped)", n)
	}
	rcs := readAll(t, brokers, pipeline.TopicReceipts, true)
	if len(rcs) != 1 {
		t.Fatalf("%d receipts, want the one INVALID for the reused uuid", len(rcs))
	}
	var rc records.Receipt
	_ = records.DecodeReceipt(rcs[0].Value, &rc)
	if rc.ErrorCode != string(CodeUUIDReused) || rc.ReceiptStatus != records.StatusInvalid {
		t.Fatalf("receipt %+v", rc)
	}

	// After a restart (a new index loaded from memo.dedup) a resend is
	// still recognised.
	produce(t, brokers, ingestRecord(body, false))
	runValidate(t, brokers)
	if n := len(readAll(t, brokers, pipeline.TopicValid, true)); n != 1 {
		t.Fatalf("after restart memo.valid holds %d, want still 1", n)
	}
}

// A batch processed again (transient retry, aborted transaction) is the
// same records, not duplicates.
func TestDedupSameRecordIsNotDuplicate(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, pipeline.TopicDedup))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	d, err := NewDedup([]kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...)}, DedupConfig{MaxEntries: 10}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	s := newStage(t)
	s.Dedup = d
	rec := ingestRecord(memoXML(""), false)
	rec.Partition, rec.Offset = 1, 42
	for i := 0; i < 2; i++ {
		b := &pipeline.Batch{Records: []*kgo.Record{rec}}
		if err := s.Transform(context.Background(), b); err != nil {
			t.Fatal(err)
		}
		if n := len(byTopic(b.Outputs())[pipeline.TopicValid]); n != 1 {
			t.Fatalf("attempt %d: %d valid outputs, want 1", i+1, n)
		}
	}
}

func TestDedupEviction(t *testing.T) {
	d := &Dedup{max: 2, idx: map[[16]byte]dedupEntry{}}
	for i := byte(0); i < 5; i++ {
		d.putLocked([16]byte{i}, dedupEntry{offset: int64(i)})
	}
	if len(d.idx) != 2 {
		t.Fatalf("index holds %d, want 2", len(d.idx))
	}
	if _, ok := d.idx[[16]byte{4}]; !ok {
		t.Fatal("newest entry evicted")
	}
}

func TestEntryCodec(t *testing.T) {
	e := dedupEntry{hash: 0xdeadbeef, partition: 7, offset: 1 << 40, invalid: true, code: "XSD_PATTERN"}
	got, err := decodeEntry(encodeEntry(e))
	if err != nil || got != e {
		t.Fatalf("got %+v, %v", got, err)
	}
	for _, bad := range [][]byte{nil, {2}, encodeEntry(e)[:12]} {
		if _, err := decodeEntry(bad); err == nil {
			t.Errorf("decodeEntry(%x) accepted", bad)
		}
	}
}

func committed(t *testing.T, cl *kgo.Client) int64 {
	offs, err := kadm.NewClient(cl).FetchOffsets(context.Background(), "memoflow-validate")
	if err != nil {
		return -1
	}
	var sum int64
	offs.Each(func(o kadm.OffsetResponse) {
		if o.Topic == pipeline.TopicIngest {
			sum += o.At
		}
	})
	return sum
}

// confirmGap tells a range with committed records (the tail will get them:
// keep waiting) from a range a read_committed consumer gets nothing from
// (aborted data whose markers a crashed broker never wrote: move past it).
// Sync uses it for partitions that stall; the chaos scenario found the
// stall after a SIGKILL of the embedded broker.
func TestConfirmGap(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, pipeline.TopicDedup))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.DefaultProduceTopic(pipeline.TopicDedup))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for i := range 5 {
		if err := cl.ProduceSync(context.Background(), &kgo.Record{Key: []byte{byte(i)}, Value: []byte("x")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	d, err := NewDedup([]kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...)}, DedupConfig{MaxEntries: 10}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	d.gapWait = time.Second
	for _, tc := range []struct {
		from, to int64
		gap      bool
	}{
		{0, 5, false}, // records there
		{3, 5, false},
		{5, 5, true}, // nothing below 5 from 5 on
	} {
		gap, err := d.confirmGap(context.Background(), 0, tc.from, tc.to)
		if err != nil || gap != tc.gap {
			t.Errorf("confirmGap(%d, %d) = %v, %v; want %v", tc.from, tc.to, gap, err, tc.gap)
		}
	}
}
