package smtp

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/memoflow/memoflow/stages/transport"
)

const uuid1 = "3f1c1f0e-8a4b-4c2d-9e5f-0123456789ab"

// Identities are slow to make (RSA 2048); the tests share a few.
var (
	idOnce                            sync.Once
	ca, memoflowID, systemID, otherID *Identity
	ecID, expiredSys                  *Identity
)

func ids(t testing.TB) {
	t.Helper()
	idOnce.Do(func() {
		now := time.Now()
		var err error
		must := func(id *Identity, e error) *Identity {
			if e != nil {
				err = e
			}
			return id
		}
		ca = must(GenerateIdentity("Test OCES CA", now.Add(-time.Hour), now.Add(48*time.Hour), nil))
		memoflowID = must(GenerateIdentity("memoflow FOCES", now.Add(-time.Hour), now.Add(24*time.Hour), ca))
		systemID = must(GenerateIdentity("kommune ESDH", now.Add(-time.Hour), now.Add(24*time.Hour), ca))
		otherID = must(GenerateIdentity("other system", now.Add(-time.Hour), now.Add(24*time.Hour), ca))
		ecID = must(GenerateECIdentity("ec system", now.Add(-time.Hour), now.Add(24*time.Hour), ca))
		expiredSys = must(GenerateIdentity("expired system", now.Add(-48*time.Hour), now.Add(-time.Hour), ca))
		if err != nil {
			panic(err)
		}
	})
}

func pool(certs ...*x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range certs {
		p.AddCert(c)
	}
	return p
}

type rig struct {
	srv    *Server
	cl     *Client
	target *Target
}

func newRig(t testing.TB, sc ServerConfig, cc Config) *rig {
	t.Helper()
	ids(t)
	if sc.Recipient == nil {
		sc.Recipient = systemID
	}
	if sc.Trusted == nil {
		sc.Trusted = pool(ca.Cert)
	}
	srv, err := NewServer(sc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	if cc.Identity == nil {
		cc.Identity = memoflowID
	}
	if cc.From == "" {
		cc.From = "noreply@memoflow.test"
	}
	if cc.TLSRoots == nil {
		cc.TLSRoots = srv.TLSRoots()
	}
	cl, err := New(cc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cl.Close() })
	return &rig{srv: srv, cl: cl, target: &Target{SystemID: "sys-1", Addr: srv.Addr(), To: "post@kommune.test", CertPEM: systemID.CertPEM()}}
}

func memo(n int) []byte {
	b := bytes.Repeat([]byte("<memo:Message>æøå 0123456789</memo:Message>\n"), n/40+1)
	return b[:n]
}

func wantErr(t *testing.T, err error, code string, outcome transport.Outcome) *transport.Error {
	t.Helper()
	var te *transport.Error
	if !errors.As(err, &te) {
		t.Fatalf("want *transport.Error %s, got %T %v", code, err, err)
	}
	if te.Code != code || te.Outcome != outcome {
		t.Fatalf("want %s/%s, got %s/%s: %v", code, outcome, te.Code, te.Outcome, err)
	}
	sentinel := transport.ErrTransient
	if outcome == transport.Permanent {
		sentinel = transport.ErrPermanent
	}
	if !errors.Is(err, sentinel) || transport.Classify(err) != outcome || transport.CodeOf(err) != code {
		t.Fatalf("errors.Is/Classify/CodeOf disagree for %v", err)
	}
	return te
}

func TestDeliverSignedEncrypted(t *testing.T) {
	r := newRig(t, ServerConfig{}, Config{})
	body := memo(200 << 10)
	if err := r.cl.Deliver(context.Background(), r.target, uuid1, body); err != nil {
		t.Fatal(err)
	}
	if r.srv.Count(uuid1) != 1 || !bytes.Equal(r.srv.Memo(uuid1), body) {
		t.Fatalf("server has %d copies; bytes equal %v; rejected %v", r.srv.Count(uuid1), bytes.Equal(r.srv.Memo(uuid1), body), r.srv.Rejected())
	}
	// A second message reuses the session (RSET, not a new TLS handshake).
	const uuid2 = "3f1c1f0e-8a4b-4c2d-9e5f-0123456789ac"
	if err := r.cl.Deliver(context.Background(), r.target, uuid2, memo(10)); err != nil {
		t.Fatal(err)
	}
	if r.srv.Sessions() != 1 || r.srv.Total() != 2 {
		t.Fatalf("%d sessions for %d messages; want 1 for 2", r.srv.Sessions(), r.srv.Total())
	}
}

// The mail on the wire: nothing of the MeMo in clear, the right content
// type, and Open gives back exactly the bytes (signed by memoflow).
func TestComposeOpenRoundTrip(t *testing.T) {
	r := newRig(t, ServerConfig{}, Config{})
	body := []byte(`<memo:Message xmlns:memo="https://DigitalPost.dk/MeMo-1"><secret>0101901234</secret></memo:Message>`)
	cert, _ := r.target.certificate()
	raw, err := r.cl.compose(r.target, cert, uuid1, body, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte("0101901234")) || bytes.Contains(raw, []byte("memo:Message")) {
		t.Fatal("MeMo content in clear")
	}
	for _, want := range []string{"smime-type=enveloped-data", "message-id: <" + uuid1 + "@memoflow.test>", HeaderMessageUUID + ": " + uuid1} {
		if !bytes.Contains(bytes.ToLower(raw), []byte(strings.ToLower(want))) {
			t.Fatalf("missing %q in\n%s", want, raw[:400])
		}
	}
	o, err := Open(raw, systemID, pool(ca.Cert), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if o.UUID != uuid1 || !bytes.Equal(o.Memo, body) || !o.Signer.Equal(memoflowID.Cert) {
		t.Fatalf("opened %+v", o)
	}
	// The wrong key cannot open it; a tampered body fails.
	var oe *OpenError
	if _, err := Open(raw, otherID, pool(ca.Cert), time.Now()); !errors.As(err, &oe) || oe.Step != "decrypt" {
		t.Fatalf("other key: %v", err)
	}
	if _, err := Open(raw, systemID, pool(otherID.Cert), time.Now()); !errors.As(err, &oe) || oe.Step != "verify" {
		t.Fatalf("untrusted signer: %v", err)
	}
}

func TestCertificates(t *testing.T) {
	ids(t)
	tests := []struct {
		name    string
		target  func(*Target)
		server  ServerConfig
		code    string
		outcome transport.Outcome
		reply   int
	}{
		{name: "system certificate expired", target: func(x *Target) { x.CertPEM = expiredSys.CertPEM() },
			code: transport.CodeCertExpired, outcome: transport.Permanent},
		{name: "system certificate not RSA", target: func(x *Target) { x.CertPEM = ecID.CertPEM() },
			code: transport.CodeCertInvalid, outcome: transport.Permanent},
		{name: "registry holds another system's certificate", target: func(x *Target) { x.CertPEM = otherID.CertPEM() },
			code: transport.CodeSMTPRejected, outcome: transport.Permanent, reply: 554},
		{name: "system does not trust memoflow's certificate", server: ServerConfig{Trusted: pool(otherID.Cert)},
			code: transport.CodeSMTPRejected, outcome: transport.Permanent, reply: 554},
		{name: "certificate is not PEM", target: func(x *Target) { x.CertPEM = []byte("junk") },
			code: transport.CodeConfig, outcome: transport.Permanent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, tc.server, Config{})
			if tc.target != nil {
				x := &Target{SystemID: r.target.SystemID, Addr: r.target.Addr, To: r.target.To, CertPEM: r.target.CertPEM}
				tc.target(x)
				r.target = x
			}
			te := wantErr(t, r.cl.Deliver(context.Background(), r.target, uuid1, memo(100)), tc.code, tc.outcome)
			if te.Reply != tc.reply {
				t.Fatalf("reply %d, want %d", te.Reply, tc.reply)
			}
			if r.srv.Total() != 0 {
				t.Fatal("the server accepted the message")
			}
		})
	}
}

func TestRecipientRoots(t *testing.T) {
	ids(t)
	foreignCA, _ := GenerateIdentity("foreign CA", time.Now().Add(-time.Hour), time.Now().Add(time.Hour), nil)
	foreign, _ := GenerateIdentity("foreign", time.Now().Add(-time.Hour), time.Now().Add(time.Hour), foreignCA)
	r := newRig(t, ServerConfig{}, Config{RecipientRoots: pool(ca.Cert)})
	if err := r.cl.Deliver(context.Background(), r.target, uuid1, memo(100)); err != nil {
		t.Fatal(err)
	}
	r.target = &Target{SystemID: "s", Addr: r.target.Addr, To: r.target.To, CertPEM: foreign.CertPEM()}
	wantErr(t, r.cl.Deliver(context.Background(), r.target, uuid1, memo(100)), transport.CodeCertInvalid, transport.Permanent)
}

func TestOwnCertificate(t *testing.T) {
	ids(t)
	// Expired at start-up: New refuses.
	old, _ := GenerateIdentity("old FOCES", time.Now().Add(-48*time.Hour), time.Now().Add(-time.Hour), ca)
	if _, err := New(Config{Identity: old, From: "a@b.test"}); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("expired own certificate: %v", err)
	}
	// Expires while running: each message fails permanently, coded.
	later := time.Now().Add(25 * time.Hour)
	clock := time.Now()
	var mu sync.Mutex
	r := newRig(t, ServerConfig{}, Config{Now: func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }})
	mu.Lock()
	clock = later
	mu.Unlock()
	wantErr(t, r.cl.Deliver(context.Background(), r.target, uuid1, memo(100)), transport.CodeCertExpired, transport.Permanent)

	// Key and certificate files that do not belong together.
	dir := t.TempDir()
	cf, kf := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	_ = os.WriteFile(cf, memoflowID.CertPEM(), 0o600)
	_ = os.WriteFile(kf, otherID.KeyPEM(), 0o600)
	var ce *ConfigError
	if _, err := New(Config{CertFile: cf, KeyFile: kf, From: "a@b.test"}); !errors.As(err, &ce) || ce.Field != "key_file" {
		t.Fatalf("mismatched key: %v", err)
	}
	_ = os.WriteFile(kf, memoflowID.KeyPEM(), 0o600)
	if _, err := New(Config{CertFile: cf, KeyFile: kf, From: "a@b.test"}); err != nil {
		t.Fatal(err)
	}
}

func TestTransportSecurity(t *testing.T) {
	t.Run("no STARTTLS", func(t *testing.T) {
		r := newRig(t, ServerConfig{NoTLS: true}, Config{TLSRoots: x509.NewCertPool()})
		wantErr(t, r.cl.Deliver(context.Background(), r.target, uuid1, memo(100)), transport.CodeStartTLSMissing, transport.Permanent)
		if r.srv.Mails() != 0 {
			t.Fatal("the client issued MAIL over plaintext")
		}
	})
	t.Run("server certificate not trusted", func(t *testing.T) {
		r := newRig(t, ServerConfig{}, Config{TLSRoots: pool(ca.Cert)})
		wantErr(t, r.cl.Deliver(context.Background(), r.target, uuid1, memo(100)), transport.CodeTLSVerify, transport.Permanent)
		if r.srv.Mails() != 0 {
			t.Fatal("MAIL sent over an unverified connection")
		}
	})
	t.Run("server down", func(t *testing.T) {
		r := newRig(t, ServerConfig{}, Config{DialTimeout: 2 * time.Second})
		_ = r.srv.Close()
		wantErr(t, r.cl.Deliver(context.Background(), r.target, uuid1, memo(100)), transport.CodeConnect, transport.Transient)
	})
}

func TestReplies(t *testing.T) {
	tests := []struct {
		stage   string
		code    int
		want    string
		outcome transport.Outcome
	}{
		{"mail", 421, transport.CodeSMTPTransient, transport.Transient},
		{"rcpt", 450, transport.CodeSMTPTransient, transport.Transient},
		{"rcpt", 550, transport.CodeSMTPRejected, transport.Permanent},
		{"data", 452, transport.CodeSMTPTransient, transport.Transient},
		{"data", 552, transport.CodeSMTPRejected, transport.Permanent},
		{"mail", 553, transport.CodeSMTPRejected, transport.Permanent},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%s %d", tc.stage, tc.code), func(t *testing.T) {
			var mu sync.Mutex
			fail := true
			r := newRig(t, ServerConfig{Reply: func(stage, _ string) *gosmtp.SMTPError {
				mu.Lock()
				defer mu.Unlock()
				if fail && stage == tc.stage {
					return &gosmtp.SMTPError{Code: tc.code, EnhancedCode: gosmtp.EnhancedCode{tc.code / 100, 0, 0}, Message: "injected"}
				}
				return nil
			}}, Config{})
			te := wantErr(t, r.cl.Deliver(context.Background(), r.target, uuid1, memo(100)), tc.want, tc.outcome)
			if te.Reply != tc.code {
				t.Fatalf("reply %d", te.Reply)
			}
			// The session survives a reply: the retry goes through on it.
			mu.Lock()
			fail = false
			mu.Unlock()
			if err := r.cl.Deliver(context.Background(), r.target, uuid1, memo(100)); err != nil {
				t.Fatal(err)
			}
			if r.srv.Count(uuid1) != 1 {
				t.Fatalf("count %d", r.srv.Count(uuid1))
			}
			if r.srv.Sessions() != 1 {
				t.Fatalf("%d connections: a session that got a reply is reused after RSET", r.srv.Sessions())
			}
		})
	}
}

func TestDroppedSessionIsRedialled(t *testing.T) {
	r := newRig(t, ServerConfig{}, Config{})
	if err := r.cl.Deliver(context.Background(), r.target, uuid1, memo(10)); err != nil {
		t.Fatal(err)
	}
	// The server restarts on the same address: the kept session is dead.
	addr := r.srv.Addr()
	_ = r.srv.Close()
	srv2, err := NewServer(ServerConfig{Addr: addr, Recipient: systemID, Trusted: pool(ca.Cert)})
	if err != nil {
		t.Skipf("could not rebind %s: %v", addr, err)
	}
	defer srv2.Close()
	r.cl.cfg.TLSRoots = srv2.TLSRoots()
	if err := r.cl.Deliver(context.Background(), r.target, uuid1, memo(10)); err != nil {
		t.Fatalf("a dead kept session must be replaced, not reported: %v", err)
	}
	if srv2.Count(uuid1) != 1 {
		t.Fatal("not delivered to the restarted server")
	}
}

func TestValidate(t *testing.T) {
	ids(t)
	good := func() *Target {
		return &Target{SystemID: "s", Addr: "mx.kommune.test:25", To: "post@kommune.test", CertPEM: systemID.CertPEM()}
	}
	tests := []struct {
		field string
		edit  func(*Target)
	}{
		{"", func(*Target) {}},
		{"system_id", func(x *Target) { x.SystemID = "" }},
		{"addr", func(x *Target) { x.Addr = "mx.kommune.test" }},
		{"to", func(x *Target) { x.To = "Post <post@kommune.test>" }},
		{"to", func(x *Target) { x.To = "post" }},
		{"certificate", func(x *Target) { x.CertPEM = nil }},
		{"certificate", func(x *Target) { x.CertPEM = []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n") }},
	}
	for _, tc := range tests {
		x := good()
		tc.edit(x)
		err := x.Validate()
		var ce *ConfigError
		switch {
		case tc.field == "" && err != nil:
			t.Fatalf("good target: %v", err)
		case tc.field != "" && (!errors.As(err, &ce) || ce.Field != tc.field):
			t.Fatalf("want a %s error, got %v", tc.field, err)
		}
	}
	for _, c := range []Config{{From: "a@b.test"}, {Identity: memoflowID, From: "nobody"}, {Identity: memoflowID, From: "a@b.test", MaxIdlePerServer: -1}} {
		if _, err := New(c); err == nil {
			t.Fatalf("%+v accepted", c)
		}
	}
	r := newRig(t, ServerConfig{}, Config{})
	for _, u := range []string{"", "x", "3f1c1f0e-8a4b-4c2d-9e5f-0123456789a\n"} {
		wantErr(t, r.cl.Deliver(context.Background(), r.target, u, memo(10)), transport.CodeBadMessage, transport.Permanent)
	}
}

// A server that stalls after DATA: the attempt ends at OpTimeout as a
// transient timeout, the stalled session is dropped, the next attempt
// gets a new one.
func TestStalledServer(t *testing.T) {
	var mu sync.Mutex
	stall := true
	r := newRig(t, ServerConfig{Reply: func(stage, _ string) *gosmtp.SMTPError {
		mu.Lock()
		s := stall
		mu.Unlock()
		if s && stage == "data" {
			time.Sleep(time.Second)
		}
		return nil
	}}, Config{OpTimeout: 200 * time.Millisecond})
	t0 := time.Now()
	wantErr(t, r.cl.Deliver(context.Background(), r.target, uuid1, memo(100)), transport.CodeTimeout, transport.Transient)
	if d := time.Since(t0); d > 900*time.Millisecond {
		t.Fatalf("took %v; OpTimeout is 200ms", d)
	}
	mu.Lock()
	stall = false
	mu.Unlock()
	if err := r.cl.Deliver(context.Background(), r.target, "3f1c1f0e-8a4b-4c2d-9e5f-0123456789ac", memo(100)); err != nil {
		t.Fatal(err)
	}
	// Cancelling the caller's context ends the attempt too.
	mu.Lock()
	stall = true
	mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if transport.Classify(r.cl.Deliver(ctx, r.target, "3f1c1f0e-8a4b-4c2d-9e5f-0123456789ad", memo(100))) != transport.Transient {
		t.Fatal("a cancelled attempt is transient")
	}
}

// A server that accepts TCP and never greets: the attempt ends at
// DialTimeout as a transient timeout.
func TestSilentServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	r := newRig(t, ServerConfig{}, Config{DialTimeout: 200 * time.Millisecond})
	r.target.Addr = ln.Addr().String()
	t0 := time.Now()
	wantErr(t, r.cl.Deliver(context.Background(), r.target, uuid1, memo(10)), transport.CodeTimeout, transport.Transient)
	if d := time.Since(t0); d > time.Second {
		t.Fatalf("took %v", d)
	}
}

// The MeMo grows about 2.6x as mail (three base64 layers: attachment,
// signed-data, enveloped-data). A server whose SIZE is smaller than the
// mail gets no DATA: a permanent 552, the server untouched.
func TestSizeLimit(t *testing.T) {
	r := newRig(t, ServerConfig{MaxMessageBytes: 200 << 10}, Config{})
	if err := r.cl.Deliver(context.Background(), r.target, uuid1, memo(60<<10)); err != nil {
		t.Fatal(err)
	}
	te := wantErr(t, r.cl.Deliver(context.Background(), r.target, "3f1c1f0e-8a4b-4c2d-9e5f-0123456789ac", memo(100<<10)),
		transport.CodeSMTPRejected, transport.Permanent)
	if te.Reply != 552 || r.srv.Mails() != 1 {
		t.Fatalf("reply %d, MAIL commands %d", te.Reply, r.srv.Mails())
	}
	cert, _ := r.target.certificate()
	raw, err := r.cl.compose(r.target, cert, uuid1, memo(1<<20), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if f := float64(len(raw)) / (1 << 20); f < 2.4 || f > 2.8 {
		t.Fatalf("1 MiB MeMo became x%.2f; DESIGN.md says about 2.6", f)
	}
}
