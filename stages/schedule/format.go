package schedule

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"
	_ "time/tzdata" // Europe/Copenhagen must resolve on minimal images too
)

// Kinds of memo.held records. The changelog keeps the last one per
// messageUUID: HELD while the message waits, then a marker saying how it
// left (kept MarkerRetention so a late recall is answered 409, not 404),
// then a tombstone.
const (
	kindHeld     byte = 1
	kindReleased byte = 2
	kindRecalled byte = 3
)

const heldFormat = 1

// heldRec is one memo.held value.
//
// Format 1: byte 1, byte kind, uvarint releaseAtMs, uvarint seq (the
// memo.valid offset: submission order within the partition), varint atMs
// (held or marked at), sender org and system as uvarint length + bytes,
// then, for kindHeld only, the memo.valid value (an Envelope) as it was.
type heldRec struct {
	kind      byte
	releaseAt int64 // Unix ms: 00:00 Europe/Copenhagen on the value date
	seq       int64
	at        int64
	org       string
	system    string
	envelope  []byte // aliases the decoded buffer
}

func (h *heldRec) appendTo(dst []byte) []byte {
	dst = append(dst, heldFormat, h.kind)
	dst = binary.AppendUvarint(dst, uint64(h.releaseAt))
	dst = binary.AppendUvarint(dst, uint64(h.seq))
	dst = binary.AppendVarint(dst, h.at)
	dst = binary.AppendUvarint(dst, uint64(len(h.org)))
	dst = append(dst, h.org...)
	dst = binary.AppendUvarint(dst, uint64(len(h.system)))
	dst = append(dst, h.system...)
	if h.kind == kindHeld {
		dst = append(dst, h.envelope...)
	}
	return dst
}

var errBadHeld = errors.New("malformed memo.held record")

func decodeHeld(b []byte) (heldRec, error) {
	var h heldRec
	if len(b) < 2 || b[0] != heldFormat || b[1] < kindHeld || b[1] > kindRecalled {
		return h, errBadHeld
	}
	h.kind = b[1]
	b = b[2:]
	u := func() uint64 {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			b = nil
			return 0
		}
		b = b[n:]
		return v
	}
	h.releaseAt = int64(u())
	h.seq = int64(u())
	at, n := binary.Varint(b)
	if n <= 0 {
		return h, errBadHeld
	}
	h.at, b = at, b[n:]
	for _, dst := range []*string{&h.org, &h.system} {
		l := u()
		if b == nil || uint64(len(b)) < l {
			return h, errBadHeld
		}
		*dst, b = string(b[:l]), b[l:]
	}
	if h.kind == kindHeld {
		if len(b) == 0 {
			return h, errBadHeld
		}
		h.envelope = b
	}
	return h, nil
}

// command is a memo.schedule record: a recall (key messageUUID) or a
// release tick (no key, written to one partition).
type command struct {
	Kind      string `json:"kind"` // "recall" or "tick"
	RequestID string `json:"requestId,omitempty"`
	Org       string `json:"org,omitempty"`
	System    string `json:"system,omitempty"`
	AtMs      int64  `json:"atMs,omitempty"`
}

const (
	cmdRecall = "recall"
	cmdTick   = "tick"
)

// Outcome is the schedule stage's decision on one recall request.
type Outcome string

const (
	// OutcomeRecalled: the message was held and is now recalled; it will
	// never be released (DELAYED_MEMO_MESSAGE_RECALLED).
	OutcomeRecalled Outcome = "RECALLED"
	// OutcomeAlreadyRecalled: an earlier request recalled it.
	OutcomeAlreadyRecalled Outcome = "ALREADY_RECALLED"
	// OutcomeTooLate: it was released before the recall was decided.
	OutcomeTooLate Outcome = "TOO_LATE"
	// OutcomeNotFound: the stage holds no such message of the caller's
	// organisation (unknown, another sender's, sent without a future value
	// date, or forgotten after MarkerRetention).
	OutcomeNotFound Outcome = "NOT_FOUND"
)

// Result is a memo.recalls value (key: the request id).
type Result struct {
	RequestID   string  `json:"requestId"`
	MessageUUID string  `json:"messageUUID"`
	Org         string  `json:"org"` // the requesting organisation: only it may read the result
	Outcome     Outcome `json:"outcome"`
	DecidedAt   string  `json:"decidedAt"`
	// ReleasedAt is when a TOO_LATE message was released.
	ReleasedAt string `json:"releasedAt,omitempty"`
}

func decodeCommand(b []byte) (command, error) {
	var c command
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("memo.schedule record: %w", err)
	}
	switch c.Kind {
	case cmdRecall:
		if c.RequestID == "" || c.Org == "" {
			return c, errors.New("memo.schedule recall without requestId or org")
		}
	case cmdTick:
	default:
		return c, fmt.Errorf("memo.schedule record of unknown kind %q", c.Kind)
	}
	return c, nil
}

// Copenhagen is where value dates are read: a value date D means 00:00
// Europe/Copenhagen on D (23:00 UTC the day before in winter, 22:00 in
// summer).
var Copenhagen = mustLoad("Europe/Copenhagen")

func mustLoad(name string) *time.Location {
	l, err := time.LoadLocation(name)
	if err != nil {
		panic(err)
	}
	return l
}

// ReleaseTime returns when a message with Envelope.ValueDate v (days since
// 1970-01-01 plus one; 0 is none) may be released, in loc. ok is false when
// it has no value date.
func ReleaseTime(v uint32, loc *time.Location) (t time.Time, ok bool) {
	if v == 0 {
		return time.Time{}, false
	}
	d := time.Unix(0, 0).UTC().AddDate(0, 0, int(v-1))
	return time.Date(d.Year(), d.Month(), d.Day(), 0, 0, 0, 0, loc), true
}
