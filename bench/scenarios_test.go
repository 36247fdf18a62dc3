package bench

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/memoflow/memoflow/internal/recipientsim"
	"github.com/memoflow/memoflow/schemas/registry"
)

// TestSimArrivalVerdict: arrivals come from the recipient simulator's
// accepted pushes; a message it never accepted is lost, a second
// acceptance is a duplicate, a refused push (system down) is no arrival.
func TestSimArrivalVerdict(t *testing.T) {
	uuids := []string{"0b0c6b9e-6f2a-4b8e-9c1d-000000000001", "0b0c6b9e-6f2a-4b8e-9c1d-000000000002", "0b0c6b9e-6f2a-4b8e-9c1d-000000000003"}
	man := &Manifest{}
	for _, u := range uuids {
		man.add(Item{UUID: u})
	}
	sim, err := recipientsim.New(recipientsim.Config{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sim.Handler())
	defer srv.Close()
	tr := newTracker(man)
	var systems []string
	src := &SimArrival{Sim: sim, Observe: func(a Arrival) { systems = append(systems, a.System) }}
	stop, err := src.Start(t.Context(), tr.arrive)
	if err != nil {
		t.Fatal(err)
	}
	push := func(system, uuid string) int {
		req, _ := http.NewRequest("POST", srv.URL+recipientsim.PushPath(system), strings.NewReader("<memo/>"))
		req.Header.Set("Idempotency-Key", uuid)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	sim.SetDown("mbox-2", true)
	push("mbox-1", uuids[0])
	push("mbox-1", uuids[0]) // a redelivery with the same key
	if st := push("mbox-2", uuids[1]); st != http.StatusServiceUnavailable {
		t.Fatalf("down system answered %d", st)
	}
	push("mbox-1", uuids[2])
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	push("mbox-1", uuids[1]) // after stop: not counted
	lost, dups, unexpected, sample := tr.verdict(func(int) bool { return true })
	if lost != 1 || dups != 1 || unexpected != 0 || len(sample) != 1 || sample[0] != uuids[1] {
		t.Fatalf("verdict lost %d dups %d unexpected %d sample %v; want the refused message lost and one duplicate", lost, dups, unexpected, sample)
	}
	if len(systems) != 3 || systems[0] != "mbox-1" {
		t.Fatalf("observed systems %v", systems)
	}
	// The same arrivals with every message accepted are complete.
	tr2 := newTracker(man)
	for _, u := range uuids {
		tr2.arrive(Arrival{UUID: parseUUID(u), At: time.Now()})
	}
	if lost, _, _, _ := tr2.verdict(func(int) bool { return true }); lost != 0 {
		t.Fatalf("complete run lost %d", lost)
	}
}

func TestEventDiffAtLeast(t *testing.T) {
	want := map[string]int64{"A": 5, "F": 3}
	atLeast := map[string]bool{"F": true}
	if d := EventDiffAtLeast(map[string]uint64{"A": 5, "F": 7}, want, atLeast); len(d) != 0 {
		t.Fatalf("more failed attempts than the minimum flagged: %v", d)
	}
	if d := EventDiffAtLeast(map[string]uint64{"A": 5, "F": 2}, want, atLeast); len(d) != 1 || !strings.Contains(d[0], "at least 3") {
		t.Fatalf("too few: %v", d)
	}
	if d := EventDiffAtLeast(map[string]uint64{"A": 6, "F": 3}, want, atLeast); len(d) != 1 || !strings.HasPrefix(d[0], "A:") {
		t.Fatalf("exact tag: %v", d)
	}
}

// TestExpectedEventsWholePipeline: the per-stage expectations add up to
// what a small whole-pipeline run wrote (measured: 3,000 messages, 300
// NEMSMS, 15,000 rows; the value-date run 7 rows per held message).
func TestExpectedEventsWholePipeline(t *testing.T) {
	stages := []string{"ingest", "validate", "schedule", "route", "deliver", "eventlog", "receipts"}
	o := Outcome{Accepted: 100, Valid: 98, Invalid: 2, ToMailbox: 88, ToSMS: 10}
	got := ExpectedEvents(stages, o)
	want := map[string]int64{"MEMO_MASS_SEND_RECEIVED": 100, "MEMO_SEND_VALIDATED": 98, "MEMO_SEND_VALIDATION_FAILED": 2,
		"MEMO_SEND_ROUTED": 98, "MEMO_AVAILABLE_TO_RECIPIENT": 88, "NEM_SMS_SENT_SUCCESSFULLY": 10, "BUSINESS_RECEIPT_CREATED": 98}
	if d := EventDiff(toU(got), want); len(d) > 0 {
		t.Fatalf("mass send: %v", d)
	}
	held := Outcome{Accepted: 10, Valid: 10, Held: 10, Released: 10, ToMailbox: 10, Single: 10}
	got = ExpectedEvents(stages, held)
	if got["DELAYED_MEMO_SEND_VALIDATED_AWAITING_DELAY"] != 10 || got["DELAYED_MEMO_SEND_SENT"] != 10 || got["MEMO_SEND_ROUTED"] != 10 ||
		got["MEMO_SEND_RECEIVED"] != 10 || got["MEMO_MASS_SEND_RECEIVED"] != 0 || sumValues(got) != 70 {
		t.Fatalf("held, single: %v", got)
	}
	// Held but not yet released: not routed.
	if got := ExpectedEvents(stages, Outcome{Accepted: 5, Valid: 5, Held: 5}); got["MEMO_SEND_ROUTED"] != 0 || got["DELAYED_MEMO_SEND_SENT"] != 0 {
		t.Fatalf("held, unreleased: %v", got)
	}
}

func toU(m map[string]int64) map[string]uint64 {
	out := map[string]uint64{}
	for k, v := range m {
		out[k] = uint64(v)
	}
	return out
}

// TestBuildRegistry: every system pushes to the simulator, recipients are
// registered ones only, and spread mailboxes carry equal shares.
func TestBuildRegistry(t *testing.T) {
	c := DefaultBenchRegistry("http://sim.test/", "http://sim2.test")
	c.Gen.Citizens, c.Gen.Companies = 2000, 200
	changes, rc, err := BuildRegistry(c)
	if err != nil {
		t.Fatal(err)
	}
	perMailbox, perSim := map[string]int{}, map[string]int{}
	for _, ch := range changes {
		switch e := ch.Entity.(type) {
		case *registry.System:
			perSim[e.Endpoint[:len("http://sim.test")]]++
			if e.Protocol != registry.RestPush || e.Credentials != "" ||
				e.Endpoint != "http://sim.test/push/"+e.ID && e.Endpoint != "http://sim2.test/push/"+e.ID {
				t.Fatalf("system %s: %v %q %q", e.ID, e.Protocol, e.Endpoint, e.Credentials)
			}
		case *registry.Citizen:
			if e.Status == registry.Registered {
				perMailbox[e.Mailbox]++
			}
		}
	}
	if len(perSim) != 2 || perSim["http://sim.test"]-perSim["http://sim2.tes"] > 1 {
		t.Fatalf("systems per simulator listener %v: not taken in turn", perSim)
	}
	if len(rc.Mailboxes) != 20 || len(perMailbox) != 20 {
		t.Fatalf("mailboxes %v, used %d", rc.Mailboxes, len(perMailbox))
	}
	for m, n := range perMailbox {
		if n < 80 || n > 120 {
			t.Fatalf("mailbox %s has %d citizens: not spread", m, n)
		}
	}
	if len(rc.Citizens) < 1900 || len(rc.NemSMS) == 0 || len(rc.NemSMS) >= len(rc.Citizens) || len(rc.Companies) < 150 {
		t.Fatalf("recipients: %d citizens, %d NemSMS, %d companies", len(rc.Citizens), len(rc.NemSMS), len(rc.Companies))
	}
	if rc.Key() == (&Recipients{Citizens: rc.Citizens[1:]}).Key() {
		t.Fatal("key ignores the recipients")
	}
	if _, _, err := BuildRegistry(RegistryConfig{Gen: c.Gen, SpreadMailboxes: true}); err == nil {
		t.Fatal("no simulator URL accepted")
	}
}

func TestDownSystems(t *testing.T) {
	mb := make([]string, 20)
	for i := range mb {
		mb[i] = "mbox-" + string(rune('a'+i))
	}
	if d := DownSystems(mb, 1, 0.1); len(d) != 2 || d[0] != mb[9] || d[1] != mb[19] {
		t.Fatalf("10%% of 21: %v", d)
	}
	if d := DownSystems(mb[:3], 1, 0.1); len(d) != 1 {
		t.Fatalf("at least one: %v", d)
	}
	if d := DownSystems(mb[:2], 0, 0.9); len(d) != 1 {
		t.Fatalf("never all: %v", d)
	}
}

// TestValueDateMessages: a set with a ValueDate carries it in every
// message, other sets none, and the two never share a UUID.
func TestValueDateMessages(t *testing.T) {
	day := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	date, at := ValueDate(time.Date(2026, 11, 23, 22, 30, 0, 0, time.UTC)) // 23:30 in Copenhagen
	if date != "2026-11-24" || at.UTC().Format(time.RFC3339) != "2026-11-23T23:00:00Z" {
		t.Fatalf("value date %s at %s", date, at.UTC())
	}
	held := &MessageSet{Seed: 1, Messages: 50, BatchSize: 50, Mix: DefaultMix(), SenderOrg: "12345678", Day: day, ValueDate: date, Tag: 1}
	live := &MessageSet{Seed: 1, Messages: 50, BatchSize: 50, Mix: DefaultMix(), SenderOrg: "12345678", Day: day, Tag: 2}
	seen := map[string]bool{}
	for _, it := range held.Batch(0) {
		if !strings.Contains(string(it.Data), "<memo:doNotDeliverUntilDate>"+date+"<") {
			t.Fatalf("held message without the value date")
		}
		seen[it.UUID] = true
	}
	for _, it := range live.Batch(0) {
		if strings.Contains(string(it.Data), "doNotDeliverUntilDate") || seen[it.UUID] {
			t.Fatalf("live message with a value date or a held message's UUID")
		}
	}
	if held.key() == live.key() {
		t.Fatal("held and live sets share a cache key")
	}
}
