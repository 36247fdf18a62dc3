package eventquery

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/encoding/json"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/memoflow/memoflow/internal/auth"
	"github.com/memoflow/memoflow/internal/chconn/chtest"
	"github.com/memoflow/memoflow/pipeline"
	"github.com/memoflow/memoflow/schemas/chddl"
	"github.com/memoflow/memoflow/schemas/events"
	"github.com/memoflow/memoflow/stages/eventlog"
)

// Organisations of the test data.
const (
	orgA = "11111111" // a municipality: sends to persons and to B, receives from B
	orgB = "22222222" // a company with a recipient system: sends to A
	orgC = "33333333" // another authority: sends to persons
	orgX = "99999999" // memoflow's operators
)

// xssContactPoint is a hostile contact point of one message.
const xssContactPoint = `<script>alert("x")</script>cpA`

// testNow is the fixture's clock: after all the test data.
var testNow = time.Date(2026, 11, 12, 0, 0, 0, 0, time.UTC)

// cprs are the (made-up) persons of the test data.
var cprs = []string{"0101901234", "0202902345", "0303903456", "0404904567", "0505905678"}

var testPseudonymizer = func() *events.Pseudonymizer {
	p, err := events.NewPseudonymizer(
		events.Key{ID: "k2", Secret: bytes.Repeat([]byte{9}, 32)},
		events.Key{ID: "k1", Secret: bytes.Repeat([]byte{7}, 32)}, // an older key, still searched
	)
	if err != nil {
		panic(err)
	}
	return p
}()

var oldKeyOnly = func() *events.Pseudonymizer {
	p, err := events.NewPseudonymizer(events.Key{ID: "k1", Secret: bytes.Repeat([]byte{7}, 32)})
	if err != nil {
		panic(err)
	}
	return p
}()

// stored is one event of the test data with its place in memo.events: the
// oracle the API's answers are checked against.
type stored struct {
	ev        events.Event
	partition int32
	offset    int64
	index     int
	msg       int // the message's number
}

func (s stored) id() string { return fmt.Sprintf("%d-%d-%d", s.partition, s.offset, s.index) }

func messageUUID(i int) string { return fmt.Sprintf("7e0f%04x-0000-4000-8000-%012x", i, i) }

// testMessages is how many messages the data has; each has 2-3 events.
const testMessages = 48

// step is one event of a test message: its tag, time after the first
// event, receipt status and error code.
type step struct {
	tag    events.Tag
	after  time.Duration
	status string
	code   string
}

// genData returns the test data: testMessages messages, one record each,
// 7 hours apart from 2026-10-28 (so they cross into November).
//
//	i%4 == 0: A sends to a person (CPR), through system sysA1
//	i%4 == 1: A sends to company B, delivered to B's system rsB
//	i%4 == 2: B sends to A (CVR), contact point cpA, to A's system rsA
//	i%4 == 3: C sends to a person
//
// Every tenth message fails validation; message 6 has a hostile contact
// point. Messages to persons 0 and 1 under
// an even i were pseudonymised with the old key k1 (before a rotation).
func genData() ([]*kgo.Record, []stored) {
	var recs []*kgo.Record
	var data []stored
	offsets := map[int32]int64{}
	base := time.Date(2026, 10, 28, 0, 0, 0, 0, time.UTC)
	for i := range testMessages {
		t0 := base.Add(time.Duration(i)*7*time.Hour + time.Duration(i)*time.Millisecond*37)
		ev := events.Event{
			MessageUUID:    messageUUID(i),
			TransmissionID: fmt.Sprintf("tx-%d", i/8),
			MessageType:    "DIGITALPOST",
			PostType:       "MYNDIGHEDSPOST",
			Size:           uint64(1000 + 10*i),
			Attachments:    uint16(i % 3),
		}
		delivered := events.MemoAvailableToRecipient
		cpr := cprs[i%len(cprs)]
		switch i % 4 {
		case 0:
			ev.SenderOrg, ev.SenderSystem = orgA, "sysA1"
			p := testPseudonymizer
			if i%2 == 0 && (cpr == cprs[0] || cpr == cprs[1]) && i < 20 {
				p = oldKeyOnly
			}
			ev.Recipient = p.Recipient(events.CPR, cpr)
		case 1:
			ev.SenderOrg, ev.SenderSystem = orgA, "sysA2"
			ev.Recipient = testPseudonymizer.Recipient(events.CVR, orgB)
			ev.RecipientSystem, ev.PostType = "rsB", "VIRKSOMHEDSPOST"
			delivered = events.MemoSendSentToRecipientSystem
		case 2:
			ev.SenderOrg, ev.SenderSystem = orgB, "sysB1"
			ev.Recipient = testPseudonymizer.Recipient(events.CVR, orgA)
			ev.ContactPoint, ev.RecipientSystem = "cpA", "rsA"
			if i == 6 {
				ev.ContactPoint = xssContactPoint // senders choose these strings
			}
			delivered = events.MemoSendFetchedByRecipientSystem
		case 3:
			ev.SenderOrg, ev.SenderSystem = orgC, "sysC1"
			ev.Recipient = testPseudonymizer.Recipient(events.CPR, cpr)
			ev.MessageType = "NEMSMS"
		}
		steps := []step{{events.MemoSendReceived, 0, "RECEIVED", ""}}
		if i%10 == 9 {
			steps = append(steps, step{events.MemoSendValidationFailed, time.Second, "INVALID", "MEMO_XSD_INVALID"})
		} else {
			steps = append(steps, step{events.MemoSendValidated, time.Second, "", ""},
				step{delivered, 2*time.Minute + time.Duration(i)*time.Second, "", ""})
		}
		evs := make([]events.Event, len(steps))
		for j, s := range steps {
			e := ev
			e.Time = t0.Add(s.after)
			e.Tag, e.ReceiptStatus, e.ErrorCode = s.tag, s.status, s.code
			evs[j] = e
		}
		// Partitions 100-102: the audit events the tests feed back through
		// the sink come from the test's Kafka, partitions 0-2.
		p := int32(100 + i%3)
		r := events.NewRecord(pipeline.TopicEvents, evs...)
		r.Partition, r.Offset = p, offsets[p]
		offsets[p] += 2 // transaction markers leave gaps
		recs = append(recs, r)
		for j, e := range evs {
			data = append(data, stored{ev: e, partition: p, offset: r.Offset, index: j, msg: i})
		}
	}
	return recs, data
}

// The principals of the tests, by name.
var testPrincipals = map[string]auth.Principal{
	"sender":   {ID: "sys-a", Org: orgA, Roles: []auth.Role{auth.RoleSender}},
	"logA":     {ID: "log-admin-a", Org: orgA, Roles: []auth.Role{auth.RoleLogMessages}},
	"searchA":  {ID: "search-admin-a", Org: orgA, Roles: []auth.Role{auth.RoleLogSearches}},
	"logB":     {ID: "log-admin-b", Org: orgB, Roles: []auth.Role{auth.RoleLogMessages}},
	"logC":     {ID: "log-admin-c", Org: orgC, Roles: []auth.Role{auth.RoleLogMessages, auth.RoleSystemAdmin}},
	"operator": {ID: "op-1", Org: orgX, Roles: []auth.Role{auth.RoleOperator}},
	"opSearch": {ID: "op-2", Org: orgX, Roles: []auth.Role{auth.RoleOperator, auth.RoleLogSearches}},
	"admin":    {ID: "sys-admin-a", Org: orgA, Roles: []auth.Role{auth.RoleSystemAdmin, auth.RoleRightsAdmin}},
	// Suppliers of standard systems (supplier_test.go): S's is selected by
	// A's rsA, T's by B's rsB, U's by nobody.
	"supS":    {ID: "sup-s", Org: orgS, Roles: []auth.Role{auth.RoleSupplier}},
	"supT":    {ID: "sup-t", Org: orgT, Roles: []auth.Role{auth.RoleSupplier}},
	"supU":    {ID: "sup-u", Org: orgU, Roles: []auth.Role{auth.RoleSupplier}},
	"supSlog": {ID: "sup-s-log", Org: orgS, Roles: []auth.Role{auth.RoleSupplier, auth.RoleLogMessages}},
}

type fixture struct {
	conn     driver.Conn
	db       string
	srv      *httptest.Server
	tokens   map[string]string
	cluster  *kfake.Cluster
	consumer *kgo.Client
	sink     *eventlog.Sink
	data     []stored
	// produced holds every record the audits consumed, in order.
	produced []*kgo.Record
}

type fixtureOpt func(*Deps)

// newFixture migrates a fresh database, writes the test data through the
// event-log sink (the production path), and serves the APIs with an
// in-process Kafka for the audit events.
func newFixture(t testing.TB, opts ...fixtureOpt) *fixture {
	t.Helper()
	conn, _ := chtest.Conn(t)
	db := chtest.Database(t, conn)
	ctx := context.Background()
	if _, err := chddl.Migrate(ctx, conn, chddl.Options{Database: db}); err != nil {
		t.Fatal(err)
	}
	f := &fixture{conn: conn, db: db}
	sink, err := eventlog.New(conn, eventlog.Config{Database: db}, eventlog.WithRegisterer(prometheus.NewRegistry()))
	if err != nil {
		t.Fatal(err)
	}
	f.sink = sink
	recs, data := genData()
	f.data = data
	if err := sink.Write(ctx, &pipeline.Batch{Records: recs}); err != nil {
		t.Fatal(err)
	}

	f.serve(t, opts...)
	return f
}

// serve starts the APIs on f.db with an in-process Kafka for the audit
// events and a token for each of testPrincipals.
func (f *fixture) serve(t testing.TB, opts ...fixtureOpt) {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, pipeline.TopicEvents))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	f.cluster = c
	prod, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(prod.Close)
	f.consumer, err = kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics(pipeline.TopicEvents),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.consumer.Close)

	store := auth.NewMemStore()
	f.tokens = map[string]string{}
	for name, p := range testPrincipals {
		tok := auth.NewToken()
		f.tokens[name] = tok
		store.Put(auth.HashToken(tok), &p)
	}
	d := Deps{Conn: f.conn, Database: f.db, Tokens: store, Pseudonymizer: testPseudonymizer, Producer: prod,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Registerer: prometheus.NewRegistry(), Now: func() time.Time { return testNow }}
	for _, o := range opts {
		o(&d)
	}
	mux := http.NewServeMux()
	if err := Register(mux, d); err != nil {
		t.Fatal(err)
	}
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
}

// response is one HTTP answer.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) errorCode(t testing.TB) string {
	t.Helper()
	var e struct {
		ErrorCode    string `json:"errorCode"`
		ErrorMessage string `json:"errorMessage"`
	}
	if err := json.Unmarshal(r.body, &e); err != nil {
		t.Fatalf("status %d, body %q is not an error body: %v", r.status, r.body, err)
	}
	return e.ErrorCode
}

func (f *fixture) get(t testing.TB, who, path string, q url.Values, accept string) response {
	t.Helper()
	u := f.srv.URL + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	return f.do(t, who, req, accept)
}

func (f *fixture) do(t testing.TB, who string, req *http.Request, accept string) response {
	t.Helper()
	if who != "" {
		req.Header.Set("Authorization", "Bearer "+f.tokens[who])
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{resp.StatusCode, resp.Header, b}
}

// search runs GET /apis/v1/events and decodes the page; it fails the test
// unless the answer is 200.
func (f *fixture) search(t testing.TB, who string, q url.Values) EventPage {
	t.Helper()
	r := f.get(t, who, "/apis/v1/events", q, "")
	if r.status != http.StatusOK {
		t.Fatalf("GET /apis/v1/events?%s as %s: %d %s", q.Encode(), who, r.status, r.body)
	}
	var p EventPage
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatal(err)
	}
	return p
}

// all is the whole test period.
func all(kv ...string) url.Values {
	q := url.Values{"dateFrom": {"2026-10-01"}, "dateTo": {"2026-11-30"}, "size": {"1000"}}
	for i := 0; i+1 < len(kv); i += 2 {
		q.Set(kv[i], kv[i+1])
	}
	return q
}

// ids returns the ids of a page's events.
func ids(p EventPage) []string {
	out := make([]string, len(p.Content))
	for i, e := range p.Content {
		out[i] = e.ID
	}
	return out
}

// expect returns the ids of the test events keep selects, newest first
// (the API's default order).
func (f *fixture) expect(keep func(stored) bool) []string {
	var sel []stored
	for _, s := range f.data {
		if keep(s) {
			sel = append(sel, s)
		}
	}
	sort.SliceStable(sel, func(i, j int) bool { return lessLineage(sel[j], sel[i], true) })
	out := make([]string, len(sel))
	for i, s := range sel {
		out[i] = s.id()
	}
	return out
}

// lessLineage orders by time then lineage (the API's tie-break); byTime
// false orders by lineage only.
func lessLineage(a, b stored, byTime bool) bool {
	if byTime && !a.ev.Time.Equal(b.ev.Time) {
		return a.ev.Time.Before(b.ev.Time)
	}
	if a.partition != b.partition {
		return a.partition < b.partition
	}
	if a.offset != b.offset {
		return a.offset < b.offset
	}
	return a.index < b.index
}

// visibleTo is the access rule: the organisation sent it or is its
// recipient CVR.
func visibleTo(org string) func(stored) bool {
	return func(s stored) bool { return sentBy(org)(s) || receivedBy(org)(s) }
}

func sentBy(org string) func(stored) bool {
	return func(s stored) bool { return s.ev.SenderOrg == org }
}

func receivedBy(org string) func(stored) bool {
	return func(s stored) bool {
		return s.ev.Recipient.Type() == events.CVR && !s.ev.Recipient.Pseudonymised() && s.ev.Recipient.ID() == org
	}
}

func and(fs ...func(stored) bool) func(stored) bool {
	return func(s stored) bool {
		for _, f := range fs {
			if !f(s) {
				return false
			}
		}
		return true
	}
}

func everything(stored) bool { return true }

// audited is one record produced to memo.events, decoded.
type audited struct {
	rec *kgo.Record
	ev  events.Event
}

// audits returns the next n records produced to memo.events; it fails if
// they do not come within 10 s. With n == 0 it waits 300 ms and fails if
// anything came.
func (f *fixture) audits(t testing.TB, n int) []audited {
	t.Helper()
	wait := 10 * time.Second
	if n == 0 {
		wait = 300 * time.Millisecond
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	var out []audited
	for len(out) < n || n == 0 {
		fs := f.consumer.PollRecords(ctx, n-len(out)+1)
		if ctx.Err() != nil {
			break
		}
		fs.EachRecord(func(r *kgo.Record) {
			f.produced = append(f.produced, r)
			evs, err := events.Decode(r.Value, nil)
			if err != nil {
				t.Fatalf("audit record does not decode: %v", err)
			}
			for _, e := range evs {
				out = append(out, audited{r, e})
			}
		})
	}
	if len(out) != n {
		t.Fatalf("%d audit events produced, want %d", len(out), n)
	}
	return out
}

// deadProducer is a Kafka client whose broker is gone: every produce
// fails once the audit's timeout runs out.
func deadProducer(t testing.TB) *kgo.Client {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// parseCSV parses a CSV answer.
func parseCSV(t testing.TB, b []byte) [][]string {
	t.Helper()
	recs, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
	if err != nil {
		t.Fatalf("answer is not CSV: %v\n%s", err, b)
	}
	return recs
}

func equalIDs(t testing.TB, what string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s: got %d events %v\nwant %d events %v", what, len(got), short(got), len(want), short(want))
	}
}

func short(s []string) string {
	if len(s) > 12 {
		return strings.Join(s[:12], " ") + " …"
	}
	return strings.Join(s, " ")
}
