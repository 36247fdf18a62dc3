package chddl

import (
	"context"
	"errors"
	"reflect"
	"regexp"
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
		{"cluster", Options{Cluster: "main"}, true},
		{"bad cluster", Options{Cluster: "main; DROP"}, false},
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

// TestRenderCluster renders the schema for a cluster: every statement
// carries ON CLUSTER, every table a Replicated engine with its own Keeper
// path and the engine's arguments kept, and nothing else changes.
func TestRenderCluster(t *testing.T) {
	single := runner{opts: Options{Database: "memoflow", Retention: DefaultRetention}}
	cluster := runner{opts: Options{Database: "memoflow", Retention: DefaultRetention, Cluster: "memoflow"}}
	engines := map[string]string{}
	distributed := 0
	for _, m := range Migrations {
		if m.ClusterOnly {
			b, err := cluster.render(m)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range b {
				if !strings.Contains(s, " ON CLUSTER memoflow") || !strings.Contains(s, "ENGINE = Distributed(memoflow, memoflow, ") {
					t.Errorf("%s: not a Distributed table on the cluster: %s", m, s)
				}
				distributed++
			}
			continue
		}
		a, err := single.render(m)
		if err != nil {
			t.Fatal(err)
		}
		b, err := cluster.render(m)
		if err != nil {
			t.Fatal(err)
		}
		if len(a) != len(b) {
			t.Fatalf("%s: %d statements single, %d cluster", m, len(a), len(b))
		}
		for i, s := range b {
			// INSERT has no ON CLUSTER: into a Replicated table it
			// replicates by itself.
			if !strings.Contains(s, " ON CLUSTER memoflow") && !strings.HasPrefix(s, "INSERT") {
				t.Errorf("%s: statement without ON CLUSTER: %s", m, firstLine(s))
			}
			if strings.Contains(s, "ENGINE") && !strings.Contains(s, "ENGINE = Replicated") {
				t.Errorf("%s: not replicated: %s", m, s)
			}
			if tm := createTable.FindStringSubmatch(s); tm != nil && strings.Contains(s, "ENGINE") {
				e := s[strings.Index(s, "ENGINE"):]
				e, _, _ = strings.Cut(e, "\n")
				engines[tm[2]] = e
			}
			// Apart from the engine, the statement is the single-server one.
			strip := func(x string) string {
				x = strings.ReplaceAll(x, " ON CLUSTER memoflow", "")
				x = unreplicate.ReplaceAllString(x, "$1(")
				return strings.Join(strings.Fields(mergeTreeEngine.ReplaceAllString(x, "ENGINE")), " ")
			}
			if strip(s) != strip(a[i]) {
				t.Errorf("%s: cluster statement differs beyond ON CLUSTER and engine:\n%s\n---\n%s", m, a[i], s)
			}
		}
	}
	for table, want := range map[string]string{
		"events":            "ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/memoflow/events', '{replica}')",
		"event_stats_daily": "ENGINE = ReplicatedSummingMergeTree('/clickhouse/tables/{shard}/memoflow/event_stats_daily', '{replica}', (events, size_bytes))",
		"receipts":          "ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/memoflow/receipts', '{replica}', version)",
	} {
		if engines[table] != want {
			t.Errorf("%s: engine %q, want %q", table, engines[table], want)
		}
	}
	if distributed != 4 {
		t.Errorf("%d Distributed tables, want 4 (events, event_stats_daily, events_by_message, receipts)", distributed)
	}
	if got := cluster.replicated("CREATE TABLE IF NOT EXISTS memoflow.schema_migrations ON CLUSTER memoflow (v UInt32) ENGINE = MergeTree ORDER BY v"); !strings.Contains(got, "ReplicatedMergeTree('/clickhouse/tables/{shard}/memoflow/schema_migrations', '{replica}') ORDER BY v") {
		t.Errorf("schema_migrations: %s", got)
	}
}

// A cluster schema needs a server with Keeper-era replication (22.2+):
// on an older one Migrate refuses before it changes anything.
// TestClusterSyntax sends the cluster form of every table this server can
// create (without ON CLUSTER: no cluster here) to the real server. A server
// without Keeper and macros refuses to create it, but only after parsing
// it: "No macro shard" or a ZooKeeper error means the statement is valid
// ClickHouse SQL, a syntax error fails the test.
func TestClusterSyntax(t *testing.T) {
	conn, _ := chtest.Conn(t)
	f, err := chconn.ServerFeatures(conn)
	if err != nil {
		t.Fatal(err)
	}
	db := chtest.Database(t, conn)
	r := runner{opts: Options{Database: db, Retention: DefaultRetention, Cluster: "memoflow"}}
	tried := 0
	for _, m := range Migrations {
		if m.Requires != nil && !m.Requires(f) {
			continue
		}
		stmts, err := r.render(m)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range stmts {
			if !createTable.MatchString(s) {
				continue
			}
			tried++
			err := conn.Exec(context.Background(), strings.ReplaceAll(s, " ON CLUSTER memoflow", ""))
			switch {
			case err == nil:
				t.Logf("%s: created (this server has the macros)", m)
			case strings.Contains(err.Error(), "No macro") || strings.Contains(err.Error(), "ZooKeeper") || strings.Contains(err.Error(), "Keeper"):
			case m.ClusterOnly && strings.Contains(err.Error(), "doesn't exist"):
				// A Distributed table AS a local one that this server
				// could not create (no macros): parsed, then refused.
			default:
				t.Errorf("%s: %v\n%s", m, err, s)
			}
		}
	}
	if tried < 4 {
		t.Errorf("only %d CREATE TABLE statements tried", tried)
	}
}

var unreplicate = regexp.MustCompile(`Replicated(\w*MergeTree)\('[^']*', '\{replica\}'(, )?`)

func TestClusterNeedsModernServer(t *testing.T) {
	conn, _ := chtest.Conn(t)
	f, err := chconn.ServerFeatures(conn)
	if err != nil {
		t.Fatal(err)
	}
	if f.InsertDeduplicationToken {
		t.Skipf("server %s supports the cluster schema; this test needs an old one", f.Version)
	}
	db := "memoflow_cluster_refused"
	_, err = Migrate(context.Background(), conn, Options{Database: db, Cluster: "memoflow"})
	if !errors.Is(err, ErrInvalidOptions) {
		t.Fatalf("Migrate with a cluster on %s = %v, want ErrInvalidOptions", f.Version, err)
	}
	var n uint64
	if err := conn.QueryRow(context.Background(), "SELECT count() FROM system.databases WHERE name = ?", db).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("database %s was created although the options were refused", db)
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
		wantSkip := m.Requires != nil && !m.Requires(f) || m.ClusterOnly // migrated() has no cluster
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
