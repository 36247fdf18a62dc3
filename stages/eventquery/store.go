package eventquery

import (
	"context"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/memoflow/memoflow/schemas/chddl"
)

// LookupTable is the messageUUID index of the event log (migration 0005).
const LookupTable = "events_by_message"

// store runs the APIs' queries. Every query goes through query or
// queryRow, which put max_execution_time on it: a client that gives up
// does not stop a query on the server (clickhouse-lab.md), the server's
// own limit does.
type store struct {
	conn    driver.Conn
	db      string
	maxTime time.Duration
}

// ctx returns the query's context: max_execution_time set, cancelled with
// the caller's context, and without its deadline. clickhouse-go replaces
// max_execution_time by (time to the deadline + 5 s) whenever the context
// has a deadline (queryOptions in its context.go), which would lift the
// limit; without a deadline the setting given here stands, and the
// connection's read timeout still bounds the wait for the server.
func (s *store) ctx(ctx context.Context) (context.Context, context.CancelFunc) {
	secs := int(math.Ceil(s.maxTime.Seconds()))
	qctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, cancel)
	qctx = clickhouse.Context(qctx, clickhouse.WithSettings(clickhouse.Settings{
		"max_execution_time": secs,
	}))
	return qctx, func() { stop(); cancel() }
}

func (s *store) query(ctx context.Context, sql string, args ...any) (driver.Rows, context.CancelFunc, error) {
	ctx, cancel := s.ctx(ctx)
	rows, err := s.conn.Query(ctx, sql, args...)
	if err != nil {
		cancel()
		return nil, nil, err
	}
	return rows, cancel, nil
}

func (s *store) queryRow(ctx context.Context, sql string, args []any, dest ...any) error {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	return s.conn.QueryRow(ctx, sql, args...).Scan(dest...)
}

// cond is a conjunction of conditions with their ? binds. Values are only
// ever bound; column names come from fixed tables in this package.
type cond struct {
	sql  []string
	args []any
}

func (c *cond) add(sql string, args ...any) {
	c.sql = append(c.sql, sql)
	c.args = append(c.args, args...)
}

// in adds col IN (?, ?, ...). ClickHouse uses the primary key for IN on
// key columns, on 18.16 too.
func (c *cond) in(col string, vals []string) {
	ph := strings.TrimSuffix(strings.Repeat("?, ", len(vals)), ", ")
	args := make([]any, len(vals))
	for i, v := range vals {
		args[i] = v
	}
	c.add(col+" IN ("+ph+")", args...)
}

func (c *cond) String() string {
	if len(c.sql) == 0 {
		return "1"
	}
	return strings.Join(c.sql, " AND ")
}

// location says where a message's rows are in events: its sender
// organisations, systems and days, from the lookup table.
type location struct {
	orgs, systems, days []string
}

// locate reads the lookup table. nil means the message is not there.
func (s *store) locate(ctx context.Context, messageUUID string) (*location, error) {
	rows, cancel, err := s.query(ctx, fmt.Sprintf(
		"SELECT sender_org, sender_system, toString(event_date) FROM %s.%s WHERE message_uuid = ? GROUP BY sender_org, sender_system, event_date LIMIT 1000",
		s.db, LookupTable), messageUUID)
	if err != nil {
		return nil, err
	}
	defer cancel()
	defer rows.Close()
	var loc location
	add := func(l *[]string, v string) {
		for _, x := range *l {
			if x == v {
				return
			}
		}
		*l = append(*l, v)
	}
	n := 0
	for rows.Next() {
		var org, sys, day string
		if err := rows.Scan(&org, &sys, &day); err != nil {
			return nil, err
		}
		add(&loc.orgs, org)
		add(&loc.systems, sys)
		add(&loc.days, day)
		n++
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if n == 0 {
		return nil, nil
	}
	return &loc, nil
}

// eventFilter is what an events query selects.
type eventFilter struct {
	from, to     time.Time // [from, to); zero means unbounded
	system       string    // sender or recipient system
	party        string    // an organisation as sender or recipient
	partyDir     string    // direction for party (operators)
	pseudonyms   []string  // a person as recipient, under every key
	tags         []string
	messageUUID  string
	loc          *location // where messageUUID's rows are
	scoped       bool      // false for operators: no restriction
	scopeOrg     string    // the caller's organisation ("" if it sees none)
	scopeDir     string    // direction for scopeOrg
	scopeSystems []string  // a supplier's selections: their received events
}

// scopeCond is what a scoped caller may see: its organisation's events
// (by direction) or the events received by its selections, or both; with
// neither, nothing ("0": a supplier nobody selected).
func scopeCond(c *cond, org, dir string, systems []string) {
	var parts []string
	var args []any
	if org != "" {
		sub := &cond{}
		orgCond(sub, org, dir)
		parts, args = append(parts, sub.String()), append(args, sub.args...)
	}
	// A selection's traffic is what it received; "sent" has none of it.
	if len(systems) > 0 && dir != directionSent {
		sub := &cond{}
		sub.in("recipient_system", systems)
		parts, args = append(parts, sub.String()), append(args, sub.args...)
	}
	anyOf(c, parts, args)
}

// anyOf adds the disjunction of parts (with their binds in order); none
// is false.
func anyOf(c *cond, parts []string, args []any) {
	switch len(parts) {
	case 0:
		c.add("0")
	case 1:
		c.add(parts[0], args...)
	default:
		c.add("("+strings.Join(parts, " OR ")+")", args...)
	}
}

// orgCond is "the organisation sent it, received it, or either", by
// direction. Sending is sender_org, the primary key's first column;
// receiving is recipient CVR, which no key covers.
func orgCond(c *cond, org, dir string) {
	switch dir {
	case directionSent:
		c.add("sender_org = ?", org)
	case directionReceived:
		c.add("(recipient_type = 'CVR' AND recipient_id = ?)", org)
	default:
		c.add("(sender_org = ? OR (recipient_type = 'CVR' AND recipient_id = ?))", org, org)
	}
}

func (f *eventFilter) cond() *cond {
	c := &cond{}
	if !f.from.IsZero() {
		// event_date bounds the months (partitions) and the key ranges read;
		// event_time makes the bound exact.
		c.add("event_date >= toDate(?) AND event_time >= toDateTime(?)", f.from.Format(time.DateOnly), f.from.Unix())
	}
	if !f.to.IsZero() {
		last := f.to.Add(-time.Second)
		c.add("event_date <= toDate(?) AND event_time < toDateTime(?)", last.Format(time.DateOnly), f.to.Unix())
	}
	if f.loc != nil {
		c.in("sender_org", f.loc.orgs)
		c.in("sender_system", f.loc.systems)
		c.add("event_date IN (" + strings.TrimSuffix(strings.Repeat("toDate(?), ", len(f.loc.days)), ", ") + ")")
		for _, d := range f.loc.days {
			c.args = append(c.args, d)
		}
	}
	if f.messageUUID != "" {
		c.add("message_uuid = ?", f.messageUUID)
	}
	if f.scoped {
		scopeCond(c, f.scopeOrg, f.scopeDir, f.scopeSystems)
	}
	if f.party != "" {
		orgCond(c, f.party, f.partyDir)
	}
	if len(f.pseudonyms) > 0 {
		c.in("recipient_id", f.pseudonyms)
	}
	if f.system != "" {
		c.add("(sender_system = ? OR recipient_system = ?)", f.system, f.system)
	}
	if len(f.tags) > 0 {
		c.in("tag", f.tags)
	}
	return c
}

// eventColumns is the SELECT list that eventRow.scan reads.
const eventColumns = `event_time, event_ms, tag, message_uuid, transmission_id, sender_org, sender_system,
recipient_type, recipient_id, recipient_key_id, contact_point, recipient_system, message_type, post_type,
size_bytes, attachments, value_date, receipt_status, error_code, actor, kafka_partition, kafka_offset, event_index`

// tieBreak makes every order total, so pages neither repeat nor skip rows:
// the lineage is unique per event.
const tieBreak = "kafka_partition, kafka_offset, event_index"

type eventRow struct {
	time                                                      time.Time
	ms                                                        uint16
	tag, messageUUID, transmissionID, senderOrg, senderSystem string
	recipientType, recipientID, recipientKeyID                string
	contactPoint, recipientSystem, messageType, postType      string
	size                                                      uint64
	attachments                                               uint16
	valueDate                                                 time.Time
	receiptStatus, errorCode, actor                           string
	partition                                                 uint32
	offset                                                    uint64
	index                                                     uint16
}

func (r *eventRow) scan(rows driver.Rows) error {
	return rows.Scan(&r.time, &r.ms, &r.tag, &r.messageUUID, &r.transmissionID, &r.senderOrg, &r.senderSystem,
		&r.recipientType, &r.recipientID, &r.recipientKeyID, &r.contactPoint, &r.recipientSystem, &r.messageType, &r.postType,
		&r.size, &r.attachments, &r.valueDate, &r.receiptStatus, &r.errorCode, &r.actor, &r.partition, &r.offset, &r.index)
}

// orderBy renders the sort keys and the tie-break.
func orderBy(keys []sortKey) string {
	var parts []string
	for _, k := range keys {
		for _, col := range sortColumns[k.field] {
			if k.desc {
				col += " DESC"
			}
			parts = append(parts, col)
		}
	}
	return strings.Join(append(parts, tieBreak), ", ")
}

// events returns one page of events and, when count is set, how many
// match in all.
func (s *store) events(ctx context.Context, f *eventFilter, keys []sortKey, offset, limit int, count bool) ([]eventRow, uint64, error) {
	c := f.cond()
	var total uint64
	if count {
		if err := s.queryRow(ctx, fmt.Sprintf("SELECT count() FROM %s.%s WHERE %s", s.db, chddl.EventsTable, c), c.args, &total); err != nil {
			return nil, 0, err
		}
		if total <= uint64(offset) {
			return nil, total, nil
		}
	}
	q := fmt.Sprintf("SELECT %s FROM %s.%s WHERE %s ORDER BY %s LIMIT %d, %d",
		eventColumns, s.db, chddl.EventsTable, c, orderBy(keys), offset, limit)
	rows, cancel, err := s.query(ctx, q, c.args...)
	if err != nil {
		return nil, 0, err
	}
	defer cancel()
	defer rows.Close()
	var out []eventRow
	for rows.Next() {
		var r eventRow
		if err := r.scan(rows); err != nil {
			return nil, 0, err
		}
		out = append(out, r)
	}
	return out, total, rows.Err()
}

// statsRow is one group of the statistics: the dimension values in the
// order asked, and the sums.
type statsRow struct {
	key       []string
	events    uint64
	sizeBytes uint64
}

// stats groups event_stats_daily. The table is a SummingMergeTree: rows
// with the same key are summed only when parts merge, so it is always read
// with GROUP BY and sum(), never row by row or with count() (which with
// FINAL returns 0 on 18.16).
func (s *store) stats(ctx context.Context, sq *statsQuery, sc scope) ([]statsRow, error) {
	c := &cond{}
	c.add("day >= toDate(?) AND day <= toDate(?)", sq.from.Format(time.DateOnly), sq.to.Format(time.DateOnly))
	if !sc.all {
		// An organisation's statistics are of what it sent (the summing
		// view's key); a supplier's of what its selections received.
		var parts []string
		var args []any
		if sc.org != "" {
			parts, args = append(parts, "sender_org = ?"), append(args, sc.org)
		}
		if len(sc.systems) > 0 {
			sub := &cond{}
			sub.in("recipient_system", sc.systems)
			parts, args = append(parts, sub.String()), append(args, sub.args...)
		}
		anyOf(c, parts, args)
	}
	for _, f := range sq.filters {
		c.in(statsFilters[f.param], f.values)
	}
	var sel, group []string
	for i, d := range sq.dims {
		alias := fmt.Sprintf("d%d", i)
		sel = append(sel, fmt.Sprintf("toString(%s) AS %s", statsDims[d], alias))
		group = append(group, alias)
	}
	sel = append(sel, "sum(events)", "sum(size_bytes)")
	q := fmt.Sprintf("SELECT %s FROM %s.%s WHERE %s", strings.Join(sel, ", "), s.db, chddl.StatsTable, c)
	if len(group) > 0 {
		g := strings.Join(group, ", ")
		q += fmt.Sprintf(" GROUP BY %s ORDER BY %s LIMIT %d", g, g, MaxStatsRows+1)
	}
	rows, cancel, err := s.query(ctx, q, c.args...)
	if err != nil {
		return nil, err
	}
	defer cancel()
	defer rows.Close()
	var out []statsRow
	for rows.Next() {
		r := statsRow{key: make([]string, len(sq.dims))}
		dest := make([]any, 0, len(sq.dims)+2)
		for i := range r.key {
			dest = append(dest, &r.key[i])
		}
		dest = append(dest, &r.events, &r.sizeBytes)
		if err := rows.Scan(dest...); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(out) > MaxStatsRows {
		return nil, errorf(CodeTooManyRows, "more than %d groups: use fewer dimensions, more filters or a shorter range", MaxStatsRows)
	}
	return out, nil
}
