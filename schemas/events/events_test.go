package events

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

var testKeys = []Key{
	{ID: "k2", Secret: bytes.Repeat([]byte{2}, 32)},
	{ID: "k1", Secret: bytes.Repeat([]byte{1}, 32)},
}

func testPseudonymizer(t testing.TB) *Pseudonymizer {
	t.Helper()
	p, err := NewPseudonymizer(testKeys...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func sampleEvents(p *Pseudonymizer) []Event {
	at := time.Date(2026, 11, 23, 10, 15, 30, 123_000_000, time.UTC)
	return []Event{
		{
			Time: at, Tag: MemoSendValidated, MessageUUID: "9a3b5c1e-2f4d-4a6b-8c7d-0e1f2a3b4c5d",
			TransmissionID: "6f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9", SenderOrg: "12345678", SenderSystem: "sys-skat",
			Recipient: p.Recipient(CPR, "010101-1234"), MessageType: "DIGITALPOST", PostType: "MYNDIGHEDSPOST",
			Size: 1_234_567, Attachments: 3, ValueDate: time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC),
		},
		{
			Time: at.Add(time.Millisecond), Tag: TechnicalReceiptSent, MessageUUID: "9a3b5c1e-2f4d-4a6b-8c7d-0e1f2a3b4c5d",
			SenderOrg: "12345678", Recipient: p.Recipient(CVR, "87654321"), ContactPoint: "cp-1",
			RecipientSystem: "rs-9", ReceiptStatus: "RECEIVED",
		},
		{Time: at, Tag: ContactPointChanged, SenderOrg: "11223344", Actor: "admin-42"},
	}
}

func TestRoundTrip(t *testing.T) {
	p := testPseudonymizer(t)
	evs := sampleEvents(p)
	rec := NewRecord("memo.events", evs...)
	if string(rec.Key) != evs[0].MessageUUID || rec.Topic != "memo.events" {
		t.Fatalf("record key %q topic %q", rec.Key, rec.Topic)
	}
	prev := []Event{{Tag: Unknown}}
	got, err := Decode(rec.Value, prev)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1+len(evs) || got[0].Tag != Unknown {
		t.Fatalf("Decode did not append: %d events", len(got))
	}
	if !reflect.DeepEqual(got[1:], evs) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got[1:], evs)
	}
	if NewRecord("t", evs[2]).Key != nil {
		t.Error("an admin event has no messageUUID, so no key")
	}
}

func TestDecodeRejects(t *testing.T) {
	p := testPseudonymizer(t)
	good := NewRecord("t", sampleEvents(p)...).Value

	// Every truncation must fail cleanly and leave dst alone.
	for i := 0; i < len(good); i++ {
		dst := make([]Event, 1, 4)
		out, err := Decode(good[:i], dst)
		if !errors.Is(err, ErrMalformed) || len(out) != 1 {
			t.Fatalf("Decode(value[:%d]) = %d events, %v", i, len(out), err)
		}
	}
	clear := Event{Tag: MemoSendReceived, Recipient: Recipient{idType: CPR, id: "0101011234"}}
	mislabelled := Event{Tag: MemoSendReceived, Recipient: Recipient{idType: CVR, id: "0101011234"}}
	fakeHash := Event{Tag: MemoSendReceived, Recipient: Recipient{idType: CPR, id: "0101011234", keyID: "k1"}}
	for _, tc := range []struct {
		name  string
		value []byte
		want  error
	}{
		{"empty", nil, ErrMalformed},
		{"format", append([]byte{9}, good[1:]...), ErrMalformed},
		{"trailing", append(append([]byte(nil), good...), 0), ErrMalformed},
		{"huge count", []byte{formatV1, 0xff, 0xff, 0x7f}, ErrMalformed},
		{"cpr in clear", Append(nil, clear), ErrClearIdentifier},
		{"cpr labelled cvr", Append(nil, mislabelled), ErrClearIdentifier},
		{"cpr with a key id", Append(nil, fakeHash), ErrClearIdentifier},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Decode(tc.value, nil); !errors.Is(err, tc.want) {
				t.Fatalf("Decode = %v, want %v", err, tc.want)
			}
		})
	}
}

func FuzzDecode(f *testing.F) {
	p, _ := NewPseudonymizer(testKeys...)
	f.Add(NewRecord("t", sampleEvents(p)...).Value)
	f.Add([]byte{formatV1, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		evs, err := Decode(b, nil)
		if err != nil {
			return
		}
		// What decodes must survive encoding again (varints need not be
		// minimal on the wire, so compare events, not bytes).
		again, err := Decode(Append(nil, evs...), nil)
		if err != nil || !reflect.DeepEqual(again, evs) {
			t.Fatalf("re-encoding changed %x: %v\n%+v\n%+v", b, err, evs, again)
		}
	})
}

func TestDecodeAllocs(t *testing.T) {
	p := testPseudonymizer(t)
	v := NewRecord("t", sampleEvents(p)...).Value
	dst := make([]Event, 0, 16)
	allocs := testing.AllocsPerRun(100, func() {
		var err error
		if dst, err = Decode(v, dst[:0]); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 1 {
		t.Fatalf("Decode allocates %.0f times per record, want 1", allocs)
	}
}

func TestPseudonymizer(t *testing.T) {
	p := testPseudonymizer(t)
	a := p.Recipient(CPR, "0101011234")
	if a.Type() != CPR || a.KeyID() != "k2" || !isPseudonym(a.ID()) || strings.Contains(a.ID(), "0101011234") {
		t.Fatalf("CPR recipient = %+v", a)
	}
	if b := p.Recipient(CPR, "010101-1234"); b != a {
		t.Error("a dash changes the pseudonym")
	}
	if b := p.Recipient(CPR, "0101011235"); b.ID() == a.ID() {
		t.Error("two CPRs, one pseudonym")
	}
	if c := p.Recipient(CVR, "12345678"); c.ID() != "12345678" || c.Pseudonymised() {
		t.Errorf("CVR recipient = %+v, want the CVR in clear", c)
	}
	// A CPR declared as CVR (a sender's mistake) is still personal data.
	if c := p.Recipient(CVR, "0101011234"); !c.Pseudonymised() || c.ID() != a.ID() {
		t.Errorf("10 digits labelled CVR = %+v, want the CPR's pseudonym", c)
	}
	if c := p.Recipient(NoRecipient, ""); c != (Recipient{}) {
		t.Errorf("no recipient = %+v", c)
	}

	// Another key (rotation) gives another pseudonym; Pseudonyms gives both.
	old, _ := NewPseudonymizer(testKeys[1])
	byOld := old.Recipient(CPR, "0101011234")
	if byOld.ID() == a.ID() || byOld.KeyID() != "k1" {
		t.Fatalf("old key pseudonym = %+v", byOld)
	}
	all := p.Pseudonyms(CPR, "0101011234")
	if len(all) != 2 || all[0] != a || all[1] != byOld {
		t.Fatalf("Pseudonyms = %+v, want [%+v %+v]", all, a, byOld)
	}
}

func TestPseudonymConfig(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "keys")
	const k2 = "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=" // 32 × 0x02
	const k1 = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=" // 32 × 0x01
	if err := os.WriteFile(file, []byte("# current first\nk2:"+k2+"\n\nk1:"+k1+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	want := testPseudonymizer(t).Recipient(CPR, "0101011234")
	for _, tc := range []struct {
		name string
		cfg  PseudonymConfig
		ok   bool
	}{
		{"file", PseudonymConfig{KeyFile: file}, true},
		{"inline", PseudonymConfig{Keys: "k2:" + k2 + ",k1:" + k1}, true},
		{"none", PseudonymConfig{}, false},
		{"both", PseudonymConfig{KeyFile: file, Keys: "k2:" + k2}, false},
		{"short key", PseudonymConfig{Keys: "k:AAAA"}, false},
		{"no id", PseudonymConfig{Keys: k2}, false},
		{"bad id", PseudonymConfig{Keys: "k 2:" + k2}, false},
		{"duplicate id", PseudonymConfig{Keys: "k2:" + k2 + ",k2:" + k1}, false},
		{"missing file", PseudonymConfig{KeyFile: filepath.Join(dir, "nope")}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := tc.cfg.Load()
			if !tc.ok {
				if !errors.Is(err, ErrInvalidKeys) {
					t.Fatalf("Load = %v, want ErrInvalidKeys", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := p.Recipient(CPR, "0101011234"); got != want {
				t.Fatalf("pseudonym %+v, want %+v", got, want)
			}
		})
	}
}

// TestNoCPRReachesKafka produces events for CPR recipients the way a stage
// does (Pseudonymizer, then NewRecord) through a real Kafka protocol
// broker, reads the topic back raw, and looks for the CPR numbers in every
// byte of every record.
func TestNoCPRReachesKafka(t *testing.T) {
	const topic = "memo.events"
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, topic))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	prod, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	p := testPseudonymizer(t)
	cprs := []string{"0101011234", "3112999999", "1502781122"}
	var recs []*kgo.Record
	for i, cpr := range cprs {
		evs := sampleEvents(p)[:1]
		evs[0].MessageUUID = "9a3b5c1e-2f4d-4a6b-8c7d-0e1f2a3b4c5" + string(rune('0'+i))
		evs[0].Recipient = p.Recipient(CPR, cpr[:6]+"-"+cpr[6:])
		recs = append(recs, NewRecord(topic, evs...))
	}
	if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	cons, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	var seen int
	for seen < len(cprs) {
		fs := cons.PollFetches(ctx)
		if err := fs.Err(); err != nil {
			t.Fatal(err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			seen++
			raw := [][]byte{r.Key, r.Value}
			for _, h := range r.Headers {
				raw = append(raw, []byte(h.Key), h.Value)
			}
			for _, b := range raw {
				for _, cpr := range cprs {
					if bytes.Contains(b, []byte(cpr)) || bytes.Contains(b, []byte(cpr[:6]+"-"+cpr[6:])) {
						t.Errorf("CPR %s in clear in a memo.events record: %q", cpr, b)
					}
				}
			}
			evs, err := Decode(r.Value, nil)
			if err != nil || len(evs) != 1 || !evs[0].Recipient.Pseudonymised() {
				t.Errorf("decoded %+v, %v", evs, err)
			}
		})
	}
}
