package deliver

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// copyHandler makes one output per due record (what a delivery's events
// are to the redelivery schedule) and counts its calls.
type copyHandler struct{ calls, records atomic.Int64 }

func (*copyHandler) dueAt(*kgo.Record) int64 { return 0 }
func (h *copyHandler) handle(_ context.Context, recs []*kgo.Record) ([]*kgo.Record, error) {
	h.calls.Add(1)
	h.records.Add(int64(len(recs)))
	out := make([]*kgo.Record, len(recs))
	for i, r := range recs {
		out[i] = &kgo.Record{Topic: "delay-out", Key: r.Key, Value: r.Value}
	}
	return out, nil
}

// TestDelayConsumerTransactions: with a transactional id, the outputs of
// due records and their offsets commit together. When the offset commit
// inside the transaction fails (here: the coordinator answers
// ILLEGAL_GENERATION once, as after a rebalance), the transaction is
// aborted, the consumer starts again from the committed offsets and
// processes those records again: a read_committed reader sees every output
// exactly once. (Without transactions the outputs of that batch would be
// produced twice.)
func TestDelayConsumerTransactions(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "delay-in", "delay-out"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	var failed atomic.Bool
	c.ControlKey(int16(kmsg.TxnOffsetCommit), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if failed.Load() {
			return nil, nil, false
		}
		failed.Store(true)
		r := req.(*kmsg.TxnOffsetCommitRequest)
		resp := r.ResponseKind().(*kmsg.TxnOffsetCommitResponse)
		for _, rt := range r.Topics {
			st := kmsg.NewTxnOffsetCommitResponseTopic()
			st.Topic = rt.Topic
			for _, rp := range rt.Partitions {
				sp := kmsg.NewTxnOffsetCommitResponseTopicPartition()
				sp.Partition = rp.Partition
				sp.ErrorCode = kerr.IllegalGeneration.Code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	opts := []kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...)}
	prod, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const n = 200
	for i := range n {
		if err := prod.ProduceSync(ctx, &kgo.Record{Topic: "delay-in", Key: []byte(fmt.Sprint(i)), Value: []byte(fmt.Sprint(i))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	h := &copyHandler{}
	rc, err := newDelayConsumer(h, []string{"delay-in"}, opts, "delay-group", time.Now, 50*time.Millisecond, 50, noGauge{}, quiet(), TransactionalID("delay-group-r1"))
	if err != nil {
		t.Fatal(err)
	}
	rctx, rcancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- rc.Run(rctx) }()

	reader, err := kgo.NewClient(append(opts, kgo.ConsumeTopics("delay-out"), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	seen := map[string]int{}
	for len(seen) < n && ctx.Err() == nil {
		reader.PollFetches(ctx).EachRecord(func(r *kgo.Record) { seen[string(r.Value)]++ })
	}
	// A moment for a stray second copy to show itself.
	pctx, pcancel := context.WithTimeout(ctx, time.Second)
	reader.PollFetches(pctx).EachRecord(func(r *kgo.Record) { seen[string(r.Value)]++ })
	pcancel()
	rcancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	rc.Close()
	if !failed.Load() {
		t.Fatal("the injected commit failure never happened")
	}
	twice := 0
	for _, k := range seen {
		if k > 1 {
			twice++
		}
	}
	if len(seen) != n || twice != 0 {
		t.Fatalf("%d of %d outputs, %d of them more than once", len(seen), n, twice)
	}
	if h.records.Load() <= n {
		t.Fatalf("the handler saw %d records: the aborted batch was not processed again", h.records.Load())
	}
	// The group's committed offsets cover every input.
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Group = "delay-group"
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	var committed int64
	for _, rt := range resp.Topics {
		for _, rp := range rt.Partitions {
			committed += rp.Offset
		}
	}
	if committed != n {
		t.Fatalf("committed offsets sum to %d, want %d", committed, n)
	}
}
