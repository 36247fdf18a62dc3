// Package recipientsim simulates recipient systems for tests, benchmarks
// and `memoflow sim recipient`: a push endpoint (many systems on one
// server, one path each) with configurable latency, failure rate and
// negative receipts, and a pull client for the pull API. It counts what
// arrives by messageUUID (the idempotency key) and reports duplicates and,
// against the uuids it was told to expect, missing ones.
package recipientsim

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/encoding/json"
)

// Config says how the simulated systems behave.
type Config struct {
	// Latency is added to every push answer (plus up to Jitter).
	Latency time.Duration
	Jitter  time.Duration
	// FailureRate of pushes answer 503 (0..1).
	FailureRate float64
	// NegativeRate of pushes answer 200 with a negative business receipt.
	NegativeRate float64
	// Seed makes the random choices repeatable (0: a fixed default).
	Seed uint64
}

// Validate checks c.
func (c *Config) Validate() error {
	switch {
	case c.Latency < 0 || c.Jitter < 0:
		return errors.New("recipientsim: latency and jitter must not be negative")
	case c.FailureRate < 0 || c.FailureRate > 1:
		return fmt.Errorf("recipientsim: failure rate %v: give 0..1", c.FailureRate)
	case c.NegativeRate < 0 || c.NegativeRate > 1:
		return fmt.Errorf("recipientsim: negative rate %v: give 0..1", c.NegativeRate)
	}
	return nil
}

// Sim is a set of simulated recipient systems.
type Sim struct {
	cfg Config

	mu       sync.Mutex
	rnd      *rand.Rand
	accepted map[string]uint32 // uuid → accepted deliveries (push 2xx or pull fetch)
	expected map[string]struct{}
	down     map[string]bool
	latency  map[string]time.Duration

	attempts  atomic.Int64
	failed    atomic.Int64
	negative  atomic.Int64
	delivered atomic.Int64
	bySystem  sync.Map // system → *atomic.Int64 accepted
	onAccept  atomic.Pointer[func(system, uuid string)]
}

// OnAccept calls fn for every accepted delivery (duplicates included), as
// it is accepted: a benchmark's arrival point. fn must be quick and safe
// for concurrent use; nil removes it.
func (s *Sim) OnAccept(fn func(system, uuid string)) {
	if fn == nil {
		s.onAccept.Store(nil)
		return
	}
	s.onAccept.Store(&fn)
}

// New returns a simulator.
func New(cfg Config) (*Sim, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	seed := cfg.Seed
	if seed == 0 {
		seed = 1
	}
	return &Sim{
		cfg: cfg, rnd: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		accepted: map[string]uint32{}, expected: map[string]struct{}{},
		down: map[string]bool{}, latency: map[string]time.Duration{},
	}, nil
}

// SetDown makes system answer 503 to everything (true) or behave (false).
func (s *Sim) SetDown(system string, down bool) {
	s.mu.Lock()
	s.down[system] = down
	s.mu.Unlock()
}

// SetLatency overrides the latency of one system.
func (s *Sim) SetLatency(system string, d time.Duration) {
	s.mu.Lock()
	s.latency[system] = d
	s.mu.Unlock()
}

// Expect registers uuids that should arrive; Stats reports those that did
// not.
func (s *Sim) Expect(uuids ...string) {
	s.mu.Lock()
	for _, u := range uuids {
		s.expected[u] = struct{}{}
	}
	s.mu.Unlock()
}

// PushPath is where system's pushes go on the simulator's server.
func PushPath(system string) string { return "/push/" + system }

// Handler serves POST /push/{system} and GET /stats.
func (s *Sim) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /push/{system}", s.push)
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(s.Stats())
	})
	return mux
}

func (s *Sim) push(w http.ResponseWriter, r *http.Request) {
	system := r.PathValue("system")
	s.attempts.Add(1)
	uuid := r.Header.Get("Idempotency-Key")
	_, _ = io.Copy(io.Discard, r.Body)
	s.mu.Lock()
	down := s.down[system]
	lat, ok := s.latency[system]
	if !ok {
		lat = s.cfg.Latency
	}
	if s.cfg.Jitter > 0 {
		lat += time.Duration(s.rnd.Int64N(int64(s.cfg.Jitter)))
	}
	roll := s.rnd.Float64()
	s.mu.Unlock()
	if lat > 0 {
		select {
		case <-time.After(lat):
		case <-r.Context().Done():
			return
		}
	}
	switch {
	case down || roll < s.cfg.FailureRate:
		s.failed.Add(1)
		http.Error(w, "simulated failure", http.StatusServiceUnavailable)
		return
	case roll < s.cfg.FailureRate+s.cfg.NegativeRate:
		s.negative.Add(1)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"messageUUID":%q,"receiptStatus":"INVALID","errorCode":"SIM_REJECTED","errorMessage":"simulated negative receipt"}`, uuid)
		return
	case uuid == "":
		http.Error(w, "no Idempotency-Key", http.StatusBadRequest)
		return
	}
	s.record(system, uuid)
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"messageUUID":%q,"receiptStatus":"COMPLETED"}`, uuid)
}

func (s *Sim) record(system, uuid string) {
	s.delivered.Add(1)
	c, _ := s.bySystem.LoadOrStore(system, new(atomic.Int64))
	c.(*atomic.Int64).Add(1)
	s.mu.Lock()
	s.accepted[uuid]++
	s.mu.Unlock()
	if fn := s.onAccept.Load(); fn != nil {
		(*fn)(system, uuid)
	}
}

// Stats is what the simulator saw.
type Stats struct {
	Attempts  int64 `json:"attempts"`  // push calls
	Failed    int64 `json:"failed"`    // answered 503
	Negative  int64 `json:"negative"`  // answered with a negative receipt
	Delivered int64 `json:"delivered"` // accepted deliveries, duplicates included
	Unique    int   `json:"unique"`    // distinct messageUUIDs accepted
	// Duplicates are uuids accepted more than once (same idempotency key).
	Duplicates []string `json:"duplicates,omitempty"`
	// Missing are expected uuids never accepted.
	Missing      []string `json:"missing,omitempty"`
	MissingCount int      `json:"missingCount"`
	DupCount     int      `json:"duplicateCount"`
}

// Stats returns the counts; at most 100 duplicate and missing uuids are
// listed, the counts are complete.
func (s *Sim) Stats() Stats {
	st := Stats{Attempts: s.attempts.Load(), Failed: s.failed.Load(), Negative: s.negative.Load(), Delivered: s.delivered.Load()}
	s.mu.Lock()
	defer s.mu.Unlock()
	st.Unique = len(s.accepted)
	for u, n := range s.accepted {
		if n > 1 {
			st.DupCount++
			if len(st.Duplicates) < 100 {
				st.Duplicates = append(st.Duplicates, u)
			}
		}
	}
	for u := range s.expected {
		if s.accepted[u] == 0 {
			st.MissingCount++
			if len(st.Missing) < 100 {
				st.Missing = append(st.Missing, u)
			}
		}
	}
	sort.Strings(st.Duplicates)
	sort.Strings(st.Missing)
	return st
}

// Accepted returns how many deliveries system accepted.
func (s *Sim) Accepted(system string) int64 {
	c, ok := s.bySystem.Load(system)
	if !ok {
		return 0
	}
	return c.(*atomic.Int64).Load()
}

// Count returns how often uuid was accepted.
func (s *Sim) Count(uuid string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return int(s.accepted[uuid])
}

// Summary is a one-paragraph human report.
func (st Stats) Summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "attempts %d, failed %d, negative %d, delivered %d, unique %d, duplicates %d, missing %d",
		st.Attempts, st.Failed, st.Negative, st.Delivered, st.Unique, st.DupCount, st.MissingCount)
	return b.String()
}

// Puller is a recipient system collecting its post through the pull API:
// list, fetch, delete, receipt.
type Puller struct {
	Base   string // e.g. http://127.0.0.1:8080
	System string
	Token  string
	Client *http.Client
	// PageSize of the list calls.
	PageSize int
	// Negative receipts with this probability (0..1).
	NegativeRate float64
	sim          *Sim
}

// NewPuller returns a puller recording into s.
func (s *Sim) NewPuller(base, system, token string) *Puller {
	return &Puller{Base: strings.TrimRight(base, "/"), System: system, Token: token, Client: http.DefaultClient, PageSize: 100, sim: s}
}

func (p *Puller) do(ctx context.Context, method, path string, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, p.Base+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+p.Token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := p.Client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// Cycle is one pass over the outbox: every listed message is fetched,
// deleted and receipted. It returns how many messages it collected.
func (p *Puller) Cycle(ctx context.Context) (int, error) {
	st, b, err := p.do(ctx, http.MethodGet, fmt.Sprintf("/apis/v1/memos/?size=%d", p.PageSize), nil)
	if err != nil {
		return 0, err
	}
	if st != http.StatusOK {
		return 0, fmt.Errorf("list: HTTP %d: %s", st, b)
	}
	var page struct {
		Content []string `json:"content"`
	}
	if err := json.Unmarshal(b, &page); err != nil {
		return 0, fmt.Errorf("list: %w", err)
	}
	n := 0
	for _, id := range page.Content {
		if err := p.collect(ctx, id); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

func (p *Puller) collect(ctx context.Context, id string) error {
	st, b, err := p.do(ctx, http.MethodGet, "/apis/v1/memos/"+id, nil)
	if err != nil {
		return err
	}
	if st != http.StatusOK {
		return fmt.Errorf("fetch %s: HTTP %d: %s", id, st, b)
	}
	if st, b, err = p.do(ctx, http.MethodDelete, "/apis/v1/memos/"+id, nil); err != nil {
		return err
	} else if st != http.StatusOK {
		return fmt.Errorf("delete %s: HTTP %d: %s", id, st, b)
	}
	rc := `{"messageUUID":"` + id + `","receiptStatus":"COMPLETED"}`
	if p.NegativeRate > 0 && p.sim != nil {
		p.sim.mu.Lock()
		neg := p.sim.rnd.Float64() < p.NegativeRate
		p.sim.mu.Unlock()
		if neg {
			rc = `{"messageUUID":"` + id + `","receiptStatus":"INVALID","errorCode":"SIM_REJECTED"}`
		}
	}
	if st, b, err = p.do(ctx, http.MethodPost, "/apis/v1/memos/"+id+"/receipt", []byte(rc)); err != nil {
		return err
	} else if st != http.StatusOK {
		return fmt.Errorf("receipt %s: HTTP %d: %s", id, st, b)
	}
	if p.sim != nil {
		p.sim.attempts.Add(1)
		p.sim.record(p.System, id)
	}
	return nil
}
