package validate

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/memoflow/memoflow/pipeline"
	"github.com/memoflow/memoflow/schemas/events"
	"github.com/memoflow/memoflow/schemas/memo"
	"github.com/memoflow/memoflow/schemas/records"
)

const uuid = "8c2ea15d-61fb-4ba9-9366-42f8b194c114"

func memoXML(valueDate string) string {
	vd := ""
	if valueDate != "" {
		vd = "<memo:doNotDeliverUntilDate>" + valueDate + "</memo:doNotDeliverUntilDate>"
	}
	return `<?xml version="1.0" encoding="UTF-8"?>
<memo:Message xmlns:memo="https://DigitalPost.dk/MeMo-1" memoVersion="1.2">
<memo:MessageHeader><memo:messageType>DIGITALPOST</memo:messageType><memo:messageUUID>` + uuid + `</memo:messageUUID>
<memo:label>Test</memo:label>` + vd + `<memo:Sender><memo:senderID>12345678</memo:senderID><memo:idType>CVR</memo:idType><memo:label>Kommunen</memo:label></memo:Sender>
<memo:Recipient><memo:recipientID>2211771212</memo:recipientID><memo:idType>CPR</memo:idType></memo:Recipient></memo:MessageHeader>
<memo:MessageBody><memo:createdDateTime>2024-05-03T12:00:00Z</memo:createdDateTime><memo:MainDocument><memo:File>
<memo:encodingFormat>application/pdf</memo:encodingFormat><memo:filename>a.pdf</memo:filename><memo:language>da</memo:language>
<memo:content>VGhpcyBpcyBhIHRlc3Q=</memo:content></memo:File></memo:MainDocument></memo:MessageBody></memo:Message>`
}

func ingestRecord(body string, mass bool) *kgo.Record {
	return records.NewIngestRecord(pipeline.TopicIngest, records.IngestMeta{
		MessageUUID: uuid, TransmissionID: "t-1", SenderOrg: "12345678", SenderSystem: "sys-a",
		ReceivedAt: time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC), MassSend: mass, Size: len(body),
	}, []byte(body))
}

func newStage(t *testing.T) *Stage {
	p, err := events.NewPseudonymizer(events.Key{ID: "k1", Secret: []byte("0123456789abcdef0123456789abcdef")})
	if err != nil {
		t.Fatal(err)
	}
	return New(p, func() time.Time { return time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC) })
}

func byTopic(out []*kgo.Record) map[string][]*kgo.Record {
	m := map[string][]*kgo.Record{}
	for _, r := range out {
		m[r.Topic] = append(m[r.Topic], r)
	}
	return m
}

func TestStage(t *testing.T) {
	for _, tc := range []struct {
		name      string
		body      string
		mass      bool
		valid     bool
		firstTag  events.Tag
		errCode   string
		valueDate uint32
	}{
		{"valid", memoXML(""), false, true, events.MemoSendReceived, "", 0},
		{"valid mass send with value date", memoXML("2026-11-25"), true, true, events.MemoMassSendReceived, "", uint32(time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC).Unix()/86400) + 1},
		{"value date too far", memoXML("2026-12-25"), false, false, events.MemoSendReceived, "", 0},
		{"schema invalid", strings.Replace(memoXML(""), "<memo:label>Test</memo:label>", "", 1), false, false, events.MemoSendReceived, "", 0},
		{"wrong uuid in header", strings.Replace(memoXML(""), uuid, "0b1e4c8e-2c3d-4f5a-9b8c-7d6e5f4a3b2c", 1), false, false, events.MemoSendReceived, "", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStage(t)
			b := &pipeline.Batch{Records: []*kgo.Record{ingestRecord(tc.body, tc.mass)}}
			if err := s.Transform(context.Background(), b); err != nil {
				t.Fatal(err)
			}
			out := byTopic(b.Outputs())
			if len(out[pipeline.TopicEvents]) != 1 {
				t.Fatalf("want one events record, got %d", len(out[pipeline.TopicEvents]))
			}
			evs, err := events.Decode(out[pipeline.TopicEvents][0].Value, nil)
			if err != nil || len(evs) != 2 {
				t.Fatalf("events: %v %d", err, len(evs))
			}
			if evs[0].Tag != tc.firstTag {
				t.Errorf("first event %s, want %s", evs[0].Tag, tc.firstTag)
			}
			if evs[0].Recipient.ID() == "2211771212" || !evs[0].Recipient.Pseudonymised() {
				t.Errorf("CPR in clear in an event")
			}
			if tc.valid {
				wantReceipts := 0
				if tc.mass {
					wantReceipts = 1 // the per-message RECEIVED of a batch
				}
				if evs[1].Tag != events.MemoSendValidated || len(out[pipeline.TopicValid]) != 1 || len(out[pipeline.TopicReceipts]) != wantReceipts {
					t.Fatalf("valid message: tags %s, %d valid, %d receipts", evs[1].Tag, len(out[pipeline.TopicValid]), len(out[pipeline.TopicReceipts]))
				}
				var env records.Envelope
				if err := env.Decode(out[pipeline.TopicValid][0].Value); err != nil {
					t.Fatal(err)
				}
				if env.MessageUUID != uuid || string(env.Body) != tc.body || env.SenderOrg != "12345678" ||
					env.RecipientType != records.IDCPR || env.MemoVersion != 12 || env.Attachments != 1 || env.ValueDate != tc.valueDate || env.MassSend != tc.mass {
					t.Fatalf("envelope %+v", env)
				}
				return
			}
			if evs[1].Tag != events.MemoSendValidationFailed || evs[1].ErrorCode == "" || len(out[pipeline.TopicValid]) != 0 {
				t.Fatalf("invalid message: tag %s code %q, %d valid", evs[1].Tag, evs[1].ErrorCode, len(out[pipeline.TopicValid]))
			}
			if len(out[pipeline.TopicReceipts]) != 1 {
				t.Fatal("no INVALID receipt")
			}
			var rc records.Receipt
			if err := records.DecodeReceipt(out[pipeline.TopicReceipts][0].Value, &rc); err != nil {
				t.Fatal(err)
			}
			if rc.ReceiptStatus != records.StatusInvalid || len(rc.Errors) == 0 || rc.SenderSystem != "sys-a" {
				t.Fatalf("receipt %+v", rc)
			}
			for _, e := range rc.Errors {
				if memo.LookupCode(memo.Code(e.Code)).Code == "" {
					t.Errorf("receipt code %s is not in the catalogue", e.Code)
				}
			}
		})
	}
}

func TestPoisonWithoutHeaders(t *testing.T) {
	s := newStage(t)
	b := &pipeline.Batch{Records: []*kgo.Record{{Topic: pipeline.TopicIngest, Value: []byte("<x/>")}}}
	if err := s.Transform(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	if b.Rejected() != 1 || len(b.Outputs()) != 0 {
		t.Fatalf("rejected %d, outputs %d", b.Rejected(), len(b.Outputs()))
	}
}

func BenchmarkStage(b *testing.B) {
	p, _ := events.NewPseudonymizer(events.Key{ID: "k1", Secret: []byte("0123456789abcdef0123456789abcdef")})
	s := New(p, func() time.Time { return time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC) })
	recs := make([]*kgo.Record, 1000)
	for i := range recs {
		recs[i] = ingestRecord(memoXML(""), true)
	}
	b.SetBytes(int64(len(memoXML("")) * len(recs)))
	b.ReportAllocs()
	for b.Loop() {
		batch := &pipeline.Batch{Records: recs}
		if err := s.Transform(context.Background(), batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(recs))/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkMemoCheckAlone is the same-run baseline: the MeMo package alone.
func BenchmarkMemoCheckAlone(b *testing.B) {
	body := []byte(memoXML(""))
	opts := memo.ValidateOptions{Now: func() time.Time { return time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC) }, ExpectedUUID: uuid}
	b.SetBytes(int64(len(body) * 1000))
	b.ReportAllocs()
	for b.Loop() {
		for i := 0; i < 1000; i++ {
			if _, errs := memo.Check(body, opts); len(errs) != 0 {
				b.Fatal(errs)
			}
		}
	}
	b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "msgs/s")
}
