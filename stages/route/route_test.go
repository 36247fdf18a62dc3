package route

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
	"github.com/memoflow/memoflow/schemas/registry"
)

const (
	auth      = "12345678" // authority with default, CVR-post and a regular system
	auth3     = "29189919" // authority, setup 3: no systems, a mailbox
	authBare  = "19435075" // authority with nothing at all
	company   = "87654321" // company with its own recipient system
	company2  = "55133018" // company with a mailbox only
	companyEx = "29190623" // exempt company
	citizen   = "0101011234"
	citNoSMS  = "0202021234"
	citExempt = "0303031234"
	citNoBox  = "0404041234" // mailbox provider id not a system
)

func pull(id, org string, role registry.Role, kind registry.SystemKind, v uint8) *registry.System {
	return &registry.System{ID: id, Org: org, Name: id, SysKind: kind, Protocol: registry.RestPull, MemoVersion: v, Role: role}
}

func testRegistry() []registry.Entity {
	return []registry.Entity{
		&registry.Org{CVR: auth, Name: "Demo Kommune", Type: registry.OrgAuthority, Setup: 1},
		&registry.Org{CVR: auth3, Name: "Lille Styrelse", Type: registry.OrgAuthority, Setup: 3},
		&registry.Org{CVR: authBare, Name: "Tom Styrelse", Type: registry.OrgAuthority, Setup: 3},
		&registry.Org{CVR: "11112222", Name: "Anden Kommune", Type: registry.OrgAuthority, Setup: 1},
		&registry.System{ID: "mbox", Name: "Mailbox", SysKind: registry.SystemMailbox, Protocol: registry.RestPush, Endpoint: "http://mbox.example/in", MemoVersion: 12},
		pull("sms", "", 0, registry.SystemSMS, 11),
		pull("print", "", 0, registry.SystemPrint, 11),
		pull("dflt", auth, registry.RoleDefault, registry.SystemRecipient, 11),
		pull("cvrpost", auth, registry.RoleCVRPost, registry.SystemRecipient, 12),
		&registry.System{ // a deactivated regular system: post still goes to it
			ID: "regular", Org: auth, Name: "Regular", SysKind: registry.SystemRecipient, Protocol: registry.RestPush,
			Endpoint: "http://sim.example/memos", MemoVersion: 12, Role: registry.RoleRegular, Deactivated: true,
		},
		pull("other-dflt", "11112222", registry.RoleDefault, registry.SystemRecipient, 11),
		pull("comp-sys", company, registry.RoleDefault, registry.SystemRecipient, 12),
		&registry.ContactPoint{ID: "cp-regular", Org: auth, Name: "Pas", System: "regular"},
		&registry.ContactPoint{ID: "cp-nosys", Org: auth, Name: "Kørekort"},
		// A supplier's standard system, selected by the authority; and a
		// selection whose template is gone (a replayed old log).
		&registry.System{ID: "std", Org: "11223344", Name: "Leverandør", SysKind: registry.SystemStandard, Protocol: registry.PublishSubscribe,
			Endpoint: "https://esdh.supplier.example/notify", MemoVersion: 12},
		&registry.System{ID: "sel", Org: auth, Name: "Via leverandør", SysKind: registry.SystemRecipient, Template: "std", Role: registry.RoleRegular},
		&registry.System{ID: "sel-gone", Org: auth, Name: "Forældet", SysKind: registry.SystemRecipient, Template: "nope", Role: registry.RoleRegular},
		&registry.ContactPoint{ID: "cp-sel", Org: auth, Name: "Byggesag", System: "sel"},
		&registry.ContactPoint{ID: "cp-sel-gone", Org: auth, Name: "Gammel", System: "sel-gone"},
		&registry.ContactPoint{ID: "cp-other", Org: "11112222", Name: "Andet"},
		&registry.LegacyMailbox{Org: auth, Mailbox: "BORGER", Subject: "PAS", ContactPoint: "cp-regular"},
		&registry.LegacyMailbox{Org: auth, Mailbox: "GAMMEL"},
		&registry.Citizen{CPR: citizen, Status: registry.Registered, NemSMS: true, Mailbox: "mbox"},
		&registry.Citizen{CPR: citNoSMS, Status: registry.Registered, Mailbox: "mbox"},
		&registry.Citizen{CPR: citExempt, Status: registry.Exempt},
		&registry.Citizen{CPR: citNoBox, Status: registry.Registered, Mailbox: "gone"},
		&registry.Company{CVR: company, Status: registry.Registered, Mailbox: "mbox", System: "comp-sys"},
		&registry.Company{CVR: company2, Status: registry.Registered, Mailbox: "mbox"},
		&registry.Company{CVR: companyEx, Status: registry.Exempt},
		&registry.Company{CVR: auth3, Status: registry.Registered, Mailbox: "mbox"},
	}
}

func newView(es ...registry.Entity) *registry.View {
	v := registry.NewMemView()
	now := time.Now()
	for _, e := range es {
		v.Apply(registry.NewChange(e, "test", now))
	}
	return v
}

func testPseudo(t testing.TB) *events.Pseudonymizer {
	p, err := events.NewPseudonymizer(events.Key{ID: "k1", Secret: []byte("0123456789abcdef0123456789abcdef")})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func newStage(t testing.TB, v *registry.View, now time.Time) *Stage {
	s, err := New(v, testPseudo(t), DefaultConfig(), WithClock(func() time.Time { return now }))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// noon in Copenhagen: outside the NemSMS quiet hours.
var noon = time.Date(2026, 11, 23, 11, 0, 0, 0, time.UTC)

func env(rt uint8, id, postType, cp string, mt uint8) *records.Envelope {
	return &records.Envelope{
		MessageUUID: "6f1c2c9e-8f5e-4c55-9a3e-0b1d2c3d4e5f", TransmissionID: "t1", MemoVersion: 12,
		MessageType: mt, PostType: postType, SenderOrg: auth, SenderSystem: "demo-sender",
		RecipientType: rt, RecipientID: id, ContactPointID: cp, Size: 1234, Body: []byte("<memo/>"),
	}
}

// TestRules is the table of every routing rule: the destination, the
// events and the receipt each one produces.
func TestRules(t *testing.T) {
	dp, sms := records.TypeDigitalPost, records.TypeNemSMS
	cpr, cvr := records.IDCPR, records.IDCVR
	type want struct {
		dest    string // "" when refused
		proto   registry.Protocol
		version uint8
		cp      string       // contact point on the routed event
		tags    []events.Tag // events emitted, in order
		reason  string       // ErrorCode of the last event
		receipt string       // INVALID code, "" for none
		dlq     string       // DLQ code, "" for none
	}
	routed := events.MemoSendRouted
	exempted := events.DigitalPostExempted
	failed := events.MemoSendValidationFailed
	cases := []struct {
		name string
		e    *records.Envelope
		want want
	}{
		{"CPR registered -> mailbox provider", env(cpr, citizen, "", "", dp),
			want{dest: "mbox", proto: registry.RestPush, version: 12, tags: []events.Tag{routed}}},
		{"CPR exempt -> print provider, DIGITAL_POST_EXEMPTED", env(cpr, citExempt, "", "", dp),
			want{dest: "print", proto: registry.RestPull, version: 11, tags: []events.Tag{routed, exempted}, reason: ReasonExempt}},
		{"CPR not in registry -> print provider", env(cpr, "0505051234", "", "", dp),
			want{dest: "print", proto: registry.RestPull, version: 11, tags: []events.Tag{routed, exempted}, reason: ReasonUnregistered}},
		{"CPR whose mailbox provider is not a system -> DLQ", env(cpr, citNoBox, "", "", dp),
			want{dlq: CodeNoSystem}},
		{"CPR malformed -> INVALID", env(cpr, "12345", "", "", dp),
			want{tags: []events.Tag{failed}, receipt: CodeBadRecipient}},
		{"NEMSMS -> SMS provider", env(cpr, citizen, "", "", sms),
			want{dest: "sms", proto: registry.RestPull, version: 11, tags: []events.Tag{routed}}},
		{"NEMSMS to a citizen without NemSMS -> INVALID", env(cpr, citNoSMS, "", "", sms),
			want{tags: []events.Tag{failed}, receipt: CodeNemSMSNotSubscribed}},
		{"NEMSMS to an exempt citizen -> INVALID", env(cpr, citExempt, "", "", sms),
			want{tags: []events.Tag{failed}, receipt: CodeNemSMSNotSubscribed}},
		{"NEMSMS to a CVR -> INVALID", env(cvr, company, "", "", sms),
			want{tags: []events.Tag{failed}, receipt: CodeNemSMSNotSubscribed}},
		{"CVR company VIRKSOMHEDSPOST -> its recipient system", env(cvr, company, PostVirksomhed, "", dp),
			want{dest: "comp-sys", proto: registry.RestPull, version: 12, tags: []events.Tag{routed}}},
		{"CVR company without postType -> its mailbox", env(cvr, company, "", "", dp),
			want{dest: "mbox", proto: registry.RestPush, version: 12, tags: []events.Tag{routed}}},
		{"CVR company VIRKSOMHEDSPOST without own system -> its mailbox", env(cvr, company2, PostVirksomhed, "", dp),
			want{dest: "mbox", proto: registry.RestPush, version: 12, tags: []events.Tag{routed}}},
		{"CVR company exempt -> print", env(cvr, companyEx, PostVirksomhed, "", dp),
			want{dest: "print", proto: registry.RestPull, version: 11, tags: []events.Tag{routed, exempted}, reason: ReasonExempt}},
		{"CVR unknown -> print", env(cvr, "77778888", "", "", dp),
			want{dest: "print", proto: registry.RestPull, version: 11, tags: []events.Tag{routed, exempted}, reason: ReasonUnregistered}},
		{"CVR company MYNDIGHEDSPOST -> INVALID", env(cvr, company, PostMyndighed, "cp-regular", dp),
			want{tags: []events.Tag{failed}, receipt: CodeNotAuthority}},
		{"authority CVR post -> CVR-post system", env(cvr, auth, PostVirksomhed, "", dp),
			want{dest: "cvrpost", proto: registry.RestPull, version: 12, tags: []events.Tag{routed}}},
		{"authority, no postType -> CVR-post system", env(cvr, auth, "", "", dp),
			want{dest: "cvrpost", proto: registry.RestPull, version: 12, tags: []events.Tag{routed}}},
		{"authority without CVR-post system -> default system", env(cvr, "11112222", PostVirksomhed, "", dp),
			want{dest: "other-dflt", proto: registry.RestPull, version: 11, tags: []events.Tag{routed}}},
		{"authority setup 3 (no systems) -> its mailbox", env(cvr, auth3, PostVirksomhed, "", dp),
			want{dest: "mbox", proto: registry.RestPush, version: 12, tags: []events.Tag{routed}}},
		{"authority without any system or mailbox -> DLQ", env(cvr, authBare, PostVirksomhed, "", dp),
			want{dlq: CodeNoSystem}},
		{"MYNDIGHEDSPOST contact point -> its system (deactivated: still routed)", env(cvr, auth, PostMyndighed, "cp-regular", dp),
			want{dest: "regular", proto: registry.RestPush, version: 12, cp: "cp-regular", tags: []events.Tag{routed}}},
		{"MYNDIGHEDSPOST contact point of a standard-system selection -> the selection, the template's protocol and version", env(cvr, auth, PostMyndighed, "cp-sel", dp),
			want{dest: "sel", proto: registry.PublishSubscribe, version: 12, cp: "cp-sel", tags: []events.Tag{routed}}},
		{"selection whose standard system is gone -> DLQ", env(cvr, auth, PostMyndighed, "cp-sel-gone", dp),
			want{dlq: CodeNoSystem}},
		{"MYNDIGHEDSPOST contact point without system -> default system", env(cvr, auth, PostMyndighed, "cp-nosys", dp),
			want{dest: "dflt", proto: registry.RestPull, version: 11, cp: "cp-nosys", tags: []events.Tag{routed}}},
		{"MYNDIGHEDSPOST without contact point -> INVALID", env(cvr, auth, PostMyndighed, "", dp),
			want{tags: []events.Tag{failed}, receipt: CodeContactPointMissing}},
		{"MYNDIGHEDSPOST unknown contact point -> INVALID", env(cvr, auth, PostMyndighed, "no-such-point", dp),
			want{tags: []events.Tag{failed}, receipt: CodeContactPointUnknown}},
		{"MYNDIGHEDSPOST another authority's contact point -> INVALID", env(cvr, auth, PostMyndighed, "cp-other", dp),
			want{tags: []events.Tag{failed}, receipt: CodeContactPointOtherOrg}},
		{"legacy postkasse/emne mapped -> the point's system", env(cvr, auth, PostMyndighed, "BORGER/PAS", dp),
			want{dest: "regular", proto: registry.RestPush, version: 12, cp: "cp-regular", tags: []events.Tag{routed}}},
		{"legacy postkasse known, mapped to nothing -> default system", env(cvr, auth, PostMyndighed, "GAMMEL", dp),
			want{dest: "dflt", proto: registry.RestPull, version: 11, tags: []events.Tag{routed}}},
		{"legacy postkasse/emne unmapped -> default system", env(cvr, auth, PostMyndighed, "UKENDT/EMNE", dp),
			want{dest: "dflt", proto: registry.RestPull, version: 11, tags: []events.Tag{routed}}},
	}
	s := newStage(t, newView(testRegistry()...), noon)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := &kgo.Record{Topic: pipeline.TopicReady, Key: []byte(c.e.MessageUUID), Value: c.e.Append(nil)}
			b := &pipeline.Batch{Records: []*kgo.Record{in}}
			if err := s.Transform(context.Background(), b); err != nil {
				t.Fatal(err)
			}
			if c.want.dlq != "" {
				if b.Rejected() != 1 || len(b.Outputs()) != 0 {
					t.Fatalf("want DLQ %s; rejected %d, outputs %d", c.want.dlq, b.Rejected(), len(b.Outputs()))
				}
				d := s.Decide(c.e, noon)
				if d.NoSystem == "" {
					t.Fatalf("decision %+v has no DLQ reason", d)
				}
				return
			}
			if b.Rejected() != 0 {
				t.Fatalf("rejected")
			}
			var tags []events.Tag
			var evs []events.Event
			var routedRec *kgo.Record
			var receipt *records.Receipt
			for _, r := range b.Outputs() {
				switch r.Topic {
				case pipeline.TopicEvents:
					got, err := events.Decode(r.Value, nil)
					if err != nil {
						t.Fatal(err)
					}
					for _, e := range got {
						tags = append(tags, e.Tag)
						evs = append(evs, e)
					}
				case pipeline.TopicRouted:
					routedRec = r
				case pipeline.TopicReceipts:
					receipt = &records.Receipt{}
					if err := records.DecodeReceipt(r.Value, receipt); err != nil {
						t.Fatal(err)
					}
				default:
					t.Fatalf("output to %s", r.Topic)
				}
			}
			if strings.Join(tagStrings(tags), ",") != strings.Join(tagStrings(c.want.tags), ",") {
				t.Errorf("events %v, want %v", tags, c.want.tags)
			}
			for _, e := range evs {
				if e.MessageUUID != c.e.MessageUUID || e.SenderOrg != auth || (c.e.RecipientType == records.IDCPR && !e.Recipient.Pseudonymised()) {
					t.Errorf("event %+v lacks the message's metadata or has a CPR in clear", e)
				}
			}
			if c.want.reason != "" && evs[len(evs)-1].ErrorCode != c.want.reason {
				t.Errorf("reason %q, want %q", evs[len(evs)-1].ErrorCode, c.want.reason)
			}
			if c.want.receipt != "" {
				if receipt == nil || receipt.ReceiptStatus != records.StatusInvalid || receipt.ErrorCode != c.want.receipt || receipt.MessageUUID != c.e.MessageUUID {
					t.Fatalf("receipt %+v, want INVALID %s", receipt, c.want.receipt)
				}
				if evs[0].ErrorCode != c.want.receipt || evs[0].ReceiptStatus != records.StatusInvalid {
					t.Errorf("failed event %+v", evs[0])
				}
				if routedRec != nil {
					t.Fatal("an INVALID message was routed")
				}
				return
			}
			if receipt != nil {
				t.Fatalf("unexpected receipt %+v", receipt)
			}
			if routedRec == nil {
				t.Fatal("not routed")
			}
			var out records.Envelope
			if err := out.Decode(routedRec.Value); err != nil {
				t.Fatal(err)
			}
			if out.Destination != c.want.dest || registry.Protocol(out.DestinationProtocol) != c.want.proto || out.WantVersion != c.want.version {
				t.Errorf("routed to %s/%d/v%d, want %s/%d/v%d", out.Destination, out.DestinationProtocol, out.WantVersion, c.want.dest, c.want.proto, c.want.version)
			}
			if DestinationOf(routedRec.Key) != c.want.dest {
				t.Errorf("key %q does not name %s", routedRec.Key, c.want.dest)
			}
			if string(out.Body) != "<memo/>" || out.MessageUUID != c.e.MessageUUID {
				t.Error("the envelope was altered beyond the routing fields")
			}
			if evs[0].RecipientSystem != c.want.dest || evs[0].ContactPoint != c.want.cp && c.want.cp != "" {
				t.Errorf("routed event %+v", evs[0])
			}
			if out.NextAttemptMs != 0 {
				t.Errorf("held at noon: %d", out.NextAttemptMs)
			}
		})
	}
}

func tagStrings(ts []events.Tag) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = string(t)
	}
	return out
}

func TestNemSMSQuietHours(t *testing.T) {
	cph, _ := time.LoadLocation("Europe/Copenhagen")
	v := newView(testRegistry()...)
	cases := []struct {
		at   time.Time
		hold time.Time // zero: not held
	}{
		{time.Date(2026, 11, 23, 7, 59, 0, 0, cph), time.Date(2026, 11, 23, 8, 0, 0, 0, cph)},
		{time.Date(2026, 11, 23, 8, 0, 0, 0, cph), time.Time{}},
		{time.Date(2026, 11, 23, 17, 59, 59, 0, cph), time.Time{}},
		{time.Date(2026, 11, 23, 18, 0, 0, 0, cph), time.Date(2026, 11, 24, 8, 0, 0, 0, cph)},
		{time.Date(2026, 11, 23, 23, 30, 0, 0, cph), time.Date(2026, 11, 24, 8, 0, 0, 0, cph)},
		{time.Date(2026, 11, 30, 22, 0, 0, 0, cph), time.Date(2026, 12, 1, 8, 0, 0, 0, cph)},      // month end
		{time.Date(2026, 3, 28, 20, 0, 0, 0, cph), time.Date(2026, 3, 29, 8, 0, 0, 0, cph)},       // into summer time
		{time.Date(2026, 10, 24, 19, 0, 0, 0, cph), time.Date(2026, 10, 25, 8, 0, 0, 0, cph)},     // into winter time
		{time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC), time.Date(2026, 11, 23, 8, 0, 0, 0, cph)}, // 01:00 local
	}
	for _, c := range cases {
		s := newStage(t, v, c.at)
		e := env(records.IDCPR, citizen, "", "", records.TypeNemSMS)
		b := &pipeline.Batch{Records: []*kgo.Record{{Value: e.Append(nil)}}}
		if err := s.Transform(context.Background(), b); err != nil {
			t.Fatal(err)
		}
		var out records.Envelope
		for _, r := range b.Outputs() {
			if r.Topic == pipeline.TopicRouted {
				if err := out.Decode(r.Value); err != nil {
					t.Fatal(err)
				}
			}
		}
		want := int64(0)
		if !c.hold.IsZero() {
			want = c.hold.UnixMilli()
		}
		if out.Destination != "sms" || out.NextAttemptMs != want {
			t.Errorf("at %v: dest %s hold %v, want %v", c.at, out.Destination, time.UnixMilli(out.NextAttemptMs).In(cph), c.hold)
		}
	}
}

func TestKeySpread(t *testing.T) {
	s := newStage(t, newView(testRegistry()...), noon)
	v := s.view
	mbox, reg := v.System("mbox"), v.System("regular")
	seen := map[string]bool{}
	for i := 0; i < 10000; i++ {
		k := string(s.Key(nil, mbox, fmt.Sprintf("01010%05d", i)))
		seen[k] = true
		if DestinationOf([]byte(k)) != "mbox" {
			t.Fatalf("key %q", k)
		}
	}
	if len(seen) != DefaultConfig().Spread {
		t.Errorf("a provider spreads over %d keys, want %d", len(seen), DefaultConfig().Spread)
	}
	// Same recipient, same key (per-recipient order).
	if string(s.Key(nil, mbox, citizen)) != string(s.Key(nil, mbox, citizen)) {
		t.Error("unstable key")
	}
	// An organisation's recipient system keeps one key: per-system order.
	if string(s.Key(nil, reg, citizen)) != "regular" || string(s.Key(nil, reg, "0202021234")) != "regular" {
		t.Error("recipient system key is spread")
	}
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []Config{{Spread: 0, SMSQuietFrom: 18, SMSQuietUntil: 8}, {Spread: 4, SMSQuietFrom: 24, SMSQuietUntil: 8}} {
		if err := c.Validate(); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
	if _, err := New(nil, nil, DefaultConfig()); err == nil {
		t.Error("New without a view accepted")
	}
}

func TestMalformedGoesToDLQ(t *testing.T) {
	s := newStage(t, newView(testRegistry()...), noon)
	b := &pipeline.Batch{Records: []*kgo.Record{{Value: []byte{9, 9}}}}
	if err := s.Transform(context.Background(), b); err != nil || b.Rejected() != 1 {
		t.Fatalf("err %v rejected %d", err, b.Rejected())
	}
}
