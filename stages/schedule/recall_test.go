package schedule

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/memoflow/memoflow/internal/auth"
	"github.com/memoflow/memoflow/pipeline"
	"github.com/memoflow/memoflow/schemas/events"
)

type recallAnswer struct {
	status int
	body   answer
	loc    string
}

func (a *apiServer) do(t testing.TB, method, path, org string) recallAnswer {
	t.Helper()
	req, _ := http.NewRequest(method, a.url+path, nil)
	if org != "" {
		req.Header.Set("Authorization", "Bearer "+a.tokens[org])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Error(err)
		return recallAnswer{}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var ans answer
	if err := json.Unmarshal(b, &ans); err != nil {
		t.Errorf("%s %s: %d %q is not JSON", method, path, resp.StatusCode, b)
	}
	return recallAnswer{resp.StatusCode, ans, resp.Header.Get("Location")}
}

func (a *apiServer) recall(t testing.TB, uuid, org string) recallAnswer {
	return a.do(t, http.MethodDelete, "/apis/v1/memos/"+uuid, org)
}

// holdN holds messages 0..n-1 of org for 2026-06-02 and waits until they are.
func holdN(t *testing.T, h *harness, n int, org string) *collector {
	t.Helper()
	evs := h.collect(pipeline.TopicEvents)
	recs := make([]*kgo.Record, 0, n)
	for i := range n {
		recs = append(recs, envelope(i, org, valueDate(2026, time.June, 2)))
	}
	h.produce(recs...)
	waitFor(t, 30*time.Second, "held", func() bool { return evs.tags(t)[events.DelayedMemoSendValidatedAwaitingDelay] == n })
	return evs
}

func TestRecall(t *testing.T) {
	h := newHarness(t, 3, cph(2026, time.June, 1, 9, 0))
	ready := h.collect(pipeline.TopicReady)
	run := h.start(testConfig(t), "r0")
	api := h.api(10 * time.Second)
	evs := holdN(t, h, 4, "11111111")
	waitFor(t, 10*time.Second, "4 held in the index", func() bool { return run.st.Held() == 4 })

	// Bad input first: no token, bad uuid.
	if a := api.recall(t, uuidOf(0), ""); a.status != http.StatusUnauthorized {
		t.Fatalf("no token: %d", a.status)
	}
	for _, bad := range []string{"not-a-uuid", "00000000-0000-4000-8000-00000000000g", "00000000000040008000000000000000"} {
		a := api.recall(t, bad, "11111111")
		if a.status != http.StatusBadRequest || a.body.ErrorCode != CodeRecallBadUUID {
			t.Fatalf("recall %q: %d %+v, want 400 %s", bad, a.status, a.body, CodeRecallBadUUID)
		}
	}
	// Another organisation cannot recall (nor learn that it exists).
	if a := api.recall(t, uuidOf(1), "22222222"); a.status != http.StatusNotFound || a.body.ErrorCode != CodeRecallNotFound {
		t.Fatalf("other sender: %d %+v, want 404 %s", a.status, a.body, CodeRecallNotFound)
	}
	// Unknown uuid.
	if a := api.recall(t, uuidOf(999), "11111111"); a.status != http.StatusNotFound || a.body.ErrorCode != CodeRecallNotFound {
		t.Fatalf("unknown: %d %+v", a.status, a.body)
	}
	// Before release: recalled, both spellings of the endpoint.
	if a := api.recall(t, uuidOf(0), "11111111"); a.status != http.StatusOK || a.body.Outcome != OutcomeRecalled {
		t.Fatalf("recall before release: %d %+v", a.status, a.body)
	}
	if a := api.do(t, http.MethodPost, "/apis/v1/memos/"+uuidOf(2)+"/recall", "11111111"); a.status != http.StatusOK || a.body.Outcome != OutcomeRecalled {
		t.Fatalf("POST recall: %d %+v", a.status, a.body)
	}
	if a := api.recall(t, uuidOf(0), "11111111"); a.status != http.StatusOK || a.body.Outcome != OutcomeAlreadyRecalled {
		t.Fatalf("second recall: %d %+v", a.status, a.body)
	}

	// The value date comes: only 1 and 3 are released.
	h.clock.Set(cph(2026, time.June, 2, 0, 0))
	waitFor(t, 10*time.Second, "release", func() bool { return ready.len() >= 2 })
	time.Sleep(300 * time.Millisecond)
	if k := ready.keys(); len(k) != 2 || k[uuidOf(1)] != 1 || k[uuidOf(3)] != 1 {
		t.Fatalf("released %v, want 1 and 3 once each", k)
	}
	if n := evs.tags(t)[events.DelayedMemoMessageRecalled]; n != 2 {
		t.Fatalf("%d DELAYED_MEMO_MESSAGE_RECALLED events, want 2", n)
	}
	waitFor(t, 10*time.Second, "nothing held any more", func() bool { return run.st.Held() == 0 })
	// After release: 409, to the sender only.
	a := api.recall(t, uuidOf(1), "11111111")
	if a.status != http.StatusConflict || a.body.ErrorCode != CodeRecallTooLate || a.body.ReleasedAt == "" {
		t.Fatalf("recall after release: %d %+v, want 409 %s", a.status, a.body, CodeRecallTooLate)
	}
	if a := api.recall(t, uuidOf(1), "22222222"); a.status != http.StatusNotFound {
		t.Fatalf("other sender after release: %d", a.status)
	}
}

// When the decision takes longer than the wait, the API answers 202 with
// a status URL that later gives the outcome.
func TestRecallPendingStatusURL(t *testing.T) {
	h := newHarness(t, 1, cph(2026, time.June, 1, 9, 0))
	api := h.api(50 * time.Millisecond)
	// No stage is running yet: the recall waits in memo.schedule.
	a := api.recall(t, uuidOf(0), "11111111")
	if a.status != http.StatusAccepted || a.body.ErrorCode != CodeRecallPending || a.loc == "" || a.loc != a.body.StatusURL {
		t.Fatalf("recall with no stage running: %d %+v loc %q", a.status, a.body, a.loc)
	}
	if b := api.do(t, http.MethodGet, a.loc, "11111111"); b.status != http.StatusAccepted {
		t.Fatalf("status before the decision: %d", b.status)
	}
	if b := api.do(t, http.MethodGet, "/apis/v1/memos/"+uuidOf(0)+"/recall/zz", "11111111"); b.status != http.StatusNotFound || b.body.ErrorCode != CodeRecallNoRequest {
		t.Fatalf("bad request id: %d %+v", b.status, b.body)
	}
	h.start(testConfig(t), "r0")
	var b recallAnswer
	waitFor(t, 20*time.Second, "the decision", func() bool {
		b = api.do(t, http.MethodGet, a.loc, "11111111")
		return b.status != http.StatusAccepted
	})
	if b.status != http.StatusNotFound || b.body.Outcome != OutcomeNotFound {
		t.Fatalf("status of a recall of an unknown message: %d %+v", b.status, b.body)
	}
	if c := api.do(t, http.MethodGet, a.loc, "22222222"); c.status != http.StatusNotFound || c.body.ErrorCode != CodeRecallNoRequest {
		t.Fatalf("another organisation read the status: %d %+v", c.status, c.body)
	}
}

// Recalls racing the release at midnight: every message has exactly one
// outcome. A recalled message never reaches memo.ready; a TOO_LATE one
// reaches it exactly once; nothing is lost. Several rounds, each with its
// own broker.
func TestRecallRacingRelease(t *testing.T) {
	rounds, n := 5, 150
	if testing.Short() {
		rounds = 2
	}
	for round := range rounds {
		t.Run(fmt.Sprint(round), func(t *testing.T) {
			h := newHarness(t, 3, cph(2026, time.June, 1, 23, 59))
			ready := h.collect(pipeline.TopicReady)
			cfg := testConfig(t)
			cfg.ReleaseRate = 60 // per partition: the release spreads over the recalls
			h.start(cfg, "r0")
			api := h.api(20 * time.Second)
			holdN(t, h, n, "11111111")

			outcomes := make([]recallAnswer, n)
			var wg sync.WaitGroup
			sem := make(chan struct{}, 16)
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					sem <- struct{}{}
					defer func() { <-sem }()
					if i == n/5 {
						h.clock.Set(cph(2026, time.June, 2, 0, 0))
					}
					// Recalls from the last message, releases from the
					// first: they meet in the middle.
					outcomes[n-1-i] = api.recall(t, uuidOf(n-1-i), "11111111")
				}()
			}
			wg.Wait()
			recalled, late := 0, 0
			for i, a := range outcomes {
				switch {
				case a.status == http.StatusOK && a.body.Outcome == OutcomeRecalled:
					recalled++
				case a.status == http.StatusConflict && a.body.Outcome == OutcomeTooLate:
					late++
				default:
					t.Fatalf("message %d: %d %+v", i, a.status, a.body)
				}
			}
			waitFor(t, 20*time.Second, "the released ones", func() bool { return ready.len() >= late })
			time.Sleep(500 * time.Millisecond)
			keys := ready.keys()
			for i, a := range outcomes {
				c := keys[uuidOf(i)]
				if a.body.Outcome == OutcomeRecalled && c != 0 || a.body.Outcome == OutcomeTooLate && c != 1 {
					t.Fatalf("message %d: outcome %s but on memo.ready %d times", i, a.body.Outcome, c)
				}
			}
			if len(keys) != late || ready.len() != late {
				t.Fatalf("memo.ready has %d records (%d keys), want %d", ready.len(), len(keys), late)
			}
			t.Logf("round %d: %d recalled, %d too late", round, recalled, late)
		})
	}
}

// Held messages survive a restart: a new replica (new index directory,
// same broker) takes over mid-release; every message is released exactly
// once.
func TestRestartWithHeldMessages(t *testing.T) {
	const n = 900
	h := newHarness(t, 3, cph(2026, time.June, 1, 12, 0))
	ready := h.collect(pipeline.TopicReady)
	cfg := testConfig(t)
	cfg.ReleaseRate = 150 // per partition: ~2 s for the whole release
	first := h.start(cfg, "r0")
	holdN(t, h, n, "11111111")

	// A restart before the date: nothing is released, nothing lost.
	first.stop(t)
	cfg.Dir = t.TempDir()
	second := h.start(cfg, "r1")
	waitFor(t, 20*time.Second, "the new replica to hold all of them", func() bool { return second.st.Held() == n })
	h.clock.Set(cph(2026, time.June, 2, 0, 0))
	waitFor(t, 20*time.Second, "a third of the release", func() bool { return ready.len() >= n/3 })
	// And one in the middle of the release.
	second.stop(t)
	mid := ready.len()
	cfg.Dir = t.TempDir()
	h.start(cfg, "r2")
	waitFor(t, 30*time.Second, "the whole release", func() bool { return ready.len() >= n })
	time.Sleep(500 * time.Millisecond)
	keys := ready.keys()
	for i := range n {
		if keys[uuidOf(i)] != 1 {
			t.Fatalf("message %d released %d times (stopped after %d of %d)", i, keys[uuidOf(i)], mid, n)
		}
	}
	if ready.len() != n {
		t.Fatalf("%d records on memo.ready, want %d", ready.len(), n)
	}
	if mid >= n {
		t.Fatalf("the release finished before the restart (%d); the test did not restart mid-release", mid)
	}
}

// A recalled message's marker is forgotten after the marker retention: a
// later recall is then 404, and memo.held holds a tombstone for it.
func TestMarkersForgottenAfterRetention(t *testing.T) {
	h := newHarness(t, 1, cph(2026, time.June, 1, 9, 0))
	held := h.collect(pipeline.TopicHeld)
	cfg := testConfig(t)
	cfg.MarkerRetention = time.Hour
	h.start(cfg, "r0")
	api := h.api(10 * time.Second)
	holdN(t, h, 1, "11111111")
	if a := api.recall(t, uuidOf(0), "11111111"); a.body.Outcome != OutcomeRecalled {
		t.Fatalf("recall: %+v", a.body)
	}
	if a := api.recall(t, uuidOf(0), "11111111"); a.body.Outcome != OutcomeAlreadyRecalled {
		t.Fatalf("second recall within the retention: %+v", a.body)
	}
	h.clock.Set(cph(2026, time.June, 1, 10, 1))
	waitFor(t, 10*time.Second, "a tombstone on memo.held", func() bool {
		rs := held.snapshot()
		return len(rs) > 0 && rs[len(rs)-1].Value == nil
	})
	if a := api.recall(t, uuidOf(0), "11111111"); a.status != http.StatusNotFound || a.body.Outcome != OutcomeNotFound {
		t.Fatalf("recall after the retention: %d %+v", a.status, a.body)
	}
	if n := len(held.snapshot()); n != 3 {
		t.Fatalf("memo.held has %d records, want HELD, RECALLED, tombstone", n)
	}
}

// Records the stage cannot read go to the DLQ with their code; the rest
// goes on.
func TestPoisonToDLQ(t *testing.T) {
	h := newHarness(t, 1, cph(2026, time.June, 1, 9, 0))
	dlq, ready := h.collect(pipeline.TopicDLQ), h.collect(pipeline.TopicReady)
	h.start(testConfig(t), "r0")
	h.produce(&kgo.Record{Topic: pipeline.TopicValid, Key: []byte(uuidOf(1)), Value: []byte("not an envelope")},
		&kgo.Record{Topic: pipeline.TopicSchedule, Key: []byte(uuidOf(2)), Value: []byte(`{"kind":"launch"}`)},
		envelope(3, "11111111", 0))
	waitFor(t, 20*time.Second, "2 DLQ records and the good message", func() bool { return dlq.len() >= 2 && ready.len() >= 1 })
	codes := map[string]int{}
	for _, r := range dlq.snapshot() {
		for _, hd := range r.Headers {
			if hd.Key == "memoflow.dlq.code" {
				codes[string(hd.Value)]++
			}
		}
	}
	if codes[CodeBadEnvelope] != 1 || codes[CodeBadCommand] != 1 {
		t.Fatalf("DLQ codes %v", codes)
	}
}

// memo.held with another partition count than memo.valid stops the stage
// with an error that says so, instead of misplacing recalls.
func TestPartitionCountMismatchIsFatal(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, pipeline.TopicValid, pipeline.TopicSchedule,
		pipeline.TopicReady, pipeline.TopicEvents, pipeline.TopicRecalls, pipeline.TopicDLQ), kfake.SeedTopics(3, pipeline.TopicHeld))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	h := &harness{t: t, parts: 2, clock: &fakeClock{t: cph(2026, time.June, 1, 9, 0)}, pseudo: mustPseudo(t),
		kc: pipeline.KafkaConfig{Brokers: c.ListenAddrs()[0], ClientID: "test", DialTimeout: 5 * time.Second, TopicPartitions: 2, TopicReplication: 1}}
	run := h.start(testConfig(t), "r0")
	h.produce(envelope(1, "11111111", valueDate(2026, time.June, 2)))
	select {
	case err := <-run.done:
		if err == nil || !strings.Contains(err.Error(), "same number of partitions") || pipeline.ClassOf(err) != pipeline.ClassFatal {
			t.Fatalf("Run returned %v, want a fatal partition-count error", err)
		}
		run.done <- nil // for the cleanup's stop
	case <-time.After(20 * time.Second):
		t.Fatal("the stage kept running with mismatched partition counts")
	}
}

func TestNewNeedsDirAndPseudonymizer(t *testing.T) {
	cfg := DefaultConfig()
	if _, err := New(cfg, nil, mustPseudo(t)); err == nil || !strings.HasPrefix(err.Error(), "schedule.dir:") {
		t.Fatalf("New without Dir: %v", err)
	}
	cfg.Dir = t.TempDir()
	if _, err := New(cfg, nil, nil); err == nil {
		t.Fatal("New without a Pseudonymizer succeeded")
	}
}

// Where the REST-pull API shares DELETE /apis/v1/memos/{id}, the
// dispatcher sends senders to recall and recipient systems to pull.
func TestDispatchDelete(t *testing.T) {
	h := newHarness(t, 1, cph(2026, time.June, 1, 9, 0))
	store := auth.NewMemStore()
	tok := map[string]string{}
	for name, roles := range map[string][]auth.Role{
		"sender": {auth.RoleSender}, "recipient": {auth.RoleRecipientSystem}, "admin": {auth.RoleSystemAdmin},
	} {
		tok[name] = auth.NewToken()
		store.Put(auth.HashToken(tok[name]), &auth.Principal{ID: name, Org: "11111111", Roles: roles})
	}
	prod, err := kgo.NewClient(h.opts()...)
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	api, err := NewAPI(store, prod, h.opts(), APIConfig{Wait: time.Second, MaxResults: 10}, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	defer api.Close()
	pulled := ""
	pull := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		pulled = r.PathValue("id")
		w.WriteHeader(http.StatusNoContent)
	})
	mux := http.NewServeMux()
	api.RegisterShared(mux)
	mux.Handle("DELETE /apis/v1/memos/{id}", DispatchDelete(store, api.RecallHandler(), pull))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	del := func(who, id string) (int, string) {
		req, _ := http.NewRequest(http.MethodDelete, srv.URL+"/apis/v1/memos/"+id, nil)
		if who != "" {
			req.Header.Set("Authorization", "Bearer "+tok[who])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := del("sender", "bad"); code != http.StatusBadRequest || !strings.Contains(body, CodeRecallBadUUID) {
		t.Fatalf("sender: %d %s, want the recall API's 400", code, body)
	}
	if code, _ := del("recipient", "m-42"); code != http.StatusNoContent || pulled != "m-42" {
		t.Fatalf("recipient system: %d, pulled %q", code, pulled)
	}
	if code, body := del("admin", "m-42"); code != http.StatusForbidden || !strings.Contains(body, auth.CodeForbidden) {
		t.Fatalf("admin: %d %s", code, body)
	}
	if code, _ := del("", "m-42"); code != http.StatusUnauthorized {
		t.Fatalf("no token: %d", code)
	}
}
