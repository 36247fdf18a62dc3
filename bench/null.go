package bench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/memoflow/memoflow/pipeline"
)

// NullOptions configure the null pipeline: the ceiling a run is measured
// against. It has the real run's shape (records produced into a first
// topic, then Hops exactly-once copy stages through the runtime, same
// record sizes and partitions, same broker) and does no work: no HTTP, no
// LZMA, no parsing, no ClickHouse.
type NullOptions struct {
	Kafka       pipeline.KafkaConfig
	Records     int
	Hops        int
	Partitions  int
	Sizes       []uint32 // value sizes, cycled (the run's message sizes)
	PollRecords int
	// Transactions as the real stages run (exactly-once by default).
	Transactions bool
	// Sink adds a last hop that consumes the last topic and writes only
	// event records (deliver: its output is the push, the events and the
	// receipt, not another message topic).
	Sink bool
	// EventBytes > 0: every hop also writes one record of that size per
	// message to an events topic, as the stages write memo.events (and
	// deliver memo.receipts).
	EventBytes int
}

// NullResult is the ceiling.
type NullResult struct {
	Records    int     `json:"records"`
	Hops       int     `json:"hops"`
	Seconds    float64 `json:"seconds"`
	MsgsPerSec float64 `json:"msgs_per_s"`
	MBPerSec   float64 `json:"mb_per_s"`
	// CPUSeconds this process used while the records went through (the
	// hops run here; so does the embedded broker when there is one).
	CPUSeconds float64 `json:"cpu_seconds"`
}

// RunNull runs the null pipeline once on fresh topics and deletes them.
func RunNull(ctx context.Context, o NullOptions) (*NullResult, error) {
	if o.Records <= 0 || o.Hops <= 0 || o.Partitions <= 0 || len(o.Sizes) == 0 {
		return nil, errors.New("bench null: records, hops, partitions and sizes must be positive")
	}
	if o.PollRecords <= 0 {
		o.PollRecords = 5000
	}
	base, err := o.Kafka.ClientOpts()
	if err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(append(base, kgo.MaxBufferedBytes(256<<20), kgo.ProducerLinger(2*time.Millisecond))...)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	run := fmt.Sprint(time.Now().UnixNano())
	stagesN := o.Hops
	if o.Sink {
		stagesN++
	}
	topics := make([]string, o.Hops+1, o.Hops+2)
	for i := range topics {
		topics[i] = fmt.Sprintf("bench.null.%s.%d", run, i)
	}
	evTopic := ""
	if o.EventBytes > 0 {
		evTopic = fmt.Sprintf("bench.null.%s.events", run)
		topics = append(topics, evTopic)
	}
	if _, err := adm.CreateTopics(ctx, int32(o.Partitions), 1, nil, topics...); err != nil {
		return nil, fmt.Errorf("bench null: create topics: %w", err)
	}
	defer func() { _, _ = adm.DeleteTopics(context.Background(), topics...) }()

	maxSize := uint32(0)
	total := int64(0)
	for i := 0; i < o.Records; i++ {
		sz := o.Sizes[i%len(o.Sizes)]
		maxSize = max(maxSize, sz)
		total += int64(sz)
	}
	// Values are slices of one buffer, half random and half repeated text,
	// so compression (if the client enables it) sees MeMo-like entropy.
	rng := rand.New(rand.NewPCG(7, 7))
	pool := make([]byte, maxSize)
	for i := range pool {
		if i%2 == 0 {
			pool[i] = byte(rng.Uint32())
		} else {
			pool[i] = "<memo:Message>"[i%14]
		}
	}

	var wg sync.WaitGroup
	errs := make(chan error, stagesN)
	hctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ev := make([]byte, o.EventBytes)
	for i := range ev {
		ev[i] = "event-row:"[i%10]
	}
	for h := 0; h < stagesN; h++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			group := fmt.Sprintf("bench-null-%s-%d", run, h)
			st := &benchCopy{events: evTopic, ev: ev}
			if h < o.Hops {
				st.out = topics[h+1]
			}
			if err := runtimeHop(hctx, o.Kafka, topics[h], group, o.Records, o.PollRecords, o.Transactions, st); err != nil && !errors.Is(err, context.Canceled) {
				errs <- fmt.Errorf("null hop %d: %w", h, err)
				cancel()
			}
		}()
	}
	// Let the hops join their groups first: the real stages are running
	// before the load starts too.
	if err := waitGroupsStable(ctx, adm, run, stagesN); err != nil {
		cancel()
		wg.Wait()
		return nil, err
	}
	cpu0, _, _ := SelfStats{}.Read(ctx)
	start := time.Now()
	var perr atomic.Value
	for i := 0; i < o.Records; i++ {
		sz := o.Sizes[i%len(o.Sizes)]
		k := fmt.Appendf(make([]byte, 0, 36), "%08x-0000-4000-8000-%012x", rng.Uint32(), i)
		cl.Produce(ctx, &kgo.Record{Topic: topics[0], Key: k, Value: pool[:sz]}, func(_ *kgo.Record, err error) {
			if err != nil {
				perr.CompareAndSwap(nil, err)
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		cancel()
		wg.Wait()
		return nil, err
	}
	if e := perr.Load(); e != nil {
		cancel()
		wg.Wait()
		return nil, e.(error)
	}
	wg.Wait()
	select {
	case err := <-errs:
		return nil, err
	default:
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	secs := time.Since(start).Seconds()
	cpu1, _, _ := SelfStats{}.Read(ctx)
	return &NullResult{Records: o.Records, Hops: stagesN, Seconds: secs, CPUSeconds: cpu1 - cpu0,
		MsgsPerSec: float64(o.Records) / secs, MBPerSec: float64(total) / secs / 1e6}, nil
}

// waitGroupsStable waits until every hop's group has a member with its
// partitions (at most 30 s).
func waitGroupsStable(ctx context.Context, adm *kadm.Client, run string, hops int) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		ds, err := adm.DescribeGroups(ctx)
		if err == nil {
			stable := 0
			for name, g := range ds {
				if strings.HasPrefix(name, "bench-null-"+run) && g.State == "Stable" && len(g.Members) > 0 {
					stable++
				}
			}
			if stable >= hops {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return errors.New("bench null: the copy stages did not join their groups within 30s")
}
