package httpserver

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestHealthReadyMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "memoflow_test_total", Help: "x"})
	reg.MustRegister(c)
	s := New(reg)
	if err := s.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown(context.Background())
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + s.Addr() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Fatalf("healthz %d", code)
	}
	if code, _ := get("/readyz"); code != 503 {
		t.Fatalf("readyz without checks %d, want 503 (starting)", code)
	}
	ready := false
	s.AddCheck("kafka", func(context.Context) error {
		if !ready {
			return errors.New("no broker")
		}
		return nil
	})
	if code, body := get("/readyz"); code != 503 || !strings.Contains(body, "kafka: not ready: no broker") {
		t.Fatalf("readyz %d %q", code, body)
	}
	ready = true
	if code, _ := get("/readyz"); code != 200 {
		t.Fatalf("readyz %d once ready", code)
	}
	if code, body := get("/metrics"); code != 200 || !strings.Contains(body, "memoflow_test_total") {
		t.Fatalf("metrics %d", code)
	}
	// A second server on the same address fails clearly.
	if err := New(reg).Listen(s.Addr()); !errors.Is(err, ErrAddrInUse) {
		t.Fatalf("Listen on a used address = %v", err)
	}
}

// While Starting, a route that is not mounted yet answers 503 with
// Retry-After (a sender retries), mounted and operational routes answer as
// usual; after Started an unknown route is a 404 again.
func TestStarting(t *testing.T) {
	s := New(prometheus.NewRegistry())
	s.Starting()
	if err := s.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown(context.Background())
	do := func(method, path string) (int, http.Header, string) {
		req, _ := http.NewRequest(method, "http://"+s.Addr()+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, string(b)
	}
	code, h, body := do("POST", "/apis/v1/memos/")
	if code != 503 || h.Get("Retry-After") != "1" || !strings.Contains(body, "SERVICE_STARTING") {
		t.Fatalf("unmounted route while starting: %d %q %q", code, h.Get("Retry-After"), body)
	}
	if code, _, _ := do("GET", "/healthz"); code != 200 {
		t.Fatalf("healthz while starting: %d", code)
	}
	s.Mux.HandleFunc("POST /apis/v1/memos/", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(201) })
	if code, _, _ := do("POST", "/apis/v1/memos/"); code != 201 {
		t.Fatalf("mounted route while starting: %d", code)
	}
	s.Started()
	if code, _, _ := do("GET", "/nothing"); code != 404 {
		t.Fatalf("unknown route after Started: %d", code)
	}
}
