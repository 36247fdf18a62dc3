// Package receipts stores the receipts of memo.receipts in ClickHouse
// and serves them to sender systems over NgDP's receipts API:
//
//   - Sink, the stage "receipts": memo.receipts into the receipts table,
//     every record exactly once and every receipt id once;
//   - Store, the queries: pages of receipt ids, bulk pages, one receipt,
//     deletion;
//   - API, the stage "receipts-api": GET /apis/v1/receipts/, GET and DELETE
//     /apis/v1/receipts/{id}, GET /apis/v1/receipts-bulk/.
//
// See DESIGN.md beside this file, and docs/receipts-api.md.
package receipts

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/ext"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/memoflow/memoflow/internal/chconn"
	"github.com/memoflow/memoflow/internal/chsink"
	"github.com/memoflow/memoflow/pipeline"
)

// ErrLineageCollision means a row in ClickHouse has the Kafka position of
// a record in the batch but another receipt id: the topic was recreated or
// its offsets reset, and the exactly-once bookkeeping no longer holds. The
// sink stops rather than guess.
var ErrLineageCollision = errors.New("receipts lineage collision")

// DefaultDedupWindow is how far back the sink looks for an earlier copy of
// a receipt id: far more than a stage re-run after a crash takes.
const DefaultDedupWindow = time.Hour

// Config of the sink.
type Config struct {
	// Database holds the receipts table (chconn.Config.Database).
	Database string `yaml:"-"`
	// DedupWindow: a receipt whose id was stored up to this long before it
	// (by its timeStamp) is not stored again. 0 means DefaultDedupWindow.
	// Every batch reads the ids of its sender systems' receipts of this
	// window, so it is a cost per batch.
	DedupWindow time.Duration `yaml:"dedup_window"`
}

// Validate reports an unusable config.
func (c Config) Validate() error {
	if !chconn.IsIdentifier(c.Database) {
		return fmt.Errorf("receipts: --clickhouse-database must be a plain identifier, got %q", c.Database)
	}
	if c.DedupWindow < 0 {
		return fmt.Errorf("receipts: dedup_window must not be negative, got %v", c.DedupWindow)
	}
	return nil
}

// Option configures New and NewAPI.
type Option func(*options)

type options struct {
	reg    prometheus.Registerer
	pusher Pusher
	now    func() time.Time
}

// WithRegisterer registers metrics on reg instead of
// prometheus.DefaultRegisterer.
func WithRegisterer(reg prometheus.Registerer) Option { return func(o *options) { o.reg = reg } }

// WithPusher makes the sink hand every stored batch to p (see Pusher).
// Without it receipts are only stored, for the API.
func WithPusher(p Pusher) Option { return func(o *options) { o.pusher = p } }

// WithClock injects time (deletion times in tests).
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

func buildOptions(opts []Option) options {
	o := options{reg: prometheus.DefaultRegisterer, now: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// Sink writes memo.receipts into the receipts table. It implements
// pipeline.Sink and pipeline.RevokeListener. Write is serialised
// internally; the runtime calls it from one goroutine anyway.
type Sink struct {
	conn    driver.Conn
	cfg     Config
	insert  string
	metrics sinkMetrics
	pusher  Pusher

	mu sync.Mutex
	// offs says which partitions' records must be checked by lineage. No
	// horizon is needed here, unlike the event log: every batch's receipt
	// ids are checked anyway, so rows a previous owner wrote past its
	// commit are caught as duplicates.
	offs    *chsink.Offsets
	entries []entry
	cols    columns
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
	if cfg.DedupWindow == 0 {
		cfg.DedupWindow = DefaultDedupWindow
	}
	o := buildOptions(opts)
	m, err := newSinkMetrics(o.reg)
	if err != nil {
		return nil, err
	}
	return &Sink{
		conn:    conn,
		cfg:     cfg,
		insert:  insertStatement(cfg.Database),
		metrics: m,
		pusher:  o.pusher,
		offs:    chsink.NewOffsets("receipts"),
	}, nil
}

// Name is the stage name.
func (s *Sink) Name() string { return "receipts" }

// PartitionsRevoked tells the sink it no longer owns these partitions, so
// another consumer may write them before they come back: their next batch
// is checked for rows by lineage. The runtime calls it
// (pipeline.RevokeListener) from kgo's OnPartitionsRevoked and
// OnPartitionsLost.
func (s *Sink) PartitionsRevoked(revoked map[string][]int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.offs.Revoked(revoked)
}

// Write stores the receipts of b with one INSERT, leaving out the ones
// ClickHouse already holds, and returns nil only once ClickHouse
// acknowledged them (and the Pusher, if any, took them).
func (s *Sink) Write(ctx context.Context, b *pipeline.Batch) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(b.Records) == 0 {
		return nil
	}
	if err := s.offs.Begin(b.Records); err != nil {
		return err
	}
	clear(s.entries)
	s.entries = s.entries[:0]
	for _, r := range b.Records {
		e, err := decodeRecord(r)
		if err != nil {
			s.metrics.rejected.WithLabelValues(pipeline.CodeOf(err)).Inc()
			b.Reject(r, err)
			continue
		}
		s.entries = append(s.entries, e)
	}
	if len(s.entries) == 0 {
		s.offs.Done()
		return nil
	}

	found, err := s.existing(ctx, s.offs.ToCheck(false))
	if err != nil {
		s.offs.Failed()
		s.metrics.errors.WithLabelValues(pipeline.ClassOf(err).String()).Inc()
		return err
	}

	// Empty the columns on the way out, so they do not pin this batch's
	// strings until the next Write.
	defer s.cols.reset()
	written, dups := 0, 0
	batchIDs := make(map[string]struct{}, len(s.entries))
	for i := range s.entries {
		e := &s.entries[i]
		if have, ok := found.byLineage[lineage{e.partition, e.offset}]; ok {
			if have != e.id {
				s.offs.Failed()
				return pipeline.Fatal(fmt.Errorf("%w: partition %d offset %d is receipt %s in ClickHouse but %s in Kafka",
					ErrLineageCollision, e.partition, e.offset, have, e.id))
			}
			written++
			continue
		}
		if _, ok := found.ids[e.id]; ok {
			dups++
			continue
		}
		if _, ok := batchIDs[e.id]; ok {
			dups++
			continue
		}
		batchIDs[e.id] = struct{}{}
		s.cols.addEntry(e)
	}
	s.metrics.skipped.WithLabelValues("written").Add(float64(written))
	s.metrics.skipped.WithLabelValues("duplicate").Add(float64(dups))

	if n := s.cols.len(); n > 0 {
		start := time.Now()
		if err := s.cols.send(ctx, s.conn, s.insert); err != nil {
			s.offs.Failed()
			err = chconn.Classify(err)
			s.metrics.errors.WithLabelValues(pipeline.ClassOf(err).String()).Inc()
			return fmt.Errorf("receipts: insert %d rows: %w", n, err)
		}
		s.metrics.insertSeconds.Observe(time.Since(start).Seconds())
		s.metrics.inserted.Add(float64(n))
	}
	s.offs.Done()
	return s.push(ctx, b)
}

// push hands the batch's receipts to the Pusher, after the insert: a
// RecordPusher's records are emitted in b (exactly once, with the offsets).
func (s *Sink) push(ctx context.Context, b *pipeline.Batch) error {
	if s.pusher == nil {
		return nil
	}
	out := make([]Pushed, len(s.entries))
	for i := range s.entries {
		e := &s.entries[i]
		out[i] = Pushed{ID: e.id, SenderSystem: e.sender, SenderOrg: e.org, Time: e.at, Body: e.body}
	}
	if rp, ok := s.pusher.(RecordPusher); ok {
		for _, r := range rp.PushRecords(out) {
			b.Emit(r)
		}
		return nil
	}
	if err := s.pusher.Push(ctx, out); err != nil {
		return fmt.Errorf("receipts: push %d receipts: %w", len(out), err)
	}
	return nil
}

type lineage struct {
	partition int32
	offset    int64
}

type found struct {
	byLineage map[lineage]string  // rows of this batch's records (unknown partitions only)
	ids       map[string]struct{} // receipt ids of the batch already stored
}

// existing asks ClickHouse, in one query, which of the batch's receipt ids
// its sender systems already have in the dedup window, and, for the
// partitions in check, which of its records are stored already. The ids
// and senders go as external tables: a batch's ids do not fit in a query's
// text (max_query_size), and 18.16 has no query parameters.
func (s *Sink) existing(ctx context.Context, check map[int32]chsink.Span) (found, error) {
	start := time.Now()
	ids, err := ext.NewTable("batch_ids", ext.Column("receipt_id", "UUID"))
	if err != nil {
		return found{}, pipeline.Fatal(err)
	}
	senders, err := ext.NewTable("batch_senders", ext.Column("sender_system", "String"))
	if err != nil {
		return found{}, pipeline.Fatal(err)
	}
	seen := map[string]struct{}{}
	lo, hi := s.entries[0].at, s.entries[0].at
	for i := range s.entries {
		e := &s.entries[i]
		if err := ids.Append(e.id); err != nil {
			return found{}, pipeline.Fatal(err)
		}
		if _, ok := seen[e.sender]; !ok {
			seen[e.sender] = struct{}{}
			if err := senders.Append(e.sender); err != nil {
				return found{}, pipeline.Fatal(err)
			}
		}
		lo, hi = minTime(lo, e.at), maxTime(hi, e.at)
	}
	lo = lo.Add(-s.cfg.DedupWindow)
	if lo.Unix() < 1 {
		lo = time.Unix(1, 0).UTC()
	}
	cond := []string{"receipt_id IN batch_ids"}
	for p, sp := range check {
		cond = append(cond, fmt.Sprintf("(kafka_partition = %d AND kafka_offset BETWEEN %d AND %d)", p, sp.Lo, sp.Hi))
	}
	// receipt_date prunes months, sender_system and receipt_time are a
	// range of the sorting key. A record's row has its receipt's time, so
	// the rows of the checked partitions fall in the same range.
	q := fmt.Sprintf(`SELECT kafka_partition, kafka_offset, toString(receipt_id) FROM %s.%s
WHERE sender_system IN batch_senders
  AND receipt_date BETWEEN toDate('%s') AND toDate('%s')
  AND receipt_time BETWEEN toDateTime(%d) AND toDateTime(%d)
  AND (%s)`,
		s.cfg.Database, Table, lo.Format(time.DateOnly), hi.Format(time.DateOnly), lo.Unix(), hi.Unix(), strings.Join(cond, " OR "))
	rows, err := s.conn.Query(clickhouse.Context(ctx, clickhouse.WithExternalTable(ids, senders)), q)
	if err != nil {
		return found{}, fmt.Errorf("receipts: look for stored receipts: %w", chconn.Classify(err))
	}
	defer rows.Close()
	f := found{byLineage: map[lineage]string{}, ids: map[string]struct{}{}}
	for rows.Next() {
		var (
			p   uint32
			off uint64
			id  string
		)
		if err := rows.Scan(&p, &off, &id); err != nil {
			return found{}, fmt.Errorf("receipts: look for stored receipts: %w", chconn.Classify(err))
		}
		f.ids[id] = struct{}{}
		if sp, ok := check[int32(p)]; ok && int64(off) >= sp.Lo && int64(off) <= sp.Hi {
			f.byLineage[lineage{int32(p), int64(off)}] = id
		}
	}
	if err := rows.Err(); err != nil {
		return found{}, fmt.Errorf("receipts: look for stored receipts: %w", chconn.Classify(err))
	}
	s.metrics.checkSeconds.Observe(time.Since(start).Seconds())
	return f, nil
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
