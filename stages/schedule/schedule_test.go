package schedule

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/memoflow/memoflow/pipeline"
	"github.com/memoflow/memoflow/schemas/events"
	"github.com/memoflow/memoflow/schemas/records"
)

func cph(y int, m time.Month, d, hh, mm int) time.Time {
	return time.Date(y, m, d, hh, mm, 0, 0, Copenhagen)
}

func TestReleaseTime(t *testing.T) {
	for _, tc := range []struct {
		name string
		date uint32
		want string // UTC
	}{
		{"winter", valueDate(2026, time.January, 15), "2026-01-14T23:00:00Z"},
		{"DST starts that night (midnight is still CET)", valueDate(2026, time.March, 29), "2026-03-28T23:00:00Z"},
		{"first CEST midnight", valueDate(2026, time.March, 30), "2026-03-29T22:00:00Z"},
		{"DST ends that night (midnight is still CEST)", valueDate(2026, time.October, 25), "2026-10-24T22:00:00Z"},
		{"first CET midnight", valueDate(2026, time.October, 26), "2026-10-25T23:00:00Z"},
	} {
		got, ok := ReleaseTime(tc.date, Copenhagen)
		if !ok || got.UTC().Format(time.RFC3339) != tc.want {
			t.Errorf("%s: ReleaseTime = %s (%v), want %s", tc.name, got.UTC().Format(time.RFC3339), ok, tc.want)
		}
	}
	if _, ok := ReleaseTime(0, Copenhagen); ok {
		t.Error("no value date must have no release time")
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		field string
		mod   func(*Config)
	}{
		{"schedule.recall_wait", func(c *Config) { c.RecallWait = 0 }},
		{"schedule.release_rate", func(c *Config) { c.ReleaseRate = 0 }},
		{"schedule.tick_interval", func(c *Config) { c.TickInterval = 0 }},
		{"schedule.max_release_per_tick", func(c *Config) { c.MaxReleasePerTick = 0 }},
		{"schedule.marker_retention", func(c *Config) { c.MarkerRetention = time.Minute }},
		{"schedule.sync_timeout", func(c *Config) { c.SyncTimeout = 0 }},
	} {
		c := DefaultConfig()
		tc.mod(&c)
		if err := c.Validate(); err == nil || !strings.HasPrefix(err.Error(), tc.field+":") {
			t.Errorf("%s: Validate() = %v, want an error naming the field", tc.field, err)
		}
	}
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestHeldRecordRoundTrip(t *testing.T) {
	for _, h := range []heldRec{
		{kind: kindHeld, releaseAt: 1_790_000_000_000, seq: 42, at: 1_780_000_000_000, org: "11111111", system: "s", envelope: []byte{1, 2, 3}},
		{kind: kindReleased, releaseAt: 5, seq: 0, at: -1, org: "1", system: ""},
		{kind: kindRecalled, releaseAt: 5, seq: 7, at: 9, org: "12345678", system: "sys"},
	} {
		got, err := decodeHeld(h.appendTo(nil))
		if err != nil || got.kind != h.kind || got.releaseAt != h.releaseAt || got.seq != h.seq || got.at != h.at ||
			got.org != h.org || got.system != h.system || string(got.envelope) != string(h.envelope) {
			t.Errorf("round trip of %+v: %+v, %v", h, got, err)
		}
	}
	for _, bad := range [][]byte{nil, {1}, {2, 1}, {1, 9, 0, 0, 0, 0, 0}, {1, kindHeld, 1, 1, 2, 0, 0}} {
		if _, err := decodeHeld(bad); err == nil {
			t.Errorf("decodeHeld(%v) accepted", bad)
		}
	}
}

// Messages without a value date, or with one today or in the past, go
// straight to memo.ready; nothing is held.
func TestPassThrough(t *testing.T) {
	now := cph(2026, time.March, 10, 14, 0)
	h := newHarness(t, 3, now)
	ready, held, evs := h.collect(pipeline.TopicReady), h.collect(pipeline.TopicHeld), h.collect(pipeline.TopicEvents)
	h.start(testConfig(t), "r0")
	h.produce(envelope(1, "11111111", 0), envelope(2, "11111111", valueDate(2026, time.March, 10)),
		envelope(3, "11111111", valueDate(2025, time.December, 24)))
	waitFor(t, 20*time.Second, "3 messages on memo.ready", func() bool { return ready.len() >= 3 })
	time.Sleep(200 * time.Millisecond)
	if k := ready.keys(); len(k) != 3 || k[uuidOf(1)] != 1 || k[uuidOf(2)] != 1 || k[uuidOf(3)] != 1 {
		t.Fatalf("memo.ready keys %v", k)
	}
	if held.len() != 0 || evs.len() != 0 {
		t.Fatalf("held %d records and %d events for pass-through messages", held.len(), evs.len())
	}
	var e records.Envelope
	if err := e.Decode(ready.snapshot()[0].Value); err != nil || e.SenderOrg != "11111111" {
		t.Fatalf("memo.ready value is not the envelope as sent: %v", err)
	}
}

// A future message is held, and released at 00:00 Copenhagen on its date,
// not a millisecond before, on both sides of both DST changes; messages
// come out by date and then in submission order.
func TestHeldReleasedAtMidnightInOrder(t *testing.T) {
	h := newHarness(t, 1, cph(2026, time.March, 1, 12, 0))
	ready, evs := h.collect(pipeline.TopicReady), h.collect(pipeline.TopicEvents)
	h.start(testConfig(t), "r0")
	dates := []struct {
		y int
		m time.Month
		d int
	}{{2026, time.March, 29}, {2026, time.March, 30}, {2026, time.October, 25}, {2026, time.October, 26}}
	// Submitted in an order that is not the release order: later dates
	// first, then 20 per date interleaved.
	var want []string
	byDate := make([][]string, len(dates))
	i := 0
	for round := range 20 {
		for di := len(dates) - 1; di >= 0; di-- {
			d := dates[di]
			h.produce(envelope(i, "11111111", valueDate(d.y, d.m, d.d)))
			byDate[di] = append(byDate[di], uuidOf(i))
			i++
		}
		_ = round
	}
	for _, u := range byDate {
		want = append(want, u...)
	}
	waitFor(t, 20*time.Second, "80 held events", func() bool { return evs.tags(t)[events.DelayedMemoSendValidatedAwaitingDelay] == 80 })

	released := 0
	for di, d := range dates {
		at := cph(d.y, d.m, d.d, 0, 0)
		h.clock.Set(at.Add(-time.Millisecond))
		time.Sleep(300 * time.Millisecond) // a dozen ticks
		if n := ready.len(); n != released {
			t.Fatalf("%d released before 00:00 Copenhagen on %d-%02d-%02d, want %d", n, d.y, d.m, d.d, released)
		}
		h.clock.Set(at)
		released += 20
		waitFor(t, 10*time.Second, fmt.Sprintf("release of %d-%02d-%02d", d.y, d.m, d.d), func() bool { return ready.len() >= released })
		_ = di
	}
	time.Sleep(200 * time.Millisecond)
	got := ready.snapshot()
	if len(got) != len(want) {
		t.Fatalf("%d released, want %d", len(got), len(want))
	}
	for j, r := range got {
		if string(r.Key) != want[j] {
			t.Fatalf("release %d is %s, want %s (by date, then submission order)", j, r.Key, want[j])
		}
	}
	if n := evs.tags(t)[events.DelayedMemoSendSent]; n != 80 {
		t.Fatalf("%d DELAYED_MEMO_SEND_SENT events, want 80", n)
	}
}

// The release rate holds, and live messages submitted during a big
// release reach memo.ready without waiting for it.
func TestReleaseRateAndLiveTraffic(t *testing.T) {
	const held, rate = 600, 300.0
	h := newHarness(t, 1, cph(2026, time.May, 1, 23, 0))
	ready := h.collect(pipeline.TopicReady)
	cfg := testConfig(t)
	cfg.ReleaseRate = rate
	h.start(cfg, "r0")
	batch := make([]*kgo.Record, 0, held)
	for i := range held {
		batch = append(batch, envelope(i, "11111111", valueDate(2026, time.May, 2)))
	}
	h.produce(batch...)
	evs := h.collect(pipeline.TopicEvents)
	waitFor(t, 30*time.Second, "all held", func() bool { return evs.tags(t)[events.DelayedMemoSendValidatedAwaitingDelay] == held })

	h.clock.Set(cph(2026, time.May, 2, 0, 0))
	start := time.Now()
	waitFor(t, 10*time.Second, "the release to start", func() bool { return ready.len() > 0 })
	// Live messages during the release.
	liveSent := map[string]time.Time{}
	prod, err := kgo.NewClient(h.opts()...)
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	for i := range 20 {
		u := held + i
		liveSent[uuidOf(u)] = time.Now()
		if err := prod.ProduceSync(context.Background(), envelope(u, "11111111", 0)).FirstErr(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(25 * time.Millisecond)
	}
	waitFor(t, 30*time.Second, "the whole release", func() bool { return ready.len() >= held+20 })
	took := time.Since(start)
	minTook := time.Duration(float64(held)/rate*float64(time.Second)) * 7 / 10 // the first tick's burst allowance
	if took < minTook {
		t.Fatalf("released %d in %s at rate %.0f/s: faster than the limit allows (>= %s)", held, took, rate, minTook)
	}
	if took > 4*time.Duration(float64(held)/rate*float64(time.Second)) {
		t.Fatalf("released %d in %s at rate %.0f/s: far slower than configured", held, took, rate)
	}
	// Every live message came out while released ones were still pending
	// (it was not queued behind the release), within a second.
	ready.mu.Lock()
	defer ready.mu.Unlock()
	lastHeld := time.Time{}
	for j, r := range ready.recs {
		if _, live := liveSent[string(r.Key)]; !live {
			lastHeld = ready.at[j]
		}
	}
	for j, r := range ready.recs {
		if sent, live := liveSent[string(r.Key)]; live {
			if lat := ready.at[j].Sub(sent); lat > time.Second {
				t.Errorf("live message %s took %s during the release", r.Key, lat)
			}
			if sent.Before(lastHeld.Add(-time.Second)) && !ready.at[j].Before(lastHeld) {
				t.Errorf("live message %s, sent %s before the release ended, came out after it: queued behind it", r.Key, lastHeld.Sub(sent))
			}
		}
	}
}
