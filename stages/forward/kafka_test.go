package forward

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/memoflow/memoflow/pipeline"
	"github.com/memoflow/memoflow/schemas/events"
	"github.com/memoflow/memoflow/schemas/registry"
	"github.com/memoflow/memoflow/stages/deliver"
	"github.com/memoflow/memoflow/stages/route"
)

type rig struct {
	brokers string
	kc      pipeline.KafkaConfig
	rc      pipeline.RunnerConfig
}

func newRig(t testing.TB, more ...string) *rig {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(4, append([]string{pipeline.TopicForward, pipeline.TopicForwardRetry,
		pipeline.TopicEvents, pipeline.TopicRouted, pipeline.TopicDLQ, pipeline.TopicBlobsDone}, more...)...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	b := c.ListenAddrs()[0]
	return &rig{
		brokers: b,
		kc:      pipeline.KafkaConfig{Brokers: b, ClientID: "t", DialTimeout: 5 * time.Second, TopicPartitions: 4, TopicReplication: 1},
		rc: pipeline.RunnerConfig{PollRecords: 200, MaxBufferedBytes: 8 << 20, FetchMaxBytes: 4 << 20, Transactions: true,
			SinkBatchRecords: 100, SinkBatchWait: 20 * time.Millisecond, RetryMinBackoff: 10 * time.Millisecond, RetryMaxBackoff: 100 * time.Millisecond,
			SessionTimeout: 6 * time.Second, TxnTimeout: 10 * time.Second, ReplicaID: "r"},
	}
}

func (k *rig) client(t testing.TB, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(k.brokers)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// start runs st (the Sink, possibly wrapped) and s's timer until stop.
func (k *rig) start(t testing.TB, st pipeline.Sink, s *Stage) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	return k.startCtx(t, ctx, cancel, st, s)
}

func (k *rig) startCtx(t testing.TB, ctx context.Context, cancel context.CancelFunc, st pipeline.Sink, s *Stage) (stop func()) {
	t.Helper()
	r, err := pipeline.NewRunner(st, []string{pipeline.TopicForward}, k.kc, k.rc,
		pipeline.WithLogger(quiet()), pipeline.WithMetrics(pipeline.NewMetrics(prometheus.NewRegistry())))
	if err != nil {
		t.Fatal(err)
	}
	tm, err := NewTimer(s, []kgo.Opt{kgo.SeedBrokers(k.brokers)}, "memoflow-forward-timer")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{}, 2)
	go func() { _ = r.Run(ctx); done <- struct{}{} }()
	go func() { _ = tm.Run(ctx); done <- struct{}{} }()
	return func() {
		cancel()
		<-done
		<-done
		tm.Close()
	}
}

func waitFor(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// committedEvents reads memo.events (read_committed) until idle.
func (k *rig) committedEvents(t testing.TB) []events.Event {
	t.Helper()
	cl := k.client(t, kgo.ConsumeTopics(pipeline.TopicEvents), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	var out []events.Event
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		f := cl.PollFetches(ctx)
		cancel()
		n := 0
		f.EachRecord(func(r *kgo.Record) {
			n++
			evs, err := events.Decode(r.Value, nil)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, evs...)
		})
		if n == 0 {
			return out
		}
	}
}

func produceRequests(t testing.TB, k *rig, n int, to string, prefix string) []string {
	t.Helper()
	var recs []*kgo.Record
	var uuids []string
	for i := range n {
		u := fmt.Sprintf("%s-4a36-9d33-%012d", prefix, i)
		e := message(u, compPickup, 500)
		recs = append(recs, request(e, registry.Forwarding{Kind: registry.ForwardPickup, To: to, Credentials: "secret:pickup-test"}))
		uuids = append(uuids, u)
	}
	if err := k.client(t).ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	return uuids
}

// forwardedOnce checks every uuid has exactly one MESSAGE_FORWARDED_TO_TRUSTED.
func forwardedOnce(t testing.TB, evs []events.Event, uuids []string) {
	t.Helper()
	n := map[string]int{}
	for _, e := range evs {
		if e.Tag == events.MessageForwardedToTrusted {
			n[e.MessageUUID]++
		}
	}
	for _, u := range uuids {
		if n[u] != 1 {
			t.Fatalf("%s forwarded %d times in the event log", u, n[u])
		}
	}
	if len(n) != len(uuids) {
		t.Fatalf("%d forwarded, want %d", len(n), len(uuids))
	}
}

// TestKafkaRetryThenSuccess: the pickup system answers 503 to the first
// attempt of every message; the failed forwards wait in
// memo.forward.retry for the gap, the timer moves them back, the second
// attempt succeeds. Every message arrives once and is logged forwarded
// once.
func TestKafkaRetryThenSuccess(t *testing.T) {
	k := newRig(t)
	rv, base := newReceiver(t)
	rv.status = func(_ string, n int) int {
		if n == 1 {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	}
	cfg := DefaultConfig()
	cfg.RetryGap, cfg.MaxIdle, cfg.Cooldown = 300*time.Millisecond, 50*time.Millisecond, 0
	s, err := New(cfg, testView("http://x.invalid", base), testPseudo(t), WithSecrets(secrets), WithLogger(quiet()))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	uuids := produceRequests(t, k, 200, base+"/in", "0b7b9c1e-3f0e")
	stop := k.start(t, s, s)
	defer stop()
	waitFor(t, "every forward", 60*time.Second, func() bool { return rv.storedCount() == len(uuids) })
	if d := time.Since(start); d < cfg.RetryGap {
		t.Fatalf("all arrived after %v, before the retry gap", d)
	}
	time.Sleep(200 * time.Millisecond)
	evs := k.committedEvents(t)
	forwardedOnce(t, evs, uuids)
	failed := 0
	for _, e := range evs {
		if e.Tag == events.MessageForwardAttemptFailed {
			failed++
		}
	}
	if failed != len(uuids) {
		t.Errorf("%d failed attempts logged, want %d", failed, len(uuids))
	}
}

// crashOnce is the forward Sink, except that its first batch "crashes"
// after the POSTs went out and before anything is committed: it cancels
// the runner (as a killed process stops) and fails, so the runner aborts
// the transaction and its outputs are never visible.
type crashOnce struct {
	*Stage
	cancel  context.CancelFunc
	crashed atomic.Bool
	posted  atomic.Int64
}

func (c *crashOnce) Write(ctx context.Context, b *pipeline.Batch) error {
	if c.crashed.Load() {
		return errors.New("dead")
	}
	if err := c.Stage.Write(ctx, b); err != nil {
		return err
	}
	c.crashed.Store(true)
	c.posted.Store(int64(len(b.Records)))
	c.cancel()
	return errors.New("crash after the effects, before the commit")
}

// TestKafkaCrashNoLossNoDouble: a crash after a batch's POSTs, before its
// commit: the restarted stage (new memory) runs the same records again,
// the POSTs repeat with the same Idempotency-Key (the pickup system keeps
// one), and the event log has each forward once.
func TestKafkaCrashNoLossNoDouble(t *testing.T) {
	k := newRig(t)
	rv, base := newReceiver(t)
	cfg := DefaultConfig()
	cfg.MaxIdle = 50 * time.Millisecond
	mk := func() *Stage {
		s, err := New(cfg, testView("http://x.invalid", base), testPseudo(t), WithSecrets(secrets), WithLogger(quiet()))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	uuids := produceRequests(t, k, 300, base+"/in", "0b7b9c1e-3f0f")

	s1 := mk()
	ctx, cancel := context.WithCancel(context.Background())
	cw := &crashOnce{Stage: s1, cancel: cancel}
	stop1 := k.startCtx(t, ctx, cancel, cw, s1)
	waitFor(t, "the crash", 30*time.Second, cw.crashed.Load)
	stop1()
	sentBefore := rv.storedCount()
	if sentBefore == 0 || int64(sentBefore) != cw.posted.Load() {
		t.Fatalf("the crashed batch posted %d, the pickup system has %d", cw.posted.Load(), sentBefore)
	}

	s2 := mk()
	stop2 := k.start(t, s2, s2)
	defer stop2()
	waitFor(t, "every forward", 60*time.Second, func() bool { return rv.storedCount() == len(uuids) })
	time.Sleep(200 * time.Millisecond)
	forwardedOnce(t, k.committedEvents(t), uuids)
	repeated := 0
	rv.mu.Lock()
	for _, n := range rv.calls {
		if n > 1 {
			repeated++
		}
	}
	rv.mu.Unlock()
	if repeated != sentBefore {
		t.Fatalf("%d POSTs repeated; exactly the crashed batch's %d must be", repeated, sentBefore)
	}
	t.Logf("crashed batch: %d POSTs, all repeated with their key after the restart; %d forwards, each logged once", sentBefore, len(uuids))
}

// TestKafkaChain runs route, forward and deliver as stages on Kafka:
// letters to a company that forwards to a trusted third party (same
// mailbox provider) and to one that forwards to a pickup system. Every
// letter lands in the mailbox; every copy reaches the third party under
// its own key; every pickup letter reaches the pickup system; each
// original is logged forwarded once.
func TestKafkaChain(t *testing.T) {
	k := newRig(t, pipeline.TopicReady, pipeline.TopicReceipts, pipeline.TopicOutbox, pipeline.TopicNotify)

	mbox, mboxURL := newReceiver(t)
	pick, pickURL := newReceiver(t)
	v := testView(mboxURL, pickURL+"/in")
	pseudo := testPseudo(t)
	rt, err := route.New(v, pseudo, route.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	fw, err := New(DefaultConfig(), v, pseudo, WithSecrets(secrets), WithLogger(quiet()))
	if err != nil {
		t.Fatal(err)
	}
	d, err := deliver.NewDeliverer(deliver.DefaultConfig(), &deliver.RegistrySystems{View: v}, pseudo, deliver.WithLogger(quiet()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, x := range []struct {
		st pipeline.Stage
		in string
	}{{rt, pipeline.TopicReady}, {fw, pipeline.TopicForward}, {deliver.NewSink(d), pipeline.TopicRouted}} {
		r, err := pipeline.NewRunner(x.st, []string{x.in}, k.kc, k.rc, pipeline.WithLogger(quiet()),
			pipeline.WithMetrics(pipeline.NewMetrics(prometheus.NewRegistry())))
		if err != nil {
			t.Fatal(err)
		}
		go func() { _ = r.Run(ctx) }()
	}

	var recs []*kgo.Record
	var secure, pickup []string
	for i := range 100 {
		to := compSecure
		if i%2 == 1 {
			to = compPickup
		}
		u := fmt.Sprintf("0b7b9c1e-3f10-4a36-9d33-%012d", i)
		e := message(u, to, 800)
		e.Destination, e.DestinationProtocol, e.WantVersion = "", 0, 0
		recs = append(recs, &kgo.Record{Topic: pipeline.TopicReady, Key: []byte(u), Value: e.Append(nil)})
		if to == compSecure {
			secure = append(secure, u)
		} else {
			pickup = append(pickup, u)
		}
	}
	if err := k.client(t).ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "letters, copies and pickups", 60*time.Second, func() bool {
		return mbox.storedCount() == 100+len(secure) && pick.storedCount() == len(pickup)
	})
	for _, u := range secure {
		if _, p, ok := mbox.got(CopyUUID(u, trusted)); !ok || p != "/mbox" {
			t.Fatalf("copy of %s: %v at %s", u, ok, p)
		}
	}
	for _, u := range append(append([]string{}, secure...), pickup...) {
		if _, _, ok := mbox.got(u); !ok {
			t.Fatalf("%s is not in the mailbox", u)
		}
	}
	time.Sleep(300 * time.Millisecond)
	forwardedOnce(t, k.committedEvents(t), append(secure, pickup...))
}
