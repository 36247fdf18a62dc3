// Package eventlog is the sink stage that writes memo.events into the
// ClickHouse event log, exactly once across crashes and retries. See
// DESIGN.md beside this file.
package eventlog

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/memoflow/memoflow/internal/chconn"
	"github.com/memoflow/memoflow/internal/chsink"
	"github.com/memoflow/memoflow/pipeline"
	"github.com/memoflow/memoflow/schemas/chddl"
	"github.com/memoflow/memoflow/schemas/events"
)

// Poison codes of records that can never be written.
const (
	CodeDecode          = "EVENT_DECODE"
	CodeClearIdentifier = "EVENT_CLEAR_IDENTIFIER"
)

// ErrLineageCollision means a row already in ClickHouse has the Kafka
// position of a record in the batch but is a different event: the topic
// was recreated or its offsets reset, and the exactly-once bookkeeping no
// longer holds. The sink stops rather than guess.
var ErrLineageCollision = errors.New("event log lineage collision")

// Config of the sink.
type Config struct {
	// Database holds the event log (chconn.Config.Database).
	Database string `yaml:"-"`
	// VerifyEveryBatch checks ClickHouse for already-written rows before
	// every insert instead of only when the outcome of earlier writes is
	// unknown. Needed only under a runtime that does not report revoked
	// partitions (pipeline.RevokeListener); it costs one query per batch.
	VerifyEveryBatch bool `yaml:"verify_every_batch"`
}

// RegisterFlags binds eventlog-verify-every-batch.
func (c *Config) RegisterFlags(fs *pflag.FlagSet) {
	fs.BoolVar(&c.VerifyEveryBatch, "eventlog-verify-every-batch", false,
		"look for already-written rows before every insert (only for runtimes that do not report revoked partitions)")
}

// Validate reports an unusable config.
func (c Config) Validate() error {
	if !chconn.IsIdentifier(c.Database) {
		return fmt.Errorf("eventlog: --clickhouse-database must be a plain identifier, got %q", c.Database)
	}
	return nil
}

// Option configures New.
type Option func(*options)

type options struct {
	reg prometheus.Registerer
}

// WithRegisterer registers the sink's metrics on reg instead of
// prometheus.DefaultRegisterer.
func WithRegisterer(reg prometheus.Registerer) Option { return func(o *options) { o.reg = reg } }

// Sink writes memo.events records into the event log. It implements
// pipeline.Sink. Write is serialised internally; the runtime calls it from
// one goroutine anyway.
type Sink struct {
	conn     driver.Conn
	cfg      Config
	features chconn.Features
	insert   string
	metrics  metrics

	mu   sync.Mutex
	offs *chsink.Offsets // which batches must be checked against ClickHouse
	cols columns
	evs  []events.Event
}

var (
	_ pipeline.Sink           = (*Sink)(nil)
	_ pipeline.RevokeListener = (*Sink)(nil)
)

// New returns the sink. The schema must exist (chddl.Migrate).
func New(conn driver.Conn, cfg Config, opts ...Option) (*Sink, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	o := options{reg: prometheus.DefaultRegisterer}
	for _, opt := range opts {
		opt(&o)
	}
	f, err := chconn.ServerFeatures(conn)
	if err != nil {
		return nil, err
	}
	m, err := newMetrics(o.reg)
	if err != nil {
		return nil, err
	}
	return &Sink{
		conn:     conn,
		cfg:      cfg,
		features: f,
		insert:   fmt.Sprintf("INSERT INTO %s.%s (%s)", cfg.Database, chddl.EventsTable, strings.Join(columnNames, ", ")),
		metrics:  m,
		offs:     chsink.NewOffsets("eventlog"),
	}, nil
}

// Name is the stage name.
func (s *Sink) Name() string { return "eventlog" }

// PartitionsRevoked tells the sink it no longer owns these partitions, so
// another consumer may write them before they come back: their next batch
// is checked against ClickHouse. The runtime calls it (pipeline.RevokeListener)
// from kgo's OnPartitionsRevoked and OnPartitionsLost.
func (s *Sink) PartitionsRevoked(revoked map[string][]int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.offs.Revoked(revoked)
}

// Write inserts the events of every record in b with one INSERT. It
// returns nil only after ClickHouse acknowledged the rows (or they were
// found to be there already).
func (s *Sink) Write(ctx context.Context, b *pipeline.Batch) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(b.Records) == 0 {
		return nil
	}
	if err := s.offs.Begin(b.Records); err != nil {
		return err
	}

	var existing map[lineage]identity
	if check := s.offs.ToCheck(s.cfg.VerifyEveryBatch); len(check) > 0 {
		var err error
		if existing, err = s.existing(ctx, b.Records, check); err != nil {
			s.offs.Failed()
			return err
		}
	}

	// Empty the columns on the way out, so they do not pin this batch's
	// records until the next Write.
	defer s.cols.reset()
	skipped := 0
	for _, r := range b.Records {
		var err error
		s.evs, err = events.Decode(r.Value, s.evs[:0])
		if err != nil {
			code := CodeDecode
			if errors.Is(err, events.ErrClearIdentifier) {
				code = CodeClearIdentifier
			}
			s.metrics.rejected.WithLabelValues(code).Inc()
			b.Reject(r, pipeline.Poison(code, err))
			continue
		}
		for i := range s.evs {
			e := &s.evs[i]
			if have, ok := existing[lineage{r.Partition, r.Offset, uint16(i)}]; ok {
				if have != (identity{e.MessageUUID, string(e.Tag)}) {
					s.offs.Failed()
					return pipeline.Fatal(fmt.Errorf("%w: partition %d offset %d event %d is %s/%s in ClickHouse but %s/%s in Kafka",
						ErrLineageCollision, r.Partition, r.Offset, i, have.messageUUID, have.tag, e.MessageUUID, e.Tag))
				}
				skipped++
				continue
			}
			s.cols.add(e, r.Partition, r.Offset, i)
		}
	}
	s.metrics.skipped.Add(float64(skipped))

	if n := s.cols.len(); n > 0 {
		start := time.Now()
		if err := s.send(ctx); err != nil {
			s.offs.Failed()
			err = chconn.Classify(err)
			s.metrics.errors.WithLabelValues(pipeline.ClassOf(err).String()).Inc()
			return fmt.Errorf("eventlog: insert %d rows: %w", n, err)
		}
		s.metrics.insertSeconds.Observe(time.Since(start).Seconds())
		s.metrics.inserted.Add(float64(n))
	}
	s.offs.Done()
	return nil
}

type lineage struct {
	partition int32
	offset    int64
	index     uint16
}

type identity struct{ messageUUID, tag string }

// existing returns the rows of the batch's checked partitions that are
// already in ClickHouse. It checks rows, not a high-water mark: one insert
// is written as one part per month, and a failure can leave some months
// written and others not.
func (s *Sink) existing(ctx context.Context, recs []*kgo.Record, check map[int32]chsink.Span) (map[lineage]identity, error) {
	start := time.Now()
	// The records' event dates bound the search to their months (partition
	// pruning); without them the query would read every month.
	var lo, hi time.Time
	for _, r := range recs {
		if _, ok := check[r.Partition]; !ok {
			continue
		}
		evs, err := events.Decode(r.Value, s.evs[:0])
		s.evs = evs
		if err != nil {
			continue // rejected in the main pass
		}
		for i := range evs {
			t := evs[i].Time.UTC()
			if lo.IsZero() || t.Before(lo) {
				lo = t
			}
			if t.After(hi) {
				hi = t
			}
		}
	}
	if lo.IsZero() {
		return nil, nil // nothing decodable in those partitions
	}
	if err := s.findHorizon(ctx, check, lo); err != nil {
		return nil, err
	}
	var cond []string
	for p, sp := range check {
		cond = append(cond, fmt.Sprintf("(kafka_partition = %d AND kafka_offset BETWEEN %d AND %d)", p, sp.Lo, sp.Hi))
	}
	q := fmt.Sprintf(`SELECT kafka_partition, kafka_offset, event_index, message_uuid, tag FROM %s.%s
WHERE event_date BETWEEN toDate('%s') AND toDate('%s') AND (%s)`,
		s.cfg.Database, chddl.EventsTable, lo.Format(time.DateOnly), hi.Format(time.DateOnly), strings.Join(cond, " OR "))
	rows, err := s.conn.Query(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("eventlog: look for written rows: %w", chconn.Classify(err))
	}
	defer rows.Close()
	found := map[lineage]identity{}
	for rows.Next() {
		var (
			p        uint32
			off      uint64
			idx      uint16
			uuid, tg string
		)
		if err := rows.Scan(&p, &off, &idx, &uuid, &tg); err != nil {
			return nil, fmt.Errorf("eventlog: look for written rows: %w", chconn.Classify(err))
		}
		found[lineage{int32(p), int64(off), idx}] = identity{uuid, tg}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("eventlog: look for written rows: %w", chconn.Classify(err))
	}
	s.metrics.checkSeconds.Observe(time.Since(start).Seconds())
	return found, nil
}

// horizonSlack is how far before a checked batch's first event date the
// horizon query looks for a previous owner's rows. Those rows come later in
// the same partition than the batch, so their events are as recent, give
// or take the producers' clocks and a stage that logs an older time.
const horizonSlack = 7 * 24 * time.Hour

// findHorizon records, for each partition of check that was not known (a
// start, a revoke, a failed write), the highest offset already in
// ClickHouse beyond the batch. A previous owner may have written a whole
// batch past its last commit, and the first batch after a restart can be
// smaller than that one: without the horizon, the next batches would skip
// the check and insert those rows again. One query per restart or
// rebalance, bounded by event date (partition pruning) like the check.
func (s *Sink) findHorizon(ctx context.Context, check map[int32]chsink.Span, from time.Time) error {
	var cond []string
	for p, sp := range s.offs.Unseen(check) {
		cond = append(cond, fmt.Sprintf("(kafka_partition = %d AND kafka_offset > %d)", p, sp.Hi))
	}
	if len(cond) == 0 {
		return nil
	}
	q := fmt.Sprintf(`SELECT kafka_partition, max(kafka_offset) FROM %s.%s
WHERE event_date >= toDate('%s') AND (%s) GROUP BY kafka_partition`,
		s.cfg.Database, chddl.EventsTable, from.Add(-horizonSlack).Format(time.DateOnly), strings.Join(cond, " OR "))
	rows, err := s.conn.Query(ctx, q)
	if err != nil {
		return fmt.Errorf("eventlog: look for rows beyond the batch: %w", chconn.Classify(err))
	}
	defer rows.Close()
	for rows.Next() {
		var (
			p   uint32
			off uint64
		)
		if err := rows.Scan(&p, &off); err != nil {
			return fmt.Errorf("eventlog: look for rows beyond the batch: %w", chconn.Classify(err))
		}
		s.offs.SetHorizon(int32(p), int64(off))
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("eventlog: look for rows beyond the batch: %w", chconn.Classify(err))
	}
	return nil
}

// send inserts s.cols with one batch.
func (s *Sink) send(ctx context.Context) error {
	if s.features.InsertDeduplicationToken {
		ctx = clickhouse.Context(ctx, clickhouse.WithSettings(dedupSettings(&s.cols)))
	}
	batch, err := s.conn.PrepareBatch(ctx, s.insert)
	if err != nil {
		return err
	}
	defer batch.Close()
	for i, col := range s.cols.slices() {
		if err := batch.Column(i).Append(col); err != nil {
			return fmt.Errorf("column %s: %w", columnNames[i], err)
		}
	}
	return batch.Send()
}

// dedupSettings names the insert by the lineage of its rows (24+ only).
// The row check already keeps duplicates out; the token additionally lets
// the server drop a block it has seen, e.g. when the check read a replica
// that had not received a part yet. The token must change with the content
// (a repeated token with other rows is silently dropped), and the lineage
// determines the content.
func dedupSettings(c *columns) clickhouse.Settings {
	h := sha256.New()
	var buf [14]byte
	for i := range c.partition {
		binary.LittleEndian.PutUint32(buf[0:], c.partition[i])
		binary.LittleEndian.PutUint64(buf[4:], c.offset[i])
		binary.LittleEndian.PutUint16(buf[12:], c.index[i])
		h.Write(buf[:])
	}
	return clickhouse.Settings{
		"insert_deduplication_token":                         "eventlog-" + hex.EncodeToString(h.Sum(nil)),
		"deduplicate_blocks_in_dependent_materialized_views": 1,
	}
}
