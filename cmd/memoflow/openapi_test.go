package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/memoflow/memoflow/internal/auth"
	"github.com/memoflow/memoflow/internal/chconn/chtest"
	"github.com/memoflow/memoflow/internal/openapi"
	"github.com/memoflow/memoflow/pipeline"
	"github.com/memoflow/memoflow/schemas/events"
	"github.com/memoflow/memoflow/schemas/memo"
	"github.com/memoflow/memoflow/schemas/records"
	"github.com/memoflow/memoflow/stages/eventlog"
	"github.com/memoflow/memoflow/stages/ingest/archive"
	"github.com/memoflow/memoflow/stages/receipts"
)

// apiApp builds a memoflow process's HTTP server the way `memoflow run`
// does: the operations endpoints of internal/httpserver, then the api of
// every stage in the stage table (embedded Kafka, the real ClickHouse). A
// stage added to stageDefs later is included without touching this test.
func apiApp(t *testing.T) (*app, string) {
	t.Helper()
	conn, chcfg := chtest.Conn(t)
	db := chtest.Database(t, conn)
	dir := t.TempDir()
	cmd := &cobra.Command{Use: "run"}
	cfg := bindConfig(cmd)
	if err := cmd.ParseFlags([]string{"--var-dir", dir, "--broker-port", "0", "--clickhouse-addr", chcfg.Addr,
		"--clickhouse-database", db, "--log-level", "error", "--recall-wait", "100ms"}); err != nil {
		t.Fatal(err)
	}
	if err := loadConfig(cmd, cfg); err != nil {
		t.Fatal(err)
	}
	a := newApp(cfg, io.Discard)
	a.generate = true
	t.Cleanup(a.close)
	if err := a.startEmbeddedBroker(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if _, err := a.connectKafka(ctx); err != nil {
		t.Fatal(err)
	}
	for _, d := range stageDefs {
		if d.api == nil {
			continue
		}
		if err := mountAPI(ctx, a, d); err != nil {
			// Reported, and the other stages still checked.
			t.Errorf("stage %s: %v", d.name, err)
		}
	}
	return a, db
}

// mountAPI runs d.api, turning ServeMux's panic on conflicting patterns
// (two stages claiming the same route: memoflow run would crash at start)
// into an error.
func mountAPI(ctx context.Context, a *app, d stageDef) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("registering its routes panicked: %v", r)
		}
	}()
	return d.api(ctx, a)
}

// muxRoute is one registered mux pattern: METHOD (empty: any) and the path as
// OpenAPI writes it.
type muxRoute struct{ method, path string }

// parsePattern turns a ServeMux pattern ("GET /a/{id}/{$}", "/a/", "GET
// /a/{rest...}") into the OpenAPI method and path ("/a/{id}/", "/a/",
// "/a/{rest}").
func parsePattern(p string) muxRoute {
	method, path, ok := strings.Cut(p, " ")
	if !ok {
		method, path = "", p
	}
	path = path[strings.Index(path, "/"):] // drop a host
	path = strings.ReplaceAll(path, "{$}", "")
	path = strings.ReplaceAll(path, "...}", "}")
	return muxRoute{method, path}
}

// muxPatterns lists every pattern registered on mux. ServeMux has no API
// for that, so it reads the mux's index (net/http's routingIndex: every
// pattern is under its segments, or in multis when it ends in a wildcard).
// If a Go release reshapes those internals this fails loudly; the result
// is cross-checked against mux.Handler below.
func muxPatterns(t *testing.T, mux *http.ServeMux) []string {
	t.Helper()
	idx := reflect.ValueOf(mux).Elem().FieldByName("index")
	segs, multis := idx.FieldByName("segments"), idx.FieldByName("multis")
	if !segs.IsValid() || segs.Kind() != reflect.Map || !multis.IsValid() || multis.Kind() != reflect.Slice {
		t.Fatalf("net/http.ServeMux internals changed (no index.segments/multis); update muxPatterns for %s", reflect.TypeOf(mux))
	}
	seen := map[string]bool{}
	add := func(p reflect.Value) {
		if p.Kind() == reflect.Pointer && !p.IsNil() {
			if s := p.Elem().FieldByName("str"); s.IsValid() && s.Kind() == reflect.String {
				seen[s.String()] = true
			}
		}
	}
	for it := segs.MapRange(); it.Next(); {
		for i := 0; i < it.Value().Len(); i++ {
			add(it.Value().Index(i))
		}
	}
	for i := 0; i < multis.Len(); i++ {
		add(multis.Index(i))
	}
	if len(seen) == 0 {
		t.Fatal("read no patterns from net/http.ServeMux; its internals changed: update muxPatterns")
	}
	out := make([]string, 0, len(seen))
	for p := range seen {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// shape is a path with its parameters' names dropped: /a/{id} and
// /a/{messageUUID} are the same route (OpenAPI forbids both in one document).
func shape(path string) string {
	var b strings.Builder
	for {
		i := strings.Index(path, "{")
		if i < 0 {
			b.WriteString(path)
			return b.String()
		}
		j := strings.Index(path[i:], "}")
		b.WriteString(path[:i] + "{}")
		path = path[i+j+1:]
	}
}

// samplePath fills the {params} of an OpenAPI path with example values.
func samplePath(path string) string {
	var b strings.Builder
	for {
		i := strings.Index(path, "{")
		if i < 0 {
			b.WriteString(path)
			return b.String()
		}
		j := strings.Index(path[i:], "}")
		b.WriteString(path[:i])
		b.WriteString("0b0e9f3c-5c1d-4c2e-9a51-3f4b2b8e7a10") // a UUID fits every id here
		path = path[i+j+1:]
	}
}

func loadSpec(t *testing.T) *openapi3.T {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(openapi.Document)
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	return doc
}

// TestOpenAPIRoutes: every route registered on a memoflow process's mux is
// described in openapi.json, and every described operation is routed to
// a pattern of its own method and path (not to a fallback).
//
// To add an endpoint: register it on the mux (in its stage's api) and add
// its path and operation to internal/openapi/openapi.json (then go test
// ./internal/openapi -update-docs copies it to docs/). Nothing else.
func TestOpenAPIRoutes(t *testing.T) {
	a, _ := apiApp(t)
	mux := a.http.Mux
	doc := loadSpec(t)

	described := map[string]string{} // shape -> the document's path
	for path := range doc.Paths.Map() {
		described[shape(path)] = path
	}
	patterns := muxPatterns(t, mux)
	for _, p := range patterns {
		r := parsePattern(p)
		// The enumeration is right: a request to the pattern routes to it.
		method := r.method
		if method == "" {
			method = http.MethodPatch // any method: take one no route of these paths has
		}
		req := httptest.NewRequest(method, samplePath(r.path), nil)
		if _, got := mux.Handler(req); got != p {
			t.Errorf("pattern %q read from the mux, but %s %s routes to %q", p, method, req.URL.Path, got)
		}
		path, ok := described[shape(r.path)]
		if !ok {
			t.Errorf("route %q is registered but path %s is not in openapi.json", p, r.path)
			continue
		}
		item := doc.Paths.Value(path)
		// A method-less pattern is a fallback that answers other methods
		// with an error body: its path must be described, any operation.
		if r.method != "" && item.GetOperation(r.method) == nil {
			t.Errorf("route %q is registered but openapi.json has no %s operation on %s", p, strings.ToLower(r.method), r.path)
		}
	}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			req := httptest.NewRequest(method, samplePath(path), nil)
			_, got := mux.Handler(req)
			r := parsePattern(got)
			if got == "" || r.method == "" || shape(r.path) != shape(path) {
				t.Errorf("openapi.json describes %s %s, but the mux routes it to %q (not registered)", method, path, got)
			}
		}
	}
	t.Logf("%d mux patterns, %d described paths", len(patterns), len(doc.Paths.Map()))
}

// exchange is one real request to the real mux, validated against the
// document: the request (when valid) and always the response, status
// and body included.
type exchange struct {
	name         string
	method, path string // path: the OpenAPI path
	url          string // the request's path and query
	token        string
	contentType  string
	body         []byte
	header       map[string]string
	wantStatus   int
	checkRequest bool // also validate the request (off for requests meant to be refused)
}

func init() {
	// Bodies that are documents, not data: validated as strings.
	for _, ct := range []string{"application/xml", "text/xml", "text/html", "application/x-lzma"} {
		openapi3filter.RegisterBodyDecoder(ct, openapi3filter.FileBodyDecoder)
	}
}

func TestOpenAPIResponses(t *testing.T) {
	a, db := apiApp(t)
	doc := loadSpec(t)
	ctx := context.Background()
	readToken := func(name string) string {
		b, err := os.ReadFile(filepath.Join(a.cfg.VarDir, "demo", name))
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	sender, admin := readToken("sender.token"), readToken("admin.token")
	// A recipient system for the pull API (the demo tokens have none).
	tokens, err := a.tokenStore(true)
	if err != nil {
		t.Fatal(err)
	}
	recipient := auth.NewToken()
	tokens.Put(auth.HashToken(recipient), &auth.Principal{ID: "rs-openapi", Org: "87654321", Roles: []auth.Role{auth.RoleRecipientSystem}})
	conn, err := a.clickhouse(ctx)
	if err != nil {
		t.Fatal(err)
	}

	// Rows for the read APIs, written by the real sinks: events of one
	// message and one receipt of the demo sender.
	const msg = "7e0f0000-0000-4000-8000-00000000abcd"
	now := time.Now().UTC()
	var evRecs []*kgo.Record
	for i, tag := range []events.Tag{events.MemoSendReceived, events.MemoSendValidated, events.MemoAvailableToRecipient} {
		r := events.NewRecord(pipeline.TopicEvents, events.Event{
			Time: now.Add(time.Duration(i-3) * time.Minute), Tag: tag, MessageUUID: msg, TransmissionID: "tx-openapi",
			SenderOrg: demoOrg, SenderSystem: demoSender, Recipient: mustPseudo(t, a).Recipient(events.CVR, "87654321"),
			RecipientSystem: "rs-1", MessageType: "DIGITALPOST", PostType: "VIRKSOMHEDSPOST", Size: 1234, ReceiptStatus: "RECEIVED",
		})
		r.Partition, r.Offset = 0, int64(i)
		evRecs = append(evRecs, r)
	}
	el, err := eventlog.New(conn, eventlog.Config{Database: db}, eventlog.WithRegisterer(prometheus.NewRegistry()))
	if err != nil {
		t.Fatal(err)
	}
	if err := el.Write(ctx, &pipeline.Batch{Records: evRecs}); err != nil {
		t.Fatal(err)
	}
	rc := &records.Receipt{TransmissionID: "0b0e9f3c-5c1d-4c2e-9a51-3f4b2b8e7a11", MessageUUID: msg, TimeStamp: records.TimeStampOf(now),
		ReceiptStatus: records.StatusReceived, Kind: records.KindTechnical, SenderOrg: demoOrg, SenderSystem: demoSender}
	rr := records.NewReceiptRecord(pipeline.TopicReceipts, rc)
	rs, err := receipts.New(conn, receipts.Config{Database: db}, receipts.WithRegisterer(prometheus.NewRegistry()))
	if err != nil {
		t.Fatal(err)
	}
	if err := rs.Write(ctx, &pipeline.Batch{Records: []*kgo.Record{rr}}); err != nil {
		t.Fatal(err)
	}
	receiptID := firstReceiptID(t, a.http.Mux, sender)

	g := memo.NewGenerator(memo.GenConfig{Seed: 5, Now: now.Truncate(24 * time.Hour), SenderCVRs: []string{demoOrg}})
	one, u := g.Next(nil)
	oneUUID := strings.ToLower(u.String())
	var batch bytes.Buffer
	w := archive.NewWriter(&batch, true)
	for i := range 3 {
		m, _ := g.Next(nil)
		if err := w.Add(fmt.Sprintf("m%d.xml", i), m); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	form := url.Values{"dateFrom": {now.Add(-24 * time.Hour).Format(time.DateOnly)}, "messageUUID": {msg}}.Encode()

	for _, x := range []exchange{
		{name: "health", method: "GET", path: "/healthz", url: "/healthz", wantStatus: 200, checkRequest: true},
		{name: "ready", method: "GET", path: "/readyz", url: "/readyz", wantStatus: 200, checkRequest: true},
		{name: "metrics", method: "GET", path: "/metrics", url: "/metrics", wantStatus: 200, checkRequest: true},
		{name: "this document", method: "GET", path: "/openapi.json", url: "/openapi.json", wantStatus: 200, checkRequest: true},
		{name: "whoami", method: "GET", path: "/apis/v1/whoami", url: "/apis/v1/whoami", token: sender, wantStatus: 200, checkRequest: true},
		{name: "whoami without a token", method: "GET", path: "/apis/v1/whoami", url: "/apis/v1/whoami", wantStatus: 401},
		{name: "one MeMo", method: "POST", path: "/apis/v1/memos/", url: "/apis/v1/memos/?memo-message-uuid=" + oneUUID, token: sender,
			contentType: "application/xml", body: one, wantStatus: 201, checkRequest: true},
		{name: "a tar+LZMA batch", method: "POST", path: "/apis/v1/memos/", url: "/apis/v1/memos/", token: sender,
			contentType: "application/x-lzma", body: batch.Bytes(), wantStatus: 201, checkRequest: true},
		{name: "uuid mismatch", method: "POST", path: "/apis/v1/memos", url: "/apis/v1/memos?memo-message-uuid=" + msg, token: sender,
			contentType: "application/xml", body: one, wantStatus: 400, checkRequest: true},
		{name: "wrong content type", method: "POST", path: "/apis/v1/memos/", url: "/apis/v1/memos/", token: sender,
			contentType: "text/plain", body: []byte("x"), wantStatus: 415},
		{name: "not a sender", method: "POST", path: "/apis/v1/memos/", url: "/apis/v1/memos/?memo-message-uuid=" + oneUUID, token: admin,
			contentType: "application/xml", body: one, wantStatus: 403, checkRequest: true},
		{name: "receipt ids", method: "GET", path: "/apis/v1/receipts/", url: "/apis/v1/receipts/?size=5", token: sender, wantStatus: 200, checkRequest: true},
		{name: "receipt ids, no slash", method: "GET", path: "/apis/v1/receipts", url: "/apis/v1/receipts", token: sender, wantStatus: 200, checkRequest: true},
		{name: "one receipt", method: "GET", path: "/apis/v1/receipts/{id}", url: "/apis/v1/receipts/" + receiptID, token: sender, wantStatus: 200, checkRequest: true},
		{name: "unknown receipt", method: "GET", path: "/apis/v1/receipts/{id}", url: "/apis/v1/receipts/0b0e9f3c-5c1d-4c2e-9a51-3f4b2b8e7a10", token: sender, wantStatus: 404, checkRequest: true},
		{name: "bad receipt id", method: "DELETE", path: "/apis/v1/receipts/{id}", url: "/apis/v1/receipts/nope", token: sender, wantStatus: 400},
		{name: "receipts bulk", method: "GET", path: "/apis/v1/receipts-bulk/", url: "/apis/v1/receipts-bulk/?receiptStatus=RECEIVED", token: sender, wantStatus: 200, checkRequest: true},
		{name: "receipts bulk, bad filter", method: "GET", path: "/apis/v1/receipts-bulk", url: "/apis/v1/receipts-bulk?receiptStatus=LOST", token: sender, wantStatus: 400},
		{name: "events", method: "GET", path: "/apis/v1/events", url: "/apis/v1/events?eventTag=MEMO_SEND_RECEIVED,MEMO_SEND_VALIDATED&size=10", token: admin, wantStatus: 200, checkRequest: true},
		{name: "events as CSV", method: "GET", path: "/apis/v1/events", url: "/apis/v1/events?format=csv", token: admin, wantStatus: 200, checkRequest: true},
		{name: "events by form", method: "POST", path: "/apis/v1/events", url: "/apis/v1/events", token: admin,
			contentType: "application/x-www-form-urlencoded", body: []byte(form), wantStatus: 200, checkRequest: true},
		{name: "events for a sender role", method: "GET", path: "/apis/v1/events", url: "/apis/v1/events", token: sender, wantStatus: 403, checkRequest: true},
		{name: "events, unknown parameter", method: "GET", path: "/apis/v1/events", url: "/apis/v1/events?colour=red", token: admin, wantStatus: 400},
		{name: "delivery proof", method: "GET", path: "/apis/v1/events/{messageUUID}/proof", url: "/apis/v1/events/" + msg + "/proof", token: admin, wantStatus: 200, checkRequest: true},
		{name: "printable proof", method: "GET", path: "/apis/v1/events/{messageUUID}/proof", url: "/apis/v1/events/" + msg + "/proof?format=html", token: admin, wantStatus: 200, checkRequest: true},
		{name: "proof of an unknown message", method: "GET", path: "/apis/v1/events/{messageUUID}/proof", url: "/apis/v1/events/7e0f0000-0000-4000-8000-000000000000/proof", token: admin, wantStatus: 404, checkRequest: true},
		{name: "statistics", method: "GET", path: "/apis/v1/statistics", url: "/apis/v1/statistics?dimensions=day,tag", token: admin, wantStatus: 200, checkRequest: true},
		{name: "recall (undecided: no schedule stage runs here)", method: "POST", path: "/apis/v1/memos/{messageUUID}/recall", url: "/apis/v1/memos/" + oneUUID + "/recall", token: sender, wantStatus: 202, checkRequest: true},
		{name: "recall, bad uuid", method: "POST", path: "/apis/v1/memos/{messageUUID}/recall", url: "/apis/v1/memos/nope/recall", token: sender, wantStatus: 400, checkRequest: true},
		{name: "pull: the outbox", method: "GET", path: "/apis/v1/memos/", url: "/apis/v1/memos/?size=10", token: recipient, wantStatus: 200, checkRequest: true},
		{name: "pull: an unknown message", method: "GET", path: "/apis/v1/memos/{messageUUID}", url: "/apis/v1/memos/" + oneUUID, token: recipient, wantStatus: 404, checkRequest: true},
		{name: "pull: delete an unknown message", method: "DELETE", path: "/apis/v1/memos/{messageUUID}", url: "/apis/v1/memos/" + oneUUID, token: recipient, wantStatus: 404, checkRequest: true},
		{name: "pull as a sender", method: "GET", path: "/apis/v1/memos/", url: "/apis/v1/memos/", token: sender, wantStatus: 403, checkRequest: true},
		{name: "admin: organisations", method: "GET", path: "/apis/v1/admin/organisations", url: "/apis/v1/admin/organisations", token: admin, wantStatus: 200, checkRequest: true},
		{name: "admin: no token", method: "GET", path: "/apis/v1/admin/organisations", url: "/apis/v1/admin/organisations", wantStatus: 401},
		{name: "admin: another organisation", method: "GET", path: "/apis/v1/admin/organisations/{org}", url: "/apis/v1/admin/organisations/99999999", token: admin, wantStatus: 403, checkRequest: true},
		{name: "admin: operators only", method: "GET", path: "/apis/v1/admin/systems", url: "/apis/v1/admin/systems", token: admin, wantStatus: 403, checkRequest: true},
		{name: "statistics of another organisation", method: "GET", path: "/apis/v1/statistics", url: "/apis/v1/statistics?senderOrganisation=99999999", token: admin, wantStatus: 403, checkRequest: true},
	} {
		t.Run(x.name, func(t *testing.T) { x.run(t, doc, a.http.Mux) })
	}
}

func (x exchange) run(t *testing.T, doc *openapi3.T, mux http.Handler) {
	t.Helper()
	newReq := func() *http.Request {
		req := httptest.NewRequest(x.method, x.url, bytes.NewReader(x.body))
		if x.token != "" {
			req.Header.Set("Authorization", "Bearer "+x.token)
		}
		if x.contentType != "" {
			req.Header.Set("Content-Type", x.contentType)
		}
		for k, v := range x.header {
			req.Header.Set(k, v)
		}
		return req
	}
	item := doc.Paths.Value(x.path)
	if item == nil || item.GetOperation(x.method) == nil {
		t.Fatalf("openapi.json has no %s %s", x.method, x.path)
	}
	op := item.GetOperation(x.method)
	params := map[string]string{}
	if strings.Contains(x.path, "{") {
		// The one path parameter of these paths is the segment at its place.
		ps, us := strings.Split(x.path, "/"), strings.Split(strings.SplitN(x.url, "?", 2)[0], "/")
		for i, s := range ps {
			if strings.HasPrefix(s, "{") && i < len(us) {
				params[strings.Trim(s, "{}")] = us[i]
			}
		}
	}
	req := newReq()
	in := &openapi3filter.RequestValidationInput{
		Request: req, PathParams: params,
		Route:   &routers.Route{Spec: doc, Path: x.path, PathItem: item, Method: x.method, Operation: op},
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, IncludeResponseStatus: true},
	}
	if x.checkRequest {
		if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil {
			t.Fatalf("the request does not match openapi.json: %v", err)
		}
		in.Request = newReq() // validation read the body
	}
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, in.Request)
	if rec.Code != x.wantStatus {
		t.Fatalf("%s %s answered %d, want %d: %s", x.method, x.url, rec.Code, x.wantStatus, rec.Body.String())
	}
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in, Status: rec.Code, Header: rec.Header(),
		Body:    io.NopCloser(bytes.NewReader(rec.Body.Bytes())),
		Options: &openapi3filter.Options{IncludeResponseStatus: true},
	}
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		body := rec.Body.String()
		if len(body) > 600 {
			body = body[:600] + "…"
		}
		t.Fatalf("the %d answer does not match openapi.json: %v\nbody: %s", rec.Code, err, body)
	}
}

// firstReceiptID lists the sender's receipts and returns the first id.
func firstReceiptID(t *testing.T, mux http.Handler, token string) string {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		req := httptest.NewRequest("GET", "/apis/v1/receipts/", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, req)
		var page receipts.PagingResultUUID
		if rec.Code == 200 && json.Unmarshal(rec.Body.Bytes(), &page) == nil && len(page.Content) > 0 {
			return page.Content[0]
		}
	}
	t.Fatal("the written receipt never appeared in GET /apis/v1/receipts/")
	return ""
}

func mustPseudo(t *testing.T, a *app) *events.Pseudonymizer {
	t.Helper()
	p, err := a.pseudonymizer(true)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
