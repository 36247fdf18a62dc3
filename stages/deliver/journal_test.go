package deliver

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/memoflow/memoflow/internal/recipientsim"
	"github.com/memoflow/memoflow/pipeline"
)

// TestJournalSkipsAcknowledgedPushes is the crash case of the push journal:
// process A pushes a batch and dies before its transaction commits; process
// B, which started before A's pushes and so learns of them only from the
// topic, gets the same records again. B must not push what the systems
// acknowledged, and must emit the same outcome A would have committed
// (events and receipts with A's times); what A never pushed, and a later
// attempt of an acknowledged message, B pushes.
func TestJournalSkipsAcknowledgedPushes(t *testing.T) {
	opts := journalBroker(t)
	ctx := context.Background()

	sim, base := simServer(t, recipientsim.Config{})
	sys := pushSystem("sys-j", base)
	systems := NewStaticSystems(sys)
	open := func() *Journal {
		j, err := OpenJournal(ctx, opts, time.Minute, quiet(), nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(j.Close)
		return j
	}
	clkA := newClock(time.Now().UTC())
	jB := open() // B is up before A pushes: it reads A's acknowledgements from the topic
	jA := open()
	dA, err := NewDeliverer(testConfig(), systems, testPseudo(t), WithClock(clkA.now), WithJournal(jA), WithLogger(quiet()))
	if err != nil {
		t.Fatal(err)
	}
	clkB := newClock(clkA.now().Add(time.Minute))
	dB, err := NewDeliverer(testConfig(), systems, testPseudo(t), WithClock(clkB.now), WithJournal(jB), WithLogger(quiet()))
	if err != nil {
		t.Fatal(err)
	}

	var recs []*kgo.Record
	for i := range 30 {
		recs = append(recs, envRecord(pipeline.TopicRouted, testEnv(i, sys.ID)))
	}
	// A pushes the first 20 and "dies" (its outputs are never committed).
	itemsA, _, _ := decodeItems(recs[:20])
	dA.run(ctx, itemsA)
	if st := sim.Stats(); st.Delivered != 20 {
		t.Fatalf("A: %d pushes accepted, want 20", st.Delivered)
	}
	// A's journal writes reached the broker before it died (what is still
	// in A's producer at a kill is the window of duplicates left).
	if err := jA.prod.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	// B gets the whole batch again, plus attempt 1 of an acknowledged
	// message (a different delivery: it must be pushed).
	again := testEnv(3, sys.ID)
	again.Attempt = 1
	itemsB, _, _ := decodeItems(append(append([]*kgo.Record(nil), recs...), envRecord(pipeline.TopicRouted, again)))
	dB.run(ctx, itemsB)
	st := sim.Stats()
	if st.Delivered != 31 || st.DupCount != 1 {
		t.Fatalf("after B: %d pushes accepted, %d duplicates; want 31 (20 by A, 10 new and attempt 1 of one by B) and the one attempt-1 repeat", st.Delivered, st.DupCount)
	}
	for i, it := range itemsB[:20] {
		if it.err != nil || !bytes.Equal(outputs(t, it.out), outputs(t, itemsA[i].out)) {
			t.Fatalf("message %d: B emitted %s, A would have emitted %s", i, outputs(t, it.out), outputs(t, itemsA[i].out))
		}
	}
	if !bytes.Contains(outputs(t, itemsB[20].out), []byte("COMPLETED")) {
		t.Fatalf("a message A never pushed: %s", outputs(t, itemsB[20].out))
	}
}

// outputs renders a message's output records comparably.
func outputs(t *testing.T, recs []*kgo.Record) []byte {
	t.Helper()
	var b bytes.Buffer
	for _, r := range recs {
		b.WriteString(r.Topic)
		b.WriteByte(' ')
		b.Write(r.Key)
		b.WriteByte(' ')
		b.Write(r.Value)
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// TestJournalSyncReadsOthersAcknowledgements: Sync returns once every
// acknowledgement in the topic before the call is known, and a journal
// opened later loads the window from the topic.
func TestJournalSyncReadsOthersAcknowledgements(t *testing.T) {
	opts := journalBroker(t)
	ctx := context.Background()
	a, err := OpenJournal(ctx, opts, time.Minute, quiet(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := OpenJournal(ctx, opts, time.Minute, quiet(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	at := time.Now().UTC().Truncate(time.Millisecond)
	uuids := []string{"6f1c2a4e-0b7d-4c1e-9a55-3e2d1f0a9b8c", "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d", "11111111-2222-4333-8444-555555555555"}
	for _, u := range uuids {
		a.Record(u, 2, at)
	}
	if err := a.prod.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.Sync(ctx, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	for _, u := range uuids {
		if got, ok := b.Acked(u, 2); !ok || !got.Equal(at) {
			t.Fatalf("%s: b knows %v %v, want %v", u, got, ok, at)
		}
		if _, ok := b.Acked(u, 1); ok {
			t.Fatalf("%s: attempt 1 was never acknowledged", u)
		}
	}
	late, err := OpenJournal(ctx, opts, time.Minute, quiet(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer late.Close()
	if err := late.Sync(ctx, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, ok := late.Acked(uuids[0], 2); !ok {
		t.Fatal("a journal opened later does not load the window from the topic")
	}
	// Old acknowledgements fall out of the window.
	old, err := OpenJournal(ctx, opts, time.Millisecond, quiet(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	old.Record("99999999-2222-4333-8444-555555555555", 0, time.Now().Add(-time.Hour))
	old.Record("88888888-2222-4333-8444-555555555555", 0, time.Now())
	if _, ok := old.Acked("99999999-2222-4333-8444-555555555555", 0); ok {
		t.Fatal("an acknowledgement older than the window is still held")
	}
}

// journalBroker starts a broker with the journal topic; it stops after the
// test's journals closed (cleanups run last in, first out).
func journalBroker(t *testing.T) []kgo.Opt {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, JournalTopic))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return []kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...)}
}
