package pipeline

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// copyStage copies every record to out, upper-casing nothing: the smallest
// real Transformer. Optional knobs make it slow or failing.
type copyStage struct {
	out       string
	delay     time.Duration
	seen      atomic.Int64
	poisonKey []byte       // records with this key are rejected
	failFirst atomic.Int64 // transient failures before succeeding
	onBatch   func(n int)  // called per successful batch
	fatal     atomic.Bool  // return a fatal error
	revoked   atomic.Int64 // partitions revoked (RevokeListener)
}

func (c *copyStage) Name() string { return "copy" }

// PartitionsRevoked makes copyStage a RevokeListener.
func (c *copyStage) PartitionsRevoked(m map[string][]int32) {
	for _, ps := range m {
		c.revoked.Add(int64(len(ps)))
	}
}

func (c *copyStage) Transform(ctx context.Context, b *Batch) error {
	if c.fatal.Load() {
		return Fatal(errors.New("configured to fail"))
	}
	if c.failFirst.Load() > 0 {
		c.failFirst.Add(-1)
		return Transient(errors.New("downstream unavailable"))
	}
	if c.delay > 0 {
		time.Sleep(c.delay)
	}
	for _, r := range b.Records {
		if c.poisonKey != nil && bytes.Equal(r.Key, c.poisonKey) {
			b.Reject(r, Poison("TEST_POISON", errors.New("cannot copy this record")))
			continue
		}
		b.Emit(&kgo.Record{Topic: c.out, Key: r.Key, Value: r.Value})
	}
	c.seen.Add(int64(len(b.Records)))
	if c.onBatch != nil {
		c.onBatch(len(b.Records))
	}
	return nil
}

// recordingSink keeps what it wrote, in order per partition, and can fail
// on a given key a number of times.
type recordingSink struct {
	mu       sync.Mutex
	written  map[int32][]string
	failKey  []byte
	failures atomic.Int64
	calls    atomic.Int64
}

func (s *recordingSink) Name() string { return "recsink" }

func (s *recordingSink) Write(ctx context.Context, b *Batch) error {
	s.calls.Add(1)
	for _, r := range b.Records {
		if s.failKey != nil && bytes.Equal(r.Key, s.failKey) && s.failures.Load() > 0 {
			s.failures.Add(-1)
			return Transient(errors.New("external system refused the write"))
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.written == nil {
		s.written = map[int32][]string{}
	}
	for _, r := range b.Records {
		s.written[r.Partition] = append(s.written[r.Partition], string(r.Key))
	}
	return nil
}

func (s *recordingSink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, w := range s.written {
		n += len(w)
	}
	return n
}
