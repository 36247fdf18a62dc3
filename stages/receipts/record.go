package receipts

import (
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/segmentio/encoding/json"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/memoflow/memoflow/pipeline"
	"github.com/memoflow/memoflow/schemas/records"
)

// Poison codes of memo.receipts records that can never be stored.
const (
	CodeDecode         = "RECEIPT_DECODE"          // the value is not receipt JSON
	CodeInvalid        = "RECEIPT_INVALID"         // no transmissionId, or an unknown status or type
	CodeNoSender       = "RECEIPT_NO_SENDER"       // neither the key nor the body names the sender system
	CodeSenderMismatch = "RECEIPT_SENDER_MISMATCH" // the key and the body name different sender systems
)

// idSpace is the UUID namespace of receipt ids (a random v4, fixed
// forever: changing it changes every id).
var idSpace = uuid.MustParse("0b6f4c1e-4a8e-4d53-9f0e-6a2f1d7c5b39")

// ID returns the receipt id of r: a name-based UUID (version 5) of its
// transmissionId, messageUUID, type and status. The same receipt produced
// twice (a producer's retry, a stage re-run after a crash) gets the same id
// whatever its timeStamp, so the sink stores it once and a sender never
// sees it twice.
//
// A receipt without a messageUUID (a batch entry that did not parse) also
// hashes its errorCode and errorMessage: otherwise every unparsable entry of
// one batch would share one id and all but one rejection would be lost.
// Receipts identical in all of these fields are the same receipt.
func ID(r *records.Receipt) string {
	kind := r.Kind
	if kind == "" {
		kind = kindOf(r.ReceiptStatus)
	}
	name := r.TransmissionID + "\x00" + r.MessageUUID + "\x00" + kind + "\x00" + r.ReceiptStatus
	if r.MessageUUID == "" {
		name += "\x00" + r.ErrorCode + "\x00" + r.ErrorMessage
	}
	return uuid.NewSHA1(idSpace, []byte(name)).String()
}

// kindOf is the receipt type a status implies, for producers that leave
// receiptType out: acceptance and rejection answer the submission
// (technical), completion and failure report delivery (business).
func kindOf(status string) string {
	switch status {
	case records.StatusCompleted, records.StatusFailed:
		return records.KindBusiness
	}
	return records.KindTechnical
}

func validStatus(s string) bool {
	switch s {
	case records.StatusReceived, records.StatusCompleted, records.StatusInvalid,
		records.StatusNotAllowed, records.StatusFailed:
		return true
	}
	return false
}

func validKind(k string) bool { return k == records.KindTechnical || k == records.KindBusiness }

// Served is a receipt as the API serves it: NgDP's BulkReceipt, the
// Receipt plus its id. The stored body is this JSON, so reads return it as
// stored without decoding.
type Served struct {
	ID string `json:"id"`
	records.Receipt
}

// maxDateTime is the last second a DateTime column holds.
const maxDateTime = 1<<32 - 1

// entry is one decoded memo.receipts record, ready for a row.
type entry struct {
	id        string
	sender    string
	org       string
	at        time.Time // the receipt's timeStamp, UTC
	kind      string
	rc        records.Receipt
	body      []byte // Served JSON
	partition int32
	offset    int64
}

// decodeRecord turns a memo.receipts record into an entry, or a Poison
// error naming why it can never be stored.
func decodeRecord(r *kgo.Record) (entry, error) {
	var rc records.Receipt
	if err := records.DecodeReceipt(r.Value, &rc); err != nil {
		return entry{}, pipeline.Poison(CodeDecode, fmt.Errorf("partition %d offset %d: %w", r.Partition, r.Offset, err))
	}
	sender := rc.SenderSystem
	switch key := string(r.Key); {
	case sender == "" && key == "":
		return entry{}, pipeline.Poison(CodeNoSender, fmt.Errorf("partition %d offset %d: no sender system in key or body", r.Partition, r.Offset))
	case sender == "":
		sender = key
	case key != "" && key != sender:
		// A receipt shown to the wrong sender is a data leak: refuse to
		// guess which one is right.
		return entry{}, pipeline.Poison(CodeSenderMismatch, fmt.Errorf("partition %d offset %d: key says sender system %q, body %q", r.Partition, r.Offset, key, sender))
	}
	if rc.Kind == "" {
		rc.Kind = kindOf(rc.ReceiptStatus)
	}
	switch {
	case rc.TransmissionID == "":
		return entry{}, pipeline.Poison(CodeInvalid, fmt.Errorf("partition %d offset %d: no transmissionId", r.Partition, r.Offset))
	case !validStatus(rc.ReceiptStatus):
		return entry{}, pipeline.Poison(CodeInvalid, fmt.Errorf("partition %d offset %d: unknown receiptStatus %q", r.Partition, r.Offset, rc.ReceiptStatus))
	case !validKind(rc.Kind):
		return entry{}, pipeline.Poison(CodeInvalid, fmt.Errorf("partition %d offset %d: unknown receiptType %q", r.Partition, r.Offset, rc.Kind))
	}
	at, err := time.Parse(time.RFC3339Nano, rc.TimeStamp)
	if err != nil {
		// The record's own time is as deterministic as the field: a replay
		// of the record lands on the same row key.
		at = r.Timestamp
	}
	at = at.UTC().Truncate(time.Millisecond)
	if at.Unix() <= 0 || at.Unix() > maxDateTime {
		// DateTime is seconds since 1970 in a UInt32.
		return entry{}, pipeline.Poison(CodeInvalid, fmt.Errorf("partition %d offset %d: no usable timeStamp (%q) and no record timestamp", r.Partition, r.Offset, rc.TimeStamp))
	}
	e := entry{id: ID(&rc), sender: sender, org: rc.SenderOrg, at: at, kind: rc.Kind, partition: r.Partition, offset: r.Offset}
	// Routing fields are columns; the served body has NgDP's shape only.
	rc.SenderOrg, rc.SenderSystem = "", ""
	e.rc = rc
	e.body, err = json.Marshal(Served{ID: e.id, Receipt: rc})
	if err != nil {
		return entry{}, pipeline.Poison(CodeDecode, errors.Join(fmt.Errorf("partition %d offset %d: re-encode", r.Partition, r.Offset), err))
	}
	return e, nil
}
