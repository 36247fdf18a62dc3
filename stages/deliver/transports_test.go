package deliver

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/crypto/ssh"

	"github.com/memoflow/memoflow/pipeline"
	"github.com/memoflow/memoflow/schemas/events"
	"github.com/memoflow/memoflow/schemas/memo"
	"github.com/memoflow/memoflow/schemas/records"
	"github.com/memoflow/memoflow/schemas/registry"
	"github.com/memoflow/memoflow/stages/transport"
	"github.com/memoflow/memoflow/stages/transport/sftp"
	"github.com/memoflow/memoflow/stages/transport/smtp"
)

// Keys and certificates are generated once per test binary: RSA keys are
// slow on a shared machine.
var ids struct {
	once      sync.Once
	sshSigner ssh.Signer
	memoflow  *smtp.Identity // signs
	system    *smtp.Identity // the SMTP system's certificate
	other     *smtp.Identity // a certificate the system does not hold
	expired   *smtp.Identity
}

func testIDs(t testing.TB) {
	t.Helper()
	ids.once.Do(func() {
		_, k, _ := ed25519.GenerateKey(rand.Reader)
		ids.sshSigner, _ = ssh.NewSignerFromKey(k)
		now := time.Now()
		ids.memoflow, _ = smtp.GenerateIdentity("memoflow", now.Add(-time.Hour), now.Add(48*time.Hour), nil)
		ids.system, _ = smtp.GenerateIdentity("system", now.Add(-time.Hour), now.Add(48*time.Hour), nil)
		ids.other, _ = smtp.GenerateIdentity("other", now.Add(-time.Hour), now.Add(48*time.Hour), nil)
		ids.expired, _ = smtp.GenerateIdentity("expired", now.Add(-48*time.Hour), now.Add(-time.Hour), nil)
	})
	if ids.system == nil || ids.expired == nil || ids.sshSigner == nil {
		t.Fatal("generating test identities failed")
	}
}

// transportRig: an in-process SFTP server and SMTP server, and clients
// that reach them.
type transportRig struct {
	sftpSrv *sftp.Server
	smtpSrv *smtp.Server
	sftpCl  *sftp.Client
	smtpCl  *smtp.Client
	smtpCfg smtp.ServerConfig
	cfg     Config // the deliverers' configuration (testConfig)
}

func newTransportRig(t testing.TB, smtpReply func(stage, uuid string) *gosmtp.SMTPError) *transportRig {
	t.Helper()
	testIDs(t)
	r := &transportRig{cfg: testConfig()}
	var err error
	if r.sftpSrv, err = sftp.NewServer(sftp.ServerConfig{Root: t.TempDir(), AuthorizedKeys: []ssh.PublicKey{ids.sshSigner.PublicKey()}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.sftpSrv.Close() })
	trusted := x509.NewCertPool()
	trusted.AddCert(ids.memoflow.Cert)
	r.smtpCfg = smtp.ServerConfig{Recipient: ids.system, Trusted: trusted, Reply: smtpReply}
	if r.smtpSrv, err = smtp.NewServer(r.smtpCfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.smtpSrv.Close() })
	if r.sftpCl, err = sftp.New(sftp.Config{Signer: ids.sshSigner, DialTimeout: time.Second, OpTimeout: 2 * time.Second}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.sftpCl.Close() })
	if r.smtpCl, err = smtp.New(smtp.Config{Identity: ids.memoflow, From: "digitalpost@memoflow.example", TLSRoots: r.smtpSrv.TLSRoots(),
		DialTimeout: time.Second, OpTimeout: 2 * time.Second}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.smtpCl.Close() })
	return r
}

func (r *transportRig) sftpSystem(id string) System {
	return System{ID: id, Org: "12345678", Protocol: ProtoSFTP, Endpoint: "sftp://" + r.sftpSrv.Addr(), SFTPUser: "memoflow",
		SSHHostKey: r.sftpSrv.HostKey(), Folder: "/inbox", ReceiptFolder: "/receipts", Active: true, WantVersion: 12, Contact: "it@" + id + ".example"}
}

func (r *transportRig) smtpSystem(id string) System {
	return System{ID: id, Org: "12345678", Protocol: ProtoSMTP, Endpoint: "smtp://" + r.smtpSrv.Addr(), SMTPAddress: "post@" + id + ".example",
		Certificate: string(ids.system.CertPEM()), Active: true, WantVersion: 12, Contact: "it@" + id + ".example"}
}

func (r *transportRig) deliverer(t testing.TB, systems Systems, opts ...Option) *Deliverer {
	t.Helper()
	d, err := NewDeliverer(r.cfg, systems, testPseudo(t),
		append([]Option{WithLogger(quiet()), WithSFTPClient(r.sftpCl), WithSMTPClient(r.smtpCl)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// attempt delivers one message to dest and returns its outputs by topic.
func attempt(t testing.TB, d *Deliverer, env *records.Envelope) map[string][]*kgo.Record {
	t.Helper()
	it := &item{env: *env}
	d.run(context.Background(), []*item{it})
	if it.err != nil {
		t.Fatal(it.err)
	}
	return byTopic(it.out)
}

func retryRecords(out map[string][]*kgo.Record) int {
	n := 0
	for topic, rs := range out {
		if strings.HasPrefix(topic, RetryTopicPrefix) {
			n += len(rs)
		}
	}
	return n
}

func oneReceipt(t testing.TB, out map[string][]*kgo.Record) records.Receipt {
	t.Helper()
	if len(out[pipeline.TopicReceipts]) != 1 {
		t.Fatalf("want one receipt, got %d", len(out[pipeline.TopicReceipts]))
	}
	var rc records.Receipt
	if err := records.DecodeReceipt(out[pipeline.TopicReceipts][0].Value, &rc); err != nil {
		t.Fatal(err)
	}
	return rc
}

func failCode(t testing.TB, out map[string][]*kgo.Record) string {
	t.Helper()
	for _, r := range out[pipeline.TopicEvents] {
		evs, err := events.Decode(r.Value, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range evs {
			if e.Tag == events.MemoSendSentToRecipientSystemFailed {
				return e.ErrorCode
			}
		}
	}
	return ""
}

// memo12 is a real MeMo 1.2: the systems below take 1.1, so delivery
// down-converts it, and the bytes each transport carries must be exactly
// what the REST push would POST.
func memo12(t testing.TB, i int, dest string) *records.Envelope {
	t.Helper()
	g := memo.NewGenerator(memo.GenConfig{Seed: uint64(i + 1), Now: t0, V12Share: 1})
	b, _ := g.Next(nil)
	env := testEnv(i, dest)
	env.Body, env.Size, env.MemoVersion = b, uint64(len(b)), 12
	return env
}

// TestTransportsDelivered: one message over SFTP and one over SMTP, both
// down-converted to 1.1 like a REST push; the success path (events,
// COMPLETED receipt) and, for SFTP with a receipt folder, the outbox
// marker the receipt path needs.
func TestTransportsDelivered(t *testing.T) {
	r := newTransportRig(t, nil)
	sf, sm := r.sftpSystem("sys-sftp"), r.smtpSystem("sys-smtp")
	sf.WantVersion, sm.WantVersion = 11, 11
	d := r.deliverer(t, NewStaticSystems(sf, sm))
	for i, sys := range []System{sf, sm} {
		env := memo12(t, i, sys.ID)
		want, aerr := convert(env.Body, 12, 11)
		if aerr != nil {
			t.Fatal(aerr)
		}
		if bytes.Equal(want, env.Body) {
			t.Fatal("conversion changed nothing: the test would not show it")
		}
		out := attempt(t, d, env)
		if rc := oneReceipt(t, out); rc.ReceiptStatus != records.StatusCompleted || rc.SenderSystem != env.SenderSystem {
			t.Fatalf("%s: receipt %+v", sys.Protocol, rc)
		}
		tags := eventTags(t, out[pipeline.TopicEvents])
		if !slices.Equal(tags, []events.Tag{events.MemoSendSentToRecipientSystem, events.BusinessReceiptCreated}) {
			t.Fatalf("%s: events %v", sys.Protocol, tags)
		}
		var got []byte
		switch sys.Protocol {
		case ProtoSFTP:
			got, _ = os.ReadFile(r.sftpSrv.Path("/inbox/" + env.MessageUUID + ".xml"))
			if len(out[TopicOutbox]) != 1 {
				t.Fatalf("SFTP with a receipt folder: want the outbox marker, got %d records", len(out[TopicOutbox]))
			}
			var e OutboxEntry
			if err := decodeOutbox(out[TopicOutbox][0].Value, &e); err != nil || !e.Deleted() || len(e.Env.Body) != 0 ||
				string(out[TopicOutbox][0].Key) != sys.ID+"/"+env.MessageUUID {
				t.Fatalf("marker %+v %v", e, err)
			}
		case ProtoSMTP:
			got = r.smtpSrv.Memo(env.MessageUUID)
			if len(out[TopicOutbox]) != 0 {
				t.Fatal("SMTP: no outbox record expected")
			}
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%s: the system got %d bytes, not the %d bytes of the 1.1 conversion", sys.Protocol, len(got), len(want))
		}
	}
}

// TestTransportsFailures: every fault class through the Deliverer.
// Transient faults go to the retry topic (the REST schedule); permanent
// ones fail at once with a FAILED receipt carrying the code, and
// configuration faults raise the alert metric.
func TestTransportsFailures(t *testing.T) {
	var replyMu sync.Mutex
	var reply *gosmtp.SMTPError
	replyStage := ""
	r := newTransportRig(t, func(stage, _ string) *gosmtp.SMTPError {
		replyMu.Lock()
		defer replyMu.Unlock()
		if stage == replyStage {
			return reply
		}
		return nil
	})
	setReply := func(stage string, e *gosmtp.SMTPError) {
		replyMu.Lock()
		replyStage, reply = stage, e
		replyMu.Unlock()
	}
	_, otherKey, _ := ed25519.GenerateKey(rand.Reader)
	otherSigner, _ := ssh.NewSignerFromKey(otherKey)
	otherHostKey := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(otherSigner.PublicKey())))

	// A second pair of servers that are stopped: "server down".
	down := newTransportRig(t, nil)
	downSFTP, downSMTP := down.sftpSystem("down-sftp"), down.smtpSystem("down-smtp")
	_ = down.sftpSrv.Close()
	_ = down.smtpSrv.Close()

	cases := []struct {
		name      string
		sys       func() System
		fault     func()
		code      string
		permanent bool
		alert     bool
	}{
		{"sftp server down", func() System { return downSFTP }, nil, transport.CodeConnect, false, false},
		{"smtp server down", func() System { return downSMTP }, nil, transport.CodeConnect, false, false},
		{"sftp disk full", func() System { return r.sftpSystem("s-full") }, func() {
			r.sftpSrv.SetFault(func(op, _ string) error {
				if op == "write" {
					return syscall.ENOSPC
				}
				return nil
			})
		}, transport.CodeStorageFull, false, false},
		{"smtp 4xx", func() System { return r.smtpSystem("m-4xx") }, func() {
			setReply("rcpt", &gosmtp.SMTPError{Code: 451, EnhancedCode: gosmtp.EnhancedCode{4, 3, 0}, Message: "try later"})
		}, transport.CodeSMTPTransient, false, false},
		{"sftp wrong host key", func() System { s := r.sftpSystem("s-hostkey"); s.SSHHostKey = otherHostKey; return s }, nil,
			transport.CodeHostKeyMismatch, true, true},
		{"sftp permission denied", func() System { return r.sftpSystem("s-perm") }, func() {
			r.sftpSrv.SetFault(func(op, _ string) error {
				if op == "create" {
					return os.ErrPermission
				}
				return nil
			})
		}, transport.CodePermissionDenied, true, true},
		{"smtp expired certificate", func() System {
			s := r.smtpSystem("m-expired")
			s.Certificate = string(ids.expired.CertPEM())
			return s
		}, nil, transport.CodeCertExpired, true, true},
		{"smtp wrong certificate (the system cannot decrypt: 554)", func() System {
			s := r.smtpSystem("m-wrongcert")
			s.Certificate = string(ids.other.CertPEM())
			return s
		}, nil, transport.CodeSMTPRejected, true, false},
		{"smtp 5xx", func() System { return r.smtpSystem("m-5xx") }, func() {
			setReply("rcpt", &gosmtp.SMTPError{Code: 550, EnhancedCode: gosmtp.EnhancedCode{5, 1, 1}, Message: "no such mailbox"})
		}, transport.CodeSMTPRejected, true, false},
		{"sftp registry entry unusable", func() System { s := r.sftpSystem("s-bad"); s.Folder = "inbox"; return s }, nil,
			CodeTransportConfig, true, true},
		{"smtp certificate not PEM", func() System { s := r.smtpSystem("m-bad"); s.Certificate = "secret:gone"; return s }, nil,
			CodeTransportConfig, true, true},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r.sftpSrv.SetFault(nil)
			setReply("", nil)
			if tc.fault != nil {
				tc.fault()
			}
			sys := tc.sys()
			reg := prometheus.NewRegistry()
			d := r.deliverer(t, NewStaticSystems(sys), WithRegisterer(reg))
			out := attempt(t, d, testEnv(100+i, sys.ID))
			if got := failCode(t, out); got != tc.code {
				t.Fatalf("code %q, want %q", got, tc.code)
			}
			if tc.permanent {
				if retryRecords(out) != 0 {
					t.Fatal("a permanent failure was rescheduled")
				}
				if rc := oneReceipt(t, out); rc.ReceiptStatus != records.StatusFailed || rc.ErrorCode != tc.code {
					t.Fatalf("receipt %+v", rc)
				}
				if !slices.Contains(eventTags(t, out[pipeline.TopicEvents]), events.MemoSendFailed) {
					t.Fatal("no MEMO_SEND_FAILED")
				}
			} else {
				if retryRecords(out) != 1 || len(out[pipeline.TopicReceipts]) != 0 {
					t.Fatalf("transient: %d retry records, %d receipts", retryRecords(out), len(out[pipeline.TopicReceipts]))
				}
			}
			alerts := testutil.ToFloat64(d.metrics.configErrors.WithLabelValues(sys.ID, sys.Protocol.String(), tc.code))
			if (alerts == 1) != tc.alert {
				t.Fatalf("alert metric %v, want alert=%v", alerts, tc.alert)
			}
		})
	}
}

// TestTransportsNotConfigured: without --sftp-key-file or
// --smtp-cert-file a message to such a system fails permanently with
// DELIVER_TRANSPORT_CONFIG, and nothing crashes.
func TestTransportsNotConfigured(t *testing.T) {
	r := newTransportRig(t, nil)
	sf, sm := r.sftpSystem("sys-sftp"), r.smtpSystem("sys-smtp")
	d, err := NewDeliverer(testConfig(), NewStaticSystems(sf, sm), testPseudo(t), WithLogger(quiet()))
	if err != nil {
		t.Fatal(err)
	}
	for i, sys := range []System{sf, sm} {
		out := attempt(t, d, testEnv(i, sys.ID))
		if rc := oneReceipt(t, out); rc.ReceiptStatus != records.StatusFailed || rc.ErrorCode != CodeTransportConfig ||
			!strings.Contains(rc.ErrorMessage, map[Protocol]string{ProtoSFTP: "--sftp-key-file", ProtoSMTP: "--smtp-cert-file"}[sys.Protocol]) {
			t.Fatalf("%s: receipt %+v", sys.Protocol, rc)
		}
	}
	if r.sftpSrv.Accepted() != 0 || r.smtpSrv.Sessions() != 0 {
		t.Fatal("a server was called without memoflow's key or certificate")
	}
}

// TestTransportsPermanentKeepsCircuitClosed: permanent failures (a wrong
// host key) do not open the system's circuit: after the entry is fixed
// the next message goes out at once, not after a cooldown.
func TestTransportsPermanentKeepsCircuitClosed(t *testing.T) {
	r := newTransportRig(t, nil)
	bad := r.sftpSystem("sys")
	bad.SSHHostKey = strings.TrimSpace(string(ssh.MarshalAuthorizedKey(ids.sshSigner.PublicKey())))
	systems := NewStaticSystems(bad)
	d := r.deliverer(t, systems)
	for i := range 2 * testConfig().BreakerFailures {
		if code := failCode(t, attempt(t, d, testEnv(i, "sys"))); code != transport.CodeHostKeyMismatch {
			t.Fatalf("attempt %d: %s", i, code)
		}
	}
	systems.Put(r.sftpSystem("sys")) // the registry is fixed
	out := attempt(t, d, testEnv(99, "sys"))
	if rc := oneReceipt(t, out); rc.ReceiptStatus != records.StatusCompleted {
		t.Fatalf("after the fix: %+v (%s)", rc, failCode(t, out))
	}
}

// TestStandardSystemSelection: an authority's system that selected a
// supplier's standard system is delivered by the template (SFTP and SMTP
// alike) under the authority system's own id and contact, through
// RegistrySystems over a registry view.
func TestStandardSystemSelection(t *testing.T) {
	r := newTransportRig(t, nil)
	v := registry.NewMemView()
	put := func(e registry.Entity) {
		c := registry.NewChange(e, "test", time.Now())
		if err := registry.NewWriter(nil, v).Check(c); err != nil {
			t.Fatalf("%s: %v", e.Key(), err)
		}
		v.Apply(c)
	}
	put(&registry.Org{CVR: "11111111", Name: "Leverandør A/S", Type: registry.OrgCompany})
	put(&registry.Org{CVR: "22222222", Name: "Kommune", Type: registry.OrgAuthority, Setup: 1})
	put(&registry.System{ID: "std-sftp", Org: "11111111", Name: "ESDH standard (SFTP)", SysKind: registry.SystemStandard,
		Protocol: registry.SFTP, Endpoint: "sftp://" + r.sftpSrv.Addr(), SFTPUser: "memoflow", SSHHostKey: r.sftpSrv.HostKey(),
		Folder: "/inbox", ReceiptFolder: "/receipts", MemoVersion: 12})
	put(&registry.System{ID: "std-smtp", Org: "11111111", Name: "ESDH standard (SMTP)", SysKind: registry.SystemStandard,
		Protocol: registry.SMTP, Endpoint: "smtp://" + r.smtpSrv.Addr(), SMTPAddress: "post@esdh.example",
		Certificate: string(ids.system.CertPEM()), MemoVersion: 12})
	put(&registry.System{ID: "kommune-sftp", Org: "22222222", Name: "Sager", SysKind: registry.SystemRecipient, Template: "std-sftp",
		Role: registry.RoleRegular, Contact: registry.Contact{Name: "IT", Email: "it@kommune.example"}})
	put(&registry.System{ID: "kommune-smtp", Org: "22222222", Name: "Post", SysKind: registry.SystemRecipient, Template: "std-smtp",
		Role: registry.RoleRegular, Contact: registry.Contact{Name: "IT", Email: "it@kommune.example"}})
	systems := &RegistrySystems{View: v}
	d := r.deliverer(t, systems)
	for i, id := range []string{"kommune-sftp", "kommune-smtp"} {
		env := testEnv(i, id)
		out := attempt(t, d, env)
		if rc := oneReceipt(t, out); rc.ReceiptStatus != records.StatusCompleted {
			t.Fatalf("%s: %+v (%s)", id, rc, failCode(t, out))
		}
		evs, _ := events.Decode(out[pipeline.TopicEvents][0].Value, nil)
		if evs[0].RecipientSystem != id {
			t.Fatalf("%s: event names system %q", id, evs[0].RecipientSystem)
		}
		switch id {
		case "kommune-sftp":
			if r.sftpSrv.Count(env.MessageUUID) != 1 || string(out[TopicOutbox][0].Key) != id+"/"+env.MessageUUID {
				t.Fatal("SFTP selection: not on the template's server, or the marker not under the selecting system")
			}
		case "kommune-smtp":
			if r.smtpSrv.Count(env.MessageUUID) != 1 {
				t.Fatal("SMTP selection: not delivered to the template's server")
			}
		}
	}
	folders := systems.ReceiptFolders()
	if len(folders) != 1 || folders[0].System.ID != "std-sftp" || !slices.Equal(folders[0].Owners, []string{"kommune-sftp"}) {
		t.Fatalf("receipt folders %+v", folders)
	}
	if s, ok := systems.System("kommune-sftp"); !ok || s.Contact != "it@kommune.example" || s.Template != "std-sftp" || s.Protocol != ProtoSFTP {
		t.Fatalf("effective system %+v", s)
	}
}

// writeReceiptFile writes a receipt file as a system would (dot name, then
// rename).
func writeReceiptFile(t testing.TB, srv *sftp.Server, name, body string) {
	t.Helper()
	dir := srv.Path("/receipts")
	tmp := filepath.Join(dir, "."+name)
	if err := os.WriteFile(tmp, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		t.Fatal(err)
	}
}

// TestTransportsThroughStage: the real stage on kfake (transactional sink
// over memo.routed, retry consumer over the delay topics). SMTP messages
// arrive at once; the SFTP server's disk is full, so its messages go to
// memo.retry.1m and arrive when the clock reaches their retry, after the
// disk is freed. Every message ends with one COMPLETED receipt.
func TestTransportsThroughStage(t *testing.T) {
	cfg := testConfig()
	cfg.Schedule = []time.Duration{time.Minute, 2 * time.Minute}
	k := newRig(t, cfg)
	r := newTransportRig(t, nil)
	r.cfg = cfg
	var full atomic.Bool
	full.Store(true)
	r.sftpSrv.SetFault(func(op, _ string) error {
		if op == "write" && full.Load() {
			return syscall.ENOSPC
		}
		return nil
	})
	clk := newClock(t0)
	d := r.deliverer(t, NewStaticSystems(r.sftpSystem("f"), r.smtpSystem("m")), WithClock(clk.now))
	var recs []*kgo.Record
	for i := range 40 {
		recs = append(recs, envRecord(pipeline.TopicRouted, testEnv(i, []string{"f", "m"}[i%2])))
	}
	if err := k.client(t).ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	stop := k.start(t, d)
	defer stop()
	waitFor(t, "the SMTP messages", 20*time.Second, func() bool { return r.smtpSrv.Total() == 20 })
	if n := r.sftpSrv.Total(); n != 0 {
		t.Fatalf("%d SFTP messages arrived on a full disk", n)
	}
	// Every SFTP message must be rescheduled before the clock moves: a
	// failure recorded after the move would be due a minute after it, and
	// the clock does not move again (the test was flaky under load).
	retries := k.client(t, kgo.ConsumeTopics(RetryTopicPrefix+"1m"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	rescheduled := 0
	waitFor(t, "the SFTP messages on the retry topic", 20*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		rescheduled += retries.PollFetches(ctx).NumRecords()
		return rescheduled >= 20
	})
	full.Store(false)
	clk.add(time.Minute + time.Second)
	waitFor(t, "the SFTP messages after their retry", 20*time.Second, func() bool { return r.sftpSrv.Total() == 20 })
	cons := k.client(t, kgo.ConsumeTopics(pipeline.TopicReceipts), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	done := map[string]bool{}
	waitFor(t, "40 COMPLETED receipts", 20*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		cons.PollFetches(ctx).EachRecord(func(rec *kgo.Record) {
			var rc records.Receipt
			if records.DecodeReceipt(rec.Value, &rc) == nil && rc.ReceiptStatus == records.StatusCompleted {
				done[rc.MessageUUID] = true
			}
		})
		return len(done) == 40
	})
	for i := range 40 {
		u := testEnv(i, "").MessageUUID
		if n := r.sftpSrv.Count(u) + r.smtpSrv.Count(u); n != 1 {
			t.Fatalf("%s arrived %d times", u, n)
		}
	}
}

// TestSMTPBatchRepeat: a batch run again in the same process (its
// transaction aborted) does not mail its messages a second time, and
// still emits their success.
func TestSMTPBatchRepeat(t *testing.T) {
	r := newTransportRig(t, nil)
	d := r.deliverer(t, NewStaticSystems(r.smtpSystem("m")))
	env := testEnv(1, "m")
	for range 2 {
		if rc := oneReceipt(t, attempt(t, d, env)); rc.ReceiptStatus != records.StatusCompleted {
			t.Fatalf("receipt %+v", rc)
		}
	}
	if n := r.smtpSrv.Count(env.MessageUUID); n != 1 {
		t.Fatalf("mailed %d times", n)
	}
}

// TestRegistrySystemsReferences: an SMTP system's certificate given as a
// file: reference is resolved for delivery, and a selection whose
// standard system is gone (a replayed old log; the Writer refuses it) is
// not found, so its messages are retried as DELIVER_UNKNOWN_SYSTEM.
func TestRegistrySystemsReferences(t *testing.T) {
	r := newTransportRig(t, nil)
	pemFile := filepath.Join(t.TempDir(), "system.pem")
	if err := os.WriteFile(pemFile, ids.system.CertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	v := registry.NewMemView()
	apply := func(e registry.Entity) { v.Apply(registry.NewChange(e, "test", time.Now())) }
	apply(&registry.Org{CVR: "22222222", Name: "Kommune", Type: registry.OrgAuthority, Setup: 1})
	apply(&registry.System{ID: "ref-smtp", Org: "22222222", Name: "x", SysKind: registry.SystemRecipient, Role: registry.RoleRegular,
		Protocol: registry.SMTP, Endpoint: "smtp://" + r.smtpSrv.Addr(), SMTPAddress: "post@x.example", Certificate: "file:" + pemFile, MemoVersion: 12})
	apply(&registry.System{ID: "orphan", Org: "22222222", Name: "y", SysKind: registry.SystemRecipient, Role: registry.RoleRegular, Template: "gone"})
	systems := &RegistrySystems{View: v}
	if s, ok := systems.System("ref-smtp"); !ok || s.Certificate != strings.TrimSpace(string(ids.system.CertPEM())) {
		t.Fatalf("certificate reference not resolved: %+v", s)
	}
	d := r.deliverer(t, systems)
	if rc := oneReceipt(t, attempt(t, d, testEnv(1, "ref-smtp"))); rc.ReceiptStatus != records.StatusCompleted {
		t.Fatalf("ref-smtp: %+v", rc)
	}
	out := attempt(t, d, testEnv(2, "orphan"))
	if code := failCode(t, out); code != CodeUnknownSystem || retryRecords(out) != 1 {
		t.Fatalf("orphan selection: %s, %d retries", code, retryRecords(out))
	}
}
