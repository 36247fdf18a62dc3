package deliver

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/crypto/ssh"

	"github.com/memoflow/memoflow/internal/auth"
	"github.com/memoflow/memoflow/pipeline"
	"github.com/memoflow/memoflow/schemas/events"
	"github.com/memoflow/memoflow/schemas/records"
)

// receiptRig delivers n messages to one SFTP system (its outputs produced
// to kfake, as the sink's transaction would) and returns what a pull-api
// replica needs.
type receiptRig struct {
	k    *rig
	tr   *transportRig
	sys  System
	envs []*records.Envelope
	prod *kgo.Client
}

func newReceiptRig(t *testing.T, n int) *receiptRig {
	cfg := testConfig()
	x := &receiptRig{k: newRig(t, cfg), tr: newTransportRig(t, nil)}
	x.sys = x.tr.sftpSystem("sys-sftp")
	d := x.tr.deliverer(t, NewStaticSystems(x.sys))
	x.prod = x.k.client(t)
	for i := range n {
		env := testEnv(i, x.sys.ID)
		it := &item{env: *env}
		d.run(context.Background(), []*item{it})
		if it.err != nil {
			t.Fatal(it.err)
		}
		if err := x.prod.ProduceSync(context.Background(), it.out...).FirstErr(); err != nil {
			t.Fatal(err)
		}
		x.envs = append(x.envs, env)
	}
	return x
}

// replica is one pull-api replica: its own outbox index, tailer and API,
// and a receipt poller over the system's folder.
func (x *receiptRig) replica(t *testing.T, every time.Duration) (*PullAPI, *ReceiptPoller) {
	store, err := OpenOutboxStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	tail, err := StartTailer(context.Background(), store, []kgo.Opt{kgo.SeedBrokers(x.k.brokers)}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tail.Close)
	last := x.envs[len(x.envs)-1].MessageUUID
	waitFor(t, "the delivered markers in the index", 10*time.Second, func() bool {
		_, found, _ := store.Get(x.sys.ID, last)
		return found
	})
	api := NewPullAPI(store, auth.NewMemStore(), x.prod, testPseudo(t), NewStaticSystems(x.sys), nil, WithLogger(quiet()))
	p, err := NewReceiptPoller(api, x.tr.sftpCl, StaticReceiptFolders{{System: x.sys, Owners: []string{x.sys.ID}}}, every)
	if err != nil {
		t.Fatal(err)
	}
	return api, p
}

func (x *receiptRig) run(t *testing.T, p *ReceiptPoller) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = p.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

// topic reads a topic from the start until want(records) or the timeout.
func (x *receiptRig) topic(t *testing.T, topic string, want func([]*kgo.Record) bool) []*kgo.Record {
	t.Helper()
	cons := x.k.client(t, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out []*kgo.Record
	for !want(out) {
		if ctx.Err() != nil {
			t.Fatalf("%s: %d records, not what the test waits for", topic, len(out))
		}
		out = append(out, cons.PollFetches(ctx).Records()...)
	}
	return out
}

func receiptsOf(t *testing.T, recs []*kgo.Record, status string) map[string][]records.Receipt {
	out := map[string][]records.Receipt{}
	for _, r := range recs {
		var rc records.Receipt
		if err := records.DecodeReceipt(r.Value, &rc); err != nil {
			t.Fatal(err)
		}
		if rc.ReceiptStatus == status {
			out[rc.MessageUUID] = append(out[rc.MessageUUID], rc)
		}
	}
	return out
}

func jsonFiles(t *testing.T, dir string) []string {
	var out []string
	es, _ := os.ReadDir(dir)
	for _, e := range es {
		if !e.IsDir() && strings.HasSuffix(e.Name(), ".json") {
			out = append(out, e.Name())
		}
	}
	return out
}

// TestSFTPReceiptFiles: receipt files the system writes are relayed to
// the sender as a pull system's POST .../receipt is (same event, same
// memo.receipts record with the sender's routing); a file that does not
// parse and one for a message the system never got go to failed/ with a
// DELIVER_RECEIPT_FILE_INVALID event; a repeated receipt is taken as done.
func TestSFTPReceiptFiles(t *testing.T) {
	x := newReceiptRig(t, 3)
	api, p := x.replica(t, 30*time.Millisecond)
	p.grace = 100 * time.Millisecond
	dir := x.tr.sftpSrv.Path("/receipts")
	failed := x.envs[0].MessageUUID
	writeReceiptFile(t, x.tr.sftpSrv, failed+".json",
		`{"messageUUID":"`+failed+`","receiptStatus":"FAILED","errorCode":"SAG_UKENDT","errorMessage":"ingen sag","timeStamp":"2026-03-02T10:00:00Z"}`)
	writeReceiptFile(t, x.tr.sftpSrv, "garbage.json", `{"messageUUID":`)
	writeReceiptFile(t, x.tr.sftpSrv, "stranger.json", `{"messageUUID":"00000000-0000-4000-8000-999999999999","receiptStatus":"COMPLETED"}`)
	x.run(t, p)
	waitFor(t, "the receipt folder handled", 10*time.Second, func() bool {
		return len(jsonFiles(t, dir)) == 0 && len(jsonFiles(t, filepath.Join(dir, "failed"))) == 2
	})
	// The FAILED receipt reached the sender with the delivery's routing.
	recs := x.topic(t, pipeline.TopicReceipts, func(rs []*kgo.Record) bool { return len(receiptsOf(t, rs, records.StatusFailed)) == 1 })
	got := receiptsOf(t, recs, records.StatusFailed)[failed]
	if len(got) != 1 || got[0].SenderSystem != "sender-1" || got[0].TransmissionID != "tx-1" || got[0].ErrorCode != "SAG_UKENDT" || got[0].Kind != records.KindBusiness {
		t.Fatalf("relayed receipts %+v", got)
	}
	// Events: the system's receipt, and two invalid files.
	var received, invalid int
	x.topic(t, pipeline.TopicEvents, func(rs []*kgo.Record) bool {
		received, invalid = 0, 0
		for _, r := range rs {
			evs, _ := events.Decode(r.Value, nil)
			for _, e := range evs {
				switch {
				case e.Tag == events.BusinessReceiptReceivedByRecipientSys && e.ErrorCode == CodeReceiptFileInvalid && e.RecipientSystem == x.sys.ID:
					invalid++
				case e.Tag == events.BusinessReceiptReceivedByRecipientSys && e.MessageUUID == failed:
					received++
				}
			}
		}
		return received == 1 && invalid == 2
	})
	// The same receipt again (the system wrote it twice): 409 inside, done.
	writeReceiptFile(t, x.tr.sftpSrv, "again.json", `{"messageUUID":"`+failed+`","receiptStatus":"FAILED","errorCode":"SAG_UKENDT"}`)
	waitFor(t, "the repeated receipt removed", 10*time.Second, func() bool { return len(jsonFiles(t, dir)) == 0 })
	if n := testutil.ToFloat64(api.metrics.receiptFiles.WithLabelValues("duplicate")); n != 1 {
		t.Fatalf("duplicate receipts counted %v, want 1", n)
	}
	if n := len(jsonFiles(t, filepath.Join(dir, "failed"))); n != 2 {
		t.Fatalf("failed/ holds %d files, want 2", n)
	}
}

// TestSFTPReceiptsTwoReplicas: two pull-api replicas (own indexes) poll
// the same folder at once. Every receipt reaches memo.receipts at least
// once and at most twice, always with the same receipt id (so the
// receipts stage stores it once), and no file is lost or set aside.
func TestSFTPReceiptsTwoReplicas(t *testing.T) {
	const n = 20
	x := newReceiptRig(t, n)
	_, p1 := x.replica(t, 20*time.Millisecond)
	_, p2 := x.replica(t, 20*time.Millisecond)
	var wg sync.WaitGroup
	for i, env := range x.envs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			writeReceiptFile(t, x.tr.sftpSrv, fmt.Sprintf("r%02d.json", i),
				`{"messageUUID":"`+env.MessageUUID+`","receiptStatus":"FAILED","errorCode":"E`+fmt.Sprint(i)+`"}`)
		}()
	}
	wg.Wait()
	x.run(t, p1)
	x.run(t, p2)
	dir := x.tr.sftpSrv.Path("/receipts")
	waitFor(t, "all receipt files handled", 15*time.Second, func() bool { return len(jsonFiles(t, dir)) == 0 })
	if f := jsonFiles(t, filepath.Join(dir, "failed")); len(f) != 0 {
		t.Fatalf("set aside: %v", f)
	}
	recs := x.topic(t, pipeline.TopicReceipts, func(rs []*kgo.Record) bool { return len(receiptsOf(t, rs, records.StatusFailed)) == n })
	for uuid, rcs := range receiptsOf(t, recs, records.StatusFailed) {
		if len(rcs) > 2 {
			t.Fatalf("%s relayed %d times", uuid, len(rcs))
		}
		for _, rc := range rcs[1:] {
			if rc.TransmissionID != rcs[0].TransmissionID || rc.ReceiptStatus != rcs[0].ReceiptStatus || rc.Kind != rcs[0].Kind {
				t.Fatalf("%s: the copies would get different receipt ids: %+v", uuid, rcs)
			}
		}
	}
}

type foldersFunc func() []ReceiptFolder

func (f foldersFunc) ReceiptFolders() []ReceiptFolder { return f() }

// TestReceiptPollerFollowsRegistry: loops start for new folders, stop
// for removed ones, restart when an entry's host key changes, and an
// unusable entry is not polled.
func TestReceiptPollerFollowsRegistry(t *testing.T) {
	tr := newTransportRig(t, nil)
	api := NewPullAPI(nil, auth.NewMemStore(), nil, testPseudo(t), nil, nil, WithLogger(quiet()))
	var mu sync.Mutex
	list := []ReceiptFolder{}
	set := func(fs ...ReceiptFolder) { mu.Lock(); list = fs; mu.Unlock() }
	p, err := NewReceiptPoller(api, tr.sftpCl, foldersFunc(func() []ReceiptFolder {
		mu.Lock()
		defer mu.Unlock()
		return list
	}), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); p.stopAll() }()
	a, b := tr.sftpSystem("a"), tr.sftpSystem("b")
	bad := tr.sftpSystem("bad")
	bad.Endpoint = "ftp://nowhere"
	set(ReceiptFolder{System: a, Owners: []string{"a"}}, ReceiptFolder{System: b, Owners: []string{"b"}}, ReceiptFolder{System: bad, Owners: []string{"bad"}})
	p.Reconcile(ctx)
	polling := func() string { s := p.Polling(); slices.Sort(s); return strings.Join(s, ",") }
	if got := polling(); got != "a,b" {
		t.Fatalf("polling %q, want a,b", got)
	}
	first := p.running["a"]
	a2 := a
	a2.SSHHostKey = tr.sftpSrv.HostKey() + "\n" + strings.TrimSpace(string(ssh.MarshalAuthorizedKey(ids.sshSigner.PublicKey())))
	set(ReceiptFolder{System: a2, Owners: []string{"a", "a-selection"}})
	p.Reconcile(ctx)
	if got := polling(); got != "a" || p.running["a"] == first {
		t.Fatalf("after the change: polling %q, restarted %v", got, p.running["a"] != first)
	}
	if owners := *p.running["a"].owners.Load(); len(owners) != 2 {
		t.Fatalf("owners %v", owners)
	}
	set()
	p.Reconcile(ctx)
	if got := polling(); got != "" {
		t.Fatalf("polling %q after the folders went", got)
	}
}
