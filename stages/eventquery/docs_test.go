package eventquery

import (
	"context"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/segmentio/encoding/json"
)

// TestDocs runs every SQL example of docs/statistics.md and every query of
// the Grafana dashboard against the real server (18.16 here), on the test
// data, and checks that docs/eventlog-api.md lists every error code.
func TestDocs(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	rename := strings.NewReplacer("memoflow.", f.db+".")
	run := func(t *testing.T, name, sql string, wantRows bool) {
		t.Helper()
		rows, err := f.conn.Query(ctx, rename.Replace(sql))
		if err != nil {
			t.Fatalf("%s: %v\n%s", name, err, sql)
		}
		defer rows.Close()
		n := 0
		for rows.Next() {
			n++
		}
		if err := rows.Err(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if wantRows && n == 0 {
			t.Errorf("%s: no rows on the test data\n%s", name, sql)
		}
	}

	t.Run("statistics.md", func(t *testing.T) {
		b, err := os.ReadFile("../../docs/statistics.md")
		if err != nil {
			t.Fatal(err)
		}
		blocks := regexp.MustCompile("(?s)```sql\n(.*?)```").FindAllStringSubmatch(string(b), -1)
		if len(blocks) < 8 {
			t.Fatalf("%d SQL examples, want at least 8", len(blocks))
		}
		for i, m := range blocks {
			sql := m[1]
			// The backlog (last 8 days) and the check (empty when the
			// statistics agree) legitimately return nothing here.
			want := !strings.Contains(sql, "today()") && !strings.Contains(sql, "in_events != in_statistics")
			if strings.Contains(sql, "EVENT_LOG_SEARCHES") {
				want = false // no search has been written to this database
			}
			run(t, "example "+string(rune('1'+i)), sql, want)
		}
	})

	t.Run("eventlog.json", func(t *testing.T) {
		b, err := os.ReadFile("../../deploy/grafana/dashboards/eventlog.json")
		if err != nil {
			t.Fatal(err)
		}
		var d struct {
			UID    string `json:"uid"`
			Panels []struct {
				Title   string `json:"title"`
				Targets []struct {
					Datasource struct{ Type, UID string } `json:"datasource"`
					RawSQL     string                     `json:"rawSql"`
				} `json:"targets"`
			} `json:"panels"`
		}
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatal(err)
		}
		// The plugin's macros, expanded as it does, for the test data's range.
		from, to := "toDateTime(1790812800)", "toDateTime(1796083200)" // 2026-10-01 .. 2026-12-01
		macros := []struct{ re, repl string }{
			{`\$__dateTimeFilter\((\w+),\s*(\w+)\)`, "($1 >= toDate(" + from + ") AND $1 <= toDate(" + to + ")) AND ($2 >= " + from + " AND $2 <= " + to + ")"},
			{`\$__timeFilter\((\w+)\)`, "$1 >= " + from + " AND $1 <= " + to},
			{`\$__dateFilter\((\w+)\)`, "$1 >= toDate(" + from + ") AND $1 <= toDate(" + to + ")"},
			{`\$__fromTime`, from},
			{`\$__toTime`, to},
		}
		queries := 0
		for _, p := range d.Panels {
			for _, tg := range p.Targets {
				if tg.Datasource.Type != "grafana-clickhouse-datasource" || tg.Datasource.UID != "clickhouse" {
					t.Errorf("%s: data source %+v", p.Title, tg.Datasource)
				}
				sql := tg.RawSQL
				for _, m := range macros {
					sql = regexp.MustCompile(m.re).ReplaceAllString(sql, m.repl)
				}
				if strings.Contains(sql, "$") {
					t.Errorf("%s: unexpanded macro in %s", p.Title, sql)
				}
				want := !strings.Contains(sql, "today()")
				run(t, p.Title, sql, want)
				queries++
			}
		}
		if queries < 8 {
			t.Errorf("%d queries in the dashboard", queries)
		}
	})

	t.Run("eventlog-api.md", func(t *testing.T) {
		b, err := os.ReadFile("../../docs/eventlog-api.md")
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range Codes {
			if !strings.Contains(string(b), "| `"+c.Code+"` |") {
				t.Errorf("docs/eventlog-api.md does not list %s", c.Code)
			}
		}
	})
}
