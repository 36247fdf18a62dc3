package schedule

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
)

var updateDocs = flag.Bool("update-docs", false, "rewrite the generated recall code table in docs/sender-api.md")

// TestRecallDocs keeps the recall code table of docs/sender-api.md equal
// to Codes.
func TestRecallDocs(t *testing.T) {
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
	const begin, end = "<!-- recall-codes:begin", "<!-- recall-codes:end -->"
	s := string(doc)
	i, j := strings.Index(s, begin), strings.Index(s, end)
	if i < 0 || j < i {
		t.Fatal("docs/sender-api.md lacks the recall-codes markers")
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
	t.Fatal("docs/sender-api.md's recall code table is stale; run go test ./stages/schedule -run TestRecallDocs -update-docs")
}

// Every code the API can answer is in the catalogue with its status.
func TestRecallCodesCatalogue(t *testing.T) {
	seen := map[string]bool{}
	for _, c := range Codes {
		if seen[c.Code] || c.Status == 0 || c.Description == "" {
			t.Errorf("bad or duplicate catalogue row %+v", c)
		}
		seen[c.Code] = true
	}
	for _, code := range []string{CodeRecallBadUUID, CodeRecallNotFound, CodeRecallTooLate, CodeRecallPending, CodeRecallUnavailable, CodeRecallNoRequest} {
		if !seen[code] {
			t.Errorf("%s is not in Codes", code)
		}
	}
}
