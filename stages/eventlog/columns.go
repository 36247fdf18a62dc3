package eventlog

import (
	"time"

	"github.com/memoflow/memoflow/schemas/events"
)

// columnNames is the INSERT column list; columns.slices returns the data
// in the same order. Naming the columns keeps the insert valid when a later
// migration adds a column with a default.
var columnNames = []string{
	"event_date", "event_time", "event_ms",
	"sender_org", "sender_system", "tag", "message_uuid", "transmission_id",
	"recipient_type", "recipient_id", "recipient_key_id",
	"contact_point", "recipient_system", "message_type", "post_type",
	"size_bytes", "attachments", "value_date",
	"receipt_status", "error_code", "actor",
	"kafka_partition", "kafka_offset", "event_index",
}

// columns holds one batch column by column: clickhouse-go appends a whole
// slice per column, which costs far less than boxing 24 values per row.
// The slices are reused from one Write to the next.
type columns struct {
	eventDate, eventTime                                      []time.Time
	eventMs                                                   []uint16
	senderOrg, senderSystem, tag, messageUUID, transmissionID []string
	recipientType, recipientID, recipientKeyID                []string
	contactPoint, recipientSystem, messageType, postType      []string
	size                                                      []uint64
	attachments                                               []uint16
	valueDate                                                 []time.Time
	receiptStatus, errorCode, actor                           []string
	partition                                                 []uint32
	offset                                                    []uint64
	index                                                     []uint16
}

func (c *columns) len() int { return len(c.tag) }

func (c *columns) reset() {
	c.eventDate, c.eventTime, c.valueDate = c.eventDate[:0], c.eventTime[:0], c.valueDate[:0]
	c.eventMs, c.attachments, c.index = c.eventMs[:0], c.attachments[:0], c.index[:0]
	c.size, c.offset, c.partition = c.size[:0], c.offset[:0], c.partition[:0]
	for _, s := range c.strings() {
		clear(*s) // drop references to the previous batch's record strings
		*s = (*s)[:0]
	}
}

func (c *columns) strings() []*[]string {
	return []*[]string{
		&c.senderOrg, &c.senderSystem, &c.tag, &c.messageUUID, &c.transmissionID,
		&c.recipientType, &c.recipientID, &c.recipientKeyID,
		&c.contactPoint, &c.recipientSystem, &c.messageType, &c.postType,
		&c.receiptStatus, &c.errorCode, &c.actor,
	}
}

var epoch = time.Unix(0, 0).UTC()

func (c *columns) add(e *events.Event, partition int32, offset int64, index int) {
	t := e.Time.UTC()
	day := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	c.eventDate = append(c.eventDate, day)
	c.eventTime = append(c.eventTime, t)
	c.eventMs = append(c.eventMs, uint16(t.Nanosecond()/int(time.Millisecond)))
	c.senderOrg = append(c.senderOrg, e.SenderOrg)
	c.senderSystem = append(c.senderSystem, e.SenderSystem)
	c.tag = append(c.tag, string(e.Tag))
	c.messageUUID = append(c.messageUUID, e.MessageUUID)
	c.transmissionID = append(c.transmissionID, e.TransmissionID)
	c.recipientType = append(c.recipientType, e.Recipient.Type().String())
	c.recipientID = append(c.recipientID, e.Recipient.ID())
	c.recipientKeyID = append(c.recipientKeyID, e.Recipient.KeyID())
	c.contactPoint = append(c.contactPoint, e.ContactPoint)
	c.recipientSystem = append(c.recipientSystem, e.RecipientSystem)
	c.messageType = append(c.messageType, e.MessageType)
	c.postType = append(c.postType, e.PostType)
	c.size = append(c.size, e.Size)
	c.attachments = append(c.attachments, e.Attachments)
	vd := e.ValueDate
	if vd.IsZero() {
		vd = epoch // Date has no NULL; 1970-01-01 means "no value date"
	}
	c.valueDate = append(c.valueDate, vd)
	c.receiptStatus = append(c.receiptStatus, e.ReceiptStatus)
	c.errorCode = append(c.errorCode, e.ErrorCode)
	c.actor = append(c.actor, e.Actor)
	c.partition = append(c.partition, uint32(partition))
	c.offset = append(c.offset, uint64(offset))
	c.index = append(c.index, uint16(index))
}

// slices returns the column data in columnNames order.
func (c *columns) slices() []any {
	return []any{
		c.eventDate, c.eventTime, c.eventMs,
		c.senderOrg, c.senderSystem, c.tag, c.messageUUID, c.transmissionID,
		c.recipientType, c.recipientID, c.recipientKeyID,
		c.contactPoint, c.recipientSystem, c.messageType, c.postType,
		c.size, c.attachments, c.valueDate,
		c.receiptStatus, c.errorCode, c.actor,
		c.partition, c.offset, c.index,
	}
}
