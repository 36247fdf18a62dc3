package forward

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/memoflow/memoflow/pipeline"
	"github.com/memoflow/memoflow/schemas/events"
	"github.com/memoflow/memoflow/schemas/records"
	"github.com/memoflow/memoflow/schemas/registry"
	"github.com/memoflow/memoflow/stages/route"
)

const (
	compSecure   = "31313131" // forwards to trusted (mailbox only)
	compSecure2  = "31313132" // forwards to trusted2 (which has its own system)
	compBadTrust = "31313133" // forwards to a CVR not signed up
	compPickup   = "32323232" // forwards to the pickup server
	trusted      = "33333333" // trusted third party with a mailbox
	trusted2     = "33333334" // trusted third party with its own recipient system
	notSignedUp  = "44444444"
	sender       = "12345678"
)

func quiet() *slog.Logger {
	if os.Getenv("MEMOFLOW_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func testPseudo(t testing.TB) *events.Pseudonymizer {
	p, err := events.NewPseudonymizer(events.Key{ID: "k1", Secret: []byte("0123456789abcdef0123456789abcdef")})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// testView: a mailbox provider and a recipient system (both pushing to
// mailboxURL), and the companies above. pickupURL is compPickup's target.
func testView(mailboxURL, pickupURL string) *registry.View {
	v := registry.NewMemView(registry.WithLogger(quiet()))
	now := time.Now()
	for _, e := range []registry.Entity{
		&registry.System{ID: "mbox", Name: "Mailbox", SysKind: registry.SystemMailbox, Protocol: registry.RestPush, Endpoint: mailboxURL + "/mbox", MemoVersion: 12},
		&registry.System{ID: "trusted2-sys", Org: trusted2, Name: "Revisor ESDH", SysKind: registry.SystemRecipient, Protocol: registry.RestPush,
			Endpoint: mailboxURL + "/trusted2", MemoVersion: 12, Role: registry.RoleDefault},
		&registry.Company{CVR: compSecure, Status: registry.Registered, Mailbox: "mbox", Forward: registry.Forwarding{Kind: registry.ForwardSecureMailbox, To: trusted}},
		&registry.Company{CVR: compSecure2, Status: registry.Registered, Mailbox: "mbox", Forward: registry.Forwarding{Kind: registry.ForwardSecureMailbox, To: trusted2}},
		&registry.Company{CVR: compBadTrust, Status: registry.Registered, Mailbox: "mbox", Forward: registry.Forwarding{Kind: registry.ForwardSecureMailbox, To: notSignedUp}},
		&registry.Company{CVR: compPickup, Status: registry.Registered, Mailbox: "mbox", Forward: registry.Forwarding{Kind: registry.ForwardPickup, To: pickupURL, Credentials: "secret:pickup-test"}},
		&registry.Company{CVR: trusted, Status: registry.Registered, Mailbox: "mbox"},
		&registry.Company{CVR: trusted2, Status: registry.Registered, Mailbox: "mbox", System: "trusted2-sys"},
	} {
		v.Apply(registry.NewChange(e, "test", now))
	}
	return v
}

func secrets(ref string) string {
	if ref == "secret:pickup-test" {
		return "pickup-token"
	}
	return ""
}

// message is a routed envelope to company cvr (in its mailbox).
func message(uuid, cvr string, size int) *records.Envelope {
	body := make([]byte, size)
	copy(body, "<memo>")
	return &records.Envelope{
		MessageUUID: uuid, TransmissionID: "t-" + uuid, MemoVersion: 12, MessageType: records.TypeDigitalPost,
		PostType: route.PostVirksomhed, SenderOrg: sender, SenderSystem: "sender-sys", RecipientType: records.IDCVR,
		RecipientID: cvr, Size: uint64(size), Body: body, Destination: "mbox", DestinationProtocol: uint8(registry.RestPush), WantVersion: 12,
	}
}

// request is route's memo.forward record for e with forwarding f.
func request(e *records.Envelope, f registry.Forwarding) *kgo.Record {
	h := []kgo.RecordHeader{
		{Key: route.HeaderForwardKind, Value: []byte(f.Kind.String())},
		{Key: route.HeaderForwardTo, Value: []byte(f.To)},
	}
	if f.Credentials != "" {
		h = append(h, kgo.RecordHeader{Key: route.HeaderForwardCredentials, Value: []byte(f.Credentials)})
	}
	return &kgo.Record{Topic: pipeline.TopicForward, Key: []byte(e.MessageUUID), Value: e.Append(nil), Headers: h}
}

// receiver is an HTTP endpoint that keeps one copy per Idempotency-Key
// (as a pickup system or mailbox must) and counts every request. status
// decides the answer to the n-th request (1-based) for a key.
type receiver struct {
	mu     sync.Mutex
	calls  map[string]int    // per key
	stored map[string][]byte // first accepted body per key
	paths  map[string]string // key → path it arrived on
	auth   map[string]string
	total  atomic.Int64
	status func(key string, n int) int
	hang   atomic.Bool
}

func newReceiver(t testing.TB) (*receiver, string) {
	rv := &receiver{calls: map[string]int{}, stored: map[string][]byte{}, paths: map[string]string{}, auth: map[string]string{}}
	srv := httptest.NewServer(rv)
	t.Cleanup(srv.Close)
	return rv, srv.URL
}

func (rv *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rv.total.Add(1)
	if rv.hang.Load() {
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
		return
	}
	body, _ := io.ReadAll(r.Body)
	key := r.Header.Get("Idempotency-Key")
	rv.mu.Lock()
	rv.calls[key]++
	n := rv.calls[key]
	st := http.StatusOK
	if rv.status != nil {
		st = rv.status(key, n)
	}
	if st/100 == 2 {
		if _, ok := rv.stored[key]; !ok {
			rv.stored[key] = body
			rv.paths[key] = r.URL.Path
			rv.auth[key] = r.Header.Get("Authorization")
		}
	}
	rv.mu.Unlock()
	w.WriteHeader(st)
}

func (rv *receiver) got(key string) ([]byte, string, bool) {
	rv.mu.Lock()
	defer rv.mu.Unlock()
	b, ok := rv.stored[key]
	return b, rv.paths[key], ok
}

func (rv *receiver) storedCount() int {
	rv.mu.Lock()
	defer rv.mu.Unlock()
	return len(rv.stored)
}

// decodeOut sorts a batch's outputs.
type outputs struct {
	events  []events.Event
	routed  []*kgo.Record
	retries []*kgo.Record
	again   []*kgo.Record // back to memo.forward
	blobs   []*kgo.Record
	other   []*kgo.Record
}

func sortOut(t testing.TB, recs []*kgo.Record) outputs {
	t.Helper()
	var o outputs
	for _, r := range recs {
		switch r.Topic {
		case pipeline.TopicEvents:
			evs, err := events.Decode(r.Value, nil)
			if err != nil {
				t.Fatal(err)
			}
			o.events = append(o.events, evs...)
		case pipeline.TopicRouted:
			o.routed = append(o.routed, r)
		case pipeline.TopicForwardRetry:
			o.retries = append(o.retries, r)
		case pipeline.TopicForward:
			o.again = append(o.again, r)
		case pipeline.TopicBlobsDone:
			o.blobs = append(o.blobs, r)
		default:
			o.other = append(o.other, r)
		}
	}
	return o
}

func (o outputs) tags() []string {
	var out []string
	for _, e := range o.events {
		s := string(e.Tag)
		if e.ErrorCode != "" {
			s += ":" + e.ErrorCode
		}
		out = append(out, s)
	}
	return out
}

func header(r *kgo.Record, k string) string {
	for _, h := range r.Headers {
		if h.Key == k {
			return string(h.Value)
		}
	}
	return ""
}
