package admin

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
)

var updateDocs = flag.Bool("update-docs", false, "rewrite the generated tables in docs/admin-api.md")

// genTables returns the generated sections of docs/admin-api.md by marker
// name: the endpoints with their roles, the two sheets' columns and the
// codes, all from the Go tables.
func genTables() map[string]string {
	var ep strings.Builder
	ep.WriteString("\n| method | path | roles (besides operator) | organisation-scoped | what |\n|---|---|---|---|---|\n")
	for _, e := range Endpoints {
		roles := make([]string, len(e.Roles))
		for i, r := range e.Roles {
			roles[i] = "`" + string(r) + "`"
		}
		rs := strings.Join(roles, ", ")
		if rs == "" {
			rs = "operators only"
		}
		scoped := "no"
		if e.Org {
			scoped = "yes"
		}
		fmt.Fprintf(&ep, "| %s | `%s%s` | %s | %s | %s |\n", e.Method, Prefix, e.Path, rs, scoped, e.Doc)
	}
	cols := func(cs []column) string {
		var b strings.Builder
		b.WriteString("\n| column | also accepted | required | what |\n|---|---|---|---|\n")
		for _, c := range cs {
			req := ""
			if c.Required {
				req = "yes"
			}
			fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", c.Header, strings.Join(c.Aliases, ", "), req, c.Doc)
		}
		return b.String()
	}
	var codes strings.Builder
	codes.WriteString("\n| code | HTTP | meaning |\n|---|---|---|\n")
	for _, c := range Codes {
		fmt.Fprintf(&codes, "| `%s` | %d | %s |\n", c.Code, c.Status, c.Description)
	}
	return map[string]string{"endpoints": ep.String(), "groups": cols(GroupColumns), "points": cols(PointColumns), "codes": codes.String(),
		"systems": cols(SystemColumns), "forwarding": cols(ForwardingColumns)}
}

// TestAdminAPIDocs keeps docs/admin-api.md's generated tables equal to the
// Go tables.
func TestAdminAPIDocs(t *testing.T) {
	const path = "../../docs/admin-api.md"
	doc, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := string(doc)
	want := s
	for _, name := range []string{"endpoints", "groups", "points", "codes", "systems", "forwarding"} {
		begin, end := "<!-- "+name+":begin", "<!-- "+name+":end -->"
		i, j := strings.Index(want, begin), strings.Index(want, end)
		if i < 0 || j < i {
			t.Fatalf("docs/admin-api.md lacks the %s markers", name)
		}
		i += strings.Index(want[i:], "-->") + 3
		want = want[:i] + genTables()[name] + want[j:]
	}
	if want == s {
		return
	}
	if *updateDocs {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Fatal("docs/admin-api.md's generated tables are stale; run go test ./stages/admin -run TestAdminAPIDocs -update-docs")
}
