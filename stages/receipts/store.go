package receipts

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/ext"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/memoflow/memoflow/internal/chconn"
)

// ErrClosed is returned by deletions after Store.Close.
var ErrClosed = errors.New("receipts store closed")

// StoreConfig tunes the queries of the API.
type StoreConfig struct {
	// Database holds the receipts table (chconn.Config.Database).
	Database string
	// QueryTimeout bounds every query, on the server too
	// (max_execution_time): a cancelled context alone leaves the query
	// running there. 0 means 10 s.
	QueryTimeout time.Duration
	// DeleteLinger is how long a deletion waits for others to share its
	// INSERT. Every INSERT is a part; a client deleting receipts one by one
	// must not make one part per receipt. 0 means 5 ms; negative means no
	// wait (deletions arriving during an INSERT still share the next one).
	DeleteLinger time.Duration
	// DeleteMaxRows caps the rows of one deletion INSERT. 0 means 10,000.
	DeleteMaxRows int
}

func (c StoreConfig) withDefaults() StoreConfig {
	if c.QueryTimeout == 0 {
		c.QueryTimeout = 10 * time.Second
	}
	if c.DeleteLinger == 0 {
		c.DeleteLinger = 5 * time.Millisecond
	}
	if c.DeleteMaxRows == 0 {
		c.DeleteMaxRows = 10_000
	}
	return c
}

// Filter narrows a listing; zero fields do not filter.
type Filter struct {
	TransmissionID string
	MessageUUID    string
	Status         string // receiptStatus
	Kind           string // receiptType
	Since          time.Time
}

// Store reads and deletes one sender system's receipts. Every method
// takes the sender system: there is no query across senders.
type Store struct {
	conn     driver.Conn
	db       string
	cfg      StoreConfig
	now      func() time.Time
	settings clickhouse.Settings
	marks    *marker
}

// NewStore returns a store over the receipts table (chddl.Migrate must
// have run). Close it to stop its deletion writer.
func NewStore(conn driver.Conn, cfg StoreConfig, opts ...Option) (*Store, error) {
	if !chconn.IsIdentifier(cfg.Database) {
		return nil, fmt.Errorf("receipts: --clickhouse-database must be a plain identifier, got %q", cfg.Database)
	}
	cfg = cfg.withDefaults()
	if cfg.QueryTimeout < 0 || cfg.DeleteMaxRows < 1 {
		return nil, fmt.Errorf("receipts: query timeout %v and delete max rows %d must be positive", cfg.QueryTimeout, cfg.DeleteMaxRows)
	}
	o := buildOptions(opts)
	s := &Store{
		conn: conn, db: cfg.Database, cfg: cfg, now: o.now,
		// Whole seconds, at least 1: 18.16 takes an integer.
		settings: clickhouse.Settings{"max_execution_time": max(1, int(cfg.QueryTimeout/time.Second))},
	}
	s.marks = newMarker(conn, insertStatement(cfg.Database), cfg)
	return s, nil
}

// Close stops the deletion writer; deletions after it fail with ErrClosed.
func (s *Store) Close() { s.marks.close() }

func (s *Store) ctx(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.QueryTimeout)
	return clickhouse.Context(ctx, clickhouse.WithSettings(s.settings)), cancel
}

// where renders the conditions of a listing with its bind arguments. The
// sender is always the first: it is also the sorting key's prefix.
func (s *Store) where(sender string, f Filter) (string, []any) {
	conds := []string{"sender_system = ?", "deleted = 0"}
	args := []any{sender}
	add := func(col, v string) {
		if v != "" {
			conds = append(conds, col+" = ?")
			args = append(args, v)
		}
	}
	add("transmission_id", f.TransmissionID)
	add("message_uuid", f.MessageUUID)
	add("receipt_status", f.Status)
	add("receipt_type", f.Kind)
	if !f.Since.IsZero() {
		t := f.Since.UTC()
		// The date prunes months; the second range is part of the
		// sorting key; the milliseconds finish the job.
		conds = append(conds, fmt.Sprintf("receipt_date >= toDate('%s')", t.Format(time.DateOnly)),
			fmt.Sprintf("receipt_time >= toDateTime(%d)", t.Unix()),
			fmt.Sprintf("(receipt_time > toDateTime(%d) OR receipt_ms >= %d)", t.Unix(), t.Nanosecond()/int(time.Millisecond)))
	}
	return strings.Join(conds, " AND "), args
}

// pageRow is one receipt of a page, in order.
type pageRow struct {
	id string
	at time.Time
}

// page returns the ids (and times) of one page of a sender's receipts,
// oldest first, and how many there are in all. FINAL merges each
// deletion mark with the row it deletes before `deleted = 0` is applied
// (ClickHouse applies WHERE after FINAL's merge; it moves conditions to
// PREWHERE only on sorting-key columns when FINAL is used, and this
// condition is not one).
func (s *Store) page(ctx context.Context, sender string, f Filter, number, size int) ([]pageRow, uint64, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	where, args := s.where(sender, f)
	// The count and the page run side by side: FINAL merges in one stream
	// on 18.16, so two queries use two cores.
	var (
		total    uint64
		countErr error
		wg       sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		countErr = s.conn.QueryRow(ctx, fmt.Sprintf("SELECT count() FROM %s.%s FINAL WHERE %s", s.db, Table, where), args...).Scan(&total)
	}()
	out, err := s.pageRows(ctx, where, args, uint64(number)*uint64(size), size)
	wg.Wait()
	if countErr != nil {
		return nil, 0, fmt.Errorf("receipts: count: %w", chconn.Classify(countErr))
	}
	if err != nil {
		return nil, 0, err
	}
	return out, total, nil
}

func (s *Store) pageRows(ctx context.Context, where string, args []any, offset uint64, size int) ([]pageRow, error) {
	rows, err := s.conn.Query(ctx, fmt.Sprintf(`SELECT toString(receipt_id), receipt_time, receipt_ms FROM %s.%s FINAL WHERE %s
ORDER BY receipt_time, receipt_ms, receipt_id LIMIT %d, %d`, s.db, Table, where, offset, size), args...)
	if err != nil {
		return nil, fmt.Errorf("receipts: list: %w", chconn.Classify(err))
	}
	defer rows.Close()
	out := make([]pageRow, 0, size)
	for rows.Next() {
		var (
			r  pageRow
			ms uint16
		)
		if err := rows.Scan(&r.id, &r.at, &ms); err != nil {
			return nil, fmt.Errorf("receipts: list: %w", chconn.Classify(err))
		}
		r.at = r.at.UTC().Add(time.Duration(ms) * time.Millisecond)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("receipts: list: %w", chconn.Classify(err))
	}
	return out, nil
}

// IDs returns page number (zero-based) of size of a sender's receipt ids,
// oldest first, without deleted ones, and the number of them in all.
func (s *Store) IDs(ctx context.Context, sender string, f Filter, number, size int) ([]string, uint64, error) {
	rows, total, err := s.page(ctx, sender, f, number, size)
	if err != nil {
		return nil, 0, err
	}
	ids := make([]string, len(rows))
	for i, r := range rows {
		ids[i] = r.id
	}
	return ids, total, nil
}

// Bulk is IDs with the receipts themselves: each body is the Served JSON.
// The bodies are read in a second query bounded by the page's time range,
// a few adjacent granules: reading them in the first would read the body
// of every receipt of the sender (18.16 has no late materialisation).
func (s *Store) Bulk(ctx context.Context, sender string, f Filter, number, size int) ([][]byte, uint64, error) {
	page, total, err := s.page(ctx, sender, f, number, size)
	if err != nil || len(page) == 0 {
		return nil, total, err
	}
	ids, err := ext.NewTable("page_ids", ext.Column("receipt_id", "UUID"))
	if err != nil {
		return nil, 0, err
	}
	lo, hi := page[0].at, page[0].at
	for _, r := range page {
		if err := ids.Append(r.id); err != nil {
			return nil, 0, err
		}
		lo, hi = minTime(lo, r.at), maxTime(hi, r.at)
	}
	qctx, cancel := s.ctx(ctx)
	defer cancel()
	// No FINAL: deleted = 0 keeps the original rows (a deletion mark has
	// no body), and a receipt deleted since the first query was live when
	// the page was cut.
	// PREWHERE on the id: bodies are read only from granules holding one
	// (18.16 does not move this condition to PREWHERE by itself).
	rows, err := s.conn.Query(clickhouse.Context(qctx, clickhouse.WithExternalTable(ids)), fmt.Sprintf(`SELECT toString(receipt_id), body FROM %s.%s
PREWHERE receipt_id IN page_ids
WHERE sender_system = ? AND receipt_date BETWEEN toDate('%s') AND toDate('%s')
  AND receipt_time BETWEEN toDateTime(%d) AND toDateTime(%d)
  AND deleted = 0`, s.db, Table, lo.Format(time.DateOnly), hi.Format(time.DateOnly), lo.Unix(), hi.Unix()), sender)
	if err != nil {
		return nil, 0, fmt.Errorf("receipts: bulk: %w", chconn.Classify(err))
	}
	defer rows.Close()
	bodies := make(map[string][]byte, len(page))
	for rows.Next() {
		var id, body string
		if err := rows.Scan(&id, &body); err != nil {
			return nil, 0, fmt.Errorf("receipts: bulk: %w", chconn.Classify(err))
		}
		bodies[id] = []byte(body)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("receipts: bulk: %w", chconn.Classify(err))
	}
	out := make([][]byte, 0, len(page))
	for _, r := range page {
		if b, ok := bodies[r.id]; ok {
			out = append(out, b)
		}
	}
	return out, total, nil
}

// live returns the live rows of receipt id of sender: for each sorting
// key the highest version, if it is not a deletion. Usually one row; two
// when the same receipt was stored twice further apart than the sink's
// dedup window. It reads without FINAL and resolves versions itself: FINAL
// would merge the sender's whole key range to answer for one id. The
// explicit PREWHERE reads the id column of the sender's rows and the other
// columns of one granule only: 18.16 left alone reads them all (17 MiB
// against 272 MiB for a sender with 1M receipts).
func (s *Store) live(ctx context.Context, sender, id string) ([]row, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	rows, err := s.conn.Query(ctx, fmt.Sprintf(`SELECT receipt_time, receipt_ms, sender_org, transmission_id, message_uuid,
	receipt_type, receipt_status, error_code, body, deleted, version, kafka_partition, kafka_offset
FROM %s.%s PREWHERE receipt_id = toUUID(?) WHERE sender_system = ?`, s.db, Table), id, sender)
	if err != nil {
		return nil, fmt.Errorf("receipts: get: %w", chconn.Classify(err))
	}
	defer rows.Close()
	// The highest version per sorting key (the time: sender and id are
	// fixed here).
	latest := map[int64]row{}
	for rows.Next() {
		var (
			r       row
			ms      uint16
			deleted uint8
			part    uint32
			off     uint64
		)
		if err := rows.Scan(&r.at, &ms, &r.org, &r.transmission, &r.message, &r.kind, &r.status, &r.errorCode,
			&r.body, &deleted, &r.version, &part, &off); err != nil {
			return nil, fmt.Errorf("receipts: get: %w", chconn.Classify(err))
		}
		r.at = r.at.UTC().Add(time.Duration(ms) * time.Millisecond)
		r.sender, r.id, r.deleted = sender, id, deleted == 1
		r.partition, r.offset = int32(part), int64(off)
		k := r.at.UnixMilli()
		if prev, ok := latest[k]; !ok || r.version > prev.version {
			latest[k] = r
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("receipts: get: %w", chconn.Classify(err))
	}
	var out []row
	for _, r := range latest {
		if !r.deleted {
			out = append(out, r)
		}
	}
	// Oldest copy first, as the listing orders them.
	slices.SortFunc(out, func(a, b row) int { return a.at.Compare(b.at) })
	return out, nil
}

// Get returns the Served JSON of receipt id of sender, or ok=false when
// the sender has no such live receipt (unknown, another sender's, or
// deleted).
func (s *Store) Get(ctx context.Context, sender, id string) (body []byte, ok bool, err error) {
	rs, err := s.live(ctx, sender, id)
	if err != nil || len(rs) == 0 {
		return nil, false, err
	}
	return []byte(rs[0].body), true, nil
}

// Take is Get followed by Delete of what was read. The receipt is returned
// even when the deletion fails (markErr): the sender must not lose a
// receipt it was never given, and a receipt it sees twice has the same id.
func (s *Store) Take(ctx context.Context, sender, id string) (body []byte, ok bool, markErr, err error) {
	rs, err := s.live(ctx, sender, id)
	if err != nil || len(rs) == 0 {
		return nil, false, nil, err
	}
	return []byte(rs[0].body), true, s.mark(ctx, rs), nil
}

// Delete marks receipt id of sender deleted. ok=false means there was no
// live receipt to delete (unknown, another sender's, or deleted already).
// It returns once ClickHouse acknowledged the deletion.
func (s *Store) Delete(ctx context.Context, sender, id string) (ok bool, err error) {
	rs, err := s.live(ctx, sender, id)
	if err != nil || len(rs) == 0 {
		return false, err
	}
	return true, s.mark(ctx, rs)
}

// mark writes a deletion version of each row: same sorting key and
// partition, higher version, no body.
func (s *Store) mark(ctx context.Context, rs []row) error {
	now := s.now().UTC()
	out := make([]row, len(rs))
	for i, m := range rs {
		m.body, m.deleted, m.deletedAt = "", true, now
		// Above the sink's 0 and any earlier mark; ties are harmless
		// (both rows say deleted).
		m.version = uint64(now.UnixNano())
		out[i] = m
	}
	return s.marks.write(ctx, out)
}

// marker writes deletion marks with group commit: deletions that arrive
// while an INSERT is running (or within DeleteLinger of the first) share
// the next INSERT, so ClickHouse sees few parts whatever the clients do.
type marker struct {
	conn   driver.Conn
	insert string
	cfg    StoreConfig
	reqs   chan *markReq
	stop   chan struct{}
	done   chan struct{}
	once   sync.Once
	cols   columns
}

type markReq struct {
	rows []row
	err  chan error
}

func newMarker(conn driver.Conn, insert string, cfg StoreConfig) *marker {
	m := &marker{conn: conn, insert: insert, cfg: cfg,
		reqs: make(chan *markReq), stop: make(chan struct{}), done: make(chan struct{})}
	go m.run()
	return m
}

func (m *marker) close() {
	m.once.Do(func() { close(m.stop) })
	<-m.done
}

// write queues rows and waits until they are stored (or failed). A
// cancelled ctx stops the wait, not the INSERT: the outcome is then
// unknown, which the caller reports as an error.
func (m *marker) write(ctx context.Context, rows []row) error {
	r := &markReq{rows: rows, err: make(chan error, 1)}
	select {
	case m.reqs <- r:
	case <-m.stop:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-r.err:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (m *marker) run() {
	defer close(m.done)
	for {
		var batch []*markReq
		select {
		case r := <-m.reqs:
			batch = append(batch, r)
		case <-m.stop:
			return
		}
		n := len(batch[0].rows)
		take := func(r *markReq) {
			batch = append(batch, r)
			n += len(r.rows)
		}
		if m.cfg.DeleteLinger > 0 {
			t := time.NewTimer(m.cfg.DeleteLinger)
		linger:
			for n < m.cfg.DeleteMaxRows {
				select {
				case r := <-m.reqs:
					take(r)
				case <-t.C:
					break linger
				}
			}
			t.Stop()
		} else {
			// Only the deletions already waiting (they queued up while the
			// previous INSERT ran).
		waiting:
			for n < m.cfg.DeleteMaxRows {
				select {
				case r := <-m.reqs:
					take(r)
				default:
					break waiting
				}
			}
		}
		err := m.send(batch)
		for _, r := range batch {
			r.err <- err
		}
	}
}

func (m *marker) send(batch []*markReq) error {
	defer m.cols.reset()
	for _, r := range batch {
		for i := range r.rows {
			m.cols.add(&r.rows[i])
		}
	}
	// Not a request's context: the INSERT serves every request in it.
	ctx, cancel := context.WithTimeout(context.Background(), m.cfg.QueryTimeout)
	defer cancel()
	if err := m.cols.send(ctx, m.conn, m.insert); err != nil {
		return fmt.Errorf("receipts: store %d deletions: %w", m.cols.len(), chconn.Classify(err))
	}
	return nil
}
