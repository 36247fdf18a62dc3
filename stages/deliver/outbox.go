package deliver

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	bolt "go.etcd.io/bbolt"

	"github.com/memoflow/memoflow/schemas/records"
)

// The outbox is the post waiting for recipient systems to pull: a
// compacted changelog topic (memo.outbox, key "<system>/<uuid>") that is
// the source of truth, materialised by every pull API replica into an
// on-disk bbolt index. Memory does not grow with the waiting post: entries
// live on disk, and bodies above the claim-check threshold live in the blob
// store (the entry carries the reference).
//
// Value: format byte 1, a flags byte, the Envelope. Flags: flagDeleted
// (picked up; the body is dropped), flagReceipted (the system sent its
// business receipt). A deleted and receipted entry stays as a small marker
// so a second receipt answers 409.
const (
	outboxFormat  = 1
	flagDeleted   = 1
	flagReceipted = 2
)

// OutboxKey is the changelog key of a message in a system's outbox.
func OutboxKey(system, uuid string) []byte { return []byte(system + "/" + uuid) }

// OutboxRecord is the memo.outbox record putting env (Destination set) in
// its system's outbox.
func OutboxRecord(env *records.Envelope) *kgo.Record {
	return &kgo.Record{Topic: TopicOutbox, Key: OutboxKey(env.Destination, env.MessageUUID), Value: outboxValue(env, 0)}
}

// deliveredMarker is the memo.outbox record of a message delivered to a
// system that answers with receipt files: a picked-up marker (no body,
// never listed) under the system's key, which the pull API's receipt path
// needs to relay the system's receipt to the sender.
func deliveredMarker(env *records.Envelope, sys *System) *kgo.Record {
	e := *env
	e.Destination, e.WantVersion, e.Body = sys.ID, sys.WantVersion, nil
	return &kgo.Record{Topic: TopicOutbox, Key: OutboxKey(e.Destination, e.MessageUUID), Value: outboxValue(&e, flagDeleted)}
}

func outboxValue(env *records.Envelope, flags byte) []byte {
	b := make([]byte, 0, 2+env.EncodedLen())
	b = append(b, outboxFormat, flags)
	return env.Append(b)
}

// OutboxEntry is a decoded outbox value.
type OutboxEntry struct {
	Flags byte
	Env   records.Envelope
}

func (e *OutboxEntry) Deleted() bool   { return e.Flags&flagDeleted != 0 }
func (e *OutboxEntry) Receipted() bool { return e.Flags&flagReceipted != 0 }

func decodeOutbox(v []byte, e *OutboxEntry) error {
	if len(v) < 2 || v[0] != outboxFormat {
		return fmt.Errorf("%w: outbox value of %d bytes, format %v", records.ErrMalformed, len(v), v[:min(1, len(v))])
	}
	e.Flags = v[1]
	return e.Env.Decode(v[2:])
}

// Buckets of the index. wait holds the entries a system still lists (not
// deleted), done the deleted markers; both keyed "<system>\x00<uuid>" so a
// system's entries are one contiguous, sorted range. Values carry the
// changelog offset first, so an older record never overwrites a newer one
// (the API applies its own writes at once; the tailer sees them again).
var (
	bucketWait    = []byte("wait")
	bucketDone    = []byte("done")
	bucketCount   = []byte("count")
	bucketOffsets = []byte("offsets")
)

// OutboxStore is the on-disk index of the outbox.
type OutboxStore struct {
	db *bolt.DB
}

// OpenOutboxStore opens (or creates) the index in dir.
func OpenOutboxStore(dir string) (*OutboxStore, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("deliver: outbox store %s: %w", dir, err)
	}
	// The index is a cache of memo.outbox (the topic is the truth, and
	// the index records which offsets it holds in the same transaction),
	// so it does not fsync every write: a process crash loses nothing
	// (the page cache survives it), and a file a machine crash damaged is
	// set aside and rebuilt from the topic.
	path := filepath.Join(dir, "outbox.db")
	opts := &bolt.Options{Timeout: 5 * time.Second, NoFreelistSync: true, NoSync: true, NoGrowSync: true}
	db, err := bolt.Open(path, 0o600, opts)
	if err != nil && !errors.Is(err, bolt.ErrTimeout) {
		if rerr := os.Rename(path, path+".damaged"); rerr == nil {
			db, err = bolt.Open(path, 0o600, opts)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("deliver: outbox store %s: %w (is another pull API using the same --deliver-pull-store-dir?)", dir, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketWait, bucketDone, bucketCount, bucketOffsets} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, err
	}
	return &OutboxStore{db: db}, nil
}

func (s *OutboxStore) Close() error { return s.db.Close() }

func idxKey(system, uuid string) []byte {
	k := make([]byte, 0, len(system)+1+len(uuid))
	k = append(k, system...)
	k = append(k, 0)
	return append(k, uuid...)
}

// applied is one changelog record to apply.
type applied struct {
	key    []byte
	value  []byte // nil: tombstone
	part   int32
	offset int64
}

// apply writes records in one transaction, and the next offsets to read
// when track is set (the tailer; the API's own writes do not move them).
func (s *OutboxStore) apply(recs []applied, track bool) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		wait, done, count, offs := tx.Bucket(bucketWait), tx.Bucket(bucketDone), tx.Bucket(bucketCount), tx.Bucket(bucketOffsets)
		for _, r := range recs {
			if track {
				var pk [4]byte
				binary.BigEndian.PutUint32(pk[:], uint32(r.part))
				var ov [8]byte
				binary.BigEndian.PutUint64(ov[:], uint64(r.offset+1))
				if err := offs.Put(pk[:], ov[:]); err != nil {
					return err
				}
			}
			system, uuid, ok := strings.Cut(string(r.key), "/")
			if !ok {
				continue // not an outbox key; nothing to index
			}
			k := idxKey(system, uuid)
			// Skip what is older than the entry held.
			old := wait.Get(k)
			if old == nil {
				old = done.Get(k)
			}
			if old != nil && int64(binary.BigEndian.Uint64(old[:8])) > r.offset {
				continue
			}
			inWait := wait.Get(k) != nil
			var newWait bool
			switch {
			case r.value == nil:
				if err := wait.Delete(k); err != nil {
					return err
				}
				if err := done.Delete(k); err != nil {
					return err
				}
			case len(r.value) >= 2 && r.value[1]&flagDeleted == 0:
				newWait = true
				if err := wait.Put(k, withOffset(r.offset, r.value)); err != nil {
					return err
				}
			default:
				if err := wait.Delete(k); err != nil {
					return err
				}
				if err := done.Put(k, withOffset(r.offset, r.value)); err != nil {
					return err
				}
			}
			if inWait != newWait {
				n := int64(0)
				if v := count.Get([]byte(system)); v != nil {
					n = int64(binary.BigEndian.Uint64(v))
				}
				if newWait {
					n++
				} else {
					n--
				}
				var v [8]byte
				binary.BigEndian.PutUint64(v[:], uint64(max(n, 0)))
				if err := count.Put([]byte(system), v[:]); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

func withOffset(off int64, v []byte) []byte {
	b := make([]byte, 8+len(v))
	binary.BigEndian.PutUint64(b, uint64(off))
	copy(b[8:], v)
	return b
}

// Get returns a system's entry and the changelog offset it came from.
func (s *OutboxStore) Get(system, uuid string) (e OutboxEntry, found bool, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		k := idxKey(system, uuid)
		v := tx.Bucket(bucketWait).Get(k)
		if v == nil {
			v = tx.Bucket(bucketDone).Get(k)
		}
		if v == nil {
			return nil
		}
		found = true
		// The envelope aliases bbolt's memory, valid only in the
		// transaction: copy.
		return decodeOutbox(bytes.Clone(v[8:]), &e)
	})
	return e, found, err
}

// List returns up to size uuids waiting for system, in uuid order, after
// the uuid after (""= from the start), skipping skip entries first, and
// how many are waiting in all.
func (s *OutboxStore) List(system, after string, skip, size int) (ids []string, total uint64, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketCount).Get([]byte(system)); v != nil {
			total = binary.BigEndian.Uint64(v)
		}
		prefix := idxKey(system, "")
		c := tx.Bucket(bucketWait).Cursor()
		k, _ := c.Seek(idxKey(system, after))
		if after != "" && k != nil && bytes.Equal(k, idxKey(system, after)) {
			k, _ = c.Next()
		}
		for ; k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			if skip > 0 {
				skip--
				continue
			}
			if len(ids) == size {
				break
			}
			ids = append(ids, string(k[len(prefix):]))
		}
		return nil
	})
	return ids, total, err
}

// offsets returns the next offset to read per partition.
func (s *OutboxStore) offsets() (map[int32]int64, error) {
	out := map[int32]int64{}
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketOffsets).ForEach(func(k, v []byte) error {
			out[int32(binary.BigEndian.Uint32(k))] = int64(binary.BigEndian.Uint64(v))
			return nil
		})
	})
	return out, err
}

// Tailer keeps an OutboxStore up to date with memo.outbox: it reads every
// partition (no consumer group: every replica holds the whole index) from
// the offsets the store recorded, so a restart resumes where it stopped.
type Tailer struct {
	store *OutboxStore
	cl    *kgo.Client
	log   *slog.Logger

	done   chan struct{}
	cancel context.CancelFunc
}

// StartTailer starts reading memo.outbox into store. opts are the Kafka
// client options (brokers, TLS, SASL).
func StartTailer(ctx context.Context, store *OutboxStore, opts []kgo.Opt, log *slog.Logger) (*Tailer, error) {
	if log == nil {
		log = slog.Default()
	}
	offs, err := store.offsets()
	if err != nil {
		return nil, err
	}
	adm, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, err
	}
	ends, err := kadm.NewClient(adm).ListEndOffsets(ctx, TopicOutbox)
	adm.Close()
	if err != nil {
		return nil, fmt.Errorf("deliver: outbox partitions: %w", err)
	}
	start := map[int32]kgo.Offset{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			return
		}
		if n, ok := offs[o.Partition]; ok {
			start[o.Partition] = kgo.NewOffset().At(n)
		} else {
			start[o.Partition] = kgo.NewOffset().AtStart()
		}
	})
	if len(start) == 0 {
		return nil, fmt.Errorf("deliver: topic %s has no partitions; create it (memoflow creates the catalogue at start)", TopicOutbox)
	}
	cl, err := kgo.NewClient(append(opts,
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{TopicOutbox: start}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))...)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	t := &Tailer{store: store, cl: cl, log: log, done: make(chan struct{}), cancel: cancel}
	go t.run(ctx)
	return t, nil
}

func (t *Tailer) run(ctx context.Context) {
	defer close(t.done)
	var batch []applied
	for {
		f := t.cl.PollRecords(ctx, 5000)
		if ctx.Err() != nil {
			return
		}
		f.EachError(func(topic string, p int32, err error) {
			t.log.Warn("outbox tailer: fetch failed", "partition", p, "err", err)
		})
		batch = batch[:0]
		f.EachRecord(func(r *kgo.Record) {
			batch = append(batch, applied{key: r.Key, value: r.Value, part: r.Partition, offset: r.Offset})
		})
		if len(batch) > 0 {
			for {
				err := t.store.apply(batch, true)
				if err == nil {
					break
				}
				t.log.Error("outbox tailer: index write failed; retrying", "err", err)
				select {
				case <-ctx.Done():
					return
				case <-time.After(time.Second):
				}
			}
		}
	}
}

// Close stops the tailer.
func (t *Tailer) Close() {
	t.cancel()
	<-t.done
	t.cl.Close()
}
