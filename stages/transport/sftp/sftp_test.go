package sftp

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/memoflow/memoflow/schemas/records"
	"github.com/memoflow/memoflow/stages/transport"
)

func edSigner(t testing.TB) ssh.Signer {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

type rig struct {
	srv    *Server
	cl     *Client
	target *Target
}

func newRig(t testing.TB, cfg Config) *rig {
	t.Helper()
	key := edSigner(t)
	srv, err := NewServer(ServerConfig{Root: t.TempDir(), AuthorizedKeys: []ssh.PublicKey{key.PublicKey()}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	cfg.Signer = key
	cl, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cl.Close() })
	return &rig{srv: srv, cl: cl, target: srv.Target("sys-1")}
}

const uuid1 = "3f1c1f0e-8a4b-4c2d-9e5f-0123456789ab"

func memo(n int) []byte {
	b := bytes.Repeat([]byte("<memo:Message>0123456789</memo:Message>\n"), n/40+1)
	return b[:n]
}

func wantErr(t *testing.T, err error, code string, outcome transport.Outcome) {
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
}

func inboxNames(t testing.TB, srv *Server) []string {
	es, err := os.ReadDir(srv.Path("/inbox"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}

func TestDeliverWritesFileOnceAndIsIdempotent(t *testing.T) {
	r := newRig(t, Config{})
	ctx := context.Background()
	body := memo(300 << 10) // several SFTP write packets
	if err := r.cl.Deliver(ctx, r.target, uuid1, body); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(r.srv.Path("/inbox/" + uuid1 + ".xml"))
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("file content differs (%d bytes, err %v)", len(got), err)
	}
	if names := inboxNames(t, r.srv); len(names) != 1 {
		t.Fatalf("inbox holds %v, want only the message (no temporary files left)", names)
	}
	// The same message again (a redelivery after a lost ack): success,
	// no second rename.
	if err := r.cl.Deliver(ctx, r.target, uuid1, body); err != nil {
		t.Fatalf("repeat of the same bytes: %v", err)
	}
	if n := r.srv.Count(uuid1); n != 1 {
		t.Fatalf("renamed into view %d times, want 1", n)
	}
	// Other bytes under the same messageUUID: a coded conflict, the
	// file untouched.
	err = r.cl.Deliver(ctx, r.target, uuid1, memo(1000))
	wantErr(t, err, transport.CodeFileConflict, transport.Permanent)
	got, _ = os.ReadFile(r.srv.Path("/inbox/" + uuid1 + ".xml"))
	if !bytes.Equal(got, body) {
		t.Fatal("conflicting delivery changed the file")
	}
	// Same size, other bytes: still a conflict (content compared).
	other := bytes.Clone(body)
	other[len(other)/2] ^= 1
	wantErr(t, r.cl.Deliver(ctx, r.target, uuid1, other), transport.CodeFileConflict, transport.Permanent)
	if r.srv.Accepted() != 1 {
		t.Fatalf("%d connections for 4 sequential deliveries; the pool should reuse one", r.srv.Accepted())
	}
}

// A reader listing the inbox while a file is written sees no <uuid>.xml
// until it is complete, and a write that fails half-way leaves nothing.
func TestRenameAtomicity(t *testing.T) {
	r := newRig(t, Config{})
	final := r.srv.Path("/inbox/" + uuid1 + ".xml")
	var mu sync.Mutex
	writes, visible := 0, 0
	r.srv.SetFault(func(op, p string) error {
		if op == "write" {
			mu.Lock()
			defer mu.Unlock()
			writes++
			for _, n := range inboxNames(t, r.srv) {
				if !strings.HasPrefix(n, ".") {
					visible++
				}
			}
			if _, err := os.Stat(final); err == nil {
				visible++
			}
		}
		return nil
	})
	body := memo(1 << 20)
	if err := r.cl.Deliver(context.Background(), r.target, uuid1, body); err != nil {
		t.Fatal(err)
	}
	if writes < 4 || visible != 0 {
		t.Fatalf("%d writes, visible file seen %d times during them; want several writes and 0", writes, visible)
	}
	if got, _ := os.ReadFile(final); !bytes.Equal(got, body) {
		t.Fatal("final file differs")
	}

	// Fail the third write of another message: nothing becomes visible
	// and the temporary file is cleaned up.
	const uuid2 = "3f1c1f0e-8a4b-4c2d-9e5f-0123456789ac"
	var n atomic.Int32
	r.srv.SetFault(func(op, p string) error {
		if op == "write" {
			if n.Add(1) == 3 {
				return syscall.ENOSPC
			}
		}
		return nil
	})
	err := r.cl.Deliver(context.Background(), r.target, uuid2, body)
	wantErr(t, err, transport.CodeStorageFull, transport.Transient)
	r.srv.SetFault(nil)
	if names := inboxNames(t, r.srv); len(names) != 1 || names[0] != uuid1+".xml" {
		t.Fatalf("after a failed write the inbox holds %v", names)
	}
	// The retry goes through.
	if err := r.cl.Deliver(context.Background(), r.target, uuid2, body); err != nil {
		t.Fatal(err)
	}
}

func TestFaults(t *testing.T) {
	tests := []struct {
		name    string
		fault   Fault
		folder  string
		code    string
		outcome transport.Outcome
	}{
		{"disk full on write", onOp("write", syscall.ENOSPC), "", transport.CodeStorageFull, transport.Transient},
		{"quota on close", onOp("close", syscall.EDQUOT), "", transport.CodeStorageFull, transport.Transient},
		{"file too large", onOp("write", syscall.EFBIG), "", transport.CodeFileTooLarge, transport.Permanent},
		{"permission denied on create", onOp("create", syscall.EACCES), "", transport.CodePermissionDenied, transport.Permanent},
		{"permission denied as text", onOp("create", os.ErrPermission), "", transport.CodePermissionDenied, transport.Permanent},
		{"read-only file system", onOp("rename", syscall.EROFS), "", transport.CodePermissionDenied, transport.Permanent},
		{"unexplained failure", onOp("rename", errors.New("backend hiccup")), "", transport.CodeRemoteFailure, transport.Transient},
		{"folder missing", nil, "/nope", transport.CodeFolderMissing, transport.Permanent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, Config{})
			r.srv.SetFault(tc.fault)
			if tc.folder != "" {
				r.target.Folder = tc.folder
			}
			err := r.cl.Deliver(context.Background(), r.target, uuid1, memo(100<<10))
			wantErr(t, err, tc.code, tc.outcome)
			if _, serr := os.Stat(r.srv.Path("/inbox/" + uuid1 + ".xml")); serr == nil {
				t.Fatal("a failed delivery left the message in view")
			}
			// A file-system failure keeps the connection: the next
			// delivery reuses it.
			r.srv.SetFault(nil)
			r.target.Folder = "/inbox"
			if err := r.cl.Deliver(context.Background(), r.target, uuid1, memo(100<<10)); err != nil {
				t.Fatal(err)
			}
			if r.srv.Accepted() != 1 {
				t.Fatalf("%d connections; a server-side file error must not drop the connection", r.srv.Accepted())
			}
		})
	}
}

func onOp(op string, err error) Fault {
	return func(o, _ string) error {
		if o == op {
			return err
		}
		return nil
	}
}

func TestWrongHostKey(t *testing.T) {
	r := newRig(t, Config{})
	other := edSigner(t)
	r.target.HostKey = string(ssh.MarshalAuthorizedKey(other.PublicKey()))
	err := r.cl.Deliver(context.Background(), r.target, uuid1, memo(10))
	wantErr(t, err, transport.CodeHostKeyMismatch, transport.Permanent)
	if !strings.Contains(err.Error(), ssh.FingerprintSHA256(other.PublicKey())) {
		t.Fatalf("the error should name the pinned fingerprint: %v", err)
	}
	// A pin of another key type (RSA) on an ed25519-only server is a
	// mismatch too, not a transient handshake error.
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	rs, _ := ssh.NewSignerFromKey(rk)
	r.target.HostKey = string(ssh.MarshalAuthorizedKey(rs.PublicKey()))
	wantErr(t, r.cl.Deliver(context.Background(), r.target, uuid1, memo(10)), transport.CodeHostKeyMismatch, transport.Permanent)
	if _, err := os.Stat(r.srv.Path("/inbox/" + uuid1 + ".xml")); err == nil {
		t.Fatal("delivered despite a host key mismatch")
	}
	// During a host key change the registry pins old and new: either
	// passes, a third key still does not.
	r.target.HostKey = string(ssh.MarshalAuthorizedKey(rs.PublicKey())) + r.srv.HostKey() + "\n"
	if err := r.cl.Deliver(context.Background(), r.target, uuid1, memo(10)); err != nil {
		t.Fatalf("two pins, one of them right: %v", err)
	}
	r.target.HostKey = string(ssh.MarshalAuthorizedKey(rs.PublicKey())) + string(ssh.MarshalAuthorizedKey(other.PublicKey()))
	wantErr(t, r.cl.Deliver(context.Background(), r.target, "3f1c1f0e-8a4b-4c2d-9e5f-0123456789ac", memo(10)),
		transport.CodeHostKeyMismatch, transport.Permanent)
}

func TestWrongClientKey(t *testing.T) {
	r := newRig(t, Config{})
	cl, err := New(Config{Signer: edSigner(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	wantErr(t, cl.Deliver(context.Background(), r.target, uuid1, memo(10)), transport.CodeAuthRejected, transport.Permanent)
	// Right key, wrong user.
	r.target.User = "someone"
	wantErr(t, r.cl.Deliver(context.Background(), r.target, uuid1, memo(10)), transport.CodeAuthRejected, transport.Permanent)
}

func TestRSAKeys(t *testing.T) {
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	client, _ := ssh.NewSignerFromKey(rk)
	hk, _ := rsa.GenerateKey(rand.Reader, 2048)
	host, _ := ssh.NewSignerFromKey(hk)
	srv, err := NewServer(ServerConfig{Root: t.TempDir(), AuthorizedKeys: []ssh.PublicKey{client.PublicKey()}, HostKey: host})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	// Through a key file, as production loads it.
	der, _ := ssh.MarshalPrivateKey(rk, "")
	kf := filepath.Join(t.TempDir(), "id_rsa")
	if err := os.WriteFile(kf, pemEncode(der.Type, der.Bytes), 0o600); err != nil {
		t.Fatal(err)
	}
	cl, err := New(Config{KeyFile: kf})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.Deliver(context.Background(), srv.Target("sys-rsa"), uuid1, memo(1000)); err != nil {
		t.Fatal(err)
	}
}

func TestServerDown(t *testing.T) {
	r := newRig(t, Config{DialTimeout: 2 * time.Second})
	addr := r.srv.Addr()
	_ = r.srv.Close()
	r.target.Addr = addr
	wantErr(t, r.cl.Deliver(context.Background(), r.target, uuid1, memo(10)), transport.CodeConnect, transport.Transient)
}

func TestDroppedConnectionIsRedialled(t *testing.T) {
	r := newRig(t, Config{})
	ctx := context.Background()
	if err := r.cl.Deliver(ctx, r.target, uuid1, memo(10)); err != nil {
		t.Fatal(err)
	}
	r.srv.DropConnections()
	time.Sleep(20 * time.Millisecond)
	if err := r.cl.Deliver(ctx, r.target, "3f1c1f0e-8a4b-4c2d-9e5f-0123456789ad", memo(10)); err != nil {
		t.Fatalf("a pooled connection the server dropped must be replaced, not reported: %v", err)
	}
	if r.srv.Accepted() != 2 {
		t.Fatalf("accepted %d, want 2", r.srv.Accepted())
	}
}

func TestOpTimeout(t *testing.T) {
	r := newRig(t, Config{OpTimeout: 150 * time.Millisecond})
	r.srv.SetFault(func(op, _ string) error {
		if op == "write" {
			time.Sleep(500 * time.Millisecond)
		}
		return nil
	})
	wantErr(t, r.cl.Deliver(context.Background(), r.target, uuid1, memo(10)), transport.CodeTimeout, transport.Transient)
	r.srv.SetFault(nil)
	if err := r.cl.Deliver(context.Background(), r.target, uuid1, memo(10)); err != nil {
		t.Fatalf("after a timeout: %v", err)
	}
}

func TestPoolBound(t *testing.T) {
	r := newRig(t, Config{MaxConnsPerSystem: 2})
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			errs <- r.cl.Deliver(context.Background(), r.target, fmt.Sprintf("3f1c1f0e-8a4b-4c2d-9e5f-%012d", i), memo(20<<10))
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if r.srv.Total() != 16 || r.srv.Accepted() > 2 {
		t.Fatalf("delivered %d with %d connections; want 16 with at most 2", r.srv.Total(), r.srv.Accepted())
	}
}

func TestBadInput(t *testing.T) {
	r := newRig(t, Config{})
	for _, u := range []string{"", "../../etc/passwd", "3f1c1f0e-8a4b-4c2d-9e5f-0123456789a/", "3f1c1f0e8a4b4c2d9e5f0123456789abcdef"} {
		wantErr(t, r.cl.Deliver(context.Background(), r.target, u, memo(10)), transport.CodeBadMessage, transport.Permanent)
	}
	wantErr(t, r.cl.Deliver(context.Background(), r.target, uuid1, nil), transport.CodeBadMessage, transport.Permanent)
}

func TestTargetValidate(t *testing.T) {
	good := func() Target {
		return Target{SystemID: "s", Addr: "h:22", User: "u", Folder: "/in", ReceiptFolder: "/rc",
			HostKey: string(ssh.MarshalAuthorizedKey(edSigner(t).PublicKey()))}
	}
	tests := []struct {
		field string
		edit  func(*Target)
	}{
		{"", func(*Target) {}},
		{"system_id", func(x *Target) { x.SystemID = "" }},
		{"addr", func(x *Target) { x.Addr = "host" }},
		{"user", func(x *Target) { x.User = "" }},
		{"folder", func(x *Target) { x.Folder = "in" }},
		{"folder", func(x *Target) { x.Folder = "/in/../x" }},
		{"receipt_folder", func(x *Target) { x.ReceiptFolder = "/in" }},
		{"receipt_folder", func(x *Target) { x.ReceiptFolder = "rc/" }},
		{"host_key", func(x *Target) { x.HostKey = "" }},
		{"host_key", func(x *Target) { x.HostKey = "ssh-ed25519 notbase64" }},
		{"host_key", func(x *Target) { x.HostKey = x.HostKey + "\n" + x.HostKey + "\n" + x.HostKey }},
	}
	for _, tc := range tests {
		x := good()
		tc.edit(&x)
		err := x.Validate()
		var ce *ConfigError
		switch {
		case tc.field == "" && err != nil:
			t.Fatalf("good target: %v", err)
		case tc.field != "" && (!errors.As(err, &ce) || ce.Field != tc.field):
			t.Fatalf("want a %s error, got %v", tc.field, err)
		}
	}
	// A bad target in Deliver is a permanent config error.
	r := newRig(t, Config{})
	r.target.HostKey = ""
	wantErr(t, r.cl.Deliver(context.Background(), r.target, uuid1, memo(10)), transport.CodeConfig, transport.Permanent)
}

func TestKeyFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	_, ek, _ := ed25519.GenerateKey(rand.Reader)
	b, _ := ssh.MarshalPrivateKey(ek, "")
	if _, err := LoadSigner(write("ed", pemEncode(b.Type, b.Bytes))); err != nil {
		t.Fatal(err)
	}
	b, _ = ssh.MarshalPrivateKeyWithPassphrase(ek, "", []byte("pw"))
	if _, err := LoadSigner(write("enc", pemEncode(b.Type, b.Bytes))); err == nil || !strings.Contains(err.Error(), "passphrase") {
		t.Fatalf("passphrase key: %v", err)
	}
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	b, _ = ssh.MarshalPrivateKey(small, "")
	if _, err := LoadSigner(write("small", pemEncode(b.Type, b.Bytes))); err == nil || !strings.Contains(err.Error(), "2048") {
		t.Fatalf("1024-bit RSA: %v", err)
	}
	if _, err := LoadSigner(write("junk", []byte("junk"))); err == nil {
		t.Fatal("junk accepted")
	}
	if _, err := New(Config{}); err == nil {
		t.Fatal("no key accepted")
	}
}

func writeReceipt(t *testing.T, srv *Server, name string, v any) {
	t.Helper()
	var b []byte
	switch x := v.(type) {
	case string:
		b = []byte(x)
	default:
		b, _ = json.Marshal(x)
	}
	if err := os.WriteFile(srv.Path("/receipts/"+name), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestReceiptsPickedUpOnce(t *testing.T) {
	r := newRig(t, Config{})
	ok1 := records.Receipt{MessageUUID: uuid1, ReceiptStatus: records.StatusCompleted, TimeStamp: "2026-11-23T10:00:00.000Z"}
	ok2 := records.Receipt{MessageUUID: "3f1c1f0e-8a4b-4c2d-9e5f-0123456789ac", ReceiptStatus: records.StatusFailed,
		ErrorCode: "UNKNOWN_RECIPIENT", ErrorMessage: "no such case"}
	writeReceipt(t, r.srv, "a.json", ok1)
	writeReceipt(t, r.srv, "b.json", ok2)
	writeReceipt(t, r.srv, "broken.json", `{"messageUUID": "3f1c`)
	writeReceipt(t, r.srv, "nostatus.json", records.Receipt{MessageUUID: uuid1})
	writeReceipt(t, r.srv, "failed-without-code.json", records.Receipt{MessageUUID: uuid1, ReceiptStatus: records.StatusFailed})
	writeReceipt(t, r.srv, ".partial.json", ok1) // being written: skipped
	writeReceipt(t, r.srv, "readme.txt", "not a receipt")

	got := map[string]*records.Receipt{}
	h := func(_ context.Context, file string, rc *records.Receipt) error {
		if got[file] != nil {
			t.Errorf("%s handed twice", file)
		}
		got[file] = rc
		return nil
	}
	res, err := r.cl.PollReceipts(context.Background(), r.target, h)
	if err != nil {
		t.Fatal(err)
	}
	if res.Handled != 2 || len(got) != 2 || len(res.Invalid) != 3 {
		t.Fatalf("handled %d (%d calls), invalid %d: %+v", res.Handled, len(got), len(res.Invalid), res)
	}
	for _, e := range res.Invalid {
		wantErr(t, e, transport.CodeReceiptFile, transport.Permanent)
	}
	if rc := got["/receipts/b.json"]; rc == nil || rc.ErrorCode != "UNKNOWN_RECIPIENT" || rc.Kind != records.KindBusiness {
		t.Fatalf("b.json parsed as %+v", rc)
	}
	// Second pass: nothing new.
	res, err = r.cl.PollReceipts(context.Background(), r.target, h)
	if err != nil || res.Handled != 0 || len(res.Invalid) != 0 {
		t.Fatalf("second pass: %+v %v", res, err)
	}
	left, _ := os.ReadDir(r.srv.Path("/receipts"))
	var names []string
	for _, e := range left {
		names = append(names, e.Name())
	}
	if strings.Join(names, ",") != ".partial.json,failed,readme.txt" {
		t.Fatalf("receipt folder holds %v", names)
	}
	failed, _ := os.ReadDir(r.srv.Path("/receipts/failed"))
	if len(failed) != 3 {
		t.Fatalf("failed/ holds %d files, want 3", len(failed))
	}
}

func TestReceiptHandlerErrorKeepsFile(t *testing.T) {
	r := newRig(t, Config{KeepReceipts: true})
	writeReceipt(t, r.srv, "a.json", records.Receipt{MessageUUID: uuid1, ReceiptStatus: records.StatusCompleted})
	calls := 0
	boom := errors.New("kafka unavailable")
	res, err := r.cl.PollReceipts(context.Background(), r.target, func(context.Context, string, *records.Receipt) error {
		calls++
		return boom
	})
	if !errors.Is(err, boom) || res.Retried != 1 || res.Handled != 0 {
		t.Fatalf("%+v %v", res, err)
	}
	if _, err := os.Stat(r.srv.Path("/receipts/a.json")); err != nil {
		t.Fatal("a receipt whose handler failed must stay for the next poll")
	}
	res, err = r.cl.PollReceipts(context.Background(), r.target, func(context.Context, string, *records.Receipt) error {
		calls++
		return nil
	})
	if err != nil || res.Handled != 1 || calls != 2 {
		t.Fatalf("%+v %v calls %d", res, err, calls)
	}
	if _, err := os.Stat(r.srv.Path("/receipts/done/a.json")); err != nil {
		t.Fatal("KeepReceipts: a handled receipt goes to done/")
	}
}

func TestRunReceipts(t *testing.T) {
	r := newRig(t, Config{})
	writeReceipt(t, r.srv, "a.json", records.Receipt{MessageUUID: uuid1, ReceiptStatus: records.StatusCompleted})
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan string, 4)
	done := make(chan error, 1)
	go func() {
		done <- r.cl.RunReceipts(ctx, r.target, 20*time.Millisecond, func(_ context.Context, f string, _ *records.Receipt) error {
			got <- f
			return nil
		}, nil)
	}()
	<-got
	writeReceipt(t, r.srv, "b.json", records.Receipt{MessageUUID: uuid1, ReceiptStatus: records.StatusCompleted})
	if f := <-got; f != "/receipts/b.json" {
		t.Fatalf("second receipt %s", f)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	if len(got) != 0 {
		t.Fatal("a receipt was handed twice")
	}
}

// Two replicas polling one folder: every receipt is handed at least once,
// the files all go, and neither poller reports the other's removals as
// errors.
func TestReceiptsTwoPollers(t *testing.T) {
	r := newRig(t, Config{})
	second, err := New(Config{Signer: r.cl.signer})
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	const n = 60
	for i := range n {
		writeReceipt(t, r.srv, fmt.Sprintf("r%03d.json", i), records.Receipt{
			MessageUUID: fmt.Sprintf("3f1c1f0e-8a4b-4c2d-9e5f-%012d", i), ReceiptStatus: records.StatusCompleted})
	}
	var mu sync.Mutex
	seen := map[string]int{}
	h := func(_ context.Context, _ string, rc *records.Receipt) error {
		mu.Lock()
		seen[rc.MessageUUID]++
		mu.Unlock()
		return nil
	}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, cl := range []*Client{r.cl, second} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := cl.PollReceipts(context.Background(), r.target, h)
			if err == nil && len(res.Invalid) > 0 {
				err = res.Invalid[0]
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(seen) != n {
		t.Fatalf("%d distinct receipts handed, want %d", len(seen), n)
	}
	left, _ := os.ReadDir(r.srv.Path("/receipts"))
	if len(left) != 0 {
		t.Fatalf("%d files left", len(left))
	}
}

func TestCallerCancel(t *testing.T) {
	r := newRig(t, Config{})
	r.srv.SetFault(func(op, _ string) error {
		if op == "write" {
			time.Sleep(time.Second)
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	t0 := time.Now()
	err := r.cl.Deliver(ctx, r.target, uuid1, memo(10))
	if transport.Classify(err) != transport.Transient || time.Since(t0) > 800*time.Millisecond {
		t.Fatalf("cancelled attempt: %v after %v", err, time.Since(t0))
	}
}

// A server that accepts TCP and never speaks: the attempt ends at
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
	r := newRig(t, Config{DialTimeout: 200 * time.Millisecond})
	r.target.Addr = ln.Addr().String()
	t0 := time.Now()
	wantErr(t, r.cl.Deliver(context.Background(), r.target, uuid1, memo(10)), transport.CodeTimeout, transport.Transient)
	if d := time.Since(t0); d > time.Second {
		t.Fatalf("took %v", d)
	}
}
