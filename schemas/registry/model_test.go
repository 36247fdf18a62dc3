package registry

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/memoflow/memoflow/schemas/events"
)

const hash64 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// validEntities has one valid entity of every kind, in every shape the
// codec must carry (lists, info fields, optional fields set).
func validEntities() []Entity {
	return []Entity{
		&Org{CVR: "12345678", Name: "Demo Kommune", Type: OrgAuthority, Setup: 1},
		&Org{CVR: "87654321", Name: "Bageriet I/S", Type: OrgCompany},
		&SenderSystem{ID: "demo-sender", Org: "12345678", Name: "ESDH", TokenSHA256: []string{hash64}, ReceiptEndpoint: "https://esdh.example/receipts", Active: true},
		&System{ID: "sys-push", Org: "12345678", Name: "Push", SysKind: SystemRecipient, Protocol: RestPush, Endpoint: "http://127.0.0.1:8090/memos",
			Credentials: "secret:push-client", MemoVersion: 12, Contact: Contact{Name: "Mette", Email: "mette@example.dk"}, Role: RoleDefault},
		&System{ID: "sys-pull", Org: "12345678", Name: "Pull", SysKind: SystemRecipient, Protocol: RestPull, Credentials: "sha256:" + hash64, MemoVersion: 11, Role: RoleCVRPost, Deactivated: true},
		&System{ID: "eboks", Name: "Mailbox", SysKind: SystemMailbox, Protocol: RestPush, Endpoint: "https://mailbox.example/in", MemoVersion: 12},
		&System{ID: "sms", Name: "SMS", SysKind: SystemSMS, Protocol: PublishSubscribe, Endpoint: "https://sms.example/notify", MemoVersion: 11},
		&ContactGroup{ID: "g1", Org: "12345678", Name: "Borgerservice", Keywords: []string{"pas", "kørekort"}, Visibility: VisibleAll},
		&ContactPoint{ID: "3f2504e0-4f89-41d3-9a0c-0305e82c3301", ParentID: "g1", Org: "12345678", Name: "Pas", Keywords: []string{"Pas"},
			KLE: []string{"00", "00.01", "00.01.10"}, FORM: []string{"G01.02"}, EAN: []string{"5798000000001"}, SOR: []string{"123456789012345678"},
			Visibility: VisibleCitizens | VisibleCompanies, Info: []InfoField{{Title: "Åbningstid", Text: "9-15"}, {Title: "Tlf", Text: "70 10 10 10"}}, System: "sys-push"},
		&ContactPoint{ID: "cp2", Org: "12345678", Name: "Hidden"},
		&LegacyMailbox{Org: "12345678", Mailbox: "BORGER", Subject: "PAS", ContactPoint: "cp2"},
		&LegacyMailbox{Org: "12345678", Mailbox: "GAMMEL"},
		&Citizen{CPR: "0101011234", Status: Registered, NemSMS: true, Mailbox: "eboks"},
		&Citizen{CPR: "3112999999", Status: Exempt},
		&Company{CVR: "87654321", Status: Registered, Mailbox: "eboks", System: "sys-x"},
		&Company{CVR: "99999999", Status: Exempt},
	}
}

func TestValidateAcceptsValid(t *testing.T) {
	for _, e := range validEntities() {
		if err := e.Validate(); err != nil {
			t.Errorf("%s %s: %v", e.Kind(), e.Key(), err)
		}
	}
}

func TestValidateRejects(t *testing.T) {
	long := strings.Repeat("x", 257)
	okSys := func(f func(s *System)) *System {
		s := &System{ID: "s", Org: "12345678", Name: "S", SysKind: SystemRecipient, Protocol: RestPull, MemoVersion: 11, Role: RoleRegular}
		f(s)
		return s
	}
	okCP := func(f func(p *ContactPoint)) *ContactPoint {
		p := &ContactPoint{ID: "cp", Org: "12345678", Name: "P"}
		f(p)
		return p
	}
	cases := []struct {
		name string
		e    Entity
		code string
	}{
		{"org cvr short", &Org{CVR: "1234567", Name: "x", Type: OrgCompany}, CodeBadCVR},
		{"org cvr leading zero", &Org{CVR: "01234567", Name: "x", Type: OrgCompany}, CodeBadCVR},
		{"org cvr letters", &Org{CVR: "1234567a", Name: "x", Type: OrgCompany}, CodeBadCVR},
		{"org blank name", &Org{CVR: "12345678", Name: "  ", Type: OrgCompany}, CodeBadName},
		{"org long name", &Org{CVR: "12345678", Name: long, Type: OrgCompany}, CodeBadName},
		{"org no kind", &Org{CVR: "12345678", Name: "x"}, CodeBadKind},
		{"authority setup 0", &Org{CVR: "12345678", Name: "x", Type: OrgAuthority}, CodeBadSetup},
		{"authority setup 4", &Org{CVR: "12345678", Name: "x", Type: OrgAuthority, Setup: 4}, CodeBadSetup},
		{"company with setup", &Org{CVR: "12345678", Name: "x", Type: OrgCompany, Setup: 1}, CodeBadSetup},
		{"sender bad id", &SenderSystem{ID: "a b", Org: "12345678", Name: "x"}, CodeBadID},
		{"sender token in clear", &SenderSystem{ID: "a", Org: "12345678", Name: "x", TokenSHA256: []string{"secret-token"}}, CodeBadToken},
		{"sender too many tokens", &SenderSystem{ID: "a", Org: "12345678", Name: "x", TokenSHA256: []string{hash64, hash64, hash64, hash64, hash64}}, CodeBadToken},
		{"sender bad receipt url", &SenderSystem{ID: "a", Org: "12345678", Name: "x", ReceiptEndpoint: "ftp://x"}, CodeBadURL},
		{"system no kind", okSys(func(s *System) { s.SysKind = 0 }), CodeBadKind},
		{"recipient system no org", okSys(func(s *System) { s.Org = "" }), CodeBadCVR},
		{"system bad protocol", okSys(func(s *System) { s.Protocol = 9 }), CodeBadProtocol},
		{"push without endpoint", okSys(func(s *System) { s.Protocol = RestPush }), CodeEndpointMissing},
		{"pubsub without endpoint", okSys(func(s *System) { s.Protocol = PublishSubscribe }), CodeEndpointMissing},
		{"endpoint relative", okSys(func(s *System) { s.Endpoint = "/memos" }), CodeBadURL},
		{"endpoint with password", okSys(func(s *System) { s.Endpoint = "https://u:p@x/" }), CodeBadURL},
		{"credentials in clear", okSys(func(s *System) { s.Credentials = "hunter2" }), CodeCredentials},
		{"credentials short hash", okSys(func(s *System) { s.Credentials = "sha256:abc" }), CodeCredentials},
		{"version 10", okSys(func(s *System) { s.MemoVersion = 10 }), CodeBadVersion},
		{"version 0", okSys(func(s *System) { s.MemoVersion = 0 }), CodeBadVersion},
		{"recipient without role", okSys(func(s *System) { s.Role = 0 }), CodeBadRole},
		{"provider with role", okSys(func(s *System) { s.SysKind = SystemMailbox }), CodeBadRole},
		{"contact bad email", okSys(func(s *System) { s.Contact = Contact{Name: "A", Email: "not mail"} }), CodeBadContact},
		{"contact no name", okSys(func(s *System) { s.Contact = Contact{Email: "a@b.dk"} }), CodeBadContact},
		{"cp self parent", okCP(func(p *ContactPoint) { p.ParentID = "cp" }), CodeSelfParent},
		{"cp bad parent", okCP(func(p *ContactPoint) { p.ParentID = "a/b" }), CodeBadID},
		{"cp no org", okCP(func(p *ContactPoint) { p.Org = "" }), CodeBadCVR},
		{"cp empty keyword", okCP(func(p *ContactPoint) { p.Keywords = []string{""} }), CodeBadKeyword},
		{"cp KLE", okCP(func(p *ContactPoint) { p.KLE = []string{"1.2"} }), CodeBadKLE},
		{"cp KLE 4 levels", okCP(func(p *ContactPoint) { p.KLE = []string{"00.01.02.03"} }), CodeBadKLE},
		{"cp FORM lowercase", okCP(func(p *ContactPoint) { p.FORM = []string{"g01"} }), CodeBadFORM},
		{"cp EAN 12", okCP(func(p *ContactPoint) { p.EAN = []string{"579800000000"} }), CodeBadEAN},
		{"cp SOR letters", okCP(func(p *ContactPoint) { p.SOR = []string{"12a"} }), CodeBadSOR},
		{"cp visibility", okCP(func(p *ContactPoint) { p.Visibility = 8 }), CodeBadVisibility},
		{"cp 3 info fields", okCP(func(p *ContactPoint) { p.Info = make([]InfoField, 3) }), CodeTooManyInfo},
		{"cp info without title", okCP(func(p *ContactPoint) { p.Info = []InfoField{{Text: "x"}} }), CodeBadInfo},
		{"cp bad system", okCP(func(p *ContactPoint) { p.System = "a b" }), CodeBadID},
		{"group bad id", &ContactGroup{ID: "", Org: "12345678", Name: "x"}, CodeBadID},
		{"legacy slash", &LegacyMailbox{Org: "12345678", Mailbox: "a/b"}, CodeBadLegacy},
		{"legacy empty", &LegacyMailbox{Org: "12345678"}, CodeBadLegacy},
		{"legacy subject slash", &LegacyMailbox{Org: "12345678", Mailbox: "a", Subject: "/"}, CodeBadLegacy},
		{"citizen cpr 9", &Citizen{CPR: "010101123", Status: Exempt}, CodeBadCPR},
		{"citizen day 32", &Citizen{CPR: "3201011234", Status: Exempt}, CodeBadCPR},
		{"citizen month 13", &Citizen{CPR: "0113011234", Status: Exempt}, CodeBadCPR},
		{"citizen no status", &Citizen{CPR: "0101011234"}, CodeBadStatus},
		{"citizen registered no mailbox", &Citizen{CPR: "0101011234", Status: Registered}, CodeMailboxMissing},
		{"company registered no mailbox", &Company{CVR: "12345678", Status: Registered}, CodeMailboxMissing},
		{"company bad system", &Company{CVR: "12345678", Status: Exempt, System: "x y"}, CodeBadID},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.e.Validate()
			if err == nil {
				t.Fatalf("accepted")
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("%v does not match ErrInvalid", err)
			}
			if got := CodeOf(err); got != c.code {
				t.Errorf("code %s, want %s (%v)", got, c.code, err)
			}
			var e *Error
			if errors.As(err, &e) && (e.Field == "" || e.Message == "") {
				t.Errorf("error without field or message: %#v", e)
			}
		})
	}
}

func TestChangeRoundTrip(t *testing.T) {
	at := time.UnixMilli(1_763_900_000_123).UTC()
	for _, e := range validEntities() {
		c := NewChange(e, "admin-1", at)
		if err := c.Validate(); err != nil {
			t.Fatalf("%s: %v", e.Key(), err)
		}
		r := c.Record("memo.registry")
		got, err := DecodeRecord(r)
		if err != nil {
			t.Fatalf("%s: %v", e.Key(), err)
		}
		if !reflect.DeepEqual(got, c) {
			t.Errorf("round trip of %s:\n got %#v\nwant %#v", e.Key(), got.Entity, c.Entity)
		}
		if KindOfKey(c.Key) != e.Kind() {
			t.Errorf("%s: KindOfKey %v, want %v", c.Key, KindOfKey(c.Key), e.Kind())
		}
	}
	del := NewDelete("cp/cp2", "admin-2", at)
	got, err := DecodeRecord(del.Record("memo.registry"))
	if err != nil || !reflect.DeepEqual(got, del) || !got.Deleted() || got.Kind() != KindContactPoint {
		t.Errorf("tombstone: %#v %v", got, err)
	}
}

func TestCitizenValueIsSmall(t *testing.T) {
	c := NewChange(&Citizen{CPR: "0101011234", Status: Registered, NemSMS: true, Mailbox: "eboks"}, "gen", time.Now())
	if n := len(c.AppendValue(nil)); n > 28 {
		t.Errorf("a citizen's value is %d bytes; the 5M budget assumes <= 28", n)
	}
}

func TestDecodeRejects(t *testing.T) {
	good := NewChange(validEntities()[8], "a", time.Now()).AppendValue(nil)
	cases := map[string][]byte{
		"empty":       {},
		"format":      {9, 1},
		"kind":        {1, 99, 0, 0},
		"truncated":   good[:len(good)-1],
		"trailing":    append(append([]byte{}, good...), 0),
		"huge list":   {1, byte(KindContactGroup), 0, 0, 1, 'a', 0, 8, '1', '2', '3', '4', '5', '6', '7', '8', 1, 'n', 0xff, 0xff, 0xff, 0x0f},
		"cpr too big": {1, byte(KindCitizen), 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 1, 0},
	}
	for name, b := range cases {
		if _, err := DecodeValue(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err %v, want ErrMalformed", name, err)
		}
	}
	// A value under the wrong key is malformed too.
	r := &kgo.Record{Key: []byte("cp/other"), Value: good}
	if _, err := DecodeRecord(r); !errors.Is(err, ErrMalformed) {
		t.Errorf("key mismatch: %v", err)
	}
	if _, err := DecodeRecord(&kgo.Record{Key: []byte("zzz/1")}); !errors.Is(err, ErrMalformed) {
		t.Errorf("unknown tombstone: %v", err)
	}
}

func TestChangeValidate(t *testing.T) {
	e := validEntities()[0]
	if err := (&Change{Key: e.Key(), Entity: e}).Validate(); CodeOf(err) != CodeBadActor {
		t.Errorf("no actor: %v", err)
	}
	if err := (&Change{Key: "org/87654321", Entity: e, Actor: "a"}).Validate(); CodeOf(err) != CodeBadID {
		t.Errorf("key mismatch: %v", err)
	}
	if err := (&Change{Key: "nope/1", Actor: "a"}).Validate(); CodeOf(err) != CodeBadKind {
		t.Errorf("bad delete key: %v", err)
	}
}

func TestChangeEvent(t *testing.T) {
	p, err := events.NewPseudonymizer(events.Key{ID: "k1", Secret: []byte("0123456789abcdef0123456789abcdef")})
	if err != nil {
		t.Fatal(err)
	}
	at := time.UnixMilli(1_763_900_000_000).UTC()
	cases := []struct {
		c    Change
		tag  events.Tag
		want func(ev events.Event) bool
	}{
		{NewChange(validEntities()[8], "adm", at), events.ContactPointChanged, func(ev events.Event) bool {
			return ev.ContactPoint == "3f2504e0-4f89-41d3-9a0c-0305e82c3301" && ev.RecipientSystem == "sys-push" && ev.SenderOrg == "12345678"
		}},
		{NewChange(validEntities()[3], "adm", at), events.SystemChanged, func(ev events.Event) bool { return ev.RecipientSystem == "sys-push" }},
		{NewChange(validEntities()[2], "adm", at), events.SystemChanged, func(ev events.Event) bool { return ev.SenderSystem == "demo-sender" }},
		{NewChange(validEntities()[12], "adm", at), events.DigitalPostRegistered, func(ev events.Event) bool {
			return ev.Recipient.Pseudonymised() && ev.Recipient.ID() != "0101011234"
		}},
		{NewChange(validEntities()[13], "adm", at), events.DigitalPostExempted, func(ev events.Event) bool { return ev.Recipient.Pseudonymised() }},
		{NewDelete("cp/x", "adm", at), events.ContactPointChanged, func(ev events.Event) bool { return ev.ContactPoint == "x" && ev.ErrorCode == "DELETED" }},
		{NewDelete("sys/y", "adm", at), events.SystemChanged, func(ev events.Event) bool { return ev.RecipientSystem == "y" }},
	}
	for i, c := range cases {
		ev := ChangeEvent(&c.c, p)
		if ev.Tag != c.tag || ev.Actor != "adm" || !ev.Time.Equal(at) || !c.want(ev) {
			t.Errorf("case %d: %+v", i, ev)
		}
	}
}

func FuzzDecodeValue(f *testing.F) {
	for _, e := range validEntities() {
		c := NewChange(e, "fuzz", time.UnixMilli(1))
		f.Add(c.AppendValue(nil))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := DecodeValue(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error not ErrMalformed: %v", err)
			}
			return
		}
		// Whatever decodes re-encodes to a value that decodes the same.
		again, err := DecodeValue(c.AppendValue(nil))
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if !reflect.DeepEqual(normalize(again), normalize(c)) {
			t.Fatalf("unstable:\n%#v\n%#v", again.Entity, c.Entity)
		}
	})
}

// normalize makes empty lists nil (the codec does not keep the difference).
func normalize(c Change) Change {
	v := reflect.ValueOf(c.Entity).Elem()
	for i := 0; i < v.NumField(); i++ {
		if f := v.Field(i); f.Kind() == reflect.Slice && f.Len() == 0 {
			f.Set(reflect.Zero(f.Type()))
		}
	}
	return c
}
