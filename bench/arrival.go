package bench

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/memoflow/memoflow/schemas/records"
)

// Arrival is one message seen where the run counts it as delivered.
type Arrival struct {
	UUID [16]byte
	// AcceptedAtMs is when ingest accepted the message (Unix ms), as the
	// record carries it; 0 when the source cannot tell.
	AcceptedAtMs int64
	At           time.Time
	// System is the recipient system that took it, where the source
	// knows (the recipient simulator).
	System string
}

// ArrivalSource is the measuring point at the end of the pipeline. The
// runner tracks what it reports: end-to-end latency, lost and duplicate
// messages.
//
// Today the last stage is validate, so the default is TopicArrival on
// memo.valid. When deliver and `memoflow sim recipient` exist, the point is
// "available to recipient" as the simulator sees it: implement this
// interface over what the simulator records (each message it is handed,
// with the envelope's ReceivedAtMs) and return it from the scenario's
// Arrival method (see MassSend.ArrivalAt). Nothing else changes.
type ArrivalSource interface {
	// Name says where arrivals are counted, for the report.
	Name() string
	// Start begins watching and returns once nothing accepted afterwards
	// can be missed; arrive is called from one goroutine. stop ends the
	// watch and returns its first error.
	Start(ctx context.Context, arrive func(Arrival)) (stop func() error, err error)
}

// TopicArrival counts a message as arrived when a read_committed consumer
// sees its envelope in Topic (memo.valid today; memo.ready or memo.routed
// as the stages land): committed output is what the next stage can read.
type TopicArrival struct {
	Brokers string
	Topic   string
	Opts    []kgo.Opt // extra client options (TLS, SASL)
}

func (a *TopicArrival) Name() string { return "read_committed consumer of " + a.Topic }

func (a *TopicArrival) Start(ctx context.Context, arrive func(Arrival)) (func() error, error) {
	var env records.Envelope
	return a.startRaw(ctx, func(r *kgo.Record) {
		ar := Arrival{UUID: parseUUID(string(r.Key)), At: time.Now()}
		if env.Decode(r.Value) == nil {
			ar.AcceptedAtMs = env.ReceivedAtMs
		}
		arrive(ar)
	})
}

// startRaw calls fn for every committed record of the topic produced
// after it returns, from one goroutine.
func (a *TopicArrival) startRaw(ctx context.Context, fn func(*kgo.Record)) (func() error, error) {
	seeds := []kgo.Opt{kgo.SeedBrokers(strings.Split(a.Brokers, ",")...)}
	cl, err := kgo.NewClient(append(seeds, a.Opts...)...)
	if err != nil {
		return nil, err
	}
	// Start at today's end offsets, read explicitly, so nothing produced
	// after Start returns is skipped (a reset to "end" would be resolved
	// later, at the first fetch).
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, a.Topic)
	cl.Close()
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("watch %s: end offsets: %w", a.Topic, err)
	}
	start := map[string]map[int32]kgo.Offset{a.Topic: {}}
	ends.Each(func(o kadm.ListedOffset) {
		start[a.Topic][o.Partition] = kgo.NewOffset().At(o.Offset)
	})
	if len(start[a.Topic]) == 0 {
		return nil, fmt.Errorf("watch %s: the topic has no partitions", a.Topic)
	}
	cl, err = kgo.NewClient(append(append(seeds, a.Opts...),
		kgo.ConsumePartitions(start), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.FetchMaxBytes(64<<20), kgo.FetchMaxPartitionBytes(16<<20))...)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		defer cl.Close()
		for {
			f := cl.PollFetches(ctx)
			if ctx.Err() != nil {
				done <- nil
				return
			}
			var ferr error
			f.EachError(func(t string, p int32, err error) {
				if ferr == nil && !errors.Is(err, context.Canceled) {
					ferr = fmt.Errorf("watch %s/%d: %w", t, p, err)
				}
			})
			if ferr != nil {
				done <- ferr
				return
			}
			f.EachRecord(fn)
		}
	}()
	return func() error { cancel(); return <-done }, nil
}

// tracker matches arrivals against the manifest: first arrivals and their
// latency, duplicates, and arrivals of messages the run never sent.
type tracker struct {
	mu      sync.Mutex
	ix      *uuidIndex
	counts  []uint16
	arrived int64
	dups    int64
	unknown int64
	lat     []float32 // ms, first arrivals
	window  []float64 // ms since the last sample
	lastAt  time.Time
	// from gives the latency's start of message i (Unix ms) when the
	// arrival does not carry it; 0: no latency for it.
	from func(i int) int64
}

func newTracker(m *Manifest) *tracker {
	return &tracker{ix: newUUIDIndex(m.UUIDs), counts: make([]uint16, len(m.UUIDs)), lat: make([]float32, 0, len(m.UUIDs))}
}

func (t *tracker) arrive(a Arrival) {
	t.mu.Lock()
	defer t.mu.Unlock()
	i := t.ix.find(a.UUID)
	if i < 0 {
		t.unknown++
		return
	}
	if t.counts[i] < 1<<16-1 {
		t.counts[i]++
	}
	if t.counts[i] > 1 {
		t.dups++
		return
	}
	t.arrived++
	t.lastAt = a.At
	from := a.AcceptedAtMs
	if from == 0 && t.from != nil {
		from = t.from(i)
	}
	if from > 0 {
		ms := max(0, float64(a.At.UnixMicro()-from*1000)/1000)
		t.lat = append(t.lat, float32(ms))
		t.window = append(t.window, ms)
	}
}

// snapshot returns the first arrivals so far and the latency quantiles of
// the arrivals since the previous snapshot.
func (t *tracker) snapshot() (arrived int64, p50, p99 float64) {
	t.mu.Lock()
	w := t.window
	t.window = nil
	arrived = t.arrived
	t.mu.Unlock()
	if len(w) > 0 {
		sort.Float64s(w)
		p50, p99 = Quantile(w, 0.5), Quantile(w, 0.99)
	}
	return arrived, p50, p99
}

// snapshotCount returns the first arrivals so far.
func (t *tracker) snapshotCount() (arrived, dups, unknown int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.arrived, t.dups, t.unknown
}

func (t *tracker) lastArrival() time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.lastAt
}

// verdict compares arrivals with what should have arrived.
func (t *tracker) verdict(shouldArrive func(i int) bool) (lost, dups, unknown int64, lostSample []string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i, c := range t.counts {
		if shouldArrive(i) && c == 0 {
			lost++
			if len(lostSample) < 10 {
				lostSample = append(lostSample, formatUUID(t.ix.keys[t.posToKey(i)]))
			}
		}
		if !shouldArrive(i) && c > 0 {
			// Arrived though it should not have (say an invalid message):
			// as wrong as a duplicate.
			unknown += int64(c)
		}
	}
	return lost, t.dups, unknown + t.unknown, lostSample
}

// posToKey finds the sorted-key slot of manifest position i (slow; only
// for the few lost UUIDs a report names).
func (t *tracker) posToKey(i int) int {
	for k, p := range t.ix.pos {
		if int(p) == i {
			return k
		}
	}
	return 0
}

func (t *tracker) latencies() []float64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]float64, len(t.lat))
	for i, v := range t.lat {
		out[i] = float64(v)
	}
	return out
}
