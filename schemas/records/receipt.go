package records

import (
	"time"

	"github.com/segmentio/encoding/json"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Receipt statuses (NgDP receiptStatus).
const (
	StatusReceived   = "RECEIVED"    // technical receipt: accepted, in Kafka
	StatusCompleted  = "COMPLETED"   // business receipt: delivered
	StatusInvalid    = "INVALID"     // rejected: not a valid MeMo
	StatusNotAllowed = "NOT_ALLOWED" // rejected: the sender may not send this
	StatusFailed     = "FAILED"      // business receipt: delivery failed for good
)

// Receipt kinds: technical (answers the submission) or business (reports
// delivery), told apart in the API.
const (
	KindTechnical = "TECHNICAL"
	KindBusiness  = "BUSINESS"
)

// Receipt is NgDP's receipt JSON, plus who it is for. It is the value of
// memo.receipts records (key = sender system id) and the API's answer.
type Receipt struct {
	TransmissionID string `json:"transmissionId"`
	MessageUUID    string `json:"messageUUID,omitempty"`
	ErrorCode      string `json:"errorCode,omitempty"`
	ErrorMessage   string `json:"errorMessage,omitempty"`
	TimeStamp      string `json:"timeStamp"`
	ReceiptStatus  string `json:"receiptStatus"`
	Kind           string `json:"receiptType,omitempty"`
	// Errors lists every validation failure of an INVALID receipt.
	Errors []ReceiptError `json:"errors,omitempty"`
	// SenderOrg and SenderSystem route the receipt; not part of NgDP's shape.
	SenderOrg    string `json:"senderOrganisation,omitempty"`
	SenderSystem string `json:"senderSystem,omitempty"`
}

// ReceiptError is one validation failure in a receipt.
type ReceiptError struct {
	Code    string `json:"code"`
	Path    string `json:"path,omitempty"`
	Message string `json:"message"`
}

// TimeStampOf formats t as receipts do: UTC with milliseconds and Z.
func TimeStampOf(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

// NewReceiptRecord returns the memo.receipts record for r.
func NewReceiptRecord(topic string, r *Receipt) *kgo.Record {
	b, _ := json.Marshal(r)
	return &kgo.Record{Topic: topic, Key: []byte(r.SenderSystem), Value: b}
}

// DecodeReceipt reads a memo.receipts record value.
func DecodeReceipt(b []byte, r *Receipt) error { return json.Unmarshal(b, r) }
