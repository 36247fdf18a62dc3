package receipts

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Table is the receipts table inside the configured database
// (schemas/chddl/migrations/0010_receipts.sql).
const Table = "receipts"

// columnNames is the INSERT column list; columns.slices returns the data in
// the same order. Naming the columns keeps the insert valid when a later
// migration adds a column with a default (and 18.16 needs the list).
var columnNames = []string{
	"receipt_date", "receipt_time", "receipt_ms",
	"sender_system", "sender_org", "receipt_id",
	"transmission_id", "message_uuid", "receipt_type", "receipt_status", "error_code",
	"body", "deleted", "version", "deleted_at",
	"kafka_partition", "kafka_offset",
}

func insertStatement(db string) string {
	return fmt.Sprintf("INSERT INTO %s.%s (%s)", db, Table, strings.Join(columnNames, ", "))
}

// columns holds rows column by column: clickhouse-go appends a whole slice
// per column, far cheaper than boxing 17 values per row. The sink reuses
// them from one Write to the next; deletion marks use their own.
type columns struct {
	date, at                                       []time.Time
	ms                                             []uint16
	sender, org, id                                []string
	transmission, message, kind, status, errorCode []string
	body                                           []string
	deleted                                        []uint8
	version                                        []uint64
	deletedAt                                      []time.Time
	partition                                      []uint32
	offset                                         []uint64
}

func (c *columns) len() int { return len(c.id) }

func (c *columns) reset() {
	c.date, c.at, c.deletedAt = c.date[:0], c.at[:0], c.deletedAt[:0]
	c.ms, c.deleted, c.version = c.ms[:0], c.deleted[:0], c.version[:0]
	c.partition, c.offset = c.partition[:0], c.offset[:0]
	for _, s := range []*[]string{&c.sender, &c.org, &c.id, &c.transmission, &c.message, &c.kind, &c.status, &c.errorCode, &c.body} {
		clear(*s) // drop references to the previous batch's strings
		*s = (*s)[:0]
	}
}

var epoch = time.Unix(0, 0).UTC()

// row is one row of the table; add appends it.
type row struct {
	at                                             time.Time
	sender, org, id                                string
	transmission, message, kind, status, errorCode string
	body                                           string
	deleted                                        bool
	version                                        uint64
	deletedAt                                      time.Time
	partition                                      int32
	offset                                         int64
}

func (c *columns) add(r *row) {
	t := r.at.UTC()
	c.date = append(c.date, time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC))
	c.at = append(c.at, t)
	c.ms = append(c.ms, uint16(t.Nanosecond()/int(time.Millisecond)))
	c.sender = append(c.sender, r.sender)
	c.org = append(c.org, r.org)
	c.id = append(c.id, r.id)
	c.transmission = append(c.transmission, r.transmission)
	c.message = append(c.message, r.message)
	c.kind = append(c.kind, r.kind)
	c.status = append(c.status, r.status)
	c.errorCode = append(c.errorCode, r.errorCode)
	c.body = append(c.body, r.body)
	var d uint8
	if r.deleted {
		d = 1
	}
	c.deleted = append(c.deleted, d)
	c.version = append(c.version, r.version)
	da := r.deletedAt
	if da.IsZero() {
		da = epoch // DateTime has no NULL; 1970-01-01 means "not deleted"
	}
	c.deletedAt = append(c.deletedAt, da)
	c.partition = append(c.partition, uint32(r.partition))
	c.offset = append(c.offset, uint64(r.offset))
}

// addEntry appends the row of a decoded record (version 0, not deleted).
func (c *columns) addEntry(e *entry) {
	c.add(&row{
		at: e.at, sender: e.sender, org: e.org, id: e.id,
		transmission: e.rc.TransmissionID, message: e.rc.MessageUUID, kind: e.kind,
		status: e.rc.ReceiptStatus, errorCode: e.rc.ErrorCode, body: string(e.body),
		partition: e.partition, offset: e.offset,
	})
}

// slices returns the column data in columnNames order.
func (c *columns) slices() []any {
	return []any{
		c.date, c.at, c.ms,
		c.sender, c.org, c.id,
		c.transmission, c.message, c.kind, c.status, c.errorCode,
		c.body, c.deleted, c.version, c.deletedAt,
		c.partition, c.offset,
	}
}

// send inserts c as one block (one part per month partition it touches).
func (c *columns) send(ctx context.Context, conn driver.Conn, insert string) error {
	batch, err := conn.PrepareBatch(ctx, insert)
	if err != nil {
		return err
	}
	defer batch.Close()
	for i, col := range c.slices() {
		if err := batch.Column(i).Append(col); err != nil {
			return fmt.Errorf("column %s: %w", columnNames[i], err)
		}
	}
	return batch.Send()
}
