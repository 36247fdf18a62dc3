package deliver

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/memoflow/memoflow/internal/auth"
	"github.com/memoflow/memoflow/internal/recipientsim"
	"github.com/memoflow/memoflow/pipeline"
	"github.com/memoflow/memoflow/schemas/records"
	"github.com/memoflow/memoflow/stages/schedule"
)

type rig struct {
	brokers string
	kc      pipeline.KafkaConfig
	rc      pipeline.RunnerConfig
	cfg     Config
}

func newRig(t testing.TB, cfg Config) *rig {
	t.Helper()
	topics := append([]string{pipeline.TopicRouted, pipeline.TopicEvents, pipeline.TopicReceipts, pipeline.TopicDLQ, TopicOutbox, TopicNotify,
		TopicReceiptPush, TopicReceiptPushRetry}, cfg.RetryTopics()...)
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(4, topics...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	b := c.ListenAddrs()[0]
	return &rig{
		brokers: b, cfg: cfg,
		kc: pipeline.KafkaConfig{Brokers: b, ClientID: "t", DialTimeout: 5 * time.Second, TopicPartitions: 4, TopicReplication: 1},
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

// start runs the memo.routed sink and the retry consumer over d; stop
// cancels both (a restart is stop, then start with a new Deliverer).
func (k *rig) start(t testing.TB, d *Deliverer) (stop func()) {
	t.Helper()
	r, err := pipeline.NewRunner(NewSink(d), []string{pipeline.TopicRouted}, k.kc, k.rc,
		pipeline.WithLogger(quiet()), pipeline.WithMetrics(pipeline.NewMetrics(prometheus.NewRegistry())))
	if err != nil {
		t.Fatal(err)
	}
	rc, err := NewRetryConsumer(d, []kgo.Opt{kgo.SeedBrokers(k.brokers)}, "memoflow-deliver-retry")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	go func() { _ = r.Run(ctx); done <- struct{}{} }()
	go func() { _ = rc.Run(ctx); done <- struct{}{} }()
	return func() {
		cancel()
		<-done
		<-done
		rc.Close()
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

// TestRestartNothingLost: messages to two healthy systems and one that is
// down; the process stops mid-delivery and starts again; the down system
// comes back and its messages arrive at their retry time, not before.
// Nothing is lost, and a message arrives twice only if its batch was in
// flight at the stop, with the same idempotency key.
func TestRestartNothingLost(t *testing.T) {
	cfg := testConfig()
	cfg.Schedule = []time.Duration{time.Minute, 2 * time.Minute, 3 * time.Minute}
	k := newRig(t, cfg)
	sim, base := simServer(t, recipientsim.Config{Latency: 3 * time.Millisecond})
	systems := NewStaticSystems(pushSystem("a", base), pushSystem("b", base), pushSystem("c", base))
	sim.SetDown("c", true)
	clk := newClock(t0)
	mk := func() *Deliverer {
		d, err := NewDeliverer(cfg, systems, testPseudo(t), WithClock(clk.now), WithLogger(quiet()))
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	var recs []*kgo.Record
	var uuids []string
	for i := range 600 {
		e := testEnv(i, []string{"a", "b", "c"}[i%3])
		recs = append(recs, envRecord(pipeline.TopicRouted, e))
		uuids = append(uuids, e.MessageUUID)
	}
	sim.Expect(uuids...)
	if err := k.client(t).ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	stop := k.start(t, mk())
	waitFor(t, "some deliveries", 20*time.Second, func() bool { return sim.Stats().Delivered >= 100 })
	stop() // mid-delivery
	before := sim.Stats()
	t.Logf("at the stop: %s", before.Summary())

	stop = k.start(t, mk())
	defer func() { stop() }()
	waitFor(t, "a and b", 30*time.Second, func() bool { return sim.Accepted("a") >= 200 && sim.Accepted("b") >= 200 })
	// Every routed message is decided (c's are in the delay topic).
	adm := kadm.NewClient(k.client(t))
	waitFor(t, "memo.routed consumed", 30*time.Second, func() bool {
		ctx := context.Background()
		ends, err := adm.ListEndOffsets(ctx, pipeline.TopicRouted)
		if err != nil {
			return false
		}
		comm, err := adm.FetchOffsets(ctx, "memoflow-deliver")
		if err != nil {
			return false
		}
		done := true
		ends.Each(func(o kadm.ListedOffset) {
			c, ok := comm.Lookup(o.Topic, o.Partition)
			if o.Offset > 0 && (!ok || c.At < o.Offset) {
				done = false
			}
		})
		return done
	})
	// c's messages wait in the delay topic; they are not due yet.
	sim.SetDown("c", false)
	time.Sleep(200 * time.Millisecond)
	if n := sim.Accepted("c"); n != 0 {
		t.Fatalf("c got %d messages before their retry time", n)
	}
	clk.add(time.Minute)
	waitFor(t, "c after its retry time", 30*time.Second, func() bool { return sim.Accepted("c") >= 200 })
	st := sim.Stats()
	t.Logf("at the end: %s", st.Summary())
	if st.MissingCount != 0 {
		t.Fatalf("%d messages lost: %v", st.MissingCount, st.Missing)
	}
	// Duplicates are bounded by one sink batch in flight at the stop.
	if st.DupCount > k.rc.SinkBatchRecords {
		t.Fatalf("%d duplicates; at most one batch (%d) may be repeated", st.DupCount, k.rc.SinkBatchRecords)
	}
	for _, u := range st.Duplicates {
		var i int
		for j, x := range uuids {
			if x == u {
				i = j
			}
		}
		if i%3 == 2 {
			t.Fatalf("duplicate %s of system c, which received nothing before the stop", u)
		}
	}
}

// TestPullAPI: a system lists, fetches, deletes and receipts its own post
// and nobody else's; second receipts are 409, bad ones 422.
func TestPullAPI(t *testing.T) {
	cfg := testConfig()
	k := newRig(t, cfg)
	systems := NewStaticSystems(System{ID: "p1", Protocol: ProtoPull, Active: true, WantVersion: 12},
		System{ID: "p2", Protocol: ProtoPull, Active: true, WantVersion: 12})
	d, err := NewDeliverer(cfg, systems, testPseudo(t), WithLogger(quiet()))
	if err != nil {
		t.Fatal(err)
	}
	var items []*item
	for i := range 25 {
		items = append(items, &item{env: *testEnv(i, []string{"p1", "p2"}[i%2])})
	}
	d.run(context.Background(), items)
	prod := k.client(t)
	for _, it := range items {
		for _, o := range it.out {
			if err := prod.ProduceSync(context.Background(), o).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
	store, err := OpenOutboxStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	tail, err := StartTailer(context.Background(), store, []kgo.Opt{kgo.SeedBrokers(k.brokers)}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer tail.Close()
	waitFor(t, "the outbox index", 10*time.Second, func() bool {
		_, n1, _ := store.List("p1", "", 0, 1)
		_, n2, _ := store.List("p2", "", 0, 1)
		return n1 == 13 && n2 == 12
	})
	tokens := auth.NewMemStore()
	tokens.Put(auth.HashToken("tok-p1"), &auth.Principal{ID: "p1", Org: "12345678", Roles: []auth.Role{auth.RoleRecipientSystem}})
	tokens.Put(auth.HashToken("tok-p2"), &auth.Principal{ID: "p2", Org: "12345678", Roles: []auth.Role{auth.RoleRecipientSystem}})
	tokens.Put(auth.HashToken("tok-sender"), &auth.Principal{ID: "sender-1", Org: "87654321", Roles: []auth.Role{auth.RoleSender}})
	api := NewPullAPI(store, tokens, prod, testPseudo(t), systems, nil, WithLogger(quiet()))
	mux := http.NewServeMux()
	api.Register(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	call := func(method, path, token, body string) (int, string) {
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	p1id := items[0].env.MessageUUID // p1's
	p2id := items[1].env.MessageUUID // p2's
	ok := `{"receiptStatus":"COMPLETED"}`
	steps := []struct {
		name, method, path, token, body string
		status                          int
		contains                        string
	}{
		{"no token", "GET", "/apis/v1/memos/", "", "", 401, "AUTH_MISSING"},
		{"sender may not pull", "GET", "/apis/v1/memos/", "tok-sender", "", 403, "AUTH_FORBIDDEN"},
		{"list own", "GET", "/apis/v1/memos/?size=5", "tok-p1", "", 200, `"totalElements":13`},
		{"list page 2", "GET", "/apis/v1/memos/?size=5&page=2", "tok-p1", "", 200, `"number":2`},
		{"bad size", "GET", "/apis/v1/memos/?size=0", "tok-p1", "", 400, CodePullBadRequest},
		{"other's message is 404", "GET", "/apis/v1/memos/" + p2id, "tok-p1", "", 404, CodePullNotFound},
		{"other's delete is 404", "DELETE", "/apis/v1/memos/" + p2id, "tok-p1", "", 404, CodePullNotFound},
		{"other's receipt is 404", "POST", "/apis/v1/memos/" + p2id + "/receipt", "tok-p1", ok, 404, CodePullNotFound},
		{"fetch", "GET", "/apis/v1/memos/" + p1id, "tok-p1", "", 200, "<memo/>"},
		{"delete", "DELETE", "/apis/v1/memos/" + p1id, "tok-p1", "", 200, ""},
		{"fetch after delete", "GET", "/apis/v1/memos/" + p1id, "tok-p1", "", 404, CodePullNotFound},
		{"delete twice", "DELETE", "/apis/v1/memos/" + p1id, "tok-p1", "", 404, CodePullNotFound},
		{"bad receipt", "POST", "/apis/v1/memos/" + p1id + "/receipt", "tok-p1", `{"receiptStatus":"MAYBE"}`, 422, CodeReceiptInvalid},
		{"not json", "POST", "/apis/v1/memos/" + p1id + "/receipt", "tok-p1", `nope`, 422, CodeReceiptInvalid},
		{"negative without code", "POST", "/apis/v1/memos/" + p1id + "/receipt", "tok-p1", `{"receiptStatus":"INVALID"}`, 422, CodeReceiptInvalid},
		{"receipt", "POST", "/apis/v1/memos/" + p1id + "/receipt", "tok-p1", ok, 200, `"receiptType":"BUSINESS"`},
		{"second receipt", "POST", "/apis/v1/memos/" + p1id + "/receipt", "tok-p1", ok, 409, CodeReceiptTwice},
		{"list after pickup", "GET", "/apis/v1/memos/?size=100", "tok-p1", "", 200, `"totalElements":12`},
		{"p2 still has its own", "GET", "/apis/v1/memos/" + p2id, "tok-p2", "", 200, "<memo/>"},
	}
	for _, s := range steps {
		st, body := call(s.method, s.path, s.token, s.body)
		if st != s.status || !strings.Contains(body, s.contains) {
			t.Fatalf("%s: HTTP %d %s; want %d with %q", s.name, st, body, s.status, s.contains)
		}
	}
	// Where recall shares DELETE /apis/v1/memos/{id} (schedule.DispatchDelete),
	// a recipient system's DELETE is still a pickup.
	mux2 := http.NewServeMux()
	api.RegisterExceptDelete(mux2)
	mux2.Handle("POST /apis/v1/memos/", http.NotFoundHandler()) // ingest's pattern
	recall := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusAccepted) })
	mux2.Handle("DELETE /apis/v1/memos/{messageUUID}", schedule.DispatchDelete(tokens, recall, api.DeleteHandler()))
	srv2 := httptest.NewServer(mux2)
	defer srv2.Close()
	second := items[2].env.MessageUUID // p1's
	for _, c := range []struct {
		token string
		want  int
	}{{"tok-sender", http.StatusAccepted}, {"tok-p1", http.StatusOK}, {"tok-p1", http.StatusNotFound}} {
		req, _ := http.NewRequest(http.MethodDelete, srv2.URL+"/apis/v1/memos/"+second, nil)
		req.Header.Set("Authorization", "Bearer "+c.token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Fatalf("dispatched DELETE as %s: HTTP %d, want %d", c.token, resp.StatusCode, c.want)
		}
	}

	// The receipt reached memo.receipts for the sender.
	cons := k.client(t, kgo.ConsumeTopics(pipeline.TopicReceipts), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var rc records.Receipt
	for rc.MessageUUID == "" && ctx.Err() == nil {
		cons.PollFetches(ctx).EachRecord(func(r *kgo.Record) { _ = records.DecodeReceipt(r.Value, &rc) })
	}
	if rc.MessageUUID != p1id || rc.SenderSystem != "sender-1" || rc.Kind != records.KindBusiness || rc.ReceiptStatus != records.StatusCompleted {
		t.Fatalf("relayed receipt %+v", rc)
	}
	// A restarted API (new index, same topic) knows the same.
	tail.Close()
	store2, err := OpenOutboxStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer store2.Close()
	tail2, err := StartTailer(context.Background(), store2, []kgo.Opt{kgo.SeedBrokers(k.brokers)}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer tail2.Close()
	waitFor(t, "rebuilt index", 10*time.Second, func() bool {
		e, found, _ := store2.Get("p1", p1id)
		_, n, _ := store2.List("p1", "", 0, 1)
		return found && e.Receipted() && e.Deleted() && n == 11
	})
}
