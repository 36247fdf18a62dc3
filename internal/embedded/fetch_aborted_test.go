package embedded

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestReadCommittedSkipsAbortedAtResponseLimit is the reproduction of the
// live-path defect behind the 1M chaos run's double counts: a live
// read_committed consumer whose fetch response filled up (the request's
// MaxBytes) in the middle of a partition received records of aborted
// transactions, because the broker stopped before it listed the aborted
// transactions of that partition (third_party/kfake/PATCHES.md). A consumer
// that is behind (a backlog larger than FetchMaxBytes) hits that limit on
// every fetch, which is why it showed under load.
//
// One producer writes transactions to two partitions, every other one
// aborted; consumers with a request limit of a few batches must read
// exactly the committed ones, for a range of limits that put the cut at
// every position of a transaction.
func TestReadCommittedSkipsAbortedAtResponseLimit(t *testing.T) {
	b, err := Start(Config{Port: 0, DataDir: t.TempDir(), CleanerBackoffMs: 30000})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	addr := b.Addrs()[0]
	const topic = "aborted-at-limit"
	const txns = 60
	value := strings.Repeat("v", 400)

	p, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.TransactionalID("aborter"),
		kgo.DefaultProduceTopic(topic), kgo.AllowAutoTopicCreation(),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(0))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	committed := map[string]bool{}
	for i := range txns {
		if err := p.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		commit := i%2 == 1
		// Several batches per partition and transaction: each produce is
		// flushed before the next, so every record is a batch of its own.
		for j := range 3 {
			for part := range int32(2) {
				key := fmt.Sprintf("t%03d-p%d-%d", i, part, j)
				if err := p.ProduceSync(ctx, &kgo.Record{Partition: part, Key: []byte(key), Value: []byte(value)}).FirstErr(); err != nil {
					t.Fatal(err)
				}
				if commit {
					committed[key] = true
				}
			}
		}
		if err := p.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
			t.Fatal(err)
		}
	}

	for _, maxBytes := range []int32{1, 600, 1200, 1800, 2500, 4000, 9000} {
		t.Run(fmt.Sprintf("max-bytes-%d", maxBytes), func(t *testing.T) {
			c, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics(topic),
				kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
				kgo.FetchIsolationLevel(kgo.ReadCommitted()),
				kgo.FetchMaxBytes(maxBytes), kgo.FetchMaxPartitionBytes(maxBytes))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			seen := map[string]int{}
			good := 0
			deadline := time.Now().Add(time.Minute)
			for good < len(committed) && time.Now().Before(deadline) {
				pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
				fs := c.PollFetches(pctx)
				pcancel()
				fs.EachRecord(func(r *kgo.Record) {
					if seen[string(r.Key)]++; seen[string(r.Key)] == 1 && committed[string(r.Key)] {
						good++
					}
				})
			}
			var aborted, twice []string
			for k, n := range seen {
				if !committed[k] {
					aborted = append(aborted, k)
				}
				if n > 1 {
					twice = append(twice, k)
				}
			}
			if len(aborted) > 0 || len(twice) > 0 || good < len(committed) {
				t.Fatalf("read %d of %d committed records; %d records of aborted transactions (%v); %d twice",
					good, len(committed), len(aborted), head(aborted), len(twice))
			}
		})
	}
}
