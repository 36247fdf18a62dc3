package deliver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// RetryConsumer runs the redelivery schedule. It consumes the delay topics
// (Config.RetryTopics) as member of a consumer group. All records of one
// delay topic wait the same gap, so each partition's records fall due in
// order: when the head of a partition is not due yet, the consumer keeps
// the records it already read, pauses the partition and wakes at the
// head's due time. No goroutine sleeps per message, memory is bounded by
// one poll, and the offsets commit only after a record's outcome (the next
// retry, events, receipt) is acknowledged by Kafka, so the schedule
// survives restarts.
type RetryConsumer struct {
	h         delayHandler
	now       func() time.Time
	maxIdle   time.Duration
	poll      int
	heldGauge prometheusGauge
	cl        *kgo.Client
	log       *slog.Logger
	topics    []string

	mu   sync.Mutex
	held map[tp][]*kgo.Record
}

// delayHandler is what a RetryConsumer does with its records: when each
// falls due, and what follows from the due ones (produced before their
// offsets commit).
type delayHandler interface {
	dueAt(r *kgo.Record) int64
	handle(ctx context.Context, recs []*kgo.Record) ([]*kgo.Record, error)
}

type prometheusGauge interface{ Set(float64) }

// deliveries is the delayHandler of the redelivery schedule.
type deliveries struct {
	d   *Deliverer
	log *slog.Logger
}

func (deliveries) dueAt(r *kgo.Record) int64 { return dueAt(r) }

type tp struct {
	topic string
	part  int32
}

// NewRetryConsumer returns a consumer of d's delay topics in group; opts
// carry the brokers and security settings.
func NewRetryConsumer(d *Deliverer, opts []kgo.Opt, group string) (*RetryConsumer, error) {
	log := d.log.With("component", "deliver-retry")
	return newDelayConsumer(deliveries{d, log}, d.cfg.RetryTopics(), opts, group, d.now, d.cfg.MaxIdle, d.cfg.RetryPollRecords, d.metrics.retryWaiting, log)
}

func newDelayConsumer(h delayHandler, topics []string, opts []kgo.Opt, group string, now func() time.Time, maxIdle time.Duration, poll int, held prometheusGauge, log *slog.Logger) (*RetryConsumer, error) {
	rc := &RetryConsumer{h: h, now: now, maxIdle: maxIdle, poll: poll, heldGauge: held, log: log, topics: topics, held: map[tp][]*kgo.Record{}}
	lost := func(_ context.Context, _ *kgo.Client, m map[string][]int32) { rc.forget(m) }
	cl, err := kgo.NewClient(append(opts,
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(rc.topics...),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.OnPartitionsRevoked(lost), kgo.OnPartitionsLost(lost),
	)...)
	if err != nil {
		return nil, fmt.Errorf("deliver: retry consumer: %w", err)
	}
	rc.cl = cl
	return rc, nil
}

// Topics are the delay topics consumed.
func (rc *RetryConsumer) Topics() []string { return rc.topics }

// forget drops what is held for partitions this member no longer owns;
// their new owner reads them again from the committed offsets.
func (rc *RetryConsumer) forget(m map[string][]int32) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for t, ps := range m {
		for _, p := range ps {
			delete(rc.held, tp{t, p})
		}
	}
	rc.cl.ResumeFetchPartitions(m)
}

// dueAt is when a retry record falls due.
func dueAt(r *kgo.Record) int64 {
	// NextAttemptMs sits near the end of the envelope; decoding the whole
	// record is what processing does anyway, and polls are small.
	var it item
	if err := it.env.Decode(r.Value); err != nil {
		return 0 // malformed: due at once, rejected when processed
	}
	return it.env.NextAttemptMs
}

// Close leaves the group.
func (rc *RetryConsumer) Close() { rc.cl.Close() }

// Run consumes until ctx ends.
func (rc *RetryConsumer) Run(ctx context.Context) error {
	for ctx.Err() == nil {
		due, wake := rc.takeDue()
		if len(due) == 0 {
			wait := rc.maxIdle
			if wake > 0 {
				if w := time.Duration(wake-rc.now().UnixMilli()) * time.Millisecond; w < wait {
					wait = max(w, time.Millisecond)
				}
			}
			pctx, cancel := context.WithTimeout(ctx, wait)
			f := rc.cl.PollRecords(pctx, rc.poll)
			cancel()
			if f.IsClientClosed() {
				return nil
			}
			f.EachError(func(t string, p int32, err error) {
				if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
					rc.log.Warn("retry consumer: fetch failed", "topic", t, "partition", p, "err", err)
				}
			})
			due = append(due, rc.split(f)...)
		}
		if len(due) > 0 {
			if err := rc.process(ctx, due); err != nil {
				if ctx.Err() != nil {
					break
				}
				return err
			}
		}
		rc.cl.AllowRebalance()
	}
	return nil
}

// takeDue returns held records that are due now (resuming partitions
// whose held records are all taken) and the earliest due time still held.
func (rc *RetryConsumer) takeDue() (due []*kgo.Record, wake int64) {
	now := rc.now().UnixMilli()
	rc.mu.Lock()
	defer rc.mu.Unlock()
	resume := map[string][]int32{}
	for k, recs := range rc.held {
		i := 0
		for i < len(recs) && rc.h.dueAt(recs[i]) <= now {
			i++
		}
		due = append(due, recs[:i]...)
		if i == len(recs) {
			delete(rc.held, k)
			resume[k.topic] = append(resume[k.topic], k.part)
			continue
		}
		rc.held[k] = recs[i:]
		if w := rc.h.dueAt(recs[i]); wake == 0 || w < wake {
			wake = w
		}
	}
	if len(resume) > 0 {
		rc.cl.ResumeFetchPartitions(resume)
	}
	rc.heldGauge.Set(float64(rc.heldLocked()))
	return due, wake
}

func (rc *RetryConsumer) heldLocked() int {
	n := 0
	for _, r := range rc.held {
		n += len(r)
	}
	return n
}

// split returns the polled records that are due and holds the rest,
// pausing their partitions.
func (rc *RetryConsumer) split(f kgo.Fetches) (due []*kgo.Record) {
	now := rc.now().UnixMilli()
	rc.mu.Lock()
	defer rc.mu.Unlock()
	pause := map[string][]int32{}
	f.EachPartition(func(p kgo.FetchTopicPartition) {
		k := tp{p.Topic, p.Partition}
		for i, r := range p.Records {
			if len(rc.held[k]) > 0 || rc.h.dueAt(r) > now {
				rc.held[k] = append(rc.held[k], p.Records[i:]...)
				pause[p.Topic] = append(pause[p.Topic], p.Partition)
				return
			}
			due = append(due, r)
		}
	})
	if len(pause) > 0 {
		rc.cl.PauseFetchPartitions(pause)
	}
	return due
}

// process hands due records to the handler, produces what follows and
// commits their offsets. A crash between the produce and the commit
// processes these records again: for deliveries, only a push whose outcome
// was not yet committed is ever repeated, with the same idempotency key.
func (rc *RetryConsumer) process(ctx context.Context, recs []*kgo.Record) error {
	out, err := rc.h.handle(ctx, recs)
	if err != nil {
		return err
	}
	if len(out) > 0 {
		if err := rc.cl.ProduceSync(ctx, out...).FirstErr(); err != nil {
			return fmt.Errorf("deliver: delayed outcomes: %w", err)
		}
	}
	offs := map[string]map[int32]kgo.EpochOffset{}
	for _, r := range recs {
		if offs[r.Topic] == nil {
			offs[r.Topic] = map[int32]kgo.EpochOffset{}
		}
		if o, ok := offs[r.Topic][r.Partition]; !ok || r.Offset+1 > o.Offset {
			offs[r.Topic][r.Partition] = kgo.EpochOffset{Epoch: r.LeaderEpoch, Offset: r.Offset + 1}
		}
	}
	var cerr error
	rc.cl.CommitOffsetsSync(ctx, offs, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		cerr = err
		if err == nil {
			for _, t := range resp.Topics {
				for _, p := range t.Partitions {
					if p.ErrorCode != 0 && cerr == nil {
						cerr = fmt.Errorf("commit %s/%d: error code %d", t.Topic, p.Partition, p.ErrorCode)
					}
				}
			}
		}
	})
	if cerr != nil {
		// The outcomes are produced; the records will be processed again
		// by whoever owns the partitions next (same idempotency keys).
		rc.log.Warn("retry consumer: commit failed", "err", cerr)
	}
	return nil
}

func (h deliveries) handle(ctx context.Context, recs []*kgo.Record) ([]*kgo.Record, error) {
	items, bad, errs := decodeItems(recs)
	for i, r := range bad {
		// Not an envelope: nothing can deliver it. Logged and skipped
		// (committed), so it never blocks the partition.
		h.log.Error("retry consumer: malformed record skipped", "topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "code", CodeMalformed, "err", errs[i])
	}
	h.d.run(ctx, items)
	var out []*kgo.Record
	for _, it := range items {
		if it.err != nil {
			return nil, it.err
		}
		out = append(out, it.out...)
	}
	return out, nil
}
