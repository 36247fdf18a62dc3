package openapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/memoflow/memoflow/internal/auth"
	"github.com/memoflow/memoflow/internal/openapi"
	"github.com/memoflow/memoflow/schemas/memo"
	"github.com/memoflow/memoflow/stages/admin"
	"github.com/memoflow/memoflow/stages/eventquery"
	"github.com/memoflow/memoflow/stages/ingest"
	"github.com/memoflow/memoflow/stages/ingest/archive"
	"github.com/memoflow/memoflow/stages/receipts"
	"github.com/memoflow/memoflow/stages/schedule"
)

var updateDocs = flag.Bool("update-docs", false, "rewrite the error-code enums of openapi.json from the Go code tables, and docs/openapi.json from openapi.json")

const (
	canonical = "openapi.json"
	docsCopy  = "../../docs/openapi.json"
)

func load(t *testing.T, data []byte) *openapi3.T {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(data)
	if err != nil {
		t.Fatalf("openapi.json does not load: %v", err)
	}
	return doc
}

// TestDocumentValid: openapi.json is a valid OpenAPI 3 document (kin-openapi's
// validator: structure, references, schemas, examples against their schemas).
func TestDocumentValid(t *testing.T) {
	doc := load(t, openapi.Document)
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("openapi.json is not valid OpenAPI 3: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi = %q, want 3.x", doc.OpenAPI)
	}
	// Every operation is named and says who may call it.
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			if op.OperationID == "" || op.Summary == "" || len(op.Tags) == 0 {
				t.Errorf("%s %s: needs operationId, summary and a tag", method, path)
			}
			if strings.HasPrefix(path, "/apis/") && (op.Security == nil || len(*op.Security) == 0) {
				t.Errorf("%s %s: an API operation without security requirements", method, path)
			}
		}
	}
}

// enumCodes is the error-code enums of the document and the Go code tables
// they must list.
func enumCodes() map[string][]string {
	var ing []string
	for _, c := range ingest.Codes {
		ing = append(ing, c.Code)
	}
	for _, c := range archive.Codes {
		ing = append(ing, string(c.Code))
	}
	for _, c := range memo.Catalogue {
		// What ingest's well-formedness check can answer; schema and
		// business codes come later, in INVALID receipts.
		if c.Level == memo.LevelXML || c.Level == memo.LevelLimit {
			ing = append(ing, string(c.Code))
		}
	}
	var rc []string
	for c := range receipts.CodeTable {
		rc = append(rc, c)
	}
	sort.Strings(rc)
	var eq []string
	for _, c := range eventquery.Codes {
		eq = append(eq, c.Code)
	}
	var ad []string
	for _, c := range admin.Codes {
		ad = append(ad, c.Code)
	}
	var rcl []string
	for _, c := range schedule.Codes {
		rcl = append(rcl, c.Code)
	}
	return map[string][]string{
		"AdminErrorCode":      ad,
		"RecallErrorCode":     rcl,
		"AuthErrorCode":       {auth.CodeMissing, auth.CodeMalformed, auth.CodeInvalid, auth.CodeForbidden, auth.CodeCertMismatch},
		"IngestErrorCode":     ing,
		"ReceiptsErrorCode":   rc,
		"EventQueryErrorCode": eq,
	}
}

// codeStatuses is, per tag of the document, the HTTP statuses the Go code
// tables answer with; each must be a described response of an operation
// of that tag.
func codeStatuses() map[string][]int {
	st := map[string][]int{}
	add := func(tag string, s int) {
		if !slices.Contains(st[tag], s) {
			st[tag] = append(st[tag], s)
		}
	}
	for _, c := range ingest.Codes {
		add("sender", c.Status)
	}
	for _, c := range archive.Codes {
		add("sender", c.Status)
	}
	for code, s := range receipts.CodeTable {
		// 405 answers methods no operation has (the fallback route), so no
		// operation can describe it.
		if code != receipts.CodeMethodNotAllowed {
			add("receipts", s)
		}
	}
	for _, c := range eventquery.Codes {
		add("eventlog", c.Status)
	}
	for _, c := range admin.Codes {
		add("admin", c.Status)
	}
	for _, c := range schedule.Codes {
		add("sender", c.Status) // the recall API is the sender's
	}
	return st
}

// TestErrorCodes: the enums of error codes are the Go code tables, and
// every status those tables use is a described response.
func TestErrorCodes(t *testing.T) {
	data := openapi.Document
	if *updateDocs {
		var err error
		if data, err = os.ReadFile(canonical); err != nil {
			t.Fatal(err)
		}
		for name, codes := range enumCodes() {
			if data, err = replaceEnum(data, name, codes); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(canonical, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	doc := load(t, data)
	for name, want := range enumCodes() {
		ref := doc.Components.Schemas[name]
		if ref == nil || ref.Value == nil {
			t.Errorf("components.schemas.%s is missing", name)
			continue
		}
		var got []string
		for _, v := range ref.Value.Enum {
			s, _ := v.(string)
			got = append(got, s)
		}
		if !slices.Equal(got, want) {
			t.Errorf("components.schemas.%s.enum = %v\nwant the Go code table %v\n(go test ./internal/openapi -run TestErrorCodes -update-docs rewrites it)", name, got, want)
		}
	}
	described := map[string]map[int]bool{}
	for _, item := range doc.Paths.Map() {
		for _, op := range item.Operations() {
			for code := range op.Responses.Map() {
				n, err := strconv.Atoi(code)
				if err != nil {
					continue
				}
				for _, tag := range op.Tags {
					if described[tag] == nil {
						described[tag] = map[int]bool{}
					}
					described[tag][n] = true
				}
			}
		}
	}
	for tag, statuses := range codeStatuses() {
		for _, s := range statuses {
			if !described[tag][s] {
				t.Errorf("a %s error code answers %d, but no %s operation describes a %d response", tag, s, tag, s)
			}
		}
	}
}

// replaceEnum rewrites the "enum" array of components.schemas.<name> in
// the JSON text (indented by two spaces), leaving every other byte alone.
func replaceEnum(data []byte, name string, codes []string) ([]byte, error) {
	s := string(data)
	i := strings.Index(s, "\n      \""+name+"\": {")
	if i < 0 {
		return nil, &enumError{name, "schema not found"}
	}
	j := strings.Index(s[i:], "\"enum\": [")
	if j < 0 {
		return nil, &enumError{name, "no enum"}
	}
	j += i + len("\"enum\": [")
	k := strings.Index(s[j:], "]")
	if k < 0 {
		return nil, &enumError{name, "unterminated enum"}
	}
	k += j
	var b strings.Builder
	const indent = "          " // the enum's items sit five levels deep
	for n, c := range codes {
		q, _ := json.Marshal(c)
		if n > 0 {
			b.WriteByte(',')
		}
		b.WriteString("\n" + indent)
		b.Write(q)
	}
	if len(codes) > 0 {
		b.WriteString("\n        ")
	}
	return []byte(s[:j] + b.String() + s[k:]), nil
}

type enumError struct{ name, msg string }

func (e *enumError) Error() string { return "openapi.json components.schemas." + e.name + ": " + e.msg }

// TestDocsCopy keeps docs/openapi.json identical to the embedded document.
func TestDocsCopy(t *testing.T) {
	src, err := os.ReadFile(canonical)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(docsCopy)
	if err == nil && bytes.Equal(got, src) {
		return
	}
	if *updateDocs {
		if err := os.WriteFile(docsCopy, src, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Fatal("docs/openapi.json differs from internal/openapi/openapi.json; run go test ./internal/openapi -update-docs")
}

// TestHandler serves the document with an ETag and answers 304 to it.
func TestHandler(t *testing.T) {
	h := openapi.Handler()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, openapi.Path, nil))
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/json" || !bytes.Equal(rec.Body.Bytes(), openapi.Document) {
		t.Fatalf("GET %s: %d %q, %d bytes", openapi.Path, rec.Code, rec.Header().Get("Content-Type"), rec.Body.Len())
	}
	etag := rec.Header().Get("ETag")
	req := httptest.NewRequest(http.MethodGet, openapi.Path, nil)
	req.Header.Set("If-None-Match", etag)
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if etag == "" || rec.Code != http.StatusNotModified || rec.Body.Len() != 0 {
		t.Fatalf("GET with If-None-Match %s: %d, %d bytes; want 304 and no body", etag, rec.Code, rec.Body.Len())
	}
}
