package sendclient

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/memoflow/memoflow/internal/auth"
	"github.com/memoflow/memoflow/pipeline"
	"github.com/memoflow/memoflow/schemas/memo"
	"github.com/memoflow/memoflow/stages/ingest"
)

const org = "12345678"

// server runs the real ingest API over in-process kfake; fail503 makes the
// first n batch posts answer 503.
func server(t *testing.T, fail503 int64) (url, token, brokers string, posts *atomic.Int64) {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, pipeline.TopicIngest, pipeline.TopicReceipts))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	store := auth.NewMemStore()
	token = auth.NewToken()
	store.Put(auth.HashToken(token), &auth.Principal{ID: "sys", Org: org, Roles: []auth.Role{auth.RoleSender}})
	api, err := ingest.New(ingest.Config{MaxShipmentBytes: 64 << 20, RatePerSecond: 1000, RateBurst: 1000, OverloadBytes: 64 << 20, AckTimeout: 10 * time.Second},
		store, cl, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	api.Register(mux)
	posts = &atomic.Int64{}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if posts.Add(1) <= fail503 {
			w.Header().Set("Retry-After", "0")
			http.Error(w, `{"errorCode":"INGEST_OVERLOADED"}`, http.StatusServiceUnavailable)
			return
		}
		mux.ServeHTTP(w, r)
	})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL, token, c.ListenAddrs()[0], posts
}

func countIngested(t *testing.T, brokers string) map[string]int {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers), kgo.ConsumeTopics(pipeline.TopicIngest), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	seen := map[string]int{}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) { seen[string(r.Key)]++ })
	}
	return seen
}

func gen(n int) Source {
	return NewGenSource(n, memo.GenConfig{Seed: 7, SenderCVRs: []string{org}, Now: time.Now()})
}

func TestSendResumesWithoutDuplicates(t *testing.T) {
	url, token, brokers, _ := server(t, 0)
	journal := filepath.Join(t.TempDir(), "j")
	// First run: stop after the first batch (a crash, for the client).
	ctx, cancel := context.WithCancel(context.Background())
	o := Options{URL: url, Token: token, BatchSize: 100, Concurrency: 1, Journal: journal}
	o.OnProgress = func(done int) {
		if done >= 100 {
			cancel()
		}
	}
	sum, _ := Send(ctx, gen(500), o)
	if sum == nil || sum.Accepted < 100 || sum.Accepted >= 500 {
		t.Fatalf("first run accepted %v, want a part", sum)
	}
	first := sum.Accepted
	o.OnProgress = nil
	sum, err := Send(context.Background(), gen(500), o)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Skipped != first || sum.Accepted != 500-first {
		t.Fatalf("rerun: skipped %d accepted %d, want %d and %d", sum.Skipped, sum.Accepted, first, 500-first)
	}
	seen := countIngested(t, brokers)
	if len(seen) != 500 {
		t.Fatalf("%d distinct messages ingested, want 500", len(seen))
	}
	for u, n := range seen {
		if n != 1 {
			t.Fatalf("%s ingested %d times", u, n)
		}
	}
}

func TestSendRetries503(t *testing.T) {
	url, token, brokers, posts := server(t, 2)
	sum, err := Send(context.Background(), gen(150), Options{URL: url, Token: token, BatchSize: 100, Concurrency: 1})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Accepted != 150 || posts.Load() != 4 {
		t.Fatalf("accepted %d with %d posts, want 150 with 4 (2 refused, 2 batches)", sum.Accepted, posts.Load())
	}
	if n := len(countIngested(t, brokers)); n != 150 {
		t.Fatalf("%d ingested", n)
	}
}

func TestSendReportsRejections(t *testing.T) {
	url, token, _, _ := server(t, 0)
	// Messages from another organisation are NOT_ALLOWED, one by one.
	src := NewGenSource(30, memo.GenConfig{Seed: 3, SenderCVRs: []string{"87654321"}})
	sum, err := Send(context.Background(), src, Options{URL: url, Token: token, BatchSize: 10})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Rejected != 30 || sum.RejectedByCode[ingest.CodeSenderNotAllowed] != 30 {
		t.Fatalf("summary %+v", sum)
	}
	for _, r := range sum.Results {
		if r.Status != "NOT_ALLOWED" {
			t.Fatalf("result %+v", r)
		}
	}
}
