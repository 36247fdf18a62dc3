package schedule

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/memoflow/memoflow/internal/auth"
	"github.com/memoflow/memoflow/pipeline"
	"github.com/memoflow/memoflow/schemas/events"
	"github.com/memoflow/memoflow/schemas/records"
)

// fakeClock is a settable Clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

func quietLog() *slog.Logger {
	if os.Getenv("MEMOFLOW_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

type harness struct {
	t      testing.TB
	kc     pipeline.KafkaConfig
	clock  *fakeClock
	pseudo *events.Pseudonymizer
	parts  int32
}

var allTopics = []string{pipeline.TopicValid, pipeline.TopicSchedule, pipeline.TopicHeld, pipeline.TopicReady,
	pipeline.TopicEvents, pipeline.TopicRecalls, pipeline.TopicDLQ}

func newHarness(t testing.TB, partitions int32, now time.Time) *harness {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, allTopics...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return &harness{t: t, parts: partitions, clock: &fakeClock{t: now}, pseudo: mustPseudo(t),
		kc: pipeline.KafkaConfig{Brokers: c.ListenAddrs()[0], ClientID: "test", DialTimeout: 5 * time.Second, TopicPartitions: int(partitions), TopicReplication: 1}}
}

func mustPseudo(t testing.TB) *events.Pseudonymizer {
	p, err := events.NewPseudonymizer(events.Key{ID: "k1", Secret: []byte("0123456789abcdef0123456789abcdef")})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func (h *harness) opts() []kgo.Opt {
	o, err := h.kc.ClientOpts()
	if err != nil {
		h.t.Fatal(err)
	}
	return o
}

func testConfig(t testing.TB) Config {
	c := DefaultConfig()
	c.Dir = t.TempDir()
	c.TickInterval = 20 * time.Millisecond
	c.ReleaseRate = 100000
	return c
}

func runnerConfig(replica string) pipeline.RunnerConfig {
	return pipeline.RunnerConfig{
		PollRecords: 500, MaxBufferedBytes: 32 << 20, FetchMaxBytes: 16 << 20,
		Transactions: true, SinkBatchRecords: 300, SinkBatchWait: 50 * time.Millisecond,
		RetryMinBackoff: 5 * time.Millisecond, RetryMaxBackoff: 100 * time.Millisecond,
		SessionTimeout: 6 * time.Second, TxnTimeout: 10 * time.Second, ReplicaID: replica,
	}
}

// running is one stage replica.
type running struct {
	st     *Stage
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

func (r *running) stop(t testing.TB) {
	r.once.Do(func() {
		r.cancel()
		select {
		case err := <-r.done:
			if err != nil {
				t.Errorf("stage stopped with %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("stage did not stop within 30s")
		}
		r.st.Close()
	})
}

func (h *harness) start(cfg Config, replica string) *running {
	h.t.Helper()
	st, err := New(cfg, h.opts(), h.pseudo, WithClock(h.clock), WithLogger(quietLog()))
	if err != nil {
		h.t.Fatal(err)
	}
	r, err := pipeline.NewRunner(st, []string{pipeline.TopicValid, pipeline.TopicSchedule}, h.kc, runnerConfig(replica),
		pipeline.WithLogger(quietLog()), pipeline.WithMetrics(pipeline.NewMetrics(prometheus.NewRegistry())))
	if err != nil {
		h.t.Fatal(err)
	}
	if err := st.StartTicker(); err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	run := &running{st: st, cancel: cancel, done: make(chan error, 1)}
	go func() { run.done <- r.Run(ctx) }()
	h.t.Cleanup(func() { run.stop(h.t) })
	return run
}

func uuidOf(i int) string { return fmt.Sprintf("00000000-0000-4000-8000-%012d", i) }

// valueDate encodes a calendar date as Envelope.ValueDate.
func valueDate(y int, m time.Month, d int) uint32 {
	return uint32(time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Unix()/86400) + 1
}

func envelope(i int, org string, vd uint32) *kgo.Record {
	e := records.Envelope{
		MessageUUID: uuidOf(i), MessageID: fmt.Sprintf("m%d", i), TransmissionID: "tx1", MemoVersion: 12,
		MessageType: records.TypeDigitalPost, PostType: "MYNDIGHEDSPOST", Label: "Test",
		SenderOrg: org, SenderSystem: "sys-" + org, RecipientType: records.IDCPR, RecipientID: "0101701234",
		ValueDate: vd, ReceivedAtMs: 1, Size: 10, Body: []byte("<memo/>"),
	}
	return &kgo.Record{Topic: pipeline.TopicValid, Key: []byte(e.MessageUUID), Value: e.Append(nil)}
}

// produce writes records with the default partitioner (as validate does).
func (h *harness) produce(recs ...*kgo.Record) {
	h.t.Helper()
	cl, err := kgo.NewClient(h.opts()...)
	if err != nil {
		h.t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		h.t.Fatal(err)
	}
}

// collector tails a topic (read_committed) from its start.
type collector struct {
	mu     sync.Mutex
	recs   []*kgo.Record
	at     []time.Time
	cancel context.CancelFunc
	done   chan struct{}
}

func (h *harness) collect(topic string) *collector {
	cl, err := kgo.NewClient(append(h.opts(), kgo.ConsumeTopics(topic),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(50*time.Millisecond))...)
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &collector{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		defer cl.Close()
		for ctx.Err() == nil {
			f := cl.PollFetches(ctx)
			now := time.Now()
			c.mu.Lock()
			f.EachRecord(func(r *kgo.Record) { c.recs = append(c.recs, r); c.at = append(c.at, now) })
			c.mu.Unlock()
		}
	}()
	h.t.Cleanup(func() { cancel(); <-c.done })
	return c
}

func (c *collector) snapshot() []*kgo.Record {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*kgo.Record(nil), c.recs...)
}

func (c *collector) len() int { c.mu.Lock(); defer c.mu.Unlock(); return len(c.recs) }

func (c *collector) keys() map[string]int {
	m := map[string]int{}
	for _, r := range c.snapshot() {
		m[string(r.Key)]++
	}
	return m
}

// tags counts the events by tag.
func (c *collector) tags(t testing.TB) map[events.Tag]int {
	m := map[events.Tag]int{}
	for _, r := range c.snapshot() {
		evs, err := events.Decode(r.Value, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range evs {
			m[e.Tag]++
		}
	}
	return m
}

func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// api serves the recall API with tokens for two organisations.
type apiServer struct {
	url    string
	tokens map[string]string // org → token
}

func (h *harness) api(wait time.Duration) *apiServer {
	h.t.Helper()
	store := auth.NewMemStore()
	tokens := map[string]string{}
	for _, org := range []string{"11111111", "22222222"} {
		tok := auth.NewToken()
		store.Put(auth.HashToken(tok), &auth.Principal{ID: "sys-" + org, Org: org, Roles: []auth.Role{auth.RoleSender}})
		tokens[org] = tok
	}
	prod, err := kgo.NewClient(h.opts()...)
	if err != nil {
		h.t.Fatal(err)
	}
	api, err := NewAPI(store, prod, h.opts(), APIConfig{Wait: wait, MaxResults: 1000}, quietLog())
	if err != nil {
		h.t.Fatal(err)
	}
	mux := http.NewServeMux()
	api.Register(mux)
	srv := httptest.NewServer(mux)
	h.t.Cleanup(func() { srv.Close(); api.Close(); prod.Close() })
	return &apiServer{url: srv.URL, tokens: tokens}
}
