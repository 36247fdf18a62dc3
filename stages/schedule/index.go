package schedule

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	bolt "go.etcd.io/bbolt"

	"github.com/memoflow/memoflow/pipeline"
)

// index is the on-disk view of memo.held for the partitions this replica
// owns: per partition, the held and marked messages by messageUUID, the
// held ones by (release time, submission order), and the markers by time.
//
// It is derived only from committed memo.held records, read back by a
// read_committed tail: the stage never writes it directly, so an aborted
// transaction can never leave it ahead of Kafka. Before the stage decides
// anything for a partition it waits (sync) until the tail has applied
// everything it itself emitted there and everything committed before it
// took the partition over.
//
// The file is a cache: it is deleted at start, and a partition's buckets
// are rebuilt from the changelog each time the partition is assigned, so
// it can never disagree with a changelog that was compacted or written by
// another replica meanwhile. Nothing of a held message stays in RAM: bbolt
// pages are file-backed and the kernel can drop them.
type index struct {
	db    *bolt.DB
	opts  []kgo.Opt
	topic string
	log   *slog.Logger

	opMu sync.Mutex // serialises open and close (the tail restarts unlocked)
	mu   sync.Mutex
	cond *sync.Cond
	open map[int32]bool
	next map[int32]int64 // per partition: offset after the last record applied (control records included)
	// rebuildTo: partitions being rebuilt, and the offset that ends it.
	rebuildTo map[int32]int64
	rebuilt   int64
	held      map[int32]int64 // held messages per partition (HELD, not yet released or recalled)
	tailCl    *kgo.Client
	stop      context.CancelFunc
	done      chan struct{}
	err       error
}

var (
	bktMsg    = []byte("msg") // uuid → memo.held value
	bktDue    = []byte("due") // releaseAtMs(8) seq(8) → uuid (held only)
	bktMarker = []byte("mrk") // atMs(8) uuid → nil (markers, for the sweep)
)

func partBucket(p int32) []byte { return fmt.Appendf(nil, "p%05d", p) }

func openIndex(dir string, opts []kgo.Opt, topic string, log *slog.Logger) (*index, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("schedule index: %w", err)
	}
	path := filepath.Join(dir, "held.bolt")
	// A cache: start empty (see the type's comment).
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("schedule index: %w", err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout: 5 * time.Second, NoSync: true, NoFreelistSync: true,
		FreelistType: bolt.FreelistMapType,
	})
	if err != nil {
		return nil, fmt.Errorf("schedule index %s: %w (is another replica using the same --schedule-dir?)", path, err)
	}
	ix := &index{db: db, opts: opts, topic: topic, log: log, open: map[int32]bool{}, next: map[int32]int64{}, rebuildTo: map[int32]int64{}, held: map[int32]int64{}}
	ix.cond = sync.NewCond(&ix.mu)
	return ix, nil
}

func (ix *index) close() {
	ix.opMu.Lock()
	defer ix.opMu.Unlock()
	ix.mu.Lock()
	ix.stopTailLocked()
	ix.mu.Unlock()
	_ = ix.db.Close()
	_ = os.Remove(ix.db.Path())
}

// isOpen reports whether p is being tailed.
func (ix *index) isOpen(p int32) bool {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	return ix.open[p]
}

// openPartitions empties the buckets of ps and tails them from the start
// of memo.held; a partition counts as rebuilt once the tail reached its
// entry in ends.
func (ix *index) openPartitions(ps []int32, ends map[int32]int64) error {
	ix.opMu.Lock()
	defer ix.opMu.Unlock()
	ix.mu.Lock()
	defer ix.mu.Unlock()
	ix.stopTailLocked()
	err := ix.db.Update(func(tx *bolt.Tx) error {
		for _, p := range ps {
			name := partBucket(p)
			if tx.Bucket(name) != nil {
				if err := tx.DeleteBucket(name); err != nil {
					return err
				}
			}
			b, err := tx.CreateBucket(name)
			if err != nil {
				return err
			}
			for _, sub := range [][]byte{bktMsg, bktDue, bktMarker} {
				if _, err := b.CreateBucket(sub); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("schedule index: %w", err)
	}
	for _, p := range ps {
		ix.open[p] = true
		ix.next[p] = 0
		ix.held[p] = 0
		if ends[p] > 0 {
			ix.rebuildTo[p] = ends[p]
		} else {
			ix.rebuilt++
		}
	}
	return ix.startTailLocked()
}

// closePartitions stops tailing ps (revoked or lost); their buckets are
// rebuilt when they come back.
func (ix *index) closePartitions(ps []int32) {
	ix.opMu.Lock()
	defer ix.opMu.Unlock()
	ix.mu.Lock()
	defer ix.mu.Unlock()
	changed := false
	for _, p := range ps {
		if ix.open[p] {
			delete(ix.open, p)
			delete(ix.next, p)
			delete(ix.rebuildTo, p)
			delete(ix.held, p)
			changed = true
		}
	}
	if !changed {
		return
	}
	ix.stopTailLocked()
	if err := ix.startTailLocked(); err != nil {
		ix.err = err
	}
	ix.cond.Broadcast()
}

// The tail client is replaced whenever the set of partitions changes: a
// fetch of a partition that was closed and reopened meanwhile can then
// never be applied to its new buckets.
func (ix *index) stopTailLocked() {
	if ix.tailCl == nil {
		return
	}
	ix.stop()
	cl, done := ix.tailCl, ix.done
	ix.tailCl = nil
	ix.mu.Unlock()
	<-done
	cl.Close()
	ix.mu.Lock()
}

func (ix *index) startTailLocked() error {
	if len(ix.open) == 0 {
		return nil
	}
	parts := map[int32]kgo.Offset{}
	for p := range ix.open {
		parts[p] = kgo.NewOffset().At(ix.next[p])
	}
	cl, err := kgo.NewClient(append(ix.opts,
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{ix.topic: parts}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// Control records advance the position too; without them the
		// tail could not tell it reached a target past a commit marker.
		kgo.KeepControlRecords(),
		// Bounded fetches: a rebuild of millions streams through a few
		// MiB of memory.
		kgo.FetchMaxBytes(4<<20),
		kgo.FetchMaxPartitionBytes(1<<20),
		kgo.MaxConcurrentFetches(2),
	)...)
	if err != nil {
		return fmt.Errorf("schedule index tail: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ix.tailCl, ix.stop, ix.done = cl, cancel, make(chan struct{})
	go ix.tail(ctx, cl, ix.done)
	return nil
}

// tailBatch bounds the records applied in one bbolt transaction: a write
// transaction materialises every page it touches in memory, so this (not
// the number of held messages) bounds the index's heap.
const tailBatch = 2000

func (ix *index) tail(ctx context.Context, cl *kgo.Client, done chan struct{}) {
	defer close(done)
	// The partition set is fixed for this client's life (it is replaced
	// when the set changes), so apply needs no lock.
	ix.mu.Lock()
	next := map[int32]int64{}
	for p := range ix.open {
		next[p] = ix.next[p]
	}
	ix.mu.Unlock()
	for ctx.Err() == nil {
		f := cl.PollRecords(ctx, tailBatch)
		if ctx.Err() != nil {
			return
		}
		f.EachError(func(t string, p int32, err error) {
			ix.log.Warn("schedule index: memo.held fetch error", "partition", p, "err", err)
		})
		deltas := map[int32]int64{}
		err := ix.db.Update(func(tx *bolt.Tx) error {
			var err error
			f.EachRecord(func(r *kgo.Record) {
				cur, ok := next[r.Partition]
				if err != nil || !ok || r.Offset < cur {
					return
				}
				if !r.Attrs.IsControl() {
					var d int64
					d, err = apply(tx.Bucket(partBucket(r.Partition)), r)
					deltas[r.Partition] += d
				}
				next[r.Partition] = r.Offset + 1
			})
			return err
		})
		ix.mu.Lock()
		if err != nil {
			ix.err = fmt.Errorf("schedule index: applying memo.held: %w", err)
		} else {
			for p, d := range deltas {
				ix.held[p] += d
			}
			for p, off := range next {
				if ix.open[p] {
					// syncTo may have moved past a range no consumer
					// receives (see pipeline.EmptyForReadCommitted).
					ix.next[p] = max(ix.next[p], off)
					if t, ok := ix.rebuildTo[p]; ok && ix.next[p] >= t {
						delete(ix.rebuildTo, p)
						ix.rebuilt++
					}
				}
			}
		}
		ix.cond.Broadcast()
		ix.mu.Unlock()
	}
}

// reached reports, without waiting, whether the index has read partition
// p up to target (exclusive).
func (ix *index) reached(p int32, target int64) bool {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	_, rebuilding := ix.rebuildTo[p]
	return ix.open[p] && !rebuilding && ix.next[p] >= target && ix.err == nil
}

// rebuiltCount is how many partition rebuilds have completed.
func (ix *index) rebuiltCount() int64 {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	return ix.rebuilt
}

// apply puts one memo.held record into partition bucket b and returns
// how the number of held messages changed (-1, 0, +1).
func apply(b *bolt.Bucket, r *kgo.Record) (int64, error) {
	msg, due, mrk := b.Bucket(bktMsg), b.Bucket(bktDue), b.Bucket(bktMarker)
	key := r.Key
	var delta int64
	if old := msg.Get(key); old != nil {
		if h, err := decodeHeld(old); err == nil {
			if h.kind == kindHeld {
				delta--
				_ = due.Delete(dueKey(h.releaseAt, h.seq))
			} else {
				_ = mrk.Delete(markerKey(h.at, key))
			}
		}
	}
	if r.Value == nil {
		return delta, msg.Delete(key)
	}
	h, err := decodeHeld(r.Value)
	if err != nil {
		// Written by this stage only; skip rather than stop the index.
		return delta, nil
	}
	if err := msg.Put(key, r.Value); err != nil {
		return delta, err
	}
	if h.kind == kindHeld {
		return delta + 1, due.Put(dueKey(h.releaseAt, h.seq), key)
	}
	return delta, mrk.Put(markerKey(h.at, key), nil)
}

func dueKey(releaseAt, seq int64) []byte {
	k := binary.BigEndian.AppendUint64(make([]byte, 0, 16), uint64(releaseAt))
	return binary.BigEndian.AppendUint64(k, uint64(seq))
}

func markerKey(at int64, uuid []byte) []byte {
	k := binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(uuid)), uint64(at))
	return append(k, uuid...)
}

// errRevoked: a partition was revoked while the stage waited for it.
var errRevoked = errors.New("schedule index: partition revoked")

// syncTo waits until the tail applied every partition up to its target
// offset (exclusive).
func (ix *index) syncTo(ctx context.Context, targets map[int32]int64, timeout time.Duration) error {
	if len(targets) == 0 {
		return nil
	}
	deadline := time.Now().Add(timeout)
	wake := func() { ix.mu.Lock(); ix.cond.Broadcast(); ix.mu.Unlock() }
	stop := context.AfterFunc(ctx, wake)
	defer stop()
	timer := time.AfterFunc(timeout, wake)
	defer timer.Stop()
	// A partition that makes no progress for stallAfter gets one check
	// for a range no read_committed consumer receives.
	const stallAfter = 5 * time.Second
	stallTimer := time.AfterFunc(stallAfter, wake)
	defer stallTimer.Stop()
	progress, last, checked := time.Now(), map[int32]int64{}, map[int32]bool{}
	ix.mu.Lock()
	defer ix.mu.Unlock()
	for {
		if ix.err != nil {
			return ix.err
		}
		behind := int32(-1)
		for p, off := range targets {
			if !ix.open[p] {
				return fmt.Errorf("%w: partition %d", errRevoked, p)
			}
			if ix.next[p] < off {
				behind = p
				if ix.next[p] != last[p] {
					last[p], progress = ix.next[p], time.Now()
				}
				break
			}
		}
		if behind >= 0 && !checked[behind] && time.Since(progress) >= stallAfter {
			checked[behind] = true
			from, to := ix.next[behind], targets[behind]
			ix.mu.Unlock()
			empty, err := pipeline.EmptyForReadCommitted(ctx, ix.opts, ix.topic, behind, from, to, 10*time.Second)
			ix.mu.Lock()
			if err == nil && empty && ix.next[behind] < to {
				ix.log.Warn("schedule index: no committed record between the tail and the target; moving past them (an aborted transaction whose markers are missing)",
					"partition", behind, "from", from, "to", to)
				ix.next[behind] = to
			}
			progress = time.Now()
			stallTimer.Reset(stallAfter)
			continue
		}
		if behind < 0 {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("schedule index: memo.held partition %d not read up to offset %d within %s (at %d)", behind, targets[behind], timeout, ix.next[behind])
		}
		ix.cond.Wait()
	}
}

// stableEnds returns, for ps, memo.held's end offsets once no transaction
// is open on them (last stable offset = high watermark), so a partition
// just taken over is read including whatever its previous owner's last
// transaction committed.
func stableEnds(ctx context.Context, adm *kadm.Client, topic string, ps []int32, timeout time.Duration) (map[int32]int64, error) {
	deadline := time.Now().Add(timeout)
	for {
		lso, err := adm.ListCommittedOffsets(ctx, topic)
		if err != nil {
			return nil, err
		}
		hwm, err := adm.ListEndOffsets(ctx, topic)
		if err != nil {
			return nil, err
		}
		out := map[int32]int64{}
		stable := true
		for _, p := range ps {
			l, ok1 := lso.Lookup(topic, p)
			h, ok2 := hwm.Lookup(topic, p)
			if !ok1 || !ok2 || l.Err != nil || h.Err != nil {
				return nil, fmt.Errorf("memo.held partition %d: no offsets (does the topic have as many partitions as memo.valid?)", p)
			}
			if l.Offset < h.Offset {
				stable = false
			}
			out[p] = l.Offset
		}
		if stable {
			return out, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("memo.held: a transaction stayed open on partitions %v for %s", ps, timeout)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// lookup returns the memo.held value of uuid in partition p (a copy), or nil.
func (ix *index) lookup(p int32, uuid []byte) ([]byte, error) {
	var out []byte
	err := ix.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(partBucket(p))
		if b == nil {
			return nil
		}
		if v := b.Bucket(bktMsg).Get(uuid); v != nil {
			out = append([]byte(nil), v...)
		}
		return nil
	})
	return out, err
}

// due calls fn for held messages of p whose release time is at or before
// nowMs, in release order (release time, then submission order), until fn
// returns false. value is only valid during the call.
func (ix *index) due(p int32, nowMs int64, fn func(uuid, value []byte) bool) error {
	return ix.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(partBucket(p))
		if b == nil {
			return nil
		}
		msg := b.Bucket(bktMsg)
		c := b.Bucket(bktDue).Cursor()
		for k, uuid := c.First(); k != nil; k, uuid = c.Next() {
			if int64(binary.BigEndian.Uint64(k[:8])) > nowMs {
				return nil
			}
			v := msg.Get(uuid)
			if v == nil {
				continue
			}
			if !fn(uuid, v) {
				return nil
			}
		}
		return nil
	})
}

// expiredMarkers calls fn with the uuids of p's markers set before beforeMs.
func (ix *index) expiredMarkers(p int32, beforeMs int64, fn func(uuid []byte) bool) error {
	return ix.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(partBucket(p))
		if b == nil {
			return nil
		}
		c := b.Bucket(bktMarker).Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			if int64(binary.BigEndian.Uint64(k[:8])) >= beforeMs || !fn(k[8:]) {
				return nil
			}
		}
		return nil
	})
}

// heldCount is the number of held messages in the open partitions.
func (ix *index) heldCount() int64 {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	var n int64
	for _, h := range ix.held {
		n += h
	}
	return n
}
