package chddl

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/memoflow/memoflow/internal/chconn"
	"github.com/memoflow/memoflow/internal/chconn/chtest"
)

func TestOptionsValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    Options
		ok   bool
	}{
		{"defaults", Options{}, true},
		{"explicit", Options{Database: "dp_log", Retention: 30 * 24 * time.Hour}, true},
		{"bad database", Options{Database: "dp-log"}, false},
		{"short retention", Options{Retention: time.Hour}, false},
		{"cluster", Options{Cluster: "main"}, false},
	} {
		err := tc.o.Validate()
		if tc.ok != (err == nil) || !tc.ok && !errors.Is(err, ErrInvalidOptions) {
			t.Errorf("%s: Validate = %v", tc.name, err)
		}
	}
}

// TestRenderEveryVersion renders every migration for an old and a modern
// server without running it: templates resolve, statements split.
func TestRenderEveryVersion(t *testing.T) {
	r := runner{opts: Options{Database: "memoflow", Retention: DefaultRetention}}
	for _, m := range Migrations {
		stmts, err := r.render(m)
		if err != nil {
			t.Fatalf("%s: %v", m.Name, err)
		}
		if len(stmts) == 0 {
			t.Fatalf("%s: no statements", m.Name)
		}
		for _, s := range stmts {
			if strings.Contains(s, "{{") || strings.HasSuffix(s, ";") || strings.HasPrefix(s, "--") {
				t.Errorf("%s: badly split statement %q", m.Name, s)
			}
		}
	}
	if got := retentionDays(DefaultRetention); got != 1827 {
		t.Errorf("retention days = %d", got)
	}
}

func migrated(t *testing.T) (driver.Conn, string, Result) {
	t.Helper()
	conn, _ := chtest.Conn(t)
	db := chtest.Database(t, conn)
	res, err := Migrate(context.Background(), conn, Options{Database: db})
	if err != nil {
		t.Fatal(err)
	}
	return conn, db, res
}

func TestMigrateTwice(t *testing.T) {
	conn, db, first := migrated(t)
	ctx := context.Background()
	second, err := Migrate(ctx, conn, Options{Database: db})
	if err != nil {
		t.Fatal(err)
	}
	if len(second.Applied) != 0 {
		t.Fatalf("second Migrate applied %v", second.Applied)
	}
	if !reflect.DeepEqual(first.Skipped, second.Skipped) {
		t.Errorf("skipped %v then %v", first.Skipped, second.Skipped)
	}
	var n uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM "+db+"."+MigrationsTable).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if int(n) != len(first.Applied) {
		t.Errorf("%d migration records, applied %d", n, len(first.Applied))
	}
	for _, table := range []string{EventsTable, StatsTable, StatsView} {
		var exists uint8
		if err := conn.QueryRow(ctx, "EXISTS TABLE "+db+"."+table).Scan(&exists); err != nil || exists != 1 {
			t.Errorf("table %s: exists=%d err=%v", table, exists, err)
		}
	}
}

// TestGating checks that each gated migration ran exactly when the server
// supports it, and that its effect is (or is not) in the table.
func TestGating(t *testing.T) {
	conn, db, res := migrated(t)
	f, err := chconn.ServerFeatures(conn)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range Migrations {
		id := m.String()
		wantSkip := m.Requires != nil && !m.Requires(f)
		if slices.Contains(res.Skipped, id) != wantSkip || slices.Contains(res.Applied, id) == wantSkip {
			t.Errorf("%s on %v: applied=%v skipped=%v", id, f.Version, res.Applied, res.Skipped)
		}
	}
	var ddl string
	if err := conn.QueryRow(context.Background(), "SHOW CREATE TABLE "+db+"."+EventsTable).Scan(&ddl); err != nil {
		t.Fatal(err)
	}
	if hasTTL := strings.Contains(ddl, "TTL"); hasTTL != f.TTL {
		t.Errorf("server %v (TTL feature %v) has table:\n%s", f.Version, f.TTL, ddl)
	}
	t.Logf("server %v: applied %v, skipped %v", f.Version, res.Applied, res.Skipped)
}

func TestMigrationEdited(t *testing.T) {
	conn, _ := chtest.Conn(t)
	db := chtest.Database(t, conn)
	ctx := context.Background()
	m := Migration{Version: 1, Name: "probe", SQL: "CREATE TABLE IF NOT EXISTS {{.DB}}.probe (x UInt8) ENGINE = Memory"}
	if _, err := migrate(ctx, conn, Options{Database: db}, []Migration{m}); err != nil {
		t.Fatal(err)
	}
	m.SQL += "\n-- edited"
	if _, err := migrate(ctx, conn, Options{Database: db}, []Migration{m}); !errors.Is(err, ErrMigrationChanged) {
		t.Fatalf("edited migration: %v, want ErrMigrationChanged", err)
	}
}

func TestParamsReapply(t *testing.T) {
	conn, _ := chtest.Conn(t)
	db := chtest.Database(t, conn)
	ctx := context.Background()
	m := Migration{
		Version: 1, Name: "retention_probe",
		SQL:    "CREATE TABLE IF NOT EXISTS {{.DB}}.keep_{{.RetentionDays}} (x UInt8) ENGINE = Memory",
		Params: Migrations[2].Params,
	}
	for _, tc := range []struct {
		days    int
		applied bool
	}{{30, true}, {30, false}, {60, true}} {
		res, err := migrate(ctx, conn, Options{Database: db, Retention: time.Duration(tc.days) * 24 * time.Hour}, []Migration{m})
		if err != nil {
			t.Fatal(err)
		}
		if (len(res.Applied) == 1) != tc.applied {
			t.Errorf("retention %dd: applied %v, want applied=%v", tc.days, res.Applied, tc.applied)
		}
	}
	var exists uint8
	if err := conn.QueryRow(ctx, "EXISTS TABLE "+db+".keep_60").Scan(&exists); err != nil || exists != 1 {
		t.Errorf("re-applied migration did not run: %v", err)
	}
}

func TestDropExpiredPartitions(t *testing.T) {
	conn, db, _ := migrated(t)
	ctx := context.Background()
	days := []string{"2019-01-15", "2020-12-31", "2021-01-01", "2021-01-31", "2025-12-31"}
	b, err := conn.PrepareBatch(ctx, "INSERT INTO "+db+"."+EventsTable+" (event_date, event_time, tag)")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range days {
		day, _ := time.Parse(time.DateOnly, d)
		if err := b.Append(day, day, "MEMO_SEND_RECEIVED"); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Send(); err != nil {
		t.Fatal(err)
	}

	// Five years before 2026-01-15 is 2021-01-14 (1827 days): December
	// 2020 has wholly expired, January 2021 has not.
	now := time.Date(2026, 1, 15, 12, 0, 0, 0, time.UTC)
	dropped, err := dropExpired(ctx, conn, db, DefaultRetention, now)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"201901", "202012"}; !reflect.DeepEqual(dropped, want) {
		t.Fatalf("dropped %v, want %v", dropped, want)
	}
	var left []string
	rows, err := conn.Query(ctx, "SELECT toString(event_date) FROM "+db+"."+EventsTable+" ORDER BY event_date")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		left = append(left, s)
	}
	if want := []string{"2021-01-01", "2021-01-31", "2025-12-31"}; !reflect.DeepEqual(left, want) {
		t.Fatalf("rows left %v, want %v", left, want)
	}
	// Again: nothing more to drop.
	if dropped, err := dropExpired(ctx, conn, db, DefaultRetention, now); err != nil || len(dropped) != 0 {
		t.Fatalf("second run dropped %v, %v", dropped, err)
	}
}
