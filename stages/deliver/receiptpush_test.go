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

	"github.com/memoflow/memoflow/pipeline"
	"github.com/memoflow/memoflow/schemas/events"
	"github.com/memoflow/memoflow/stages/receipts"
)

// TestReceiptPush: receipts of a sender system with an endpoint are queued
// durably, POSTed, retried after the gap while the endpoint fails, and given
// up after MaxAttempts; systems without an endpoint are skipped.
func TestReceiptPush(t *testing.T) {
	k := newRig(t, testConfig())
	var mu sync.Mutex
	calls := map[string][]string{} // receipt id → sender of each call
	failFirst := map[string]int{"r-ok": 2, "r-never": 1 << 30}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(HeaderReceiptID)
		mu.Lock()
		calls[id] = append(calls[id], r.Header.Get(HeaderIdempotencyKey))
		n := len(calls[id])
		mu.Unlock()
		if n <= failFirst[id] {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	senders := StaticSenders{"snd": srv.URL + "/receipts"}
	p := NewReceiptPusher(senders, k.client(t))
	body := func(uuid string) []byte {
		return []byte(`{"transmissionId":"tx","messageUUID":"` + uuid + `","timeStamp":"2026-03-02T09:00:00.000Z","receiptStatus":"COMPLETED","receiptType":"BUSINESS"}`)
	}
	err := p.Push(context.Background(), []receipts.Pushed{
		{ID: "r-ok", SenderSystem: "snd", Body: body("u1")},
		{ID: "r-never", SenderSystem: "snd", Body: body("u2")},
		{ID: "r-skip", SenderSystem: "no-endpoint", Body: body("u3")},
	})
	if err != nil {
		t.Fatal(err)
	}
	clk := newClock(t0)
	cfg := DefaultReceiptPushConfig()
	cfg.MaxAttempts, cfg.MaxIdle = 4, 20*time.Millisecond
	c, err := NewReceiptPushConsumer(cfg, senders, []kgo.Opt{kgo.SeedBrokers(k.brokers)}, "rp", nil, clk.now, quiet())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = c.Run(ctx); close(done) }()
	defer func() { cancel(); <-done; c.Close() }()
	count := func(id string) int { mu.Lock(); defer mu.Unlock(); return len(calls[id]) }
	for attempt := 1; attempt <= 4; attempt++ {
		waitFor(t, "attempt", 10*time.Second, func() bool { return count("r-never") == attempt })
		time.Sleep(50 * time.Millisecond)
		if n := count("r-never"); n != attempt {
			t.Fatalf("%d calls before the gap passed, want %d", n, attempt)
		}
		clk.add(cfg.Gap)
	}
	waitFor(t, "r-ok delivered", 10*time.Second, func() bool { return count("r-ok") == 3 })
	mu.Lock()
	if calls["r-skip"] != nil || !slices.Equal(calls["r-ok"], []string{"r-ok", "r-ok", "r-ok"}) {
		t.Fatalf("calls %v", calls)
	}
	mu.Unlock()
	// The events: sent for u1, failed (after 4 attempts) for u2.
	cons := k.client(t, kgo.ConsumeTopics(pipeline.TopicEvents), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	got := map[string]events.Tag{}
	waitFor(t, "events", 10*time.Second, func() bool {
		pctx, pcancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer pcancel()
		cons.PollFetches(pctx).EachRecord(func(r *kgo.Record) {
			evs, _ := events.Decode(r.Value, nil)
			for _, e := range evs {
				got[e.MessageUUID] = e.Tag
			}
		})
		return len(got) == 2
	})
	if got["u1"] != events.BusinessReceiptSendToSenderSystem || got["u2"] != events.BusinessReceiptSendToSenderSystemFailed {
		t.Fatalf("events %v", got)
	}
	time.Sleep(100 * time.Millisecond)
	if n := count("r-never"); n != 4 {
		t.Fatalf("%d calls after giving up at 4", n)
	}
}
