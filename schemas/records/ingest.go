package records

import (
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Headers of memo.ingest records (key = messageUUID, value = the MeMo as
// submitted, or empty when it went to the blob store). Headers carry
// identifiers and hashes, never content.
const (
	HeaderTransmission = "memoflow.transmission" // transmission id of the submission
	HeaderSenderOrg    = "memoflow.sender.org"   // CVR of the authenticated sender
	HeaderSenderSystem = "memoflow.sender.system"
	HeaderReceivedAt   = "memoflow.received" // Unix ms
	HeaderMassSend     = "memoflow.mass"     // "1" for a batch (tar+LZMA) submission
	HeaderContentHash  = "memoflow.sha256"   // hex SHA-256 of the MeMo bytes
	HeaderBlobKey      = "memoflow.blob"     // claim-check key, when the MeMo is in the blob store
	HeaderSize         = "memoflow.size"     // MeMo size in bytes
)

// IngestMeta is what ingest knows about a submission besides the bytes.
type IngestMeta struct {
	MessageUUID    string
	TransmissionID string
	SenderOrg      string
	SenderSystem   string
	ReceivedAt     time.Time
	MassSend       bool
	ContentSHA256  string // hex
	BlobKey        string
	Size           int
}

// NewIngestRecord builds the memo.ingest record for a MeMo (body nil when
// claim-checked).
func NewIngestRecord(topic string, m IngestMeta, body []byte) *kgo.Record {
	h := []kgo.RecordHeader{
		{Key: HeaderTransmission, Value: []byte(m.TransmissionID)},
		{Key: HeaderSenderOrg, Value: []byte(m.SenderOrg)},
		{Key: HeaderSenderSystem, Value: []byte(m.SenderSystem)},
		{Key: HeaderReceivedAt, Value: strconv.AppendInt(nil, m.ReceivedAt.UnixMilli(), 10)},
		{Key: HeaderContentHash, Value: []byte(m.ContentSHA256)},
		{Key: HeaderSize, Value: strconv.AppendInt(nil, int64(m.Size), 10)},
	}
	if m.MassSend {
		h = append(h, kgo.RecordHeader{Key: HeaderMassSend, Value: []byte("1")})
	}
	if m.BlobKey != "" {
		h = append(h, kgo.RecordHeader{Key: HeaderBlobKey, Value: []byte(m.BlobKey)})
	}
	return &kgo.Record{Topic: topic, Key: []byte(m.MessageUUID), Value: body, Headers: h}
}

// ReadIngestMeta reads the headers of a memo.ingest record.
func ReadIngestMeta(r *kgo.Record) IngestMeta {
	m := IngestMeta{MessageUUID: string(r.Key)}
	for _, h := range r.Headers {
		switch h.Key {
		case HeaderTransmission:
			m.TransmissionID = string(h.Value)
		case HeaderSenderOrg:
			m.SenderOrg = string(h.Value)
		case HeaderSenderSystem:
			m.SenderSystem = string(h.Value)
		case HeaderReceivedAt:
			ms, _ := strconv.ParseInt(string(h.Value), 10, 64)
			m.ReceivedAt = time.UnixMilli(ms)
		case HeaderMassSend:
			m.MassSend = string(h.Value) == "1"
		case HeaderContentHash:
			m.ContentSHA256 = string(h.Value)
		case HeaderBlobKey:
			m.BlobKey = string(h.Value)
		case HeaderSize:
			n, _ := strconv.Atoi(string(h.Value))
			m.Size = n
		}
	}
	return m
}
