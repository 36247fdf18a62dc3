package ingest

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/memoflow/memoflow/stages/ingest/archive"
)

var updateDocs = flag.Bool("update-docs", false, "rewrite the generated code table in docs/sender-api.md")

// TestSenderAPIDocs keeps the code table of docs/sender-api.md equal to the
// code tables in Go.
func TestSenderAPIDocs(t *testing.T) {
	const path = "../../docs/sender-api.md"
	doc, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	b.WriteString("\n| code | HTTP | meaning |\n|---|---|---|\n")
	for _, c := range Codes {
		fmt.Fprintf(&b, "| `%s` | %d | %s |\n", c.Code, c.Status, c.Description)
	}
	for _, c := range archive.Codes {
		fmt.Fprintf(&b, "| `%s` | %d | %s |\n", c.Code, c.Status, c.Description)
	}
	const begin, end = "<!-- codes:begin", "<!-- codes:end -->"
	s := string(doc)
	i := strings.Index(s, begin)
	j := strings.Index(s, end)
	if i < 0 || j < i {
		t.Fatal("docs/sender-api.md lacks the codes markers")
	}
	i += strings.Index(s[i:], "-->") + 3
	want := s[:i] + b.String() + s[j:]
	if want == s {
		return
	}
	if *updateDocs {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Fatal("docs/sender-api.md's code table is stale; run go test ./stages/ingest -run TestSenderAPIDocs -update-docs")
}
