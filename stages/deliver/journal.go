package deliver

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/memoflow/memoflow/pipeline"
)

// The push journal keeps the pushes a crash would otherwise repeat to the
// ones truly in flight at the crash.
//
// A delivery batch commits its offsets, events and receipts in one
// transaction after every push of it was answered. When its process dies
// (or loses its partitions) before that commit, the next owner gets the
// whole batch again, and without more it would push again every message the
// recipient systems had already acknowledged: hundreds of duplicate pushes
// per kill, harmless only because systems deduplicate by the idempotency
// key. So every acknowledged push is also written, at once and outside the
// transaction, to the journal topic (key messageUUID, value attempt and
// time). Every deliver process tails the journal; before it delivers a
// batch it makes sure it has read the journal up to its end, and a message
// the journal says was acknowledged on this attempt is not pushed again:
// its outcome (events, COMPLETED receipt, blob release) is emitted as if
// the push had just been answered, with the journal's time, so the event
// log holds exactly what the first process would have committed.
//
// What remains: a push acknowledged in the last moment before a kill,
// whose journal write had not reached the broker, is repeated, and so is a
// push a live process was still making when its partitions moved; the
// journal is a cache of facts, so a lost record costs a duplicate, never a
// message. It holds the last JournalWindow of acknowledgements in memory
// (about 80 bytes each, BenchmarkJournalMemory); a batch redone later than
// that is pushed again.

// JournalTopic holds one record per acknowledged push.
const JournalTopic = pipeline.TopicPushJournal

// journalValueLen: version byte, attempt (uint16), acknowledged at (Unix ms).
const journalValueLen = 1 + 2 + 8

// journalKey identifies one delivery attempt of one message.
type journalKey struct {
	uuid    uint64 // maphash of the messageUUID
	attempt uint16
}

type journalEntry struct {
	key journalKey
	at  int64 // Unix ms
}

// Journal is the push journal of one deliver process.
type Journal struct {
	prod   *kgo.Client
	tail   *kgo.Client
	adm    *kadm.Client
	window time.Duration
	log    *slog.Logger
	seed   maphash.Seed
	m      *journalMetrics

	mu       sync.Mutex
	acked    map[journalKey]int64
	order    []journalEntry // insertion order, for eviction by age
	head     int
	consumed map[int32]int64 // partition → next offset to read
	changed  chan struct{}   // closed and replaced when consumed moves
	// lastTimeout: the last Sync that gave up; for a minute after it,
	// Syncs wait at most a second.
	lastTimeout time.Time

	cancel context.CancelFunc
	done   chan struct{}
}

// OpenJournal starts the journal over the brokers of opts: an idempotent
// producer for this process's acknowledgements, and a reader of every
// partition from window ago. The topic must exist (pipeline.Catalogue).
func OpenJournal(ctx context.Context, opts []kgo.Opt, window time.Duration, log *slog.Logger, reg prometheus.Registerer) (*Journal, error) {
	if window <= 0 {
		return nil, fmt.Errorf("deliver: push journal window %v: must be positive", window)
	}
	if log == nil {
		log = slog.Default()
	}
	prod, err := kgo.NewClient(append(append([]kgo.Opt(nil), opts...),
		kgo.ProducerLinger(2*time.Millisecond), kgo.RecordRetries(20))...)
	if err != nil {
		return nil, err
	}
	adm := kadm.NewClient(prod)
	since := time.Now().Add(-window).UnixMilli()
	lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	starts, err := adm.ListOffsetsAfterMilli(lctx, since, JournalTopic)
	cancel()
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		prod.Close()
		return nil, fmt.Errorf("deliver: push journal %s: %w", JournalTopic, err)
	}
	consumed := map[int32]int64{}
	parts := map[int32]kgo.Offset{}
	starts.Each(func(o kadm.ListedOffset) {
		consumed[o.Partition] = o.Offset
		parts[o.Partition] = kgo.NewOffset().At(o.Offset)
	})
	if len(parts) == 0 {
		prod.Close()
		return nil, fmt.Errorf("deliver: push journal %s has no partitions (is it created?)", JournalTopic)
	}
	tail, err := kgo.NewClient(append(append([]kgo.Opt(nil), opts...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{JournalTopic: parts}),
		kgo.FetchMaxWait(100*time.Millisecond))...)
	if err != nil {
		prod.Close()
		return nil, err
	}
	j := &Journal{
		prod: prod, tail: tail, adm: adm, window: window, log: log, seed: maphash.MakeSeed(), m: newMetrics(reg).journal,
		acked: map[journalKey]int64{}, consumed: consumed, changed: make(chan struct{}),
		done: make(chan struct{}),
	}
	tctx, tcancel := context.WithCancel(context.WithoutCancel(ctx))
	j.cancel = tcancel
	go j.run(tctx)
	return j, nil
}

func (j *Journal) key(uuid string, attempt uint16) journalKey {
	return journalKey{uuid: maphash.String(j.seed, uuid), attempt: attempt}
}

// Record notes an acknowledged push: in memory at once, in the topic as
// soon as the producer gets it there. A failed write is logged and counted;
// it costs a duplicate push after a crash, nothing else.
func (j *Journal) Record(uuid string, attempt uint16, at time.Time) {
	ms := at.UnixMilli()
	j.remember(j.key(uuid, attempt), ms)
	v := make([]byte, journalValueLen)
	v[0] = 1
	binary.BigEndian.PutUint16(v[1:], attempt)
	binary.BigEndian.PutUint64(v[3:], uint64(ms))
	j.prod.Produce(context.Background(), &kgo.Record{Topic: JournalTopic, Key: []byte(uuid), Value: v}, func(_ *kgo.Record, err error) {
		if err != nil {
			j.m.errors.Inc()
			j.log.Warn("push journal write failed; a crash before this batch commits would push the message again", "messageUUID", uuid, "err", err)
		}
	})
}

// Acked returns when the push of uuid on attempt was acknowledged, if the
// journal knows.
func (j *Journal) Acked(uuid string, attempt uint16) (time.Time, bool) {
	j.mu.Lock()
	ms, ok := j.acked[j.key(uuid, attempt)]
	j.mu.Unlock()
	if !ok {
		return time.Time{}, false
	}
	return time.UnixMilli(ms).UTC(), true
}

func (j *Journal) remember(k journalKey, ms int64) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if _, ok := j.acked[k]; !ok {
		j.order = append(j.order, journalEntry{key: k, at: ms})
	}
	j.acked[k] = ms
	// Forget what is older than the window (by acknowledgement time; the
	// order is by arrival, which is close enough for a cache).
	cut := time.Now().Add(-j.window).UnixMilli()
	for j.head < len(j.order) && j.order[j.head].at < cut {
		e := j.order[j.head]
		if j.acked[e.key] == e.at {
			delete(j.acked, e.key)
		}
		j.head++
	}
	if j.head > 4096 && j.head*2 > len(j.order) {
		j.order = append(j.order[:0], j.order[j.head:]...)
		j.head = 0
	}
	j.m.entries.Set(float64(len(j.acked)))
}

// run reads the journal: the other processes' acknowledgements (and this
// one's again, which changes nothing).
func (j *Journal) run(ctx context.Context) {
	defer close(j.done)
	for {
		fs := j.tail.PollFetches(ctx)
		if ctx.Err() != nil || fs.IsClientClosed() {
			return
		}
		fs.EachError(func(_ string, p int32, err error) {
			if !errors.Is(err, context.Canceled) {
				j.log.Warn("push journal read failed; retrying", "partition", p, "err", err)
			}
		})
		moved := map[int32]int64{}
		fs.EachRecord(func(r *kgo.Record) {
			if len(r.Value) == journalValueLen && r.Value[0] == 1 {
				attempt := binary.BigEndian.Uint16(r.Value[1:])
				ms := int64(binary.BigEndian.Uint64(r.Value[3:]))
				j.remember(j.key(string(r.Key), attempt), ms)
			}
			moved[r.Partition] = r.Offset + 1
		})
		if len(moved) == 0 {
			continue
		}
		j.mu.Lock()
		for p, o := range moved {
			if o > j.consumed[p] {
				j.consumed[p] = o
			}
		}
		close(j.changed)
		j.changed = make(chan struct{})
		j.mu.Unlock()
	}
}

// Sync waits until the journal is read up to the end it has now, so every
// acknowledgement written before (by a process that died since, say) is
// known. It gives up after wait (then the batch may repeat a few pushes)
// and reports why.
func (j *Journal) Sync(ctx context.Context, wait time.Duration) error {
	j.mu.Lock()
	if time.Since(j.lastTimeout) < time.Minute {
		// The reader is stuck (the broker is slow or away): do not make
		// every batch wait the whole time.
		wait = min(wait, time.Second)
	}
	j.mu.Unlock()
	err := j.sync(ctx, wait)
	if err != nil {
		j.m.syncs.WithLabelValues("timeout").Inc()
		j.mu.Lock()
		j.lastTimeout = time.Now()
		j.mu.Unlock()
		return err
	}
	j.m.syncs.WithLabelValues("ok").Inc()
	return nil
}

func (j *Journal) sync(ctx context.Context, wait time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	ends, err := j.adm.ListEndOffsets(ctx, JournalTopic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return fmt.Errorf("push journal end offsets: %w", err)
	}
	for {
		behind := false
		j.mu.Lock()
		ends.Each(func(o kadm.ListedOffset) {
			// A partition added after the reader started is not read
			// (its acknowledgements cost duplicates, not a stall).
			if c, ok := j.consumed[o.Partition]; ok && c < o.Offset {
				behind = true
			}
		})
		ch := j.changed
		j.mu.Unlock()
		if !behind {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("push journal not read up to its end within %v", wait)
		}
	}
}

// Close flushes this process's acknowledgements and stops the reader.
func (j *Journal) Close() {
	fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	_ = j.prod.Flush(fctx)
	cancel()
	j.cancel()
	j.tail.Close()
	<-j.done
	j.prod.Close()
}
