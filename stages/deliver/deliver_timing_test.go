package deliver

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/memoflow/memoflow/internal/auth"
	"github.com/memoflow/memoflow/internal/recipientsim"
	"github.com/memoflow/memoflow/pipeline"
)

// timedTransport records the duration of every round trip.
type timedTransport struct {
	rt  http.RoundTripper
	mu  sync.Mutex
	lat []time.Duration
}

func (t *timedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := t.rt.RoundTrip(r)
	d := time.Since(start)
	t.mu.Lock()
	t.lat = append(t.lat, d)
	t.mu.Unlock()
	return resp, err
}

func (t *timedTransport) percentiles() (p50, p99 time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.lat) == 0 {
		return 0, 0
	}
	s := slices.Clone(t.lat)
	slices.Sort(s)
	return s[len(s)/2], s[len(s)*99/100]
}

// pushRun delivers msgs messages over systems in sink-sized batches
// (every batch waits for all of its messages, as the Sink does). It
// returns the healthy systems' messages per second over the whole run and
// in the steady state (the median batch after the first, once failing
// systems' circuits are open), and the push latencies.
//
// "Healthy" are the systems from index systems/10 on in both runs, so the
// two runs compare the throughput of the same systems.
func pushRun(b *testing.B, systems, msgs, batch int, failing int) (rate, steady float64, p50, p99 time.Duration, sim *recipientsim.Sim) {
	sim, base := simServer(b, recipientsim.Config{Latency: time.Millisecond})
	var ss []System
	for i := range systems {
		s := pushSystem("s"+itoa(i), base)
		ss = append(ss, s)
		if i < failing {
			sim.SetLatency(s.ID, time.Minute) // hangs: every call times out
		}
	}
	cfg := DefaultConfig()
	cfg.Timeout = 2 * time.Second
	tt := &timedTransport{rt: &http.Transport{MaxIdleConnsPerHost: 8 * systems, MaxIdleConns: 8 * systems, IdleConnTimeout: time.Minute}}
	d, err := NewDeliverer(cfg, NewStaticSystems(ss...), testPseudo(b), WithLogger(quiet()), WithHTTPClient(&http.Client{Transport: tt}))
	if err != nil {
		b.Fatal(err)
	}
	healthy, perBatch := 0, 0
	start := time.Now()
	var steadyTimes []time.Duration
	for off := 0; off < msgs; off += batch {
		bs := time.Now()
		var items []*item
		for i := off; i < min(off+batch, msgs); i++ {
			sys := i % systems
			if sys >= systems/10 {
				healthy++
				if off == 0 {
					perBatch++
				}
			}
			items = append(items, &item{env: *testEnv(i, ss[sys].ID)})
		}
		d.run(context.Background(), items)
		if off > 0 {
			steadyTimes = append(steadyTimes, time.Since(bs))
		}
	}
	end := time.Now()
	p50, p99 = tt.percentiles()
	// The steady state by the median batch: the machine is shared, and the
	// median ignores a batch another process's burst slowed down.
	if testing.Verbose() {
		b.Logf("failing %d: batch times %v", failing, steadyTimes)
	}
	slices.Sort(steadyTimes)
	med := steadyTimes[len(steadyTimes)/2]
	return float64(healthy) / end.Sub(start).Seconds(), float64(perBatch) / med.Seconds(), p50, p99, sim
}

// BenchmarkPush pushes to the simulator over 200 systems (1 ms answer),
// all healthy, then with 10% of the systems hanging (every call runs into
// the 2 s timeout until their circuits open). Reported: messages/s, p50/p99
// push latency, and the healthy systems' throughput with failures as a
// ratio of the all-healthy run measured in the same run (target >= 0.9):
// over the whole run (the first batch waits up to two timeouts while the
// failing systems' circuits open, so this ratio grows with the run's
// length) and in the steady state after the first batch.
func BenchmarkPush(b *testing.B) {
	const systems, msgs, batch = 200, 20000, 2000
	for b.Loop() {
		base, baseSteady, p50, p99, sim := pushRun(b, systems, msgs, batch, 0)
		if st := sim.Stats(); st.DupCount != 0 || st.Unique < msgs*99/100 {
			b.Fatalf("all healthy: %s", st.Summary())
		}
		fail, failSteady, _, _, _ := pushRun(b, systems, msgs, batch, systems/10)
		b.ReportMetric(base, "msgs/s")
		b.ReportMetric(float64(p50.Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(p99.Microseconds())/1000, "p99-ms")
		b.ReportMetric(fail, "healthy-msgs/s-10%-failing")
		b.ReportMetric(fail/base, "healthy-ratio-whole-run")
		b.ReportMetric(failSteady/baseSteady, "healthy-ratio-steady")
	}
}

// BenchmarkPullCycle: a recipient system collects its post through the
// pull API: list, fetch, delete, receipt per message, over HTTP, with the
// outbox index on disk and every change produced to (embedded) Kafka.
// Baseline in the same run: fetch alone (GET of one message).
func BenchmarkPullCycle(b *testing.B) {
	const n = 2000
	cfg := testConfig()
	k := newRig(b, cfg)
	systems := NewStaticSystems(System{ID: "p1", Protocol: ProtoPull, Active: true, WantVersion: 12})
	d, err := NewDeliverer(cfg, systems, testPseudo(b), WithLogger(quiet()))
	if err != nil {
		b.Fatal(err)
	}
	prod := k.client(b, kgo.ProducerLinger(time.Millisecond))
	store, err := OpenOutboxStore(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	tokens := auth.NewMemStore()
	tokens.Put(auth.HashToken("tok"), &auth.Principal{ID: "p1", Org: "12345678", Roles: []auth.Role{auth.RoleRecipientSystem}})
	api := NewPullAPI(store, tokens, prod, testPseudo(b), systems, nil, WithLogger(quiet()))
	mux := http.NewServeMux()
	api.Register(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	sim, _ := recipientsim.New(recipientsim.Config{})
	for b.Loop() {
		// Fill the outbox directly (the tailer's path, without Kafka).
		var recs []applied
		for i := range n {
			it := &item{env: *testEnv(i, "p1")}
			d.run(context.Background(), []*item{it})
			for _, o := range it.out {
				if o.Topic == TopicOutbox {
					recs = append(recs, applied{key: o.Key, value: o.Value, part: 0, offset: int64(i - n)}) // older than any write of the API
				}
			}
		}
		if err := store.apply(recs, false); err != nil {
			b.Fatal(err)
		}
		p := sim.NewPuller(srv.URL, "p1", "tok")
		start := time.Now()
		for i := 0; i < 20; i++ {
			req, _ := http.NewRequest("GET", srv.URL+"/apis/v1/memos/00000000-0000-4000-8000-000000000001", nil)
			req.Header.Set("Authorization", "Bearer tok")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			resp.Body.Close()
		}
		fetchRate := 20 / time.Since(start).Seconds()
		start = time.Now()
		got := 0
		for got < n {
			c, err := p.Cycle(context.Background())
			if err != nil {
				b.Fatal(err)
			}
			if c == 0 {
				b.Fatalf("outbox empty after %d of %d", got, n)
			}
			got += c
		}
		rate := float64(got) / time.Since(start).Seconds()
		b.ReportMetric(rate, "cycles/s")
		b.ReportMetric(fetchRate, "fetch-only/s")
		b.ReportMetric(rate/fetchRate, "cycle/fetch-ratio")
	}
}

// BenchmarkSinkKafka runs the deliver stage for real: 10,000 routed
// messages over 1,000 systems on (embedded) Kafka, the transactional sink
// pushing to the simulator and emitting events and receipts. Baseline in the
// same run: the same messages through the Deliverer alone (no Kafka).
func BenchmarkSinkKafka(b *testing.B) {
	const systems, msgs = 1000, 10000
	for b.Loop() {
		cfg := DefaultConfig()
		cfg.Timeout = 5 * time.Second
		k := newRig(b, cfg)
		k.rc.SinkBatchRecords, k.rc.PollRecords = 2000, 2000
		sim, base := simServer(b, recipientsim.Config{Latency: time.Millisecond})
		var ss []System
		for i := range systems {
			ss = append(ss, pushSystem("s"+itoa(i), base))
		}
		// All simulated systems share one host:port, so the pool must keep
		// connections for all of them (real systems are separate hosts).
		cl := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8 * systems, MaxIdleConns: 8 * systems, IdleConnTimeout: time.Minute}}
		d, err := NewDeliverer(cfg, NewStaticSystems(ss...), testPseudo(b), WithLogger(quiet()), WithHTTPClient(cl))
		if err != nil {
			b.Fatal(err)
		}
		var recs []*kgo.Record
		var items []*item
		for i := range msgs {
			e := testEnv(i, ss[i%systems].ID)
			recs = append(recs, envRecord(pipeline.TopicRouted, e))
			e2 := testEnv(msgs+i, ss[i%systems].ID)
			items = append(items, &item{env: *e2})
		}
		if err := k.client(b, kgo.ProducerLinger(5*time.Millisecond)).ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
			b.Fatal(err)
		}
		// Direct (no Kafka): the first half warms the connections, the
		// second is measured.
		d.run(context.Background(), items[:msgs/2])
		start := time.Now()
		for off := msgs / 2; off < msgs; off += 1000 {
			d.run(context.Background(), items[off:off+1000])
		}
		direct := float64(msgs/2) / time.Since(start).Seconds()
		start = time.Now()
		stop := k.start(b, d)
		deadline := time.Now().Add(5 * time.Minute)
		for sim.Stats().Unique < 2*msgs && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		el := time.Since(start)
		stop()
		if st := sim.Stats(); st.Unique != 2*msgs || st.DupCount != 0 {
			b.Fatalf("simulator: %s", st.Summary())
		}
		rate := float64(msgs) / el.Seconds()
		b.ReportMetric(rate, "msgs/s-kafka")
		b.ReportMetric(direct, "msgs/s-direct")
		b.ReportMetric(rate/direct, "kafka/direct-ratio")
	}
}
