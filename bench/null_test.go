package bench

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/memoflow/memoflow/pipeline"
	"github.com/memoflow/memoflow/schemas/records"
)

func kfakeCluster(t *testing.T, topics ...string) pipeline.KafkaConfig {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(4, topics...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return pipeline.KafkaConfig{Brokers: c.ListenAddrs()[0], ClientID: "bench-test", DialTimeout: 5 * time.Second, TopicPartitions: 4, TopicReplication: 1}
}

// TestRunNull: two exactly-once hops carry every record; the rate is
// positive and the topics are gone afterwards.
func TestRunNull(t *testing.T) {
	kc := kfakeCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	r, err := RunNull(ctx, NullOptions{Kafka: kc, Records: 3000, Hops: 2, Partitions: 4, Sizes: []uint32{100, 3000, 200},
		PollRecords: 500, Transactions: true})
	if err != nil {
		t.Fatal(err)
	}
	if r.Records != 3000 || r.Hops != 2 || r.MsgsPerSec <= 0 || r.MBPerSec <= 0 {
		t.Fatalf("null result %+v", r)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(kc.Brokers))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	tds, err := kadm.NewClient(cl).ListTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range tds.Names() {
		if strings.HasPrefix(name, "bench.null.") {
			t.Errorf("topic %s left behind", name)
		}
	}
	// The whole pipeline's shape: a consuming last hop (deliver) and an
	// event record per message and hop; every hop must see every record.
	w, err := RunNull(ctx, NullOptions{Kafka: kc, Records: 2000, Hops: 2, Sink: true, EventBytes: 256, Partitions: 4,
		Sizes: []uint32{100, 3000}, PollRecords: 500, Transactions: true})
	if err != nil {
		t.Fatal(err)
	}
	if w.Hops != 3 || w.Records != 2000 {
		t.Fatalf("whole-pipeline null result %+v", w)
	}
	if _, err := RunNull(ctx, NullOptions{Kafka: kc, Records: 10, Hops: 0, Partitions: 4, Sizes: []uint32{1}}); err == nil {
		t.Fatal("zero hops accepted")
	}
}

// TestTopicArrival: a watch started before the records sees each
// committed envelope once, with its acceptance time; records before the
// watch started are not reported.
func TestTopicArrival(t *testing.T) {
	kc := kfakeCluster(t, pipeline.TopicValid)
	ctx := context.Background()
	cl, err := kgo.NewClient(kgo.SeedBrokers(kc.Brokers))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	produce := func(i int, acceptedMs int64) {
		u := fmt.Sprintf("00000000-0000-4000-8000-%012d", i)
		env := records.Envelope{MessageUUID: u, ReceivedAtMs: acceptedMs}
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: pipeline.TopicValid, Key: []byte(u), Value: env.Append(nil)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	produce(999, 1) // before the watch: not an arrival of this run
	var mu sync.Mutex
	var got []Arrival
	ta := &TopicArrival{Brokers: kc.Brokers, Topic: pipeline.TopicValid}
	stop, err := ta.Start(ctx, func(a Arrival) { mu.Lock(); got = append(got, a); mu.Unlock() })
	if err != nil {
		t.Fatal(err)
	}
	acc := time.Now().Add(-time.Second).UnixMilli()
	for i := 0; i < 50; i++ {
		produce(i, acc)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n >= 50 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if len(got) != 50 {
		t.Fatalf("%d arrivals, want 50", len(got))
	}
	for _, a := range got {
		if a.AcceptedAtMs != acc || formatUUID(a.UUID) == "00000000-0000-4000-8000-000000000999" {
			t.Fatalf("arrival %+v", a)
		}
	}
}
