package ingest

import (
	"bytes"
	"mime/multipart"

	"context"
	"fmt"
	"github.com/memoflow/memoflow/stages/ingest/archive"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/encoding/json"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/memoflow/memoflow/internal/auth"
	"github.com/memoflow/memoflow/internal/blob"
	"github.com/memoflow/memoflow/pipeline"
	"github.com/memoflow/memoflow/schemas/memo"
	"github.com/memoflow/memoflow/schemas/records"
)

const testOrg = "12345678"

// memoXML is a minimal valid MeMo 1.2 from sender org, with uuid.
func memoXML(uuid, org string) string {
	return `<?xml version="1.0" encoding="UTF-8"?>
<memo:Message xmlns:memo="https://DigitalPost.dk/MeMo-1" memoVersion="1.2">
<memo:MessageHeader><memo:messageType>DIGITALPOST</memo:messageType><memo:messageUUID>` + uuid + `</memo:messageUUID>
<memo:label>Test</memo:label><memo:Sender><memo:senderID>` + org + `</memo:senderID><memo:idType>CVR</memo:idType><memo:label>Kommunen</memo:label></memo:Sender>
<memo:Recipient><memo:recipientID>2211771212</memo:recipientID><memo:idType>CPR</memo:idType></memo:Recipient></memo:MessageHeader>
<memo:MessageBody><memo:createdDateTime>2024-05-03T12:00:00Z</memo:createdDateTime><memo:MainDocument><memo:File>
<memo:encodingFormat>application/pdf</memo:encodingFormat><memo:filename>a.pdf</memo:filename><memo:language>da</memo:language>
<memo:content>VGhpcyBpcyBhIHRlc3Q=</memo:content></memo:File></memo:MainDocument></memo:MessageBody></memo:Message>`
}

type fixture struct {
	srv    *httptest.Server
	token  string
	other  string // token of a system of another organisation
	kafka  string
	client *kgo.Client
}

func newFixture(t *testing.T, cfgMut ...func(*Config)) *fixture {
	return newFixtureOpts(t, nil, cfgMut...)
}

func newFixtureOpts(t *testing.T, opts []Option, cfgMut ...func(*Config)) *fixture {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, pipeline.TopicIngest, pipeline.TopicReceipts))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	store := auth.NewMemStore()
	f := &fixture{token: auth.NewToken(), other: auth.NewToken(), kafka: c.ListenAddrs()[0], client: cl}
	store.Put(auth.HashToken(f.token), &auth.Principal{ID: "sys-a", Org: testOrg, Roles: []auth.Role{auth.RoleSender}})
	store.Put(auth.HashToken(f.other), &auth.Principal{ID: "sys-b", Org: "87654321", Roles: []auth.Role{auth.RoleSender}})
	cfg := Config{MaxShipmentBytes: 2 << 20, RatePerSecond: 1000, RateBurst: 1000, OverloadBytes: 64 << 20, AckTimeout: 10 * time.Second}
	for _, m := range cfgMut {
		m(&cfg)
	}
	api, err := New(cfg, store, cl, slog.New(slog.NewTextHandler(io.Discard, nil)), opts...)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	api.Register(mux)
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fixture) post(t *testing.T, token, uuid, ctype string, body io.Reader) (int, records.Receipt, http.Header) {
	t.Helper()
	url := f.srv.URL + "/apis/v1/memos/"
	if uuid != "" {
		url += "?memo-message-uuid=" + uuid
	}
	req, _ := http.NewRequest("POST", url, body)
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var rc records.Receipt
	b, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(b, &rc)
	return resp.StatusCode, rc, resp.Header
}

// ingested returns the memo.ingest records (waiting up to d for want).
func (f *fixture) ingested(t *testing.T, want int, d time.Duration) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(f.kafka), kgo.ConsumeTopics(pipeline.TopicIngest), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var out []*kgo.Record
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	for len(out) < want && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) { out = append(out, r) })
	}
	return out
}

func TestSubmitOne(t *testing.T) {
	f := newFixture(t)
	uuid := "8c2ea15d-61fb-4ba9-9366-42f8b194c114"
	status, rc, _ := f.post(t, f.token, uuid, "application/xml", strings.NewReader(memoXML(uuid, testOrg)))
	if status != http.StatusCreated || rc.ReceiptStatus != records.StatusReceived || rc.TransmissionID == "" || rc.MessageUUID != uuid {
		t.Fatalf("status %d receipt %+v", status, rc)
	}
	recs := f.ingested(t, 1, 5*time.Second)
	if len(recs) != 1 || string(recs[0].Key) != uuid {
		t.Fatalf("memo.ingest holds %d records", len(recs))
	}
	m := records.ReadIngestMeta(recs[0])
	if m.SenderOrg != testOrg || m.SenderSystem != "sys-a" || m.TransmissionID != rc.TransmissionID || len(m.ContentSHA256) != 64 {
		t.Fatalf("ingest meta %+v", m)
	}
	if string(recs[0].Value) != memoXML(uuid, testOrg) {
		t.Fatal("the MeMo was altered in transit")
	}
}

func TestSubmitRejections(t *testing.T) {
	f := newFixture(t)
	uuid := "8c2ea15d-61fb-4ba9-9366-42f8b194c114"
	other := "0b1e4c8e-2c3d-4f5a-9b8c-7d6e5f4a3b2c"
	good := memoXML(uuid, testOrg)
	big := strings.Repeat(" ", 3<<20)
	for _, tc := range []struct {
		name, token, uuid, ctype, body string
		status                         int
		code, receipt                  string
	}{
		{"no token", "", uuid, "application/xml", good, 401, auth.CodeMissing, ""},
		{"wrong token", "mf_x", uuid, "application/xml", good, 401, auth.CodeInvalid, ""},
		{"content type", f.token, uuid, "text/plain", good, 415, CodeContentType, records.StatusInvalid},
		{"empty body", f.token, uuid, "application/xml", "", 400, CodeEmpty, records.StatusInvalid},
		{"no uuid", f.token, "", "application/xml", good, 400, CodeUUIDMissing, records.StatusInvalid},
		{"bad uuid", f.token, "nope", "application/xml", good, 400, CodeUUIDInvalid, records.StatusInvalid},
		{"uuid mismatch", f.token, other, "application/xml", good, 400, CodeUUIDMismatch, records.StatusInvalid},
		{"sender of another org", f.other, uuid, "application/xml", good, 403, CodeSenderNotAllowed, records.StatusNotAllowed},
		{"not well-formed", f.token, uuid, "application/xml", good[:len(good)-20], 400, "XML_TRUNCATED", records.StatusInvalid},
		{"doctype", f.token, uuid, "application/xml", `<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]>` + good[strings.Index(good, "<memo:Message"):], 400, "XML_ENTITY_DECLARATION", records.StatusInvalid},
		{"invalid utf-8", f.token, uuid, "application/xml", strings.Replace(good, "Test", "T\xffst", 1), 400, "XML_INVALID_UTF8", records.StatusInvalid},
		{"oversize", f.token, uuid, "application/xml", big, 413, CodeTooLarge, records.StatusInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, rc, _ := f.post(t, tc.token, tc.uuid, tc.ctype, strings.NewReader(tc.body))
			var code string
			if rc.ErrorCode != "" {
				code = rc.ErrorCode
			}
			if status != tc.status || code != tc.code {
				t.Fatalf("status %d code %q, want %d %q (%+v)", status, code, tc.status, tc.code, rc)
			}
			if tc.receipt != "" && rc.ReceiptStatus != tc.receipt {
				t.Fatalf("receiptStatus %q, want %q", rc.ReceiptStatus, tc.receipt)
			}
		})
	}
	if n := len(f.ingested(t, 1, 300*time.Millisecond)); n != 0 {
		t.Fatalf("%d rejected submissions reached memo.ingest", n)
	}
}

func TestRateLimit(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.RatePerSecond, c.RateBurst = 1, 2 })
	uuid := "8c2ea15d-61fb-4ba9-9366-42f8b194c114"
	var got429 bool
	for i := 0; i < 5; i++ {
		status, rc, h := f.post(t, f.token, uuid, "application/xml", strings.NewReader(memoXML(uuid, testOrg)))
		if status == 429 {
			got429 = rc.ErrorCode == CodeRateLimited && h.Get("Retry-After") != ""
		}
	}
	if !got429 {
		t.Fatal("no 429 with Retry-After after exceeding the rate")
	}
}

func TestUUIDs(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 1000; i++ {
		u := newUUID()
		if !memo.IsUUID(u) || u[14] != '4' || seen[u] {
			t.Fatalf("bad uuid %s", u)
		}
		seen[u] = true
	}
	for _, s := range []string{"", "8c2ea15d61fb4ba9936642f8b194c114", fmt.Sprint(strings.Repeat("g", 36))} {
		if memo.IsUUID(s) {
			t.Errorf("memo.IsUUID(%q) = true", s)
		}
	}
}

func lzmaBatch(t *testing.T, files map[string]string, order []string) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := archive.NewWriter(&buf, true)
	for _, name := range order {
		if err := w.Add(name, []byte(files[name])); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func batchPost(t *testing.T, f *fixture, ctype string, body []byte) (int, BatchReceipt) {
	t.Helper()
	req, _ := http.NewRequest("POST", f.srv.URL+"/apis/v1/memos/", bytes.NewReader(body))
	req.Header.Set("Content-Type", ctype)
	req.Header.Set("Authorization", "Bearer "+f.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var br BatchReceipt
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &br); err != nil {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
	return resp.StatusCode, br
}

func TestSubmitBatch(t *testing.T) {
	f := newFixture(t)
	u := func(i int) string { return fmt.Sprintf("8c2ea15d-61fb-4ba9-9366-%012d", i) }
	files := map[string]string{}
	var order []string
	for i := 0; i < 50; i++ {
		name := fmt.Sprintf("m%03d.xml", i)
		files[name] = memoXML(u(i), testOrg)
		order = append(order, name)
	}
	files["dup.xml"] = memoXML(u(3), testOrg)
	files["other-org.xml"] = memoXML(u(100), "87654321")
	files["broken.xml"] = "<memo:Message"
	order = append(order, "dup.xml", "other-org.xml", "broken.xml")
	status, br := batchPost(t, f, "application/x-lzma", lzmaBatch(t, files, order))
	if status != 201 || br.Accepted != 50 || br.Rejected != 3 || br.TransmissionID == "" {
		t.Fatalf("status %d receipt %+v", status, br)
	}
	for code, n := range map[string]int{CodeDuplicateInBatch: 1, CodeSenderNotAllowed: 1, "XML_TRUNCATED": 1} {
		if br.RejectedByCode[code] != n {
			t.Errorf("rejectedByCode[%s] = %d, want %d (%v)", code, br.RejectedByCode[code], n, br.RejectedByCode)
		}
	}
	recs := f.ingested(t, 50, 5*time.Second)
	if len(recs) != 50 {
		t.Fatalf("memo.ingest holds %d, want 50", len(recs))
	}
	for _, r := range recs {
		if m := records.ReadIngestMeta(r); !m.MassSend || m.TransmissionID != br.TransmissionID {
			t.Fatalf("meta %+v", m)
		}
	}
}

func TestSubmitBatchMultipartAndBadArchives(t *testing.T) {
	f := newFixture(t)
	good := lzmaBatch(t, map[string]string{"a.xml": memoXML("8c2ea15d-61fb-4ba9-9366-42f8b194c114", testOrg)}, []string{"a.xml"})
	var mp bytes.Buffer
	mw := multipart.NewWriter(&mp)
	fw, _ := mw.CreateFormFile("file", "batch.tar.lzma")
	fw.Write(good)
	mw.Close()
	if status, br := batchPost(t, f, mw.FormDataContentType(), mp.Bytes()); status != 201 || br.Accepted != 1 {
		t.Fatalf("multipart: %d %+v", status, br)
	}
	for name, tc := range map[string]struct {
		body []byte
		code string
	}{
		"truncated lzma": {good[:len(good)/2], "ARCHIVE_LZMA_TRUNCATED"},
		"not lzma":       {[]byte("hello, this is not an archive at all"), ""},
	} {
		status, br := batchPost(t, f, "application/x-lzma", tc.body)
		if status < 400 || br.ErrorCode == "" || (tc.code != "" && br.ErrorCode != tc.code) {
			t.Errorf("%s: status %d code %q, want an error %s", name, status, br.ErrorCode, tc.code)
		}
	}
}

func TestClaimCheck(t *testing.T) {
	store, err := blob.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	f := newFixtureOpts(t, []Option{WithBlobStore(store, 1024)})
	uuid := "8c2ea15d-61fb-4ba9-9366-42f8b194c114"
	body := memoXML(uuid, testOrg)
	body = strings.Replace(body, "VGhpcyBpcyBhIHRlc3Q=", strings.Repeat("QUJD", 2000), 1) // > 1 KB
	status, rc, _ := f.post(t, f.token, uuid, "application/xml", strings.NewReader(body))
	if status != 201 {
		t.Fatalf("status %d %+v", status, rc)
	}
	recs := f.ingested(t, 1, 5*time.Second)
	if len(recs) != 1 {
		t.Fatal("no record")
	}
	m := records.ReadIngestMeta(recs[0])
	if m.BlobKey == "" || len(recs[0].Value) != 0 || m.Size != len(body) {
		t.Fatalf("record not claim-checked: key %q, %d value bytes", m.BlobKey, len(recs[0].Value))
	}
	rcv, err := store.Get(context.Background(), blob.Ref{Key: m.BlobKey, Size: int64(m.Size), SHA256: m.ContentSHA256})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rcv)
	rcv.Close()
	if string(got) != body {
		t.Fatal("blob differs from the message")
	}
}
