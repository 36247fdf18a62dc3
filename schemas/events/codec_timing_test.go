package events

import (
	"testing"
	"time"

	"github.com/segmentio/encoding/json"
)

// jsonEvent is what a JSON record format would carry: the same fields,
// with the recipient flattened.
type jsonEvent struct {
	Time            int64  `json:"t"`
	Tag             string `json:"tag"`
	MessageUUID     string `json:"messageUUID,omitempty"`
	TransmissionID  string `json:"transmissionId,omitempty"`
	SenderOrg       string `json:"senderOrg,omitempty"`
	SenderSystem    string `json:"senderSystem,omitempty"`
	RecipientType   uint8  `json:"recipientType,omitempty"`
	RecipientID     string `json:"recipientId,omitempty"`
	RecipientKeyID  string `json:"recipientKeyId,omitempty"`
	ContactPoint    string `json:"contactPoint,omitempty"`
	RecipientSystem string `json:"recipientSystem,omitempty"`
	MessageType     string `json:"messageType,omitempty"`
	PostType        string `json:"postType,omitempty"`
	Size            uint64 `json:"size,omitempty"`
	Attachments     uint16 `json:"attachments,omitempty"`
	ValueDate       string `json:"valueDate,omitempty"`
	ReceiptStatus   string `json:"receiptStatus,omitempty"`
	ErrorCode       string `json:"errorCode,omitempty"`
	Actor           string `json:"actor,omitempty"`
}

func toJSONEvents(evs []Event) []jsonEvent {
	out := make([]jsonEvent, len(evs))
	for i, e := range evs {
		out[i] = jsonEvent{
			Time: e.Time.UnixMilli(), Tag: string(e.Tag), MessageUUID: e.MessageUUID,
			TransmissionID: e.TransmissionID, SenderOrg: e.SenderOrg, SenderSystem: e.SenderSystem,
			RecipientType: uint8(e.Recipient.idType), RecipientID: e.Recipient.id, RecipientKeyID: e.Recipient.keyID,
			ContactPoint: e.ContactPoint, RecipientSystem: e.RecipientSystem, MessageType: e.MessageType,
			PostType: e.PostType, Size: e.Size, Attachments: e.Attachments, ReceiptStatus: e.ReceiptStatus,
			ErrorCode: e.ErrorCode, Actor: e.Actor,
		}
		if !e.ValueDate.IsZero() {
			out[i].ValueDate = e.ValueDate.Format(time.DateOnly)
		}
	}
	return out
}

// BenchmarkCodec compares the binary record format with segmentio JSON of
// the same fields, for one record of a typical step (2 events).
//
//	go test -run XXX -bench Codec -benchmem ./schemas/events/
func BenchmarkCodec(b *testing.B) {
	p, _ := NewPseudonymizer(testKeys...)
	evs := sampleEvents(p)[:2]
	bin := NewRecord("t", evs...).Value
	js, err := json.Marshal(toJSONEvents(evs))
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("record value: binary %d bytes, JSON %d bytes", len(bin), len(js))

	b.Run("encode/binary", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = NewRecord("t", evs...)
		}
	})
	b.Run("encode/json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := json.Marshal(toJSONEvents(evs)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode/binary", func(b *testing.B) {
		b.ReportAllocs()
		dst := make([]Event, 0, 8)
		for b.Loop() {
			var err error
			if dst, err = Decode(bin, dst[:0]); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode/json", func(b *testing.B) {
		b.ReportAllocs()
		dst := make([]jsonEvent, 0, 8)
		for b.Loop() {
			dst = dst[:0]
			if err := json.Unmarshal(js, &dst); err != nil {
				b.Fatal(err)
			}
		}
	})
}
