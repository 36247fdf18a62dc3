// Package chddl owns memoflow's ClickHouse schema: numbered, idempotent
// migrations applied at start (Migrate), recorded in a schema_migrations
// table, some of them gated on what the server supports; and retention
// (DropExpiredPartitions).
package chddl

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"text/template"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/spf13/pflag"

	"github.com/memoflow/memoflow/internal/chconn"
)

// Table names inside Options.Database.
const (
	EventsTable     = "events"
	StatsTable      = "event_stats_daily"
	StatsView       = "event_stats_daily_mv"
	MigrationsTable = "schema_migrations"
)

// DefaultRetention is how long the event log is kept: 5 years (the
// domain brief's rule; 1827 days covers a leap day).
const DefaultRetention = 1827 * 24 * time.Hour

var (
	// ErrInvalidOptions is wrapped by Options.Validate's errors.
	ErrInvalidOptions = errors.New("invalid schema options")
	// ErrMigrationChanged means an applied migration's SQL was edited.
	// Migrations are append-only: change the schema with a new one.
	ErrMigrationChanged = errors.New("applied migration changed")
)

// Options say where the schema lives and how it is parametrised.
type Options struct {
	// Database holds every table (default "memoflow"); set it from
	// chconn.Config.Database, the one place it is configured.
	Database string `yaml:"-"`
	// Retention of the event log (default 5 years).
	Retention time.Duration `yaml:"retention"`
	// Cluster, when set, is the remote_servers cluster the schema lives on:
	// every statement gets ON CLUSTER, every table (schema_migrations too)
	// a Replicated engine whose Keeper path is
	// /clickhouse/tables/{shard}/<database>/<table> with replica '{replica}'
	// (the servers define both macros). It needs ClickHouse 22.2+ with
	// Keeper; the migrations themselves stay as written (see replicated).
	Cluster string `yaml:"cluster"`
}

// RegisterFlags binds the retention and cluster flags (the database comes
// from chconn.Config's --clickhouse-database).
func (o *Options) RegisterFlags(fs *pflag.FlagSet) {
	fs.DurationVar(&o.Retention, "eventlog-retention", DefaultRetention, "how long event-log rows are kept (whole months are dropped)")
	fs.StringVar(&o.Cluster, "clickhouse-cluster", "", "remote_servers cluster for the schema: ON CLUSTER DDL and Replicated tables (ClickHouse 22.2+ with Keeper); empty: single server")
}

func (o Options) withDefaults() Options {
	if o.Database == "" {
		o.Database = chconn.DefaultDatabase
	}
	if o.Retention == 0 {
		o.Retention = DefaultRetention
	}
	return o
}

// Validate reports the first unusable option.
func (o Options) Validate() error {
	o = o.withDefaults()
	switch {
	case !chconn.IsIdentifier(o.Database):
		return fmt.Errorf("%w: --clickhouse-database must be a plain identifier, got %q", ErrInvalidOptions, o.Database)
	case o.Retention < 24*time.Hour:
		return fmt.Errorf("%w: --eventlog-retention must be at least 24h, got %v", ErrInvalidOptions, o.Retention)
	case o.Cluster != "" && !chconn.IsIdentifier(o.Cluster):
		return fmt.Errorf("%w: schema.cluster must be the plain name of a remote_servers cluster, got %q", ErrInvalidOptions, o.Cluster)
	}
	return nil
}

// retentionDays rounds the retention up to whole days.
func retentionDays(r time.Duration) int {
	return int((r + 24*time.Hour - 1) / (24 * time.Hour))
}

// Migration is one numbered schema change. Its statements must be
// idempotent (IF NOT EXISTS, MODIFY …): a crash between a statement and
// the record of the migration runs it again.
type Migration struct {
	Version uint32
	Name    string
	// SQL is a text/template of statements separated by ";" at a line end,
	// with .DB, .OnCluster and .RetentionDays.
	SQL string
	// Requires gates the migration on the server; nil means always. A
	// gated-off migration is not recorded, so it applies once the server
	// is upgraded (gated migrations must not depend on later ones).
	Requires func(chconn.Features) bool
	// ClusterOnly: applied only with Options.Cluster (and skipped, not
	// recorded, without it).
	ClusterOnly bool
	// Params, when set, is recorded with the migration; when it changes
	// (e.g. the retention) the migration is applied again.
	Params func(Options) string
}

// String is the migration's id, "0003_events_ttl".
func (m Migration) String() string { return fmt.Sprintf("%04d_%s", m.Version, m.Name) }

//go:embed migrations/*.sql
var files embed.FS

func mustFile(name string) string {
	b, err := files.ReadFile("migrations/" + name)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// Migrations is the schema, in order.
var Migrations = []Migration{
	{Version: 1, Name: "events", SQL: mustFile("0001_events.sql")},
	{Version: 2, Name: "event_stats_daily", SQL: mustFile("0002_event_stats_daily.sql")},
	{
		Version: 3, Name: "events_ttl", SQL: mustFile("0003_events_ttl.sql"),
		Requires: func(f chconn.Features) bool { return f.TTL },
		Params:   func(o Options) string { return fmt.Sprintf("retention_days=%d", retentionDays(o.Retention)) },
	},
	{
		Version: 4, Name: "insert_dedup_window", SQL: mustFile("0004_insert_dedup_window.sql"),
		Requires: func(f chconn.Features) bool { return f.InsertDeduplicationToken },
	},
	// 0005-0009 belong to the event-log queries (stages/eventquery).
	{Version: 5, Name: "events_by_message", SQL: mustFile("0005_events_by_message.sql")},
	{
		Version: 6, Name: "events_by_message_ttl", SQL: mustFile("0006_events_by_message_ttl.sql"),
		Requires: func(f chconn.Features) bool { return f.TTL },
		Params:   func(o Options) string { return fmt.Sprintf("retention_days=%d", retentionDays(o.Retention)) },
	},
	// 0010-0014 belong to the receipts store and API (stages/receipts).
	{Version: 10, Name: "receipts", SQL: mustFile("0010_receipts.sql")},
	// 0015: the cluster schema's Distributed tables.
	{Version: 15, Name: "distributed", SQL: mustFile("0015_distributed.sql"), ClusterOnly: true},
}

// Result says what Migrate did.
type Result struct {
	Server  chconn.Version
	Applied []string // "0003_events_ttl", in order
	Skipped []string // gated off on this server
}

// Migrate creates the database if needed and applies every migration not
// yet recorded (or whose Params changed). Running it again is a no-op.
func Migrate(ctx context.Context, conn driver.Conn, opts Options) (Result, error) {
	return migrate(ctx, conn, opts, Migrations)
}

func migrate(ctx context.Context, conn driver.Conn, opts Options, ms []Migration) (Result, error) {
	if err := opts.Validate(); err != nil {
		return Result{}, err
	}
	opts = opts.withDefaults()
	f, err := chconn.ServerFeatures(conn)
	if err != nil {
		return Result{}, err
	}
	res := Result{Server: f.Version}
	if opts.Cluster != "" && !f.InsertDeduplicationToken {
		return res, fmt.Errorf("%w: schema.cluster %q needs ClickHouse 22.2 or newer with Keeper (server %s); unset it to use the single-server schema", ErrInvalidOptions, opts.Cluster, f.Version)
	}
	r := runner{conn: conn, opts: opts}
	if err := r.exec(ctx, "CREATE DATABASE IF NOT EXISTS "+opts.Database+r.onCluster()); err != nil {
		return res, err
	}
	if err := r.exec(ctx, r.replicated(fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s.%s%s (
	version UInt32, name String, checksum String, params String,
	server_version String, applied_at DateTime('UTC'), seq UInt64
) ENGINE = MergeTree ORDER BY (version, seq)`, opts.Database, MigrationsTable, r.onCluster()))); err != nil {
		return res, err
	}
	applied, err := r.applied(ctx)
	if err != nil {
		return res, err
	}
	for _, m := range ms {
		id := m.String()
		if m.Requires != nil && !m.Requires(f) || m.ClusterOnly && opts.Cluster == "" {
			res.Skipped = append(res.Skipped, id)
			continue
		}
		sum := checksum(m.SQL)
		params := ""
		if m.Params != nil {
			params = m.Params(opts)
		}
		if prev, ok := applied[m.Version]; ok {
			if prev.checksum != sum {
				return res, fmt.Errorf("%w: %s was applied with checksum %.12s, the binary has %.12s; add a new migration instead of editing one", ErrMigrationChanged, id, prev.checksum, sum)
			}
			if prev.params == params {
				continue
			}
		}
		stmts, err := r.render(m)
		if err != nil {
			return res, fmt.Errorf("migration %s: %w", id, err)
		}
		for _, s := range stmts {
			if err := r.exec(ctx, s); err != nil {
				return res, fmt.Errorf("migration %s: %w", id, err)
			}
		}
		if err := r.record(ctx, m, sum, params, f.Version); err != nil {
			return res, fmt.Errorf("migration %s: %w", id, err)
		}
		res.Applied = append(res.Applied, id)
	}
	return res, nil
}

type runner struct {
	conn driver.Conn
	opts Options
}

func (r runner) onCluster() string {
	if r.opts.Cluster == "" {
		return ""
	}
	return " ON CLUSTER " + r.opts.Cluster
}

func (r runner) exec(ctx context.Context, stmt string) error {
	if err := r.conn.Exec(ctx, stmt); err != nil {
		return fmt.Errorf("%s: %w", firstLine(stmt), chconn.Classify(err))
	}
	return nil
}

type appliedMigration struct{ checksum, params string }

func (r runner) applied(ctx context.Context) (map[uint32]appliedMigration, error) {
	rows, err := r.conn.Query(ctx, fmt.Sprintf(
		"SELECT version, argMax(checksum, seq), argMax(params, seq) FROM %s.%s GROUP BY version",
		r.opts.Database, MigrationsTable))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", MigrationsTable, chconn.Classify(err))
	}
	defer rows.Close()
	out := map[uint32]appliedMigration{}
	for rows.Next() {
		var v uint32
		var a appliedMigration
		if err := rows.Scan(&v, &a.checksum, &a.params); err != nil {
			return nil, err
		}
		out[v] = a
	}
	return out, rows.Err()
}

func (r runner) record(ctx context.Context, m Migration, sum, params string, v chconn.Version) error {
	b, err := r.conn.PrepareBatch(ctx, fmt.Sprintf(
		"INSERT INTO %s.%s (version, name, checksum, params, server_version, applied_at, seq)",
		r.opts.Database, MigrationsTable))
	if err != nil {
		return chconn.Classify(err)
	}
	defer b.Close()
	now := time.Now().UTC()
	if err := b.Append(m.Version, m.Name, sum, params, v.String(), now, uint64(now.UnixNano())); err != nil {
		return chconn.Classify(err)
	}
	return chconn.Classify(b.Send())
}

// stmtEnd splits a migration file into statements: ";" ending a line.
var stmtEnd = regexp.MustCompile(`;[ \t]*(\r?\n|$)`)

func (r runner) render(m Migration) ([]string, error) {
	t, err := template.New(m.Name).Option("missingkey=error").Parse(m.SQL)
	if err != nil {
		return nil, err
	}
	var sb strings.Builder
	err = t.Execute(&sb, map[string]any{
		"DB":            r.opts.Database,
		"OnCluster":     strings.TrimSpace(r.onCluster()),
		"Cluster":       r.opts.Cluster,
		"RetentionDays": retentionDays(r.opts.Retention),
	})
	if err != nil {
		return nil, err
	}
	var out []string
	for _, s := range stmtEnd.Split(sb.String(), -1) {
		if s = stripComments(s); s != "" {
			out = append(out, r.replicated(s))
		}
	}
	return out, nil
}

// createTable and mergeTreeEngine find a CREATE TABLE's name and its
// MergeTree-family engine with the engine's arguments.
var (
	createTable     = regexp.MustCompile(`(?i)^CREATE TABLE (?:IF NOT EXISTS )?([A-Za-z_][A-Za-z0-9_]*)\.([A-Za-z_][A-Za-z0-9_]*)`)
	mergeTreeEngine = regexp.MustCompile(`ENGINE = (Replacing|Summing|Aggregating|Collapsing|VersionedCollapsing)?MergeTree(\(([^()]|\([^()]*\))*\))?`)
)

// replicated turns a CREATE TABLE of the single-server schema into its
// cluster form: ReplicatedXMergeTree with a Keeper path per table, the
// engine's own arguments kept after the path and replica. Rewriting at
// render time, rather than templating engines in the migrations, keeps
// the applied migrations' checksums: the SQL files are the same for both
// variants. Statements other than CREATE TABLE pass unchanged (views
// with TO need no engine; ALTER and DROP PARTITION on a Replicated table
// replicate by themselves).
func (r runner) replicated(stmt string) string {
	if r.opts.Cluster == "" {
		return stmt
	}
	m := createTable.FindStringSubmatch(stmt)
	if m == nil {
		return stmt
	}
	path := fmt.Sprintf("'/clickhouse/tables/{shard}/%s/%s', '{replica}'", m[1], m[2])
	return mergeTreeEngine.ReplaceAllStringFunc(stmt, func(e string) string {
		sub := mergeTreeEngine.FindStringSubmatch(e)
		args := strings.TrimSuffix(strings.TrimPrefix(sub[2], "("), ")")
		if strings.TrimSpace(args) != "" {
			args = ", " + args
		}
		return "ENGINE = Replicated" + sub[1] + "MergeTree(" + path + args + ")"
	})
}

// stripComments drops whole-line "--" comments: a statement that is only
// comments is empty, and servers reject an empty query.
func stripComments(s string) string {
	var keep []string
	for _, line := range strings.Split(s, "\n") {
		if t := strings.TrimSpace(line); t != "" && !strings.HasPrefix(t, "--") {
			keep = append(keep, line)
		}
	}
	return strings.TrimSpace(strings.Join(keep, "\n"))
}

func checksum(sql string) string {
	h := sha256.Sum256([]byte(sql))
	return hex.EncodeToString(h[:])
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}
