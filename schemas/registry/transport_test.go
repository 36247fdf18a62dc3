package registry

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"math/big"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

var fixtures = sync.OnceValue(func() (f struct{ hostKey, hostKey2, rsa1024, certPEM, ecCertPEM string }) {
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	sp, _ := ssh.NewPublicKey(pub)
	f.hostKey = strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sp)))
	pub2, _, _ := ed25519.GenerateKey(rand.Reader)
	sp2, _ := ssh.NewPublicKey(pub2)
	f.hostKey2 = strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sp2)))
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	ss, _ := ssh.NewPublicKey(&small.PublicKey)
	f.rsa1024 = strings.TrimSpace(string(ssh.MarshalAuthorizedKey(ss)))
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ESDH (funktionscertifikat)"},
		NotBefore: time.Unix(0, 0), NotAfter: time.Unix(4e9, 0), KeyUsage: x509.KeyUsageKeyEncipherment | x509.KeyUsageDigitalSignature}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	f.certPEM = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	_, epriv, _ := ed25519.GenerateKey(rand.Reader)
	der2, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, epriv.Public(), epriv)
	f.ecCertPEM = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der2}))
	return f
})

func sftpSystem() *System {
	return &System{ID: "sys-sftp", Org: "12345678", Name: "SFTP", SysKind: SystemRecipient, Protocol: SFTP,
		Endpoint: "sftp://sftp.kommune.example:2222", SFTPUser: "digitalpost", SSHHostKey: fixtures().hostKey,
		Folder: "/inbox", ReceiptFolder: "/receipts", MemoVersion: 11, Role: RoleRegular}
}

func smtpSystem() *System {
	return &System{ID: "sys-smtp", Org: "12345678", Name: "SMTP", SysKind: SystemRecipient, Protocol: SMTP,
		Endpoint: "smtp://mail.kommune.example:587", SMTPAddress: "digitalpost@kommune.example", Certificate: fixtures().certPEM,
		MemoVersion: 12, Role: RoleRegular}
}

func standardSystem() *System {
	return &System{ID: "std-esdh", Org: "11223344", Name: "Leverandør ESDH", SysKind: SystemStandard, Protocol: RestPush,
		Endpoint: "https://esdh.supplier.example/memos", Credentials: "secret:supplier-esdh", MemoVersion: 12}
}

func selection() *System {
	return &System{ID: "kommune-esdh", Org: "12345678", Name: "ESDH via leverandør", SysKind: SystemRecipient,
		Template: "std-esdh", Role: RoleDefault, Credentials: "sha256:" + hash64, Contact: Contact{Name: "IT", Email: "it@kommune.example"}}
}

func TestTransportFieldsValidAndRoundTrip(t *testing.T) {
	twoKeys := sftpSystem()
	twoKeys.SSHHostKey = fixtures().hostKey + "\n" + fixtures().hostKey2 + "\n"
	certRef := smtpSystem()
	certRef.Certificate = "file:/etc/memoflow/certs/kommune.pem"
	noReceipts := sftpSystem()
	noReceipts.ReceiptFolder = ""
	at := time.UnixMilli(1_763_900_000_123).UTC()
	for _, e := range []Entity{sftpSystem(), twoKeys, smtpSystem(), certRef, noReceipts, standardSystem(), selection(),
		&Company{CVR: "87654321", Status: Registered, Mailbox: "eboks", Forward: Forwarding{Kind: ForwardSecureMailbox, To: "11223344"}},
		&Company{CVR: "87654322", Status: Registered, Mailbox: "eboks", Forward: Forwarding{Kind: ForwardPickup, To: "https://pickup.example/in", Credentials: "secret:pickup"}},
	} {
		if err := e.Validate(); err != nil {
			t.Fatalf("%s: %v", e.Key(), err)
		}
		c := NewChange(e, "admin", at)
		got, err := DecodeRecord(c.Record("memo.registry"))
		if err != nil || !reflect.DeepEqual(got, c) {
			t.Errorf("round trip %s: %v\n got %#v\nwant %#v", e.Key(), err, got.Entity, e)
		}
	}
}

// Values written before the SFTP/SMTP/forwarding fields existed must decode
// unchanged, and entities without them must encode to the same bytes.
func TestOldFormatUnchanged(t *testing.T) {
	// The values the codec wrote before the SFTP/SMTP/standard/forwarding
	// fields existed (captured from that commit, 0ef70f5): they must
	// decode, and an entity without the new fields must encode to them.
	for _, c := range []struct {
		e      Entity
		golden string
	}{
		{&System{ID: "p", Name: "P", SysKind: SystemMailbox, Protocol: RestPush, Endpoint: "https://x.example/", MemoVersion: 12},
			"0103020161017000015002011268747470733a2f2f782e6578616d706c652f00000c00000000"},
		{&Company{CVR: "87654321", Status: Registered, Mailbox: "eboks", System: "s"},
			"0108020161083837363534333231010565626f6b730173"},
	} {
		if got := hex.EncodeToString(NewChange(c.e, "a", time.UnixMilli(1)).AppendValue(nil)); got != c.golden {
			t.Errorf("%s encodes to %s, want the old format %s", c.e.Key(), got, c.golden)
		}
		old, _ := hex.DecodeString(c.golden)
		got, err := DecodeValue(old)
		if err != nil || !reflect.DeepEqual(got.Entity, c.e) {
			t.Errorf("%s: old value decodes to %#v (%v)", c.e.Key(), got.Entity, err)
		}
	}
}

func TestTransportFieldsRejected(t *testing.T) {
	f := fixtures()
	mod := func(base func() *System, m func(*System)) *System { s := base(); m(s); return s }
	cases := []struct {
		name  string
		e     Entity
		code  string
		field string
	}{
		{"sftp without endpoint", mod(sftpSystem, func(s *System) { s.Endpoint = "" }), CodeEndpointMissing, "endpoint"},
		{"sftp with http endpoint", mod(sftpSystem, func(s *System) { s.Endpoint = "https://x.example" }), CodeEndpointMissing, "endpoint"},
		{"sftp endpoint with path", mod(sftpSystem, func(s *System) { s.Endpoint = "sftp://x.example/inbox" }), CodeEndpointMissing, "endpoint"},
		{"sftp endpoint with user", mod(sftpSystem, func(s *System) { s.Endpoint = "sftp://u@x.example" }), CodeEndpointMissing, "endpoint"},
		{"sftp bad port", mod(sftpSystem, func(s *System) { s.Endpoint = "sftp://x.example:70000" }), CodeEndpointMissing, "endpoint"},
		{"sftp no user", mod(sftpSystem, func(s *System) { s.SFTPUser = "" }), CodeBadSFTP, "sftp_user"},
		{"sftp user with slash", mod(sftpSystem, func(s *System) { s.SFTPUser = "a/b" }), CodeBadSFTP, "sftp_user"},
		{"sftp no host key", mod(sftpSystem, func(s *System) { s.SSHHostKey = "" }), CodeBadSFTP, "ssh_host_key"},
		{"sftp host key garbage", mod(sftpSystem, func(s *System) { s.SSHHostKey = "ssh-ed25519 !!!" }), CodeBadSFTP, "ssh_host_key"},
		{"sftp three host keys", mod(sftpSystem, func(s *System) { s.SSHHostKey = f.hostKey + "\n" + f.hostKey2 + "\n" + f.hostKey }), CodeBadSFTP, "ssh_host_key"},
		{"sftp small rsa host key", mod(sftpSystem, func(s *System) { s.SSHHostKey = f.rsa1024 }), CodeBadSFTP, "ssh_host_key"},
		{"sftp relative folder", mod(sftpSystem, func(s *System) { s.Folder = "inbox" }), CodeBadSFTP, "folder"},
		{"sftp folder with ..", mod(sftpSystem, func(s *System) { s.Folder = "/a/../etc" }), CodeBadSFTP, "folder"},
		{"sftp receipts in inbox", mod(sftpSystem, func(s *System) { s.ReceiptFolder = "/inbox" }), CodeBadSFTP, "receipt_folder"},
		{"sftp with smtp field", mod(sftpSystem, func(s *System) { s.SMTPAddress = "a@b.example" }), CodeBadProtocol, "smtp_address"},
		{"smtp no address", mod(smtpSystem, func(s *System) { s.SMTPAddress = "" }), CodeBadSMTP, "smtp_address"},
		{"smtp named address", mod(smtpSystem, func(s *System) { s.SMTPAddress = "Post <a@b.example>" }), CodeBadSMTP, "smtp_address"},
		{"smtp no certificate", mod(smtpSystem, func(s *System) { s.Certificate = "" }), CodeBadSMTP, "certificate"},
		{"smtp certificate not pem", mod(smtpSystem, func(s *System) { s.Certificate = "MIIB..." }), CodeBadSMTP, "certificate"},
		{"smtp certificate not rsa", mod(smtpSystem, func(s *System) { s.Certificate = f.ecCertPEM }), CodeBadSMTP, "certificate"},
		{"smtp certificate sha256 ref", mod(smtpSystem, func(s *System) { s.Certificate = "sha256:" + hash64 }), CodeBadSMTP, "certificate"},
		{"smtp with sftp endpoint", mod(smtpSystem, func(s *System) { s.Endpoint = "sftp://x.example" }), CodeEndpointMissing, "endpoint"},
		{"push with sftp field", mod(sftpSystem, func(s *System) { s.Protocol = RestPush; s.Endpoint = "https://x.example" }), CodeBadProtocol, "sftp_user"},
		{"standard without org", mod(standardSystem, func(s *System) { s.Org = "" }), CodeBadCVR, "org"},
		{"standard with role", mod(standardSystem, func(s *System) { s.Role = RoleDefault }), CodeBadRole, "role"},
		{"selection with endpoint", mod(selection, func(s *System) { s.Endpoint = "https://x.example" }), CodeBadTemplate, "template"},
		{"selection with protocol", mod(selection, func(s *System) { s.Protocol = RestPush }), CodeBadTemplate, "template"},
		{"selection of itself", mod(selection, func(s *System) { s.Template = s.ID }), CodeBadTemplate, "template"},
		{"selection by a mailbox", mod(selection, func(s *System) { s.SysKind = SystemMailbox; s.Role = 0 }), CodeBadTemplate, "template"},
		{"selection without role", mod(selection, func(s *System) { s.Role = 0 }), CodeBadRole, "role"},
		{"forward without kind", &Company{CVR: "87654321", Status: Registered, Mailbox: "m", Forward: Forwarding{To: "11223344"}}, CodeBadForward, "forward.kind"},
		{"forward unknown kind", &Company{CVR: "87654321", Status: Registered, Mailbox: "m", Forward: Forwarding{Kind: 9, To: "11223344"}}, CodeBadForward, "forward.kind"},
		{"forward to bad cvr", &Company{CVR: "87654321", Status: Registered, Mailbox: "m", Forward: Forwarding{Kind: ForwardSecureMailbox, To: "x"}}, CodeBadForward, "forward.to"},
		{"forward to itself", &Company{CVR: "87654321", Status: Registered, Mailbox: "m", Forward: Forwarding{Kind: ForwardSecureMailbox, To: "87654321"}}, CodeBadForward, "forward.to"},
		{"forward secure with creds", &Company{CVR: "87654321", Status: Registered, Mailbox: "m", Forward: Forwarding{Kind: ForwardSecureMailbox, To: "11223344", Credentials: "secret:x"}}, CodeBadForward, "forward.credentials"},
		{"forward pickup http", &Company{CVR: "87654321", Status: Registered, Mailbox: "m", Forward: Forwarding{Kind: ForwardPickup, To: "http://x.example"}}, CodeBadForward, "forward.to"},
		{"forward pickup clear creds", &Company{CVR: "87654321", Status: Registered, Mailbox: "m", Forward: Forwarding{Kind: ForwardPickup, To: "https://x.example", Credentials: "hunter2"}}, CodeCredentials, "forward.credentials"},
		{"forward with own system", &Company{CVR: "87654321", Status: Registered, Mailbox: "m", System: "s", Forward: Forwarding{Kind: ForwardPickup, To: "https://x.example"}}, CodeBadForward, "forward.kind"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.e.Validate()
			e, ok := err.(*Error)
			if !ok || e.Code != c.code || e.Field != c.field {
				t.Fatalf("got %v, want %s on %s", err, c.code, c.field)
			}
		})
	}
}

func TestStandardSystemSelection(t *testing.T) {
	v := NewMemView(WithLogger(quiet()))
	now := time.Now()
	put := func(es ...Entity) {
		for _, e := range es {
			v.Apply(NewChange(e, "t", now))
		}
	}
	put(&Org{CVR: "12345678", Name: "Demo Kommune", Type: OrgAuthority, Setup: 1}, &Org{CVR: "11223344", Name: "Leverandør", Type: OrgCompany})
	w := NewWriter(nil, v, WithoutEvents())

	// The template must exist and be a standard system.
	if err := w.Check(NewChange(selection(), "t", now)); CodeOf(err) != CodeBadTemplate {
		t.Fatalf("selection of a missing template: %v", err)
	}
	push := &System{ID: "std-esdh", Org: "12345678", Name: "own", SysKind: SystemRecipient, Protocol: RestPush, Endpoint: "https://x.example", MemoVersion: 11, Role: RoleRegular}
	put(push)
	if err := w.Check(NewChange(selection(), "t", now)); CodeOf(err) != CodeBadTemplate {
		t.Fatalf("selection of a non-standard system: %v", err)
	}
	// In the same batch is fine.
	if err := w.Check(NewChange(standardSystem(), "t", now), NewChange(selection(), "t", now)); err != nil {
		t.Fatal(err)
	}
	put(standardSystem(), selection())

	eff := v.Effective(v.System("kommune-esdh"))
	if eff == nil || eff.Protocol != RestPush || eff.Endpoint != standardSystem().Endpoint || eff.MemoVersion != 12 ||
		eff.ID != "kommune-esdh" || eff.Org != "12345678" || eff.Role != RoleDefault || eff.SysKind != SystemRecipient ||
		eff.Credentials != "secret:supplier-esdh" || eff.Template != "std-esdh" || eff.Contact.Email != "it@kommune.example" {
		t.Fatalf("effective: %#v", eff)
	}
	if got := v.Selections("std-esdh"); !reflect.DeepEqual(got, []string{"kommune-esdh"}) {
		t.Fatalf("selections: %v", got)
	}
	// A secret reference of the selection's own overrides the template's.
	own := selection()
	own.Credentials = "secret:kommune-esdh"
	if e := own.WithTemplate(standardSystem()); e.Credentials != "secret:kommune-esdh" {
		t.Fatalf("own secret lost: %s", e.Credentials)
	}
	// The selecting system keeps its own deactivation.
	d := selection()
	d.Deactivated = true
	if e := d.WithTemplate(standardSystem()); !e.Deactivated {
		t.Fatal("deactivation lost in the merge")
	}
	// A selected standard system cannot go away or change kind...
	if err := w.Check(NewDelete("sys/std-esdh", "t", now)); CodeOf(err) != CodeBadTemplate {
		t.Fatalf("delete of a selected standard system: %v", err)
	}
	other := standardSystem()
	other.SysKind, other.Role = SystemRecipient, RoleRegular
	other.Org = "11223344"
	if err := w.Check(NewChange(other, "t", now)); CodeOf(err) != CodeBadTemplate {
		t.Fatalf("kind change of a selected standard system: %v", err)
	}
	// ...unless the selection moves in the same batch.
	ownPull := &System{ID: "kommune-esdh", Org: "12345678", Name: "own now", SysKind: SystemRecipient, Protocol: RestPull, MemoVersion: 11, Role: RoleDefault}
	if err := w.Check(NewDelete("sys/std-esdh", "t", now), NewChange(ownPull, "t", now)); err != nil {
		t.Fatal(err)
	}
	// A changed standard system applies to its selections at once.
	changed := standardSystem()
	changed.Endpoint = "https://new.supplier.example/memos"
	put(changed)
	if eff := v.Effective(v.System("kommune-esdh")); eff.Endpoint != changed.Endpoint {
		t.Fatalf("template change not seen: %s", eff.Endpoint)
	}
}

func TestCompanyForwardingInView(t *testing.T) {
	v := NewMemView(WithLogger(quiet()))
	now := time.Now()
	fw := Forwarding{Kind: ForwardPickup, To: "https://pickup.example/in", Credentials: "secret:p"}
	v.Apply(NewChange(&Company{CVR: "87654321", Status: Registered, Mailbox: "eboks", Forward: fw}, "t", now))
	if c, _ := v.Company("87654321"); c.Forward != fw {
		t.Fatalf("forward %#v", c.Forward)
	}
	if e, _ := v.entity("com/87654321").(*Company); e == nil || e.Forward != fw {
		t.Fatalf("entity %#v", e)
	}
	v.Apply(NewChange(&Company{CVR: "87654321", Status: Registered, Mailbox: "eboks"}, "t", now))
	if c, _ := v.Company("87654321"); c.Forward.Set() {
		t.Fatal("forwarding not cleared")
	}
}
