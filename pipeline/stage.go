// Package pipeline is memoflow's stage runtime over franz-go: it consumes a
// topic as a member of a consumer group, hands batches of records to a stage,
// produces what the stage emits, and commits. Stages never touch Kafka
// clients: they see a Batch and return an error class. See DESIGN.md.
package pipeline

import (
	"context"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Stage names a unit of work; the name labels metrics, logs, the consumer
// group ("memoflow-<name>") and the transactional id.
type Stage interface {
	Name() string
}

// Transformer is a Kafka→Kafka stage. It reads b.Records and calls b.Emit for
// every output record (events and receipts included). The runtime produces
// the outputs and commits the consumed offsets in one transaction, so a
// Transformer must be a pure function of its input: on a retry or an aborted
// transaction it is called again with the same records.
//
// Return nil when the batch is done, Transient(err) to have the whole batch
// retried after a backoff, Fatal(err) to stop the stage. A single bad record
// is b.Reject(r, Poison(code, err)): it goes to the DLQ and the rest goes on.
type Transformer interface {
	Stage
	Transform(ctx context.Context, b *Batch) error
}

// Sink is a stage whose effect is outside Kafka (ClickHouse, HTTP). Write
// returns nil only when the effect of every record in b is durably done
// (acknowledged); only then are the offsets committed. On Transient errors
// the same batch is written again (so effects must be idempotent), and the
// runtime never commits past a record that was neither written nor rejected.
// A Sink may Emit records too (events, receipts); they are produced and
// flushed before the commit.
type Sink interface {
	Stage
	Write(ctx context.Context, b *Batch) error
}

// BatchLimiter is implemented by stages that want smaller batches than the
// runtime's PollRecords / SinkBatchRecords: a sink whose effect cannot be
// undone (an HTTP push) repeats after a crash what its uncommitted batch
// did, so it bounds the batch. 0 means no limit of its own.
type BatchLimiter interface {
	MaxBatchRecords() int
}

// RevokeListener is implemented by stages that keep per-partition state
// (for example what a sink knows an external system already holds). The
// runtime calls PartitionsRevoked when partitions are revoked or lost, so
// the stage treats them as unknown when they come back.
type RevokeListener interface {
	PartitionsRevoked(map[string][]int32)
}

// CoPartitioned is implemented by stages whose inputs are co-partitioned:
// partition p of every input topic carries the same keys, and the stage
// keeps state per partition number, so one member must own partition p of
// all its inputs at once. The runner then uses the range balancer, which
// hands out equal partition numbers of equally sized topics together
// (cooperative-sticky, the default, does not).
type CoPartitioned interface {
	CoPartitioned()
}

// Batch is the unit crossing the stage boundary: the records of one or more
// polls, in per-partition order, and what the stage emitted for them.
type Batch struct {
	Records []*kgo.Record

	out      []*kgo.Record
	rejected []rejection
}

type rejection struct {
	rec *kgo.Record
	err error
}

// Emit queues an output record. Topic must be set; Key decides the partition.
func (b *Batch) Emit(r *kgo.Record) { b.out = append(b.out, r) }

// Reject sends r to the dead-letter topic with err's code and message in
// headers. The stage goes on with the other records.
func (b *Batch) Reject(r *kgo.Record, err error) {
	b.rejected = append(b.rejected, rejection{r, err})
}

// Outputs returns what was emitted so far (for tests and fused stages).
func (b *Batch) Outputs() []*kgo.Record { return b.out }

// Rejected returns the number of rejected records so far.
func (b *Batch) Rejected() int { return len(b.rejected) }

// reset empties the outputs so a retried batch starts clean.
func (b *Batch) reset() {
	clear(b.out)
	b.out = b.out[:0]
	b.rejected = b.rejected[:0]
}
