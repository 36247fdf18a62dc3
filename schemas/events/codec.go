package events

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// The memo.events record: one record carries all events of one message
// step (a small list), key = messageUUID, so a message's events stay in
// order on one partition.
//
// Value, format 1 (binary; BenchmarkCodec compares it with JSON):
//
//	byte    format (1)
//	uvarint number of events
//	per event, in this order:
//	  varint  time, Unix milliseconds
//	  str     tag, messageUUID, transmissionId, senderOrg, senderSystem
//	  byte    recipient id type (0 none, 1 CPR, 2 CVR, 3 other)
//	  str     recipient id, recipient key id
//	  str     contactPoint, recipientSystem, messageType, postType
//	  uvarint size, attachments
//	  uvarint value date as days since 1970-01-01 plus one (0: none)
//	  str     receiptStatus, errorCode, actor
//
// where str is a uvarint length and that many bytes. A later format gets
// a new first byte; Decode keeps reading the old ones.
const formatV1 = 1

// maxEvents bounds the count field, so a corrupt record cannot make Decode
// allocate without limit. One message step emits a handful of events.
const maxEvents = 1 << 12

var (
	// ErrMalformed is wrapped by every Decode error about the bytes.
	ErrMalformed = errors.New("malformed memo.events record")
	// ErrClearIdentifier is wrapped when a record carries a recipient id in
	// clear that is not a CVR: a producer bypassed the Pseudonymizer.
	ErrClearIdentifier = errors.New("recipient identifier in clear")
)

// NewRecord returns the memo.events record for the events of one message
// step. The key is the first event's MessageUUID (none for admin events).
func NewRecord(topic string, evs ...Event) *kgo.Record {
	r := &kgo.Record{Topic: topic, Value: Append(make([]byte, 0, encodedLen(evs)), evs...)}
	if len(evs) > 0 && evs[0].MessageUUID != "" {
		r.Key = []byte(evs[0].MessageUUID)
	}
	return r
}

// Append appends the record value for evs to dst.
func Append(dst []byte, evs ...Event) []byte {
	dst = append(dst, formatV1)
	dst = binary.AppendUvarint(dst, uint64(len(evs)))
	for i := range evs {
		e := &evs[i]
		dst = binary.AppendVarint(dst, e.Time.UnixMilli())
		dst = appendStr(dst, string(e.Tag))
		dst = appendStr(dst, e.MessageUUID)
		dst = appendStr(dst, e.TransmissionID)
		dst = appendStr(dst, e.SenderOrg)
		dst = appendStr(dst, e.SenderSystem)
		dst = append(dst, byte(e.Recipient.idType))
		dst = appendStr(dst, e.Recipient.id)
		dst = appendStr(dst, e.Recipient.keyID)
		dst = appendStr(dst, e.ContactPoint)
		dst = appendStr(dst, e.RecipientSystem)
		dst = appendStr(dst, e.MessageType)
		dst = appendStr(dst, e.PostType)
		dst = binary.AppendUvarint(dst, e.Size)
		dst = binary.AppendUvarint(dst, uint64(e.Attachments))
		dst = binary.AppendUvarint(dst, dateToWire(e.ValueDate))
		dst = appendStr(dst, e.ReceiptStatus)
		dst = appendStr(dst, e.ErrorCode)
		dst = appendStr(dst, e.Actor)
	}
	return dst
}

// encodedLen is the encoded size or a little more (unless a string is over
// 2 MB), so NewRecord allocates once.
func encodedLen(evs []Event) int {
	n := 1 + binary.MaxVarintLen64
	for i := range evs {
		e := &evs[i]
		n += 4*binary.MaxVarintLen64 + 1 + 16*binary.MaxVarintLen16 +
			len(e.Tag) + len(e.MessageUUID) + len(e.TransmissionID) + len(e.SenderOrg) +
			len(e.SenderSystem) + len(e.Recipient.id) + len(e.Recipient.keyID) +
			len(e.ContactPoint) + len(e.RecipientSystem) + len(e.MessageType) +
			len(e.PostType) + len(e.ReceiptStatus) + len(e.ErrorCode) + len(e.Actor)
	}
	return n
}

func appendStr(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

func dateToWire(t time.Time) uint64 {
	if t.IsZero() {
		return 0
	}
	y, m, d := t.Date()
	days := time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Unix() / 86400
	if days < 0 {
		return 0
	}
	return uint64(days) + 1
}

// Decode appends the events of one record value to dst. It allocates one
// string per record and points every string field into it, so decoding a
// batch costs about one allocation per record. On error dst is returned
// as it was.
func Decode(value []byte, dst []Event) ([]Event, error) {
	if len(value) == 0 {
		return dst, fmt.Errorf("%w: empty value", ErrMalformed)
	}
	if value[0] != formatV1 {
		return dst, fmt.Errorf("%w: unknown format %d", ErrMalformed, value[0])
	}
	d := decoder{s: string(value), i: 1}
	n := d.uvarint()
	if d.err != nil {
		return dst, d.err
	}
	if n > maxEvents {
		return dst, fmt.Errorf("%w: %d events in one record", ErrMalformed, n)
	}
	orig := len(dst)
	for range n {
		dst = append(dst, Event{})
		e := &dst[len(dst)-1]
		e.Time = time.UnixMilli(d.varint()).UTC()
		e.Tag = Tag(d.str())
		e.MessageUUID = d.str()
		e.TransmissionID = d.str()
		e.SenderOrg = d.str()
		e.SenderSystem = d.str()
		e.Recipient.idType = IDType(d.byte())
		e.Recipient.id = d.str()
		e.Recipient.keyID = d.str()
		e.ContactPoint = d.str()
		e.RecipientSystem = d.str()
		e.MessageType = d.str()
		e.PostType = d.str()
		e.Size = d.uvarint()
		att := d.uvarint()
		e.Attachments = uint16(att)
		if vd := d.uvarint(); vd > 0 {
			e.ValueDate = time.Unix(int64(vd-1)*86400, 0).UTC()
		}
		e.ReceiptStatus = d.str()
		e.ErrorCode = d.str()
		e.Actor = d.str()
		if d.err == nil {
			d.err = checkEvent(e, att)
		}
		if d.err != nil {
			return dst[:orig], d.err
		}
	}
	if d.i != len(d.s) {
		return dst[:orig], fmt.Errorf("%w: %d trailing bytes", ErrMalformed, len(d.s)-d.i)
	}
	return dst, nil
}

// checkEvent enforces on the consumer side what the Pseudonymizer enforces
// on the producer side, so a hand-made record cannot smuggle a CPR into
// the event log.
func checkEvent(e *Event, attachments uint64) error {
	r := e.Recipient
	switch {
	case r.idType > OtherID:
		return fmt.Errorf("%w: recipient id type %d", ErrMalformed, r.idType)
	case attachments > 0xFFFF:
		return fmt.Errorf("%w: %d attachments", ErrMalformed, attachments)
	case r.keyID == "" && r.id != "" && !(r.idType == CVR && isCVR(r.id)):
		return fmt.Errorf("%w: a %v recipient id that is not a pseudonym", ErrClearIdentifier, r.idType)
	case r.keyID != "" && !isPseudonym(r.id):
		return fmt.Errorf("%w: recipient id under key %q is not a pseudonym", ErrClearIdentifier, r.keyID)
	}
	return nil
}

type decoder struct {
	s   string
	i   int
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: truncated at byte %d reading %s", ErrMalformed, d.i, what)
	}
	d.i = len(d.s)
}

func (d *decoder) uvarint() uint64 {
	var x uint64
	var s uint
	for j := 0; d.i < len(d.s) && j < binary.MaxVarintLen64; j++ {
		b := d.s[d.i]
		d.i++
		if b < 0x80 {
			return x | uint64(b)<<s
		}
		x |= uint64(b&0x7f) << s
		s += 7
	}
	d.fail("a number")
	return 0
}

func (d *decoder) varint() int64 {
	ux := d.uvarint()
	x := int64(ux >> 1)
	if ux&1 != 0 {
		x = ^x
	}
	return x
}

func (d *decoder) byte() byte {
	if d.i >= len(d.s) {
		d.fail("a byte")
		return 0
	}
	b := d.s[d.i]
	d.i++
	return b
}

func (d *decoder) str() string {
	n := d.uvarint()
	if n > uint64(len(d.s)-d.i) {
		d.fail("a string")
		return ""
	}
	s := d.s[d.i : d.i+int(n)]
	d.i += int(n)
	return s
}
