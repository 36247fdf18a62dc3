package validate

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/memoflow/memoflow/pipeline"
)

// Dedup makes messageUUID the idempotency key: the same uuid with the same
// content again is dropped (the sender already has its receipt), with
// different content it is rejected with CodeUUIDReused.
//
// State: every verdict is written to the compacted topic memo.dedup (key =
// messageUUID, partitioned like memo.ingest) in the same transaction as the
// stage's outputs, so the changelog holds exactly what was committed. Each
// replica tails the whole topic (read_committed) into a bounded in-memory
// index. Before a batch, Sync waits until the tail has read everything
// committed so far on the batch's partitions, so a replica that just took a
// partition over knows what its previous owner decided.
//
// A record processed again after an aborted transaction or a crash finds an
// entry with its own partition and offset: it is the same record, not a
// duplicate.
//
// The window: the index keeps the newest MaxEntries uuids (and the topic
// keeps Retention); older uuids are forgotten and would be accepted again.
type Dedup struct {
	opts    []kgo.Opt     // the connection options, for gap checks
	gapWait time.Duration // how long a gap check waits for a record
	cl      *kgo.Client
	adm     *kadm.Client
	topic   string
	log     *slog.Logger
	max     int
	cancel  context.CancelFunc
	done    chan struct{}

	mu   sync.Mutex
	cond *sync.Cond
	idx  map[[16]byte]dedupEntry
	ring [][16]byte // insertion order, for eviction
	head int
	next map[int32]int64 // per partition: offset after the last record read (control records included)
	err  error
}

type dedupEntry struct {
	hash      uint64 // first 8 bytes of the content's SHA-256
	partition int32
	offset    int64
	invalid   bool
	code      string // first error code of an invalid message
}

// DedupConfig configures the index.
type DedupConfig struct {
	Topic      string
	MaxEntries int
}

// NewDedup starts tailing the dedup topic. Close stops it.
func NewDedup(opts []kgo.Opt, cfg DedupConfig, log *slog.Logger) (*Dedup, error) {
	if cfg.Topic == "" {
		cfg.Topic = pipeline.TopicDedup
	}
	if cfg.MaxEntries <= 0 {
		return nil, errors.New("dedup: MaxEntries must be positive")
	}
	cl, err := kgo.NewClient(append(opts,
		kgo.ConsumeTopics(cfg.Topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// Control records (commit/abort markers) advance the position
		// too; without them the tail could never tell it reached the
		// last stable offset.
		kgo.KeepControlRecords(),
	)...)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	d := &Dedup{
		opts: opts, gapWait: 10 * time.Second, cl: cl, adm: kadm.NewClient(cl), topic: cfg.Topic, log: log, max: cfg.MaxEntries,
		cancel: cancel, done: make(chan struct{}),
		idx: make(map[[16]byte]dedupEntry), next: map[int32]int64{},
	}
	d.cond = sync.NewCond(&d.mu)
	go d.tail(ctx)
	return d, nil
}

// Close stops the tail.
func (d *Dedup) Close() {
	d.cancel()
	<-d.done
	d.cl.Close()
}

func (d *Dedup) tail(ctx context.Context) {
	defer close(d.done)
	for ctx.Err() == nil {
		f := d.cl.PollFetches(ctx)
		f.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.Canceled) {
				d.log.Warn("dedup tail fetch error", "partition", p, "err", err)
			}
		})
		d.mu.Lock()
		f.EachRecord(func(r *kgo.Record) {
			if r.Offset+1 > d.next[r.Partition] {
				d.next[r.Partition] = r.Offset + 1
			}
			if r.Attrs.IsControl() {
				return
			}
			key, ok := parseUUID(string(r.Key))
			if !ok {
				return
			}
			e, err := decodeEntry(r.Value)
			if err != nil {
				d.log.Warn("dedup: unreadable entry", "offset", r.Offset, "err", err)
				return
			}
			d.putLocked(key, e)
		})
		d.cond.Broadcast()
		d.mu.Unlock()
	}
}

func (d *Dedup) putLocked(key [16]byte, e dedupEntry) {
	if _, ok := d.idx[key]; !ok {
		if len(d.ring) < d.max {
			d.ring = append(d.ring, key)
		} else {
			delete(d.idx, d.ring[d.head])
			d.ring[d.head] = key
			d.head = (d.head + 1) % d.max
		}
	}
	d.idx[key] = e
}

// Sync waits until the tail has read every committed entry of the given
// partitions (the partition numbers of memo.ingest and memo.dedup agree:
// same key, same partition count).
func (d *Dedup) Sync(ctx context.Context, partitions map[int32]bool) error {
	ends, err := d.adm.ListCommittedOffsets(ctx, d.topic)
	if err != nil {
		return pipeline.Transient(fmt.Errorf("dedup: list offsets: %w", err))
	}
	starts, err := d.adm.ListStartOffsets(ctx, d.topic)
	if err != nil {
		return pipeline.Transient(fmt.Errorf("dedup: list offsets: %w", err))
	}
	target := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if partitions[o.Partition] && o.Err == nil {
			if s, ok := starts.Lookup(d.topic, o.Partition); ok && s.Offset >= o.Offset {
				return // empty partition (or everything deleted): nothing to read
			}
			target[o.Partition] = o.Offset
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	wake := func() { d.mu.Lock(); d.cond.Broadcast(); d.mu.Unlock() }
	stop := context.AfterFunc(ctx, wake)
	defer stop()
	timer := time.AfterFunc(time.Until(deadline), wake)
	defer timer.Stop()
	// A stalled partition gets a gap check (see confirmGap) after
	// stallAfter without progress.
	const stallAfter = 5 * time.Second
	stallTimer := time.AfterFunc(stallAfter, wake)
	defer stallTimer.Stop()
	progress := time.Now()
	last := map[int32]int64{}
	checked := map[int32]bool{}
	d.mu.Lock()
	defer d.mu.Unlock()
	for {
		var behind []int32
		for p, off := range target {
			if d.next[p] < off {
				behind = append(behind, p)
				if d.next[p] != last[p] {
					last[p], progress = d.next[p], time.Now()
				}
			}
		}
		if len(behind) == 0 {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().After(deadline) {
			return pipeline.Transient(errors.New("dedup: the index did not catch up with memo.dedup within 30s"))
		}
		if time.Since(progress) >= stallAfter {
			for _, p := range behind {
				if checked[p] {
					continue
				}
				checked[p] = true
				from, to := d.next[p], target[p]
				d.mu.Unlock()
				gap, err := d.confirmGap(ctx, p, from, to)
				d.mu.Lock()
				if err != nil {
					d.log.Warn("dedup: gap check failed", "partition", p, "err", err)
					continue
				}
				if gap && d.next[p] < to {
					d.log.Warn("dedup: no committed record between the tail and the last stable offset; moving past them (an aborted transaction whose markers are missing)",
						"partition", p, "from", from, "to", to)
					d.next[p] = to
				}
			}
			progress = time.Now()
			stallTimer.Reset(stallAfter)
		}
		d.cond.Wait()
	}
}

// confirmGap: see pipeline.EmptyForReadCommitted.
func (d *Dedup) confirmGap(ctx context.Context, p int32, from, to int64) (bool, error) {
	return pipeline.EmptyForReadCommitted(ctx, d.opts, d.topic, p, from, to, d.gapWait)
}

// verdict is what Check decided for one record.
type verdict uint8

const (
	verdictNew      verdict = iota // first time: process it
	verdictSame                    // same uuid, same content, other record: drop it
	verdictConflict                // same uuid, different content: reject it
)

// Check looks up uuid for the record at (partition, offset) with content
// hash sum, and returns the earlier entry when there is one.
func (d *Dedup) Check(uuid string, sum [32]byte, partition int32, offset int64) (verdict, dedupEntry) {
	key, ok := parseUUID(uuid)
	if !ok {
		return verdictNew, dedupEntry{}
	}
	d.mu.Lock()
	e, found := d.idx[key]
	d.mu.Unlock()
	switch {
	case !found, e.partition == partition && e.offset == offset:
		return verdictNew, dedupEntry{}
	case e.hash == binary.BigEndian.Uint64(sum[:8]):
		return verdictSame, e
	default:
		return verdictConflict, e
	}
}

// Record returns the memo.dedup record of a verdict and puts it in the
// local index at once (the tail would bring it back after the commit).
func (d *Dedup) Record(uuid string, sum [32]byte, partition int32, offset int64, invalid bool, code string) *kgo.Record {
	e := dedupEntry{hash: binary.BigEndian.Uint64(sum[:8]), partition: partition, offset: offset, invalid: invalid, code: code}
	if key, ok := parseUUID(uuid); ok {
		d.mu.Lock()
		d.putLocked(key, e)
		d.mu.Unlock()
	}
	return &kgo.Record{Topic: d.topic, Key: []byte(uuid), Value: encodeEntry(e)}
}

// Size is the number of uuids in the index.
func (d *Dedup) Size() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.idx)
}

func encodeEntry(e dedupEntry) []byte {
	b := make([]byte, 0, 32+len(e.code))
	b = append(b, 1) // format
	b = binary.BigEndian.AppendUint64(b, e.hash)
	b = binary.AppendVarint(b, int64(e.partition))
	b = binary.AppendVarint(b, e.offset)
	var flags byte
	if e.invalid {
		flags = 1
	}
	b = append(b, flags)
	b = binary.AppendUvarint(b, uint64(len(e.code)))
	return append(b, e.code...)
}

var errBadEntry = errors.New("malformed dedup entry")

func decodeEntry(b []byte) (dedupEntry, error) {
	var e dedupEntry
	if len(b) < 10 || b[0] != 1 {
		return e, errBadEntry
	}
	e.hash = binary.BigEndian.Uint64(b[1:9])
	b = b[9:]
	p, n := binary.Varint(b)
	if n <= 0 {
		return e, errBadEntry
	}
	b = b[n:]
	off, n := binary.Varint(b)
	if n <= 0 || len(b) < n+1 {
		return e, errBadEntry
	}
	b = b[n:]
	e.partition, e.offset, e.invalid = int32(p), off, b[0]&1 != 0
	b = b[1:]
	l, n := binary.Uvarint(b)
	if n <= 0 || uint64(len(b)-n) < l {
		return e, errBadEntry
	}
	e.code = string(b[n : n+int(l)])
	return e, nil
}

// parseUUID reads a textual UUID in any case into 16 bytes.
func parseUUID(s string) ([16]byte, bool) {
	var u [16]byte
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return u, false
	}
	var hexs [32]byte
	j := 0
	for i := 0; i < 36; i++ {
		if i == 8 || i == 13 || i == 18 || i == 23 {
			continue
		}
		c := s[i]
		if 'A' <= c && c <= 'F' {
			c += 'a' - 'A'
		}
		hexs[j] = c
		j++
	}
	if _, err := hex.Decode(u[:], hexs[:]); err != nil {
		return u, false
	}
	return u, true
}
