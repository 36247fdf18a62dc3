package receipts

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/encoding/json"

	"github.com/memoflow/memoflow/internal/auth"
	"github.com/memoflow/memoflow/schemas/records"
)

// perSender receipts each of sys-0 and sys-1 hold in the API fixture.
const perSender = 45

type apiFixture struct {
	fixture
	srv    *httptest.Server
	tokens map[string]string // principal id -> token
	g      gen
}

// newAPIFixture stores 2*perSender receipts (sys-0 has the even ones of
// gen{senders: 2}, sys-1 the odd ones) and serves them.
func newAPIFixture(t *testing.T) *apiFixture {
	t.Helper()
	f := newFixture(t)
	g := gen{senders: 2}
	f.write(t, f.sink(t), g.records(0, 0, 0, 2*perSender, 1))
	return serve(t, f, f.conn, g)
}

func serve(t *testing.T, f fixture, conn driver.Conn, g gen) *apiFixture {
	t.Helper()
	store, err := NewStore(conn, StoreConfig{Database: f.db, QueryTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(store.Close)
	tokens := auth.NewMemStore()
	af := &apiFixture{fixture: f, g: g, tokens: map[string]string{}}
	for _, p := range []auth.Principal{
		{ID: "sys-0", Org: "10000000", Roles: []auth.Role{auth.RoleSender}},
		{ID: "sys-1", Org: "10000001", Roles: []auth.Role{auth.RoleSender}},
		{ID: "admin", Org: "10000000", Roles: []auth.Role{auth.RoleSystemAdmin}},
	} {
		tok := auth.NewToken()
		tokens.Put(auth.HashToken(tok), &p)
		af.tokens[p.ID] = tok
	}
	api, err := NewAPI(store, tokens, quietLogger(), WithRegisterer(prometheus.NewRegistry()))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	api.Register(mux)
	af.srv = httptest.NewServer(mux)
	t.Cleanup(af.srv.Close)
	return af
}

// do sends a request as principal who ("" for none) and returns the status,
// the body and the headers.
func (af *apiFixture) do(t *testing.T, who, method, path string) (int, []byte, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, af.srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if who != "" {
		req.Header.Set("Authorization", "Bearer "+af.tokens[who])
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
	return resp.StatusCode, b, resp.Header
}

func (af *apiFixture) list(t *testing.T, who, query string) PagingResultUUID {
	t.Helper()
	status, b, _ := af.do(t, who, "GET", "/apis/v1/receipts/"+query)
	if status != http.StatusOK {
		t.Fatalf("GET /apis/v1/receipts/%s: %d %s", query, status, b)
	}
	var p PagingResultUUID
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatal(err)
	}
	return p
}

func (af *apiFixture) bulk(t *testing.T, who, query string) ReceiptSearchResult {
	t.Helper()
	status, b, _ := af.do(t, who, "GET", "/apis/v1/receipts-bulk/"+query)
	if status != http.StatusOK {
		t.Fatalf("GET /apis/v1/receipts-bulk/%s: %d %s", query, status, b)
	}
	var r ReceiptSearchResult
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

// allIDs lists every live id of who, page by page.
func (af *apiFixture) allIDs(t *testing.T, who string) []string {
	t.Helper()
	var out []string
	for page := 0; ; page++ {
		p := af.list(t, who, fmt.Sprintf("?page=%d&size=1000", page))
		out = append(out, p.Content...)
		if p.Next == "" {
			return out
		}
	}
}

// idsOf returns the ids of generated receipts i in order, for which keep is true.
func (af *apiFixture) idsOf(n int, keep func(i int, rc *records.Receipt) bool) []string {
	var out []string
	for i := range n {
		if rc := af.g.receipt(i); keep(i, rc) {
			out = append(out, ID(rc))
		}
	}
	return out
}

func errorCode(t *testing.T, b []byte) string {
	t.Helper()
	var e struct {
		ErrorCode    string `json:"errorCode"`
		ErrorMessage string `json:"errorMessage"`
	}
	if err := json.Unmarshal(b, &e); err != nil || e.ErrorCode == "" || e.ErrorMessage == "" {
		t.Fatalf("not an error body: %s", b)
	}
	return e.ErrorCode
}

func TestAPIList(t *testing.T) {
	af := newAPIFixture(t)
	want := af.idsOf(2*perSender, func(i int, _ *records.Receipt) bool { return i%2 == 0 }) // sys-0's, oldest first

	p0 := af.list(t, "sys-0", "")
	if p0.Size != DefaultPageSize || p0.Number != 0 || p0.TotalElements != perSender || p0.TotalPages != 3 ||
		!slices.Equal(p0.Content, want[:20]) || p0.Previous != "" || p0.Next != "/apis/v1/receipts/?page=1" {
		t.Fatalf("first page %+v", p0)
	}
	var got []string
	for _, tc := range []struct {
		query     string
		n         int
		next, prv string
	}{
		{"?page=0&size=20", 20, "/apis/v1/receipts/?page=1&size=20", ""},
		{"?page=1&size=20", 20, "/apis/v1/receipts/?page=2&size=20", "/apis/v1/receipts/?page=0&size=20"},
		{"?page=2&size=20", 5, "", "/apis/v1/receipts/?page=1&size=20"},
	} {
		p := af.list(t, "sys-0", tc.query)
		if len(p.Content) != tc.n || p.Next != tc.next || p.Previous != tc.prv || p.TotalElements != perSender || p.TotalPages != 3 {
			t.Fatalf("%s: %+v", tc.query, p)
		}
		got = append(got, p.Content...)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("pages together:\n got %v\nwant %v", got, want)
	}
	if p := af.list(t, "sys-0", "?page=7&size=20"); len(p.Content) != 0 || p.Content == nil || p.TotalElements != perSender {
		t.Fatalf("page past the end: %+v", p)
	}
	if p := af.list(t, "sys-0", "?size=1000"); len(p.Content) != perSender || p.TotalPages != 1 || p.Next != "" {
		t.Fatalf("one big page: %d ids, %+v", len(p.Content), p)
	}
	// Without the trailing slash too.
	// NgDP's Basic <base64(systemId:token)> works as well as Bearer.
	req, _ := http.NewRequest("GET", af.srv.URL+"/apis/v1/receipts/?size=1", nil)
	req.SetBasicAuth("sys-0", af.tokens["sys-0"])
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("Basic auth: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	for _, path := range []string{"/apis/v1/receipts?size=1", "/apis/v1/receipts-bulk?size=1"} {
		if status, b, _ := af.do(t, "sys-0", "GET", path); status != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, status, b)
		}
	}
}

func TestAPIGetAndDelete(t *testing.T) {
	af := newAPIFixture(t)
	own := af.idsOf(2*perSender, func(i int, _ *records.Receipt) bool { return i%2 == 0 })
	theirs := af.idsOf(2*perSender, func(i int, _ *records.Receipt) bool { return i%2 == 1 })

	// One receipt, in NgDP's shape.
	status, b, h := af.do(t, "sys-0", "GET", "/apis/v1/receipts/"+own[1])
	if status != http.StatusOK || h.Get("Content-Type") != "application/json" {
		t.Fatalf("GET: %d %s", status, b)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	rc := af.g.receipt(2)
	if got["id"] != own[1] || got["transmissionId"] != rc.TransmissionID || got["messageUUID"] != rc.MessageUUID ||
		got["receiptStatus"] != records.StatusInvalid || got["receiptType"] != records.KindTechnical ||
		got["timeStamp"] != rc.TimeStamp || got["errorCode"] != "MEMO_SCHEMA" || got["senderSystem"] != nil {
		t.Fatalf("GET body %s", b)
	}
	// Upper-case ids are the same id.
	if status, _, _ := af.do(t, "sys-0", "GET", "/apis/v1/receipts/"+strings.ToUpper(own[1])); status != http.StatusOK {
		t.Fatalf("GET upper-case id: %d", status)
	}

	// delete=false leaves it; delete=true hands it out once.
	if status, _, _ := af.do(t, "sys-0", "GET", "/apis/v1/receipts/"+own[1]+"?delete=false"); status != http.StatusOK {
		t.Fatalf("GET delete=false: %d", status)
	}
	if status, b2, _ := af.do(t, "sys-0", "GET", "/apis/v1/receipts/"+own[1]+"?delete=true"); status != http.StatusOK || string(b2) != string(b) {
		t.Fatalf("GET delete=true: %d %s", status, b2)
	}
	status, b, _ = af.do(t, "sys-0", "GET", "/apis/v1/receipts/"+own[1])
	if status != http.StatusNotFound || errorCode(t, b) != CodeNotFound {
		t.Fatalf("GET after delete=true: %d %s", status, b)
	}

	// DELETE: 204, then 404.
	if status, b, _ := af.do(t, "sys-0", "DELETE", "/apis/v1/receipts/"+own[2]); status != http.StatusNoContent || len(b) != 0 {
		t.Fatalf("DELETE: %d %s", status, b)
	}
	if status, b, _ := af.do(t, "sys-0", "DELETE", "/apis/v1/receipts/"+own[2]); status != http.StatusNotFound || errorCode(t, b) != CodeNotFound {
		t.Fatalf("DELETE again: %d %s", status, b)
	}
	if status, b, _ := af.do(t, "sys-0", "DELETE", "/apis/v1/receipts/"+own[2]); status != http.StatusNotFound || errorCode(t, b) != CodeNotFound {
		t.Fatalf("DELETE again: %d %s", status, b)
	}
	// Unknown ids and another sender's: 404, and theirs stays theirs.
	for _, id := range []string{theirs[0], "00000000-0000-4000-8000-000000000000"} {
		for _, method := range []string{"GET", "DELETE"} {
			status, b, _ := af.do(t, "sys-0", method, "/apis/v1/receipts/"+id)
			if status != http.StatusNotFound || errorCode(t, b) != CodeNotFound {
				t.Fatalf("%s %s as sys-0: %d %s", method, id, status, b)
			}
		}
	}
	if status, _, _ := af.do(t, "sys-0", "GET", "/apis/v1/receipts/"+theirs[0]+"?delete=true"); status != http.StatusNotFound {
		t.Fatalf("GET delete=true of another sender's receipt: %d", status)
	}
	if ids := af.allIDs(t, "sys-1"); !slices.Equal(ids, theirs) {
		t.Fatalf("sys-1 lost receipts to sys-0's requests: %d of %d", len(ids), len(theirs))
	}

	// The list and the bulk no longer hold the two deleted ones.
	wantLive := slices.Concat(own[:1], own[3:])
	if ids := af.allIDs(t, "sys-0"); !slices.Equal(ids, wantLive) {
		t.Fatalf("list after deletions:\n got %v\nwant %v", ids, wantLive)
	}
	if p := af.list(t, "sys-0", ""); p.TotalElements != perSender-2 {
		t.Fatalf("totalElements %d, want %d", p.TotalElements, perSender-2)
	}
	if r := af.bulk(t, "sys-0", "?size=1000"); r.TotalElements != perSender-2 || len(r.Receipts) != perSender-2 {
		t.Fatalf("bulk after deletions: %d of %d", len(r.Receipts), r.TotalElements)
	}

	// Deletions survive merges, and a replay of the records (a new sink
	// after a crash) does not bring them back.
	if err := af.conn.Exec(context.Background(), "OPTIMIZE TABLE "+af.db+".receipts FINAL"); err != nil {
		t.Fatal(err)
	}
	af.write(t, af.sink(t), af.g.records(0, 0, 0, 2*perSender, 1))
	if ids := af.allIDs(t, "sys-0"); !slices.Equal(ids, wantLive) {
		t.Fatalf("list after merge and replay: %d ids, want %d", len(ids), len(wantLive))
	}
	if status, _, _ := af.do(t, "sys-0", "GET", "/apis/v1/receipts/"+own[2]); status != http.StatusNotFound {
		t.Fatalf("deleted receipt is back after merge and replay: %d", status)
	}
}

func TestAPIBulkFilters(t *testing.T) {
	af := newAPIFixture(t)
	sys0 := func(keep func(i int, rc *records.Receipt) bool) []string {
		return af.idsOf(2*perSender, func(i int, rc *records.Receipt) bool { return i%2 == 0 && keep(i, rc) })
	}
	since := base.Add(30*time.Second + 500*time.Millisecond) // between receipts 30 and 31
	for _, tc := range []struct {
		name, query string
		want        []string
	}{
		{"all", "", sys0(func(int, *records.Receipt) bool { return true })},
		{"transmissionId", "transmissionId=tx-1", sys0(func(i int, _ *records.Receipt) bool { return i/10 == 1 })},
		{"messageUUID", "messageUUID=" + af.g.receipt(42).MessageUUID, sys0(func(i int, _ *records.Receipt) bool { return i == 42 })},
		{"another sender's messageUUID", "messageUUID=" + af.g.receipt(43).MessageUUID, nil},
		{"receiptStatus", "receiptStatus=COMPLETED", sys0(func(_ int, rc *records.Receipt) bool { return rc.ReceiptStatus == records.StatusCompleted })},
		{"receiptType", "receiptType=BUSINESS", sys0(func(_ int, rc *records.Receipt) bool { return rc.Kind == records.KindBusiness })},
		{"since, RFC 3339 with milliseconds", "since=" + url.QueryEscape(since.Format(time.RFC3339Nano)),
			sys0(func(i int, _ *records.Receipt) bool { return i > 30 })},
		{"since, with an offset", "since=" + url.QueryEscape(since.In(time.FixedZone("CET", 3600)).Format(time.RFC3339Nano)),
			sys0(func(i int, _ *records.Receipt) bool { return i > 30 })},
		{"since, exactly a receipt's time", "since=" + url.QueryEscape(base.Add(30*time.Second).Format(time.RFC3339)),
			sys0(func(i int, _ *records.Receipt) bool { return i >= 30 })},
		{"since, a date", "since=" + base.AddDate(0, 0, 1).Format(time.DateOnly),
			sys0(func(i int, _ *records.Receipt) bool { return base.Add(time.Duration(i)*time.Second).Day() == 1 })},
		{"combined", "receiptType=TECHNICAL&transmissionId=tx-2&receiptStatus=INVALID",
			sys0(func(i int, rc *records.Receipt) bool { return i/10 == 2 && rc.ReceiptStatus == records.StatusInvalid })},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for page := 0; ; page++ {
				r := af.bulk(t, "sys-0", fmt.Sprintf("?size=7&page=%d&%s", page, tc.query))
				if r.CurrentPage != page || r.ElementsOnPage != len(r.Receipts) || r.TotalElements != uint64(len(tc.want)) {
					t.Fatalf("page %d: %+v", page, r)
				}
				for _, raw := range r.Receipts {
					var s Served
					if err := json.Unmarshal(raw, &s); err != nil {
						t.Fatal(err)
					}
					got = append(got, s.ID)
				}
				if r.Next == "" {
					break
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("ids:\n got %v\nwant %v", got, tc.want)
			}
		})
	}
	// A bulk receipt is the stored receipt plus its id.
	r := af.bulk(t, "sys-0", "?messageUUID="+af.g.receipt(4).MessageUUID)
	_, one, _ := af.do(t, "sys-0", "GET", "/apis/v1/receipts/"+ID(af.g.receipt(4)))
	if len(r.Receipts) != 1 || string(r.Receipts[0]) != string(one) {
		t.Fatalf("bulk receipt %s, single %s", r.Receipts, one)
	}
}

func TestAPIErrors(t *testing.T) {
	af := newAPIFixture(t)
	id := ID(af.g.receipt(0))
	for _, tc := range []struct {
		name, who, method, path string
		status                  int
		code                    string
	}{
		{"no token", "", "GET", "/apis/v1/receipts/", 401, auth.CodeMissing},
		{"not a sender", "admin", "GET", "/apis/v1/receipts/", 403, auth.CodeForbidden},
		{"not a sender, bulk", "admin", "GET", "/apis/v1/receipts-bulk/", 403, auth.CodeForbidden},
		{"not a sender, delete", "admin", "DELETE", "/apis/v1/receipts/" + id, 403, auth.CodeForbidden},
		{"negative page", "sys-0", "GET", "/apis/v1/receipts/?page=-1", 400, CodeBadParameter},
		{"page not a number", "sys-0", "GET", "/apis/v1/receipts/?page=one", 400, CodeBadParameter},
		{"page too far", "sys-0", "GET", "/apis/v1/receipts/?page=10000001", 400, CodeBadParameter},
		{"size 0", "sys-0", "GET", "/apis/v1/receipts/?size=0", 400, CodeBadParameter},
		{"size above the maximum", "sys-0", "GET", "/apis/v1/receipts-bulk/?size=1001", 400, CodeBadParameter},
		{"page twice", "sys-0", "GET", "/apis/v1/receipts/?page=0&page=1", 400, CodeBadParameter},
		{"malformed query", "sys-0", "GET", "/apis/v1/receipts/?page=%zz", 400, CodeBadParameter},
		{"delete neither true nor false", "sys-0", "GET", "/apis/v1/receipts/" + id + "?delete=yes", 400, CodeBadParameter},
		{"unknown status", "sys-0", "GET", "/apis/v1/receipts-bulk/?receiptStatus=LOST", 400, CodeBadParameter},
		{"status in lower case", "sys-0", "GET", "/apis/v1/receipts-bulk/?receiptStatus=received", 400, CodeBadParameter},
		{"unknown type", "sys-0", "GET", "/apis/v1/receipts-bulk/?receiptType=SOCIAL", 400, CodeBadParameter},
		{"since not a time", "sys-0", "GET", "/apis/v1/receipts-bulk/?since=yesterday", 400, CodeBadParameter},
		{"since before 1970", "sys-0", "GET", "/apis/v1/receipts-bulk/?since=1969-12-31", 400, CodeBadParameter},
		{"empty transmissionId", "sys-0", "GET", "/apis/v1/receipts-bulk/?transmissionId=", 400, CodeBadParameter},
		{"messageUUID too long", "sys-0", "GET", "/apis/v1/receipts-bulk/?messageUUID=" + strings.Repeat("a", 129), 400, CodeBadParameter},
		{"filter on the id list", "sys-0", "GET", "/apis/v1/receipts/?receiptStatus=RECEIVED", 400, CodeUnknownParameter},
		{"misspelt filter", "sys-0", "GET", "/apis/v1/receipts-bulk/?receiptstatus=RECEIVED", 400, CodeUnknownParameter},
		{"parameter on DELETE", "sys-0", "DELETE", "/apis/v1/receipts/" + id + "?delete=true", 400, CodeUnknownParameter},
		{"id not a UUID", "sys-0", "GET", "/apis/v1/receipts/42", 400, CodeBadID},
		{"id without dashes", "sys-0", "DELETE", "/apis/v1/receipts/" + strings.ReplaceAll(id, "-", ""), 400, CodeBadID},
		{"POST to the list", "sys-0", "POST", "/apis/v1/receipts/", 405, CodeMethodNotAllowed},
		{"PUT a receipt", "sys-0", "PUT", "/apis/v1/receipts/" + id, 405, CodeMethodNotAllowed},
		{"DELETE the bulk", "sys-0", "DELETE", "/apis/v1/receipts-bulk/", 405, CodeMethodNotAllowed},
		{"below a receipt", "sys-0", "GET", "/apis/v1/receipts/" + id + "/x", 404, CodeNotFound},
		{"below the bulk", "sys-0", "GET", "/apis/v1/receipts-bulk/x", 404, CodeNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, b, h := af.do(t, tc.who, tc.method, tc.path)
			if status != tc.status || errorCode(t, b) != tc.code {
				t.Fatalf("%s %s: %d %s, want %d %s", tc.method, tc.path, status, b, tc.status, tc.code)
			}
			if status == 405 && h.Get("Allow") == "" {
				t.Error("405 without Allow")
			}
			if want, ok := CodeTable[tc.code]; ok && want != status {
				t.Errorf("status %d, but the code table says %d", status, want)
			}
		})
	}
}

// TestAPIStoreFailures: what the store cannot answer is 503 (retry) or
// 500 (a setup fault), in the API's error shape.
func TestAPIStoreFailures(t *testing.T) {
	f := newFixture(t)
	t.Run("ClickHouse unreachable", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		down, err := clickhouse.Open(&clickhouse.Options{Addr: []string{addr}, DialTimeout: 200 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		defer down.Close()
		af := serve(t, f, down, gen{})
		status, b, h := af.do(t, "sys-0", "GET", "/apis/v1/receipts/")
		if status != 503 || errorCode(t, b) != CodeUnavailable || h.Get("Retry-After") == "" {
			t.Fatalf("%d %s (Retry-After %q), want 503 %s", status, b, h.Get("Retry-After"), CodeUnavailable)
		}
	})
	t.Run("table missing", func(t *testing.T) {
		af := serve(t, f, f.conn, gen{})
		if err := f.conn.Exec(context.Background(), "DROP TABLE "+f.db+".receipts"); err != nil {
			t.Fatal(err)
		}
		status, b, _ := af.do(t, "sys-0", "GET", "/apis/v1/receipts-bulk/")
		if status != 500 || errorCode(t, b) != CodeInternal || strings.Contains(string(b), f.db) {
			t.Fatalf("%d %s, want 500 %s without internals", status, b, CodeInternal)
		}
	})
}

// TestDeleteGroupCommit: concurrent deletions share INSERTs, and each
// answer still means "stored".
func TestDeleteGroupCommit(t *testing.T) {
	f := newFixture(t)
	g := gen{}
	const n = 40
	f.write(t, f.sink(t), g.records(0, 0, 0, n, 1))
	counting := &lossyConn{Conn: f.conn}
	af := serve(t, f, counting, g)
	var wg sync.WaitGroup
	statuses := make([]int, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			method, path := "DELETE", "/apis/v1/receipts/"+ID(g.receipt(i))
			if i%2 == 1 {
				method, path = "GET", path+"?delete=true"
			}
			statuses[i], _, _ = af.do(t, "sys-0", method, path)
		}()
	}
	wg.Wait()
	for i, s := range statuses {
		if want := map[bool]int{true: 204, false: 200}[i%2 == 0]; s != want {
			t.Fatalf("request %d: %d, want %d", i, s, want)
		}
	}
	if ids := af.allIDs(t, "sys-0"); len(ids) != 0 {
		t.Fatalf("%d receipts left after deleting all", len(ids))
	}
	if counting.inserts >= n {
		t.Fatalf("%d deletions made %d INSERTs; they should share them", n, counting.inserts)
	}
	t.Logf("%d deletions, %d INSERTs", n, counting.inserts)
	if marks := f.uint64(t, "SELECT count() FROM "+f.db+".receipts WHERE deleted = 1"); marks != n {
		t.Fatalf("%d deletion marks, want %d", marks, n)
	}
}
