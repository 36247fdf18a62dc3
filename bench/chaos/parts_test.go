package chaos

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/memoflow/memoflow/internal/recipientsim"
)

func TestPlanRecipientFaults(t *testing.T) {
	systems := []string{"mbox-2", "mbox-3", "mbox-4", "mbox-5", "mbox-6", "mbox-7", "mbox-8", "mbox-9", "mbox-10", "mbox-11",
		"mbox-12", "mbox-13", "mbox-14", "mbox-15", "mbox-16", "mbox-17", "mbox-18", "mbox-19", "mbox-20"}
	base := PlanConfig{Seed: 3, Duration: 100 * time.Second, StageKills: 4, ClickHouseOutages: 1, ClickHouseDown: time.Second}
	withRcpt := base
	withRcpt.IngestKills, withRcpt.RecipientOutages, withRcpt.RecipientDown = 1, 1, 20*time.Second
	withRcpt.SlowRecipients, withRcpt.SlowFor, withRcpt.Systems = 1, 10*time.Second, systems

	old := Plan(base, []string{"route-1", "deliver-1"})
	got := Plan(withRcpt, []string{"route-1", "deliver-1"})
	// The older kinds keep their draw under the same seed.
	var kept []Fault
	counts := map[string]int{}
	for _, f := range got {
		counts[f.Kind]++
		switch f.Kind {
		case RecipientsDown:
			if n := len(strings.Split(f.Target, ",")); n != 2 { // ceil(10% of 19)
				t.Errorf("recipients-down takes %d systems (%s), want 2", n, f.Target)
			}
			if f.Pause != 20*time.Second {
				t.Errorf("recipients-down for %v", f.Pause)
			}
		case SlowRecipient:
			if f.Pause != 10*time.Second || !strings.HasPrefix(f.Target, "mbox-") {
				t.Errorf("slow recipient %v", f)
			}
		case KillStage:
			if f.Target == "ingest-1" {
				counts["ingest"]++
				continue
			}
		}
		if f.Kind == KillStage || f.Kind == ClickHouse {
			kept = append(kept, f)
		}
		if f.At < 10*time.Second || f.At > 80*time.Second {
			t.Errorf("%v outside 10%%..80%% of the window", f)
		}
	}
	if counts[RecipientsDown] != 1 || counts[SlowRecipient] != 1 || counts["ingest"] != 1 {
		t.Errorf("fault counts %v", counts)
	}
	if len(kept) != len(old) {
		t.Fatalf("%d older faults, want %d", len(kept), len(old))
	}
	for i := range old {
		if kept[i] != old[i] {
			t.Errorf("fault %d moved: %v, was %v", i, kept[i], old[i])
		}
	}
	// No systems: no recipient faults, even when asked.
	if p := Plan(PlanConfig{Seed: 1, Duration: time.Minute, RecipientOutages: 1, SlowRecipients: 1}, nil); len(p) != 0 {
		t.Errorf("plan without systems: %v", p)
	}
}

func TestKeyCheck(t *testing.T) {
	sim, err := recipientsim.New(recipientsim.Config{})
	if err != nil {
		t.Fatal(err)
	}
	kc := NewKeyCheck(sim.Handler())
	srv := httptest.NewServer(kc)
	defer srv.Close()
	const u = "6f1c2a34-0000-4000-8000-000000000001"
	cases := []struct {
		name, key, uuid, body string
		bad                   bool
	}{
		{"same key, header and body", u, u, "<MessageUUID>" + u + "</MessageUUID>", false},
		{"key is not the uuid header", "other", u, "<MessageUUID>" + u + "</MessageUUID>", true},
		{"key not in the body", u, u, "<MessageUUID>another</MessageUUID>", true},
		{"no key", "", u, "<MessageUUID>" + u + "</MessageUUID>", true},
	}
	want := int64(0)
	for _, c := range cases {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+recipientsim.PushPath("mbox-1"), strings.NewReader(c.body))
		if c.key != "" {
			req.Header.Set("Idempotency-Key", c.key)
		}
		req.Header.Set("X-Memo-Message-UUID", c.uuid)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if c.bad {
			want++
		}
		if got := kc.Stats().Mismatches; got != want {
			t.Errorf("%s: %d mismatches, want %d", c.name, got, want)
		}
	}
	// The simulator behind it still got the body and counted by key.
	if n := sim.Count(u); n != 2 {
		t.Errorf("the simulator counted %s %d times, want 2 (two pushes with that key and a body)", u, n)
	}
}

func TestReceiptSink(t *testing.T) {
	s := NewReceiptSink()
	srv := httptest.NewServer(s)
	defer srv.Close()
	post := func(id, body string) int {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+ReceiptPath, strings.NewReader(body))
		req.Header.Set("X-Memo-Receipt-Id", id)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	done := func(u string) string {
		return `{"messageUUID":"` + u + `","receiptStatus":"COMPLETED","receiptType":"BUSINESS"}`
	}
	post("r1", done("a"))
	post("r1", done("a")) // a repeat: same id
	post("r2", done("b"))
	post("r3", `{"messageUUID":"b","receiptStatus":"RECEIVED","receiptType":"TECHNICAL"}`)
	post("r4", done("c"))
	post("r5", `{"messageUUID":"c","receiptStatus":"FAILED","receiptType":"BUSINESS"}`) // a second final receipt
	if st := post("r6", "not json"); st != http.StatusBadRequest {
		t.Errorf("bad receipt answered %d", st)
	}
	st := s.Stats()
	if st.Final != 3 || st.Repeats != 1 || st.MoreThanOne != 1 || st.Bad != 1 || st.Receipts != 5 || st.ByStatus["TECHNICAL RECEIVED"] != 1 {
		t.Errorf("stats %+v", st)
	}
	if n, some := s.Missing([]string{"a", "b", "c", "d"}, 5); n != 1 || len(some) != 1 || some[0] != "d" {
		t.Errorf("missing %d %v, want 1 [d]", n, some)
	}
}

func TestRecovery(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return start.Add(time.Duration(s * float64(time.Second))) }
	// 100 msgs/s, nothing between 20 s and 30 s, 10/s until 33 s, then
	// 100/s again.
	var samples []Sample
	var d uint64
	for i := 0; i <= 70; i++ {
		switch {
		case i == 0:
		case i <= 20 || i > 33:
			d += 100
		case i > 30:
			d += 10
		}
		samples = append(samples, Sample{T: float64(i), Delivered: d})
	}
	r := &Report{Started: start, Messages: 1_000_000, Samples: samples, Timeline: []Entry{
		{T: at(20), Kind: KillStage, Target: "deliver-1"},
		{T: at(30), Kind: "recovered", Target: "deliver-1"},
		{T: at(55), Kind: KillStage, Target: "route-1"},
		{T: at(56), Kind: "recovered", Target: "route-1"},
	}}
	got := recovery(r)
	if len(got) != 2 {
		t.Fatalf("%d recoveries: %+v", len(got), got)
	}
	// The 5 s from 32 s hold 10+4×100 = 410 ≥ 80% of 5×100.
	if g := got[0]; g.Rate != 100 || g.Second != 2 || !g.Within {
		t.Errorf("deliver-1: %+v, want rate 100, back 2 s after the restart", g)
	}
	if g := got[1]; g.Second != 0 || !g.Within {
		t.Errorf("route-1: %+v, want no drop", g)
	}
	// Never back before the samples end: over the target.
	r.Samples = samples[:36]
	r.Timeline = r.Timeline[:2]
	if g := recovery(r); len(g) != 1 || g[0].Within || g[0].Second != -1 {
		t.Errorf("never recovered: %+v", g)
	}
	// Never back, but the next fault began right after: not a miss of
	// this one (the next one, never back either, is).
	r.Samples = samples[:36]
	r.Timeline = []Entry{
		{T: at(20), Kind: KillStage, Target: "deliver-1"},
		{T: at(30), Kind: "recovered", Target: "deliver-1"},
		{T: at(31), Kind: ClickHouse, Target: "clickhouse"},
		{T: at(32), Kind: "recovered", Target: "clickhouse"},
	}
	if g := recovery(r); len(g) != 2 || !g[0].Within || !strings.Contains(g[0].Note, "next fault") || g[1].Within {
		t.Errorf("overlapping faults: %+v", g)
	}
	// Bursty inserts (every 5 s) still give the mean rate.
	var bursty []Sample
	d = 0
	for i := 0; i <= 60; i++ {
		if i > 0 && i%5 == 0 {
			d += 500
		}
		bursty = append(bursty, Sample{T: float64(i), Delivered: d})
	}
	r = &Report{Started: start, Messages: 1_000_000, Samples: bursty, Timeline: []Entry{
		{T: at(30), Kind: ClickHouse, Target: "clickhouse"},
		{T: at(31), Kind: "recovered", Target: "clickhouse"},
	}}
	if g := recovery(r); len(g) != 1 || g[0].Rate != 100 || g[0].Second != 0 {
		t.Errorf("bursty: %+v, want rate 100, no drop", g)
	}
}
