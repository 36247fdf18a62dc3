// Package chsink holds what the exactly-once ClickHouse sinks (eventlog,
// receipts) share: the per-partition bookkeeping that decides which
// batches must be checked against ClickHouse before inserting.
//
// Every row a sink inserts carries its Kafka lineage (partition, offset).
// A batch whose partition history the sink knows (it wrote everything up to
// its last acknowledged offset itself) is inserted without a look; any other
// batch (the first after a start, after a revoke, after a failed write, or a
// re-delivery at or below what was acknowledged) is checked for rows that
// are already there. See stages/eventlog/DESIGN.md.
package chsink

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/memoflow/memoflow/pipeline"
)

// Span is the offset range of one partition in a batch.
type Span struct{ Lo, Hi int64 }

// Offsets is one sink's partition bookkeeping. It is not safe for
// concurrent use: the sinks hold their own lock around Write and
// PartitionsRevoked.
type Offsets struct {
	sink  string
	topic string
	// known holds, for each partition whose history this sink knows, the
	// highest offset ClickHouse has acknowledged (or that was found there).
	// A partition not in known has an unknown outcome: never seen since
	// start, revoked, or part of a failed write.
	known map[int32]int64
	// horizon holds, for a partition checked since it became unknown, the
	// highest offset found in ClickHouse beyond that check's batch: rows a
	// previous owner wrote past its last commit. Batches up to there are
	// checked too, even though the partition is known.
	horizon map[int32]int64
	spans   map[int32]Span
}

// NewOffsets returns empty bookkeeping for the sink named sink (used in
// error messages).
func NewOffsets(sink string) *Offsets {
	return &Offsets{sink: sink, known: map[int32]int64{}, horizon: map[int32]int64{}, spans: map[int32]Span{}}
}

// Begin records the offset range of each partition in the batch and
// checks that the batch comes from one topic: the lineage columns have no
// topic, so two topics would collide (a fatal error).
func (o *Offsets) Begin(recs []*kgo.Record) error {
	clear(o.spans)
	for _, r := range recs {
		if o.topic == "" {
			o.topic = r.Topic
		} else if r.Topic != o.topic {
			return pipeline.Fatal(fmt.Errorf("%s consumes one topic (%s) but got a record of %s", o.sink, o.topic, r.Topic))
		}
		sp, ok := o.spans[r.Partition]
		if !ok {
			sp = Span{r.Offset, r.Offset}
		}
		sp.Lo, sp.Hi = min(sp.Lo, r.Offset), max(sp.Hi, r.Offset)
		o.spans[r.Partition] = sp
	}
	return nil
}

// ToCheck returns the partitions of the batch whose rows may already be in
// ClickHouse: not known, re-delivered at or below what was acknowledged
// (the runtime retries a batch whose commit failed), or not yet past a
// horizon; every partition when all is set (nil if none).
func (o *Offsets) ToCheck(all bool) map[int32]Span {
	var out map[int32]Span
	for p, sp := range o.spans {
		hz, beyond := o.horizon[p]
		if acked, ok := o.known[p]; ok && sp.Lo > acked && (!beyond || sp.Lo > hz) && !all {
			continue
		}
		if out == nil {
			out = map[int32]Span{}
		}
		out[p] = sp
	}
	return out
}

// Unseen returns, of check, the partitions this sink has no history for:
// a previous owner may have written past this batch, so the sink should
// look for its horizon (SetHorizon).
func (o *Offsets) Unseen(check map[int32]Span) map[int32]Span {
	var out map[int32]Span
	for p, sp := range check {
		if _, ok := o.known[p]; ok {
			continue // re-delivered to this sink: it wrote nothing past known[p]
		}
		if out == nil {
			out = map[int32]Span{}
		}
		out[p] = sp
	}
	return out
}

// SetHorizon records the highest offset of partition p found in ClickHouse
// beyond the batch.
func (o *Offsets) SetHorizon(p int32, off int64) { o.horizon[p] = off }

// Failed marks the batch's partitions unknown after a failed write: some
// of its rows may be in ClickHouse.
func (o *Offsets) Failed() {
	for p := range o.spans {
		delete(o.known, p)
	}
}

// Done marks the batch acknowledged. Once a batch starts past a horizon,
// the previous owner's rows are behind: that partition needs no more
// checks.
func (o *Offsets) Done() {
	for p, sp := range o.spans {
		if prev, ok := o.known[p]; !ok || sp.Hi > prev {
			o.known[p] = sp.Hi
		}
		if hz, ok := o.horizon[p]; ok && sp.Lo > hz {
			delete(o.horizon, p)
		}
	}
}

// Revoked forgets the partitions another consumer may write before they
// come back (pipeline.RevokeListener).
func (o *Offsets) Revoked(revoked map[string][]int32) {
	for topic, ps := range revoked {
		if o.topic != "" && topic != o.topic {
			continue
		}
		for _, p := range ps {
			delete(o.known, p)
			delete(o.horizon, p)
		}
	}
}
