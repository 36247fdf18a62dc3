package forward

import (
	"bytes"
	"context"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/memoflow/memoflow/pipeline"
	"github.com/memoflow/memoflow/schemas/events"
	"github.com/memoflow/memoflow/schemas/records"
	"github.com/memoflow/memoflow/stages/deliver"
	"github.com/memoflow/memoflow/stages/route"
)

// TestCopyReachesTrustedParty runs the real stages in a row without Kafka:
// route puts a letter in the company's mailbox and asks for the forward;
// forward routes the copy; deliver pushes both. The company and the
// trusted party use the same mailbox provider, which keeps one copy per
// Idempotency-Key: both arrive, because the copy has its own messageUUID.
// The sender gets one business receipt (for its own message); the copy's
// receipt goes to the forwarding sender system that no sender owns.
func TestCopyReachesTrustedParty(t *testing.T) {
	mbox, base := newReceiver(t)
	v := testView(base, "https://pickup.invalid/in")
	ctx := context.Background()
	pseudo := testPseudo(t)

	rt, err := route.New(v, pseudo, route.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	fw := newStage(t, v)
	d, err := deliver.NewDeliverer(deliver.DefaultConfig(), &deliver.RegistrySystems{View: v}, pseudo, deliver.WithLogger(quiet()))
	if err != nil {
		t.Fatal(err)
	}
	sink := deliver.NewSink(d)

	for _, c := range []struct {
		company, to, dest, path string
	}{
		{compSecure, trusted, "mbox", "/mbox"},               // same mailbox provider as the company
		{compSecure2, trusted2, "trusted2-sys", "/trusted2"}, // the party's own recipient system
	} {
		uuid := "0b7b9c1e-3f0e-4a36-9d33-1c7a0e5e05" + c.company[6:]
		e := message(uuid, c.company, 1500)
		e.Destination, e.DestinationProtocol, e.WantVersion = "", 0, 0
		rb := &pipeline.Batch{Records: []*kgo.Record{{Topic: pipeline.TopicReady, Value: e.Append(nil)}}}
		if err := rt.Transform(ctx, rb); err != nil {
			t.Fatal(err)
		}
		var routed []*kgo.Record
		var req *kgo.Record
		for _, r := range rb.Outputs() {
			switch r.Topic {
			case pipeline.TopicRouted:
				routed = append(routed, r)
			case pipeline.TopicForward:
				req = r
			}
		}
		if req == nil || len(routed) != 1 {
			t.Fatalf("route: %d routed, forward request %v", len(routed), req != nil)
		}
		fb := &pipeline.Batch{Records: []*kgo.Record{req}}
		if err := fw.Write(ctx, fb); err != nil {
			t.Fatal(err)
		}
		o := sortOut(t, fb.Outputs())
		routed = append(routed, o.routed...)
		if len(routed) != 2 {
			t.Fatalf("forward: %v", o.tags())
		}
		db := &pipeline.Batch{Records: routed}
		if err := sink.Write(ctx, db); err != nil {
			t.Fatal(err)
		}
		cp := CopyUUID(uuid, c.to)
		orig, opath, ok1 := mbox.got(uuid)
		copyBody, cpath, ok2 := mbox.got(cp)
		if !ok1 || !ok2 {
			t.Fatalf("arrived: original %v, copy %v", ok1, ok2)
		}
		if opath != "/mbox" || cpath != c.path {
			t.Errorf("original at %s, copy at %s, want /mbox and %s", opath, cpath, c.path)
		}
		if !bytes.Equal(orig, copyBody) {
			t.Error("the copy's MeMo differs from the original")
		}
		// Receipts: one to the sender for its message; the copy's to the
		// forwarding system.
		var toSender, toForward int
		for _, r := range db.Outputs() {
			if r.Topic != pipeline.TopicReceipts {
				continue
			}
			var rc records.Receipt
			if err := records.DecodeReceipt(r.Value, &rc); err != nil {
				t.Fatal(err)
			}
			switch {
			case rc.MessageUUID == uuid && rc.SenderSystem == "sender-sys":
				toSender++
			case rc.MessageUUID == cp && rc.SenderSystem == SenderSystemForward && rc.SenderOrg == c.company:
				toForward++
			default:
				t.Errorf("receipt %+v", rc)
			}
		}
		if toSender != 1 || toForward != 1 {
			t.Errorf("receipts: %d to the sender, %d to the forwarding system", toSender, toForward)
		}
		// Events: the original's delivery and forward under its uuid; the
		// copy's under its own, led back by the transmission id.
		evs := sortOut(t, append(append(rb.Outputs(), fb.Outputs()...), db.Outputs()...)).events
		per := map[string][]events.Tag{}
		for _, ev := range evs {
			per[ev.MessageUUID] = append(per[ev.MessageUUID], ev.Tag)
			if ev.MessageUUID == cp && ev.TransmissionID != uuid {
				t.Errorf("copy event without the original's uuid as transmission: %+v", ev)
			}
		}
		if !has(per[uuid], events.MessageForwardedToTrusted) || !has(per[uuid], events.MemoAvailableToRecipient) {
			t.Errorf("original's events %v", per[uuid])
		}
		if !has(per[cp], events.MemoSendRouted) || has(per[cp], events.MessageForwardedToTrusted) {
			t.Errorf("copy's events %v", per[cp])
		}
	}
}

func has(ts []events.Tag, t events.Tag) bool {
	for _, x := range ts {
		if x == t {
			return true
		}
	}
	return false
}
