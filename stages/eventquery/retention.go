package eventquery

import (
	"context"
	"log/slog"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/memoflow/memoflow/schemas/chddl"
)

// RetentionConfig says what the retention loop keeps.
type RetentionConfig struct {
	// Database holds the event log.
	Database string
	// Retention is how long rows are kept (chddl.Options.Retention; 5 years).
	Retention time.Duration
	// Interval between runs (default 24 h). The first run is at start.
	Interval time.Duration
}

// Retention drops the event log's expired months: events through
// chddl.DropExpiredPartitions, and the same months of the messageUUID
// lookup table (which only points into events). Statistics are aggregates
// without personal data and are kept. On 18.16 this is the only retention
// there is; on 20.1+ the TTL migrations do the same in the background and
// this finds little to do. Several replicas may run it at once: dropping a
// partition twice is harmless.
type Retention struct {
	conn        driver.Conn
	cfg         RetentionConfig
	log         *slog.Logger
	runs        *prometheus.CounterVec
	dropped     *prometheus.CounterVec
	lastSuccess prometheus.Gauge
}

// NewRetention returns the loop; reg gets its metrics.
func NewRetention(conn driver.Conn, cfg RetentionConfig, log *slog.Logger, reg prometheus.Registerer) (*Retention, error) {
	if cfg.Retention == 0 {
		cfg.Retention = chddl.DefaultRetention
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 24 * time.Hour
	}
	if err := (chddl.Options{Database: cfg.Database, Retention: cfg.Retention}).Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	r := &Retention{
		conn: conn, cfg: cfg, log: log,
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "memoflow_eventlog_retention_runs_total",
			Help: "Runs of the event log's retention, by result (ok, error).",
		}, []string{"result"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "memoflow_eventlog_retention_partitions_dropped_total",
			Help: "Expired monthly partitions dropped, by table.",
		}, []string{"table"}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "memoflow_eventlog_retention_last_success_timestamp_seconds",
			Help: "Unix time of the last retention run that succeeded (alert when it is over 2 days old).",
		}),
	}
	for _, c := range []prometheus.Collector{r.runs, r.dropped, r.lastSuccess} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// Run runs the retention now and then every Interval until ctx ends. A
// failed run is logged and counted; the next one tries again.
func (r *Retention) Run(ctx context.Context) {
	t := time.NewTicker(r.cfg.Interval)
	defer t.Stop()
	for {
		_, _ = r.RunOnce(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// RunOnce drops what has expired and returns the partitions dropped, as
// "table:YYYYMM".
func (r *Retention) RunOnce(ctx context.Context) ([]string, error) {
	start := time.Now()
	var out []string
	parts, err := chddl.DropExpiredPartitions(ctx, r.conn, r.cfg.Database, r.cfg.Retention)
	for _, p := range parts {
		out = append(out, chddl.EventsTable+":"+p)
	}
	r.dropped.WithLabelValues(chddl.EventsTable).Add(float64(len(parts)))
	if err == nil {
		parts, err = r.dropLookup(ctx, start)
		for _, p := range parts {
			out = append(out, LookupTable+":"+p)
		}
		r.dropped.WithLabelValues(LookupTable).Add(float64(len(parts)))
	}
	if err != nil {
		r.runs.WithLabelValues("error").Inc()
		r.log.Error("event log retention failed; the next run tries again", "dropped", out, "err", err)
		return out, err
	}
	r.runs.WithLabelValues("ok").Inc()
	r.lastSuccess.SetToCurrentTime()
	r.log.Info("event log retention", "retention_days", retentionDays(r.cfg.Retention), "dropped", out, "took", time.Since(start).Round(time.Millisecond))
	return out, nil
}

func retentionDays(d time.Duration) int { return int((d + 24*time.Hour - 1) / (24 * time.Hour)) }

// dropLookup drops the lookup table's months by the rule
// chddl.DropExpiredPartitions applies to events: a month goes once its
// last day is older than the retention.
func (r *Retention) dropLookup(ctx context.Context, now time.Time) ([]string, error) {
	return chddl.DropExpiredMonths(ctx, r.conn, r.cfg.Database, LookupTable, r.cfg.Retention, now)
}
