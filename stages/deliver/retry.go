package deliver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
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

	// With a transactional id (TransactionalID), the outcomes and the
	// offsets of a batch of due records commit in one Kafka transaction of
	// txp, so a crash or a failed commit never leaves outcomes without
	// their offsets (which processing the records again would double).
	// newClients makes the consumer (and txp) again after a failure whose
	// outcome is unknown: the new member starts from the committed offsets.
	group      string
	txid       string
	txp        *kgo.Client
	newClients func() (*kgo.Client, *kgo.Client, error)
	topicIDs   map[string][16]byte // TxnOffsetCommit v6+ names topics by id
	hooks      []kgo.Hook          // the consumer's only (ConsumerHooks)

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

// DelayOption configures a delay consumer.
type DelayOption func(*RetryConsumer)

// TransactionalID makes the consumer commit the outcomes of due records and
// their offsets in one Kafka transaction under id (unique per replica and
// stable across its restarts, like a stage's): exactly-once outputs, so an
// event is never produced twice. Without it, outputs are produced and then
// the offsets committed: a crash in between produces them again.
func TransactionalID(id string) DelayOption { return func(rc *RetryConsumer) { rc.txid = id } }

// ConsumerHooks adds hooks (e.g. kprom metrics) to the consumer client
// only: a hook that registers per client must not see the transactional
// producer too.
func ConsumerHooks(h ...kgo.Hook) DelayOption {
	return func(rc *RetryConsumer) { rc.hooks = append(rc.hooks, h...) }
}

// NewRetryConsumer returns a consumer of d's delay topics in group; opts
// carry the brokers and security settings.
func NewRetryConsumer(d *Deliverer, opts []kgo.Opt, group string, dopts ...DelayOption) (*RetryConsumer, error) {
	log := d.log.With("component", "deliver-retry")
	return newDelayConsumer(deliveries{d, log}, d.cfg.RetryTopics(), opts, group, d.now, d.cfg.MaxIdle, d.cfg.RetryPollRecords, d.metrics.retryWaiting, log, dopts...)
}

func newDelayConsumer(h delayHandler, topics []string, opts []kgo.Opt, group string, now func() time.Time, maxIdle time.Duration, poll int, held prometheusGauge, log *slog.Logger, dopts ...DelayOption) (*RetryConsumer, error) {
	rc := &RetryConsumer{h: h, now: now, maxIdle: maxIdle, poll: poll, heldGauge: held, log: log, topics: topics, held: map[tp][]*kgo.Record{}, group: group}
	for _, o := range dopts {
		o(rc)
	}
	lost := func(_ context.Context, _ *kgo.Client, m map[string][]int32) { rc.forget(m) }
	opts = append([]kgo.Opt(nil), opts...)
	rc.newClients = func() (*kgo.Client, *kgo.Client, error) {
		copts := append(opts,
			kgo.ConsumerGroup(group),
			kgo.ConsumeTopics(rc.topics...),
			kgo.DisableAutoCommit(),
			kgo.BlockRebalanceOnPoll(),
			kgo.FetchIsolationLevel(kgo.ReadCommitted()),
			kgo.OnPartitionsRevoked(lost), kgo.OnPartitionsLost(lost),
		)
		if len(rc.hooks) > 0 {
			copts = append(copts, kgo.WithHooks(rc.hooks...))
		}
		if rc.txid != "" {
			// Offsets a transaction of this group has pending are not
			// handed out until it ends: a new member starts after them
			// only if they committed.
			copts = append(copts, kgo.RequireStableFetchOffsets())
		}
		cl, err := kgo.NewClient(copts...)
		if err != nil {
			return nil, nil, fmt.Errorf("deliver: delay consumer: %w", err)
		}
		if rc.txid == "" {
			return cl, nil, nil
		}
		txp, err := kgo.NewClient(append(opts, kgo.TransactionalID(rc.txid), kgo.TransactionTimeout(time.Minute))...)
		if err != nil {
			cl.Close()
			return nil, nil, fmt.Errorf("deliver: delay consumer's transactional producer: %w", err)
		}
		return cl, txp, nil
	}
	cl, txp, err := rc.newClients()
	if err != nil {
		return nil, err
	}
	rc.cl, rc.txp = cl, txp
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
func (rc *RetryConsumer) Close() {
	rc.mu.Lock()
	cl, txp := rc.cl, rc.txp
	rc.mu.Unlock()
	cl.AllowRebalance()
	cl.Close()
	if txp != nil {
		txp.Close()
	}
}

// errRestartClients: a transaction's outcome is unknown or it was aborted
// after the records were consumed; the consumer starts again from the
// committed offsets with new clients.
var errRestartClients = errors.New("delay consumer: transaction not committed; starting again from the committed offsets")

// Run consumes until ctx ends.
func (rc *RetryConsumer) Run(ctx context.Context) error {
	backoff := 100 * time.Millisecond
	for {
		err := rc.run(ctx)
		if !errors.Is(err, errRestartClients) || ctx.Err() != nil {
			return err
		}
		rc.log.Warn("delay consumer: starting new clients", "err", err, "backoff", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 10*time.Second)
		// Leave the group first (a member blocking rebalances cannot
		// leave), so the new member does not wait out the old one.
		rc.cl.AllowRebalance()
		rc.cl.Close()
		if rc.txp != nil {
			rc.txp.Close()
		}
		cl, txp, nerr := rc.newClients()
		if nerr != nil {
			return nerr
		}
		rc.mu.Lock()
		rc.cl, rc.txp = cl, txp
		rc.held = map[tp][]*kgo.Record{}
		rc.mu.Unlock()
	}
}

func (rc *RetryConsumer) run(ctx context.Context) error {
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
// commits their offsets: in one transaction with a TransactionalID (a
// failure restarts the consumer from the committed offsets, so no outcome
// is ever produced twice), else produce then commit (a crash in between
// processes these records again). For deliveries, a push repeated that way
// carries the same idempotency key, and the push journal keeps an
// acknowledged one from being repeated at all.
func (rc *RetryConsumer) process(ctx context.Context, recs []*kgo.Record) error {
	out, err := rc.h.handle(ctx, recs)
	if err != nil {
		return err
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
	if rc.txp != nil && len(out) > 0 {
		return rc.commitTxn(ctx, out, offs)
	}
	if len(out) > 0 {
		if err := rc.cl.ProduceSync(ctx, out...).FirstErr(); err != nil {
			return fmt.Errorf("deliver: delayed outcomes: %w", err)
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

// commitTxn produces out and commits offs in one transaction, as a
// consume-transform-produce loop does (AddOffsetsToTxn, TxnOffsetCommit
// with this member's generation, EndTxn). Any failure aborts if it can and
// returns errRestartClients: the records were consumed, so only a new
// member reading the committed offsets knows whether to process them again.
func (rc *RetryConsumer) commitTxn(ctx context.Context, out []*kgo.Record, offs map[string]map[int32]kgo.EpochOffset) error {
	// The work is done; ending its transaction must not be cut short by
	// shutdown (an unended transaction holds the partitions' offsets
	// until it times out).
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	fail := func(step string, err error) error {
		if aerr := rc.txp.EndTransaction(ctx, kgo.TryAbort); aerr != nil {
			rc.log.Warn("delay consumer: abort failed", "err", aerr)
		}
		return fmt.Errorf("%w: %s: %w", errRestartClients, step, err)
	}
	if err := rc.txp.BeginTransaction(); err != nil {
		return fmt.Errorf("%w: begin: %w", errRestartClients, err)
	}
	if err := rc.txp.ProduceSync(ctx, out...).FirstErr(); err != nil {
		return fail("produce outcomes", err)
	}
	id, epoch, err := rc.txp.ProducerID(ctx)
	if err != nil {
		return fail("producer id", err)
	}
	member, gen := rc.cl.GroupMetadata()
	add := kmsg.NewPtrAddOffsetsToTxnRequest()
	add.TransactionalID, add.ProducerID, add.ProducerEpoch, add.Group = rc.txid, id, epoch, rc.group
	ar, err := add.RequestWith(ctx, rc.txp)
	if err == nil {
		err = kerr.ErrorForCode(ar.ErrorCode)
	}
	if err != nil {
		return fail("add offsets to transaction", err)
	}
	if err := rc.lookupTopicIDs(ctx, offs); err != nil {
		return fail("topic ids", err)
	}
	tc := kmsg.NewPtrTxnOffsetCommitRequest()
	tc.TransactionalID, tc.Group, tc.ProducerID, tc.ProducerEpoch = rc.txid, rc.group, id, epoch
	tc.Generation, tc.MemberID = gen, member
	for t, ps := range offs {
		rt := kmsg.NewTxnOffsetCommitRequestTopic()
		rt.Topic, rt.TopicID = t, rc.topicIDs[t]
		for p, o := range ps {
			rp := kmsg.NewTxnOffsetCommitRequestTopicPartition()
			rp.Partition, rp.Offset, rp.LeaderEpoch = p, o.Offset, o.Epoch
			rt.Partitions = append(rt.Partitions, rp)
		}
		tc.Topics = append(tc.Topics, rt)
	}
	tr, err := tc.RequestWith(ctx, rc.txp)
	if err == nil {
		for _, t := range tr.Topics {
			for _, p := range t.Partitions {
				if perr := kerr.ErrorForCode(p.ErrorCode); perr != nil && err == nil {
					err = fmt.Errorf("%s/%d: %w", t.Topic, p.Partition, perr)
				}
			}
		}
	}
	if err != nil {
		return fail("commit offsets in transaction", err)
	}
	if err := rc.txp.EndTransaction(ctx, kgo.TryCommit); err != nil {
		// Committed or not: the new member's stable offset fetch tells.
		return fmt.Errorf("%w: end transaction: %w", errRestartClients, err)
	}
	return nil
}

// lookupTopicIDs fills rc.topicIDs for the topics of offs it lacks.
func (rc *RetryConsumer) lookupTopicIDs(ctx context.Context, offs map[string]map[int32]kgo.EpochOffset) error {
	var missing []string
	for t := range offs {
		if _, ok := rc.topicIDs[t]; !ok {
			missing = append(missing, t)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	md, err := kadm.NewClient(rc.txp).Metadata(ctx, missing...)
	if err != nil {
		return err
	}
	if rc.topicIDs == nil {
		rc.topicIDs = map[string][16]byte{}
	}
	for _, t := range missing {
		d, ok := md.Topics[t]
		if !ok || d.Err != nil {
			return fmt.Errorf("topic %s: no metadata (%v)", t, d.Err)
		}
		rc.topicIDs[t] = d.ID
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
