package deliver

import (
	"context"
	"flag"
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

// pushSetup is one set of simulated systems and a Deliverer over them;
// the first failing systems hang (every call runs into the timeout).
type pushSetup struct {
	sim *recipientsim.Sim
	ss  []System
	d   *Deliverer
	tt  *timedTransport
	off int
}

func newPushSetup(b *testing.B, systems, failing int) *pushSetup {
	sim, base := simServer(b, recipientsim.Config{Latency: time.Millisecond})
	p := &pushSetup{sim: sim}
	for i := range systems {
		s := pushSystem("s"+itoa(i), base)
		p.ss = append(p.ss, s)
		if i < failing {
			sim.SetLatency(s.ID, time.Minute)
		}
	}
	cfg := DefaultConfig()
	cfg.Timeout = 2 * time.Second
	p.tt = &timedTransport{rt: &http.Transport{MaxIdleConnsPerHost: 8 * systems, MaxIdleConns: 8 * systems, IdleConnTimeout: time.Minute}}
	d, err := NewDeliverer(cfg, NewStaticSystems(p.ss...), testPseudo(b), WithLogger(quiet()), WithHTTPClient(&http.Client{Transport: p.tt}))
	if err != nil {
		b.Fatal(err)
	}
	p.d = d
	return p
}

// batch delivers n messages round-robin over the systems, as one sink
// batch (it waits for all of them), and returns how long it took and how
// many went to the healthy systems (index >= systems/10, the same systems
// in every setup).
func (p *pushSetup) batch(n int) (time.Duration, int) {
	items := make([]*item, n)
	healthy := 0
	for i := range items {
		sys := (p.off + i) % len(p.ss)
		if sys >= len(p.ss)/10 {
			healthy++
		}
		items[i] = &item{env: *testEnv(p.off+i, p.ss[sys].ID)}
	}
	p.off += n
	start := time.Now()
	p.d.run(context.Background(), items)
	return time.Since(start), healthy
}

// BenchmarkPush pushes to the simulator over 200 systems (1 ms answers) in
// sink batches of 2,000, in two setups whose batches alternate, so both see
// the same load of this shared machine: all systems healthy, and 10% of
// them hanging (every call runs into the 2 s timeout until their circuits
// open). Reported: messages/s and p50/p99 push latency of the healthy
// setup; the healthy systems' throughput with 10% failing as a ratio of the
// same systems' throughput in the healthy setup (target >= 0.9), over the
// whole run (the first batch waits up to two timeouts while the circuits
// open, so this ratio grows with the run's length) and in the steady state
// (the batches after the first).
var (
	benchSystems  = flag.Int("deliver.systems", 200, "BenchmarkPush: recipient systems")
	benchMessages = flag.Int("deliver.messages", 20000, "BenchmarkPush: messages per setup (in batches of 2000)")
)

func BenchmarkPush(b *testing.B) {
	const size = 2000
	systems, batches := *benchSystems, max(2, *benchMessages/size)
	for b.Loop() {
		ok, bad := newPushSetup(b, systems, 0), newPushSetup(b, systems, systems/10)
		var okAll, badAll, okSteady, badSteady time.Duration
		var okN, badN, okSteadyN, badSteadyN int
		for i := range batches {
			t1, n1 := ok.batch(size)
			t2, n2 := bad.batch(size)
			okAll, badAll, okN, badN = okAll+t1, badAll+t2, okN+n1, badN+n2
			if i > 0 {
				okSteady, badSteady, okSteadyN, badSteadyN = okSteady+t1, badSteady+t2, okSteadyN+n1, badSteadyN+n2
			}
		}
		if st := ok.sim.Stats(); st.DupCount != 0 || st.Unique < batches*size*99/100 {
			b.Fatalf("all healthy: %s", st.Summary())
		}
		rate := func(n int, d time.Duration) float64 { return float64(n) / d.Seconds() }
		p50, p99 := ok.tt.percentiles()
		b.ReportMetric(float64(batches*size)/okAll.Seconds(), "msgs/s")
		b.ReportMetric(float64(p50.Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(p99.Microseconds())/1000, "p99-ms")
		b.ReportMetric(rate(badN, badAll), "healthy-msgs/s-10%-failing")
		b.ReportMetric(rate(badN, badAll)/rate(okN, okAll), "healthy-ratio-whole-run")
		b.ReportMetric(rate(badSteadyN, badSteady)/rate(okSteadyN, okSteady), "healthy-ratio-steady")
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
