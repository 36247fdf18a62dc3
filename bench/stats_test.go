package bench

import (
	"math"
	"testing"
	"time"
)

func TestQuantile(t *testing.T) {
	hundred := make([]float64, 100)
	for i := range hundred {
		hundred[i] = float64(i + 1)
	}
	for _, c := range []struct {
		name string
		in   []float64
		q    float64
		want float64
	}{
		{"empty", nil, 0.5, 0},
		{"one", []float64{7}, 0.99, 7},
		{"p50 of 1..100", hundred, 0.5, 50},
		{"p99 of 1..100", hundred, 0.99, 99},
		{"p95 of 1..100", hundred, 0.95, 95},
		{"max", hundred, 1, 100},
		{"min", hundred, 0, 1},
		{"p50 of two takes the lower", []float64{1, 2}, 0.5, 1},
		{"p99 of ten is the largest", []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 0.99, 10},
	} {
		if got := Quantile(c.in, c.q); got != c.want {
			t.Errorf("%s: Quantile(q=%v) = %v, want %v", c.name, c.q, got, c.want)
		}
	}
}

func TestSummarize(t *testing.T) {
	ms := []float64{5, 1, 4, 2, 3}
	l := Summarize(ms)
	if l.Count != 5 || l.P50 != 3 || l.Max != 5 || l.Mean != 3 || l.P99 != 5 {
		t.Fatalf("Summarize = %+v", l)
	}
	if z := Summarize(nil); z.Count != 0 || z.P99 != 0 {
		t.Fatalf("empty: %+v", z)
	}
}

func TestLogHistogram(t *testing.T) {
	vals := []float64{-1, 0.5, 1, 1.1, 9.9, 10, 150, 1000}
	h := LogHistogram(vals, 1)
	total := 0
	for _, b := range h {
		total += b.Count
		if b.Hi <= b.Lo {
			t.Fatalf("bucket %+v", b)
		}
	}
	if total != len(vals) {
		t.Fatalf("histogram holds %d values, want %d: %+v", total, len(vals), h)
	}
	// Decades from 0.1: [0.1,1) [1,10) [10,100) [100,1000) [1000,10000).
	want := []int{2, 3, 1, 1, 1}
	if len(h) != len(want) {
		t.Fatalf("%d buckets, want %d: %+v", len(h), len(want), h)
	}
	for i, n := range want {
		if h[i].Count != n {
			t.Errorf("bucket %d [%g,%g) has %d, want %d", i, h[i].Lo, h[i].Hi, h[i].Count, n)
		}
	}
	if math.Abs(h[1].Lo-1) > 1e-9 {
		t.Errorf("bucket 1 starts at %v", h[1].Lo)
	}
}

func TestTracker(t *testing.T) {
	m := &Manifest{}
	uuids := []string{"00000000-0000-4000-8000-000000000001", "00000000-0000-4000-8000-000000000002",
		"00000000-0000-4000-8000-000000000003", "00000000-0000-4000-8000-000000000004"}
	for i, u := range uuids {
		k := KindLetter
		if i == 3 {
			k = KindInvalid
		}
		m.add(Item{UUID: u, Kind: k, Data: make([]byte, 10)})
	}
	tr := newTracker(m)
	now := time.Now()
	acc := now.Add(-250 * time.Millisecond).UnixMilli()
	tr.arrive(Arrival{UUID: parseUUID(uuids[0]), AcceptedAtMs: acc, At: now})
	tr.arrive(Arrival{UUID: parseUUID(uuids[0]), AcceptedAtMs: acc, At: now}) // duplicate
	tr.arrive(Arrival{UUID: parseUUID(uuids[2]), AcceptedAtMs: acc, At: now})
	tr.arrive(Arrival{UUID: parseUUID("00000000-0000-4000-8000-0000000000ff"), At: now}) // never sent
	tr.arrive(Arrival{UUID: parseUUID(uuids[3]), At: now})                               // invalid: must not arrive
	a, _, _ := tr.snapshotCount()
	if a != 3 {
		t.Fatalf("first arrivals %d, want 3", a)
	}
	lost, dups, unexpected, sample := tr.verdict(func(i int) bool { return m.Kinds[i] != KindInvalid })
	if lost != 1 || dups != 1 || unexpected != 2 {
		t.Fatalf("lost %d dups %d unexpected %d, want 1 1 2", lost, dups, unexpected)
	}
	if len(sample) != 1 || sample[0] != uuids[1] {
		t.Fatalf("lost sample %v, want [%s]", sample, uuids[1])
	}
	lat := tr.latencies()
	if len(lat) != 2 || lat[0] < 249 || lat[0] > 251 {
		t.Fatalf("latencies %v, want two of 250 ms", lat)
	}
	if _, p50, p99 := tr.snapshot(); p50 < 249 || p99 > 251 {
		t.Fatalf("window p50 %v p99 %v", p50, p99)
	}
	if _, p50, _ := tr.snapshot(); p50 != 0 {
		t.Fatalf("window not reset: %v", p50)
	}
}

func TestUUIDRoundTrip(t *testing.T) {
	u := "0f1e2d3c-4b5a-4978-8a69-5b4c3d2e1f00"
	if got := formatUUID(parseUUID(u)); got != u {
		t.Fatalf("round trip %s -> %s", u, got)
	}
}

func TestExpectedEvents(t *testing.T) {
	got := ExpectedEvents([]string{"ingest", "validate", "eventlog"}, Outcome{Accepted: 10, Valid: 8, Invalid: 2})
	want := map[string]int64{"MEMO_MASS_SEND_RECEIVED": 10, "MEMO_SEND_VALIDATED": 8, "MEMO_SEND_VALIDATION_FAILED": 2}
	if len(got) != len(want) {
		t.Fatalf("%v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("%v, want %v", got, want)
		}
	}
	if n := ExpectedEvents([]string{"ingest"}, Outcome{Accepted: 10}); len(n) != 0 {
		t.Fatalf("without validate: %v", n)
	}
	d := EventDiff(map[string]uint64{"A": 3, "X": 1}, map[string]int64{"A": 3, "B": 2})
	if len(d) != 2 || d[0] != "B: got 0, want 2" || d[1] != "X: got 1, want 0" {
		t.Fatalf("diff %q", d)
	}
	if u := unmodelled([]string{"ingest", "validate", "route", "eventlog", "admin-api", "blobgc", "receipt-push"}); u != "receipt-push" {
		t.Fatalf("unmodelled %q", u)
	}
}

func TestNullShape(t *testing.T) {
	for _, c := range []struct {
		stages []string
		hops   int
		sink   bool
		events int
	}{
		{[]string{"ingest"}, 1, false, 0},
		{[]string{"ingest", "validate", "eventlog"}, 1, false, nullEventBytes},
		{[]string{"ingest", "validate", "schedule", "route", "deliver", "eventlog", "receipts"}, 3, true, nullEventBytes},
		{[]string{"ingest", "validate", "route", "deliver"}, 2, true, 0},
	} {
		o := NullShape(c.stages)
		if o.Hops != c.hops || o.Sink != c.sink || o.EventBytes != c.events {
			t.Errorf("NullShape(%v) = hops %d sink %v events %d, want %d %v %d", c.stages, o.Hops, o.Sink, o.EventBytes, c.hops, c.sink, c.events)
		}
	}
}

func TestSoakRSSTrend(t *testing.T) {
	mk := func(rss func(t float64) float64) *Report {
		r := &Report{LoadSeconds: 100, OK: true}
		for i := 0; i <= 110; i++ {
			r.Samples = append(r.Samples, Sample{T: float64(i), RSSMB: rss(float64(i))})
		}
		return r
	}
	s := &Soak{MaxGrowth: 0.2}
	flat := mk(func(t float64) float64 { return 300 + float64(int(t)%3) })
	s.Check(flat)
	if !flat.OK || flat.RSS == nil || !flat.RSS.Flat || flat.RSS.EarlyMB < 300 || flat.RSS.LateMB > 303 {
		t.Fatalf("flat memory judged %+v, failures %v", flat.RSS, flat.Failures)
	}
	// A leak: 2 MB a second, from 300 MB.
	leak := mk(func(t float64) float64 { return 300 + 2*t })
	s.Check(leak)
	if leak.OK || leak.RSS.Flat || leak.RSS.Growth < 0.25 || len(leak.Failures) != 1 {
		t.Fatalf("leaking memory judged %+v, failures %v", leak.RSS, leak.Failures)
	}
	none := &Report{LoadSeconds: 10, OK: true}
	s.Check(none)
	if none.OK {
		t.Fatal("a soak without RSS samples passed")
	}
	if n := (&Soak{Rate: 250, Duration: 10 * time.Second}).Messages(); n != 2500 {
		t.Fatalf("messages %d", n)
	}
	if b := (&Soak{Rate: 250}).BatchSize(10000); b != 250 {
		t.Fatalf("batch %d", b)
	}
}
