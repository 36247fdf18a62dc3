package registry

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/memoflow/memoflow/schemas/events"
)

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

func newCluster(t testing.TB) []kgo.Opt {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(4, "memo.registry", "memo.events"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return []kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...)}
}

func newProducer(t testing.TB, opts []kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func baseEntities() []Entity {
	return []Entity{
		&Org{CVR: "12345678", Name: "Demo Kommune", Type: OrgAuthority, Setup: 1},
		&Org{CVR: "87654321", Name: "Bageriet", Type: OrgCompany},
		&System{ID: "eboks", Name: "Mailbox", SysKind: SystemMailbox, Protocol: RestPull, MemoVersion: 12},
		&System{ID: "print", Name: "Print", SysKind: SystemPrint, Protocol: RestPull, MemoVersion: 11},
		&System{ID: "sms", Name: "SMS", SysKind: SystemSMS, Protocol: RestPull, MemoVersion: 11},
		&System{ID: "dflt", Org: "12345678", Name: "Default", SysKind: SystemRecipient, Protocol: RestPull, MemoVersion: 11, Role: RoleDefault},
		&System{ID: "cvrpost", Org: "12345678", Name: "CVR post", SysKind: SystemRecipient, Protocol: RestPull, MemoVersion: 12, Role: RoleCVRPost},
		&ContactGroup{ID: "g1", Org: "12345678", Name: "Borgerservice"},
		&ContactPoint{ID: "cp1", ParentID: "g1", Org: "12345678", Name: "Pas", System: "dflt"},
		&LegacyMailbox{Org: "12345678", Mailbox: "BORGER", ContactPoint: "cp1"},
		&Citizen{CPR: "0101011234", Status: Registered, NemSMS: true, Mailbox: "eboks"},
		&Company{CVR: "87654321", Status: Registered, Mailbox: "eboks"},
	}
}

func TestViewSeesWriterChangesWithinSeconds(t *testing.T) {
	opts := newCluster(t)
	ctx := context.Background()
	prod := newProducer(t, opts)

	// Something is in the topic before the View starts: it must catch up.
	pre := NewWriter(prod, nil, WithoutEvents())
	if err := pre.Put(ctx, "test", baseEntities()[:5]...); err != nil {
		t.Fatal(err)
	}
	v, err := NewView(ctx, opts, WithLogger(quiet()))
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := v.WaitCaughtUp(wctx); err != nil {
		t.Fatal(err)
	}
	if v.System("eboks") == nil || v.Org("12345678") == nil || v.SMSProvider().ID != "sms" || v.PrintProvider().ID != "print" {
		t.Fatalf("caught up but missing entities: %+v", v.Stats())
	}

	// A change written by another process shows up in the tailing View.
	other := NewWriter(prod, nil, WithoutEvents())
	start := time.Now()
	if err := other.Put(ctx, "test", baseEntities()[5:]...); err != nil {
		t.Fatal(err)
	}
	for v.ContactPoint("cp1") == nil || v.Applied() < int64(len(baseEntities())) {
		if time.Since(start) > 5*time.Second {
			t.Fatalf("change not visible after 5s: %+v", v.Stats())
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Logf("change visible after %v", time.Since(start))
	c, ok := v.Citizen("0101011234")
	if !ok || c.Mailbox == nil || c.MailboxID != "eboks" || !c.NemSMS || c.Status != Registered {
		t.Fatalf("citizen: %+v %v", c, ok)
	}
	if d := v.DefaultSystem("12345678"); d == nil || d.ID != "dflt" {
		t.Fatalf("default system %+v", d)
	}
	if d := v.CVRPostSystem("12345678"); d == nil || d.ID != "cvrpost" {
		t.Fatalf("cvr post system %+v", d)
	}
	if l := v.LegacyMailbox("12345678", "BORGER", "ANY"); l == nil || l.ContactPoint != "cp1" {
		t.Fatalf("legacy (postkasse fallback) %+v", l)
	}

	// The Writer with the View: checks, read-your-writes, tombstones, events.
	evCl := newProducer(t, append(opts, kgo.ConsumeTopics("memo.events"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())))
	p, _ := events.NewPseudonymizer(events.Key{ID: "k1", Secret: make([]byte, 32)})
	w := NewWriter(prod, v, WithPseudonymizer(p))
	if err := w.Put(ctx, "admin-7", &Citizen{CPR: "0101011234", Status: Exempt}); err != nil {
		t.Fatal(err)
	}
	if c, _ := v.Citizen("0101011234"); c.Status != Exempt || c.NemSMS {
		t.Fatalf("read-your-writes: %+v", c)
	}
	if err := w.Delete(ctx, "admin-7", "cit/0101011234", "cp/cp1"); err != nil {
		t.Fatal(err)
	}
	if _, ok := v.Citizen("0101011234"); ok || v.ContactPoint("cp1") != nil {
		t.Fatal("deletes not applied")
	}
	var tags []events.Tag
	fctx, fcancel := context.WithTimeout(ctx, 5*time.Second)
	defer fcancel()
	for len(tags) < 3 && fctx.Err() == nil {
		evCl.PollFetches(fctx).EachRecord(func(r *kgo.Record) {
			evs, err := events.Decode(r.Value, nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range evs {
				if e.Actor != "admin-7" {
					t.Errorf("event without the actor: %+v", e)
				}
				tags = append(tags, e.Tag)
			}
		})
	}
	want := []events.Tag{events.DigitalPostExempted, events.DigitalPostExempted, events.ContactPointChanged}
	if len(tags) != 3 || tags[0] != want[0] || tags[1] != want[1] || tags[2] != want[2] {
		t.Fatalf("events %v, want %v", tags, want)
	}
}

func TestWriterChecks(t *testing.T) {
	opts := newCluster(t)
	ctx := context.Background()
	prod := newProducer(t, opts)
	v := NewMemView(WithLogger(quiet()))
	w := NewWriter(prod, v, WithoutEvents())
	if err := w.Put(ctx, "t", baseEntities()...); err != nil {
		t.Fatal(err)
	}
	sys := func(id string, role Role) *System {
		return &System{ID: id, Org: "12345678", Name: id, SysKind: SystemRecipient, Protocol: RestPull, MemoVersion: 11, Role: role}
	}
	cases := []struct {
		name string
		es   []Entity
		code string
	}{
		{"invalid entity", []Entity{&Org{CVR: "1"}}, CodeBadCVR},
		{"cp of unknown authority", []Entity{&ContactPoint{ID: "x", Org: "11111111", Name: "x"}}, CodeUnknownEntity},
		{"cp of a company", []Entity{&ContactPoint{ID: "x", Org: "87654321", Name: "x"}}, CodeUnknownEntity},
		{"cp with unknown system", []Entity{&ContactPoint{ID: "x", Org: "12345678", Name: "x", System: "nope"}}, CodeUnknownEntity},
		{"cp with unknown parent", []Entity{&ContactPoint{ID: "x", Org: "12345678", Name: "x", ParentID: "nope"}}, CodeUnknownEntity},
		{"citizen with unknown mailbox", []Entity{&Citizen{CPR: "0202021234", Status: Registered, Mailbox: "nope"}}, CodeUnknownEntity},
		{"system of unknown org", []Entity{&System{ID: "s", Org: "11111111", Name: "s", SysKind: SystemRecipient, Protocol: RestPull, MemoVersion: 11, Role: RoleRegular}}, CodeUnknownEntity},
		{"sixth authority system", []Entity{sys("a", RoleRegular), sys("b", RoleRegular), sys("c", RoleRegular), sys("d", RoleRegular)}, CodeTooManySystems},
		{"second cvr-post system", []Entity{sys("a", RoleCVRPost)}, CodeTooManySystems},
		{"second company system", []Entity{
			&System{ID: "c1", Org: "87654321", Name: "c1", SysKind: SystemRecipient, Protocol: RestPull, MemoVersion: 11, Role: RoleDefault},
			&System{ID: "c2", Org: "87654321", Name: "c2", SysKind: SystemRecipient, Protocol: RestPull, MemoVersion: 11, Role: RoleDefault}}, CodeTooManySystems},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := v.Stats()
			err := w.Put(ctx, "t", c.es...)
			var be *BatchError
			if !errors.As(err, &be) || CodeOf(err) != c.code {
				t.Fatalf("err %v, want %s", err, c.code)
			}
			if v.Stats() != before {
				t.Fatal("a rejected write changed the view")
			}
		})
	}
	// Within the limits, and references satisfied inside the batch.
	if err := w.Put(ctx, "t", sys("a", RoleRegular), sys("b", RoleRegular), sys("c", RoleRegular),
		&ContactPoint{ID: "new", Org: "12345678", Name: "n", System: "c"}); err != nil {
		t.Fatal(err)
	}
	// Replacing a system does not count it twice.
	if err := w.Put(ctx, "t", sys("a", RoleRegular)); err != nil {
		t.Fatal(err)
	}
	// Deleting one makes room.
	if err := w.Write(ctx, NewDelete("sys/a", "t", time.Now()), NewChange(sys("e", RoleRegular), "t", time.Now())); err != nil {
		t.Fatal(err)
	}
}

func TestCPRTable(t *testing.T) {
	var tb cprTable
	ref := map[uint64]uint32{}
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 200_000; i++ {
		k := r.Uint64N(1e10)
		switch r.IntN(4) {
		case 0:
			tb.del(k)
			delete(ref, k)
		default:
			v := uint32(r.IntN(1 << 24))
			tb.put(k, v)
			ref[k] = v
		}
		if i%50_000 == 0 {
			// existing keys deleted and reinserted keep working
			for k := range ref {
				tb.del(k)
				tb.put(k, ref[k])
				break
			}
		}
	}
	if tb.len() != len(ref) {
		t.Fatalf("len %d, want %d", tb.len(), len(ref))
	}
	for k, v := range ref {
		if got, ok := tb.get(k); !ok || got != v {
			t.Fatalf("get %d = %d %v, want %d", k, got, ok, v)
		}
	}
	for i := 0; i < 10_000; i++ {
		k := r.Uint64N(1e10)
		_, want := ref[k]
		if _, ok := tb.get(k); ok != want {
			t.Fatalf("get %d present=%v want %v", k, ok, want)
		}
	}
	if _, ok := tb.get(9_999_999_999); ok {
		t.Fatal("max CPR present")
	}
}

func TestViewSkipsMalformed(t *testing.T) {
	v := NewMemView(WithLogger(quiet()))
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, r := range []*kgo.Record{
		{Key: []byte("cit/0101011234"), Value: []byte{1, byte(KindCitizen), 0}},
		{Key: []byte("cit/0101011234"), Value: NewChange(&Citizen{CPR: "0202021234", Status: Exempt}, "a", time.Now()).AppendValue(nil)},
		{Key: []byte("org/1"), Value: []byte{1}},
	} {
		if err := v.applyRecordLocked(r); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", r.Key, err)
		}
	}
	if v.citizens.len() != 0 || len(v.orgs) != 0 {
		t.Fatal("malformed record applied")
	}
}

func TestProvidersFollowChanges(t *testing.T) {
	v := NewMemView(WithLogger(quiet()))
	now := time.Now()
	put := func(e Entity) { v.Apply(NewChange(e, "t", now)) }
	sms := func(id string, off bool) *System {
		return &System{ID: id, Name: id, SysKind: SystemSMS, Protocol: RestPull, MemoVersion: 11, Deactivated: off}
	}
	put(sms("sms-b", false))
	put(sms("sms-a", true))
	if p := v.SMSProvider(); p == nil || p.ID != "sms-b" {
		t.Fatalf("an active provider wins over a deactivated one: %+v", p)
	}
	put(sms("sms-a", false))
	if p := v.SMSProvider(); p.ID != "sms-a" {
		t.Fatalf("smallest active id: %+v", p)
	}
	// A provider turned into a mailbox is no longer the SMS provider.
	put(&System{ID: "sms-a", Name: "x", SysKind: SystemMailbox, Protocol: RestPull, MemoVersion: 11})
	if p := v.SMSProvider(); p.ID != "sms-b" {
		t.Fatalf("after kind change: %+v", p)
	}
	v.Apply(NewDelete("sys/sms-b", "t", now))
	if p := v.SMSProvider(); p != nil || v.PrintProvider() != nil {
		t.Fatalf("deleted provider still chosen: %+v", p)
	}
	if v.System("sms-a") == nil || v.System("sms-b") != nil {
		t.Fatal("system lookups after delete")
	}
}

// TestViewCatchesUpAfterTransactionalWrites: a partition whose last offset
// is a commit marker still counts as read.
func TestViewCatchesUpAfterTransactionalWrites(t *testing.T) {
	opts := newCluster(t)
	ctx := context.Background()
	txn, err := kgo.NewClient(append(opts, kgo.TransactionalID("registry-txn"))...)
	if err != nil {
		t.Fatal(err)
	}
	defer txn.Close()
	if err := txn.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	for _, e := range baseEntities()[:5] {
		c := NewChange(e, "t", time.Now())
		if err := txn.ProduceSync(ctx, c.Record("memo.registry")).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	if err := txn.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	v, err := NewView(ctx, opts, WithLogger(quiet()))
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := v.WaitCaughtUp(wctx); err != nil {
		t.Fatal(err)
	}
	if v.Stats().Systems != 3 || v.Org("12345678") == nil {
		t.Fatalf("%+v", v.Stats())
	}
}
