// Package validate is the parse+validate stage: it reads memo.ingest,
// parses and validates every MeMo with schemas/memo, and passes valid
// messages on to memo.valid as compact Envelopes (carrying the original
// bytes), so no later stage reads XML again. It emits
// MEMO_SEND_RECEIVED / MEMO_MASS_SEND_RECEIVED and MEMO_SEND_VALIDATED /
// MEMO_SEND_VALIDATION_FAILED events, and an INVALID receipt with every
// error code for a message that fails.
//
// Parsing and validating are one Transformer on purpose: the validator
// works on the parser's in-memory model, and splitting them would mean
// serialising that whole model between two topics, which costs more than
// the parse itself. Run more replicas to scale it.
package validate

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/pflag"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/memoflow/memoflow/internal/blob"
	"github.com/memoflow/memoflow/pipeline"
	"github.com/memoflow/memoflow/schemas/events"
	"github.com/memoflow/memoflow/schemas/memo"
	"github.com/memoflow/memoflow/schemas/records"
)

// Stage is the parse+validate Transformer.
type Stage struct {
	pseudo *events.Pseudonymizer
	now    func() time.Time
	// Blobs holds claim-checked MeMos (nil: none configured; a
	// claim-checked record is then poison).
	Blobs blob.Store
	// Dedup, when set, makes messageUUID the idempotency key.
	Dedup *Dedup
	// Duplicates counts dropped same-content resends and rejected
	// different-content reuses (may be nil).
	Duplicates func(conflict bool)

	env records.Envelope // reused: Append copies it into the record
}

// New returns the stage. now is the clock of the value-date rules.
func New(pseudo *events.Pseudonymizer, now func() time.Time) *Stage {
	if now == nil {
		now = time.Now
	}
	return &Stage{pseudo: pseudo, now: now}
}

func (s *Stage) Name() string { return "validate" }

// Transform handles one batch. It is a pure function of the records (and
// the clock), as the runtime requires.
func (s *Stage) Transform(ctx context.Context, b *pipeline.Batch) error {
	opts := memo.ValidateOptions{Now: s.now}
	if s.Dedup != nil {
		parts := map[int32]bool{}
		for _, r := range b.Records {
			parts[r.Partition] = true
		}
		if err := s.Dedup.Sync(ctx, parts); err != nil {
			return err
		}
	}
	for _, r := range b.Records {
		meta := records.ReadIngestMeta(r)
		if meta.MessageUUID == "" || meta.SenderOrg == "" {
			b.Reject(r, pipeline.Poison("VALIDATE_NO_METADATA", errors.New("memo.ingest record without key or sender headers")))
			continue
		}
		body := r.Value
		if meta.BlobKey != "" {
			if s.Blobs == nil {
				b.Reject(r, pipeline.Poison("VALIDATE_NO_BLOB_STORE", errors.New("claim-checked message but no blob store configured")))
				continue
			}
			var err error
			body, err = readBlob(ctx, s.Blobs, blob.Ref{Key: meta.BlobKey, Size: int64(meta.Size), SHA256: meta.ContentSHA256})
			switch {
			case errors.Is(err, blob.ErrNotFound), errors.Is(err, blob.ErrCorrupt):
				b.Reject(r, pipeline.Poison("VALIDATE_BLOB_MISSING", err))
				continue
			case err != nil:
				return pipeline.Transient(err)
			}
		}
		var sum [32]byte
		if h, err := hex.DecodeString(meta.ContentSHA256); err == nil && len(h) == 32 {
			copy(sum[:], h)
		} else {
			sum = sha256.Sum256(body)
		}
		opts.ExpectedUUID = meta.MessageUUID
		if s.Dedup != nil {
			switch v, prev := s.Dedup.Check(meta.MessageUUID, sum, r.Partition, r.Offset); v {
			case verdictSame:
				// Already decided and receipted: no second delivery.
				if s.Duplicates != nil {
					s.Duplicates(false)
				}
				continue
			case verdictConflict:
				if s.Duplicates != nil {
					s.Duplicates(true)
				}
				m, _ := memo.Parse(body)
				if m == nil {
					m = &memo.Message{}
				}
				state := "accepted"
				if prev.invalid {
					state = "rejected (" + prev.code + ")"
				}
				s.handle(b, r, &meta, body, m, memo.ValidationErrors{&memo.Error{
					Code: CodeUUIDReused, Path: "/Message/MessageHeader/messageUUID",
					Message: "messageUUID " + meta.MessageUUID + " was " + state + " earlier with different content; a new message needs a new messageUUID",
				}})
				continue
			}
		}
		m, verrs := memo.Check(body, opts)
		s.handle(b, r, &meta, body, m, verrs)
		if s.Dedup != nil {
			code := ""
			if len(verrs) > 0 {
				code = string(verrs[0].Code)
			}
			b.Emit(s.Dedup.Record(meta.MessageUUID, sum, r.Partition, r.Offset, len(verrs) > 0, code))
		}
	}
	return nil
}

func readBlob(ctx context.Context, store blob.Store, ref blob.Ref) ([]byte, error) {
	rc, err := store.Get(ctx, ref)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	buf := make([]byte, 0, ref.Size)
	w := bytes.NewBuffer(buf)
	if _, err := io.Copy(w, rc); err != nil {
		return nil, err
	}
	return w.Bytes(), nil
}

// CodeUUIDReused rejects a messageUUID reused with different content.
const CodeUUIDReused memo.Code = "VALIDATE_UUID_REUSED"

func (s *Stage) handle(b *pipeline.Batch, r *kgo.Record, meta *records.IngestMeta, body []byte, m *memo.Message, verrs memo.ValidationErrors) {
	now := s.now()
	received := events.MemoSendReceived
	if meta.MassSend {
		received = events.MemoMassSendReceived
	}
	base := events.Event{
		MessageUUID: meta.MessageUUID, TransmissionID: meta.TransmissionID,
		SenderOrg: meta.SenderOrg, SenderSystem: meta.SenderSystem, Size: uint64(len(body)),
	}
	var env *records.Envelope
	if m != nil {
		base.MessageType = m.Header.MessageType
		base.PostType = m.Header.PostType.Value
		base.Recipient = s.pseudo.Recipient(events.ParseIDType(m.Header.Recipient.IDType), m.Header.Recipient.RecipientID)
		if m.Header.Recipient.ContactPoint != nil {
			base.ContactPoint = m.Header.Recipient.ContactPoint.ContactPointID
		}
		if d, ok := m.Header.DoNotDeliverUntilDate.Date(); ok {
			base.ValueDate = time.Date(d.Year, d.Month, d.Day, 0, 0, 0, 0, time.UTC)
		}
		n := 0
		m.Files(func(string, *memo.File) { n++ })
		base.Attachments = uint16(min(n, 1<<16-1))
	}
	ev1 := base
	ev1.Time, ev1.Tag = meta.ReceivedAt, received
	ev2 := base
	ev2.Time = now
	if len(verrs) == 0 {
		ev2.Tag = events.MemoSendValidated
		env = s.envelope(meta, body, m, &base)
	} else {
		ev2.Tag = events.MemoSendValidationFailed
		ev2.ErrorCode = string(verrs[0].Code)
		ev2.ReceiptStatus = records.StatusInvalid
	}
	b.Emit(events.NewRecord(pipeline.TopicEvents, ev1, ev2))
	if env != nil {
		b.Emit(&kgo.Record{Topic: pipeline.TopicValid, Key: r.Key, Value: env.Append(make([]byte, 0, env.EncodedLen()))})
		if meta.MassSend {
			// A batch was answered with one transmission id; each of its
			// messages gets its own technical receipt here.
			b.Emit(records.NewReceiptRecord(pipeline.TopicReceipts, &records.Receipt{
				TransmissionID: meta.TransmissionID, MessageUUID: meta.MessageUUID,
				TimeStamp: records.TimeStampOf(now), ReceiptStatus: records.StatusReceived,
				Kind: records.KindTechnical, SenderOrg: meta.SenderOrg, SenderSystem: meta.SenderSystem,
			}))
		}
		return
	}
	rc := &records.Receipt{
		TransmissionID: meta.TransmissionID, MessageUUID: meta.MessageUUID,
		ErrorCode: string(verrs[0].Code), ErrorMessage: verrs[0].Message,
		TimeStamp: records.TimeStampOf(now), ReceiptStatus: records.StatusInvalid,
		Kind: records.KindTechnical, SenderOrg: meta.SenderOrg, SenderSystem: meta.SenderSystem,
	}
	for _, e := range verrs {
		rc.Errors = append(rc.Errors, records.ReceiptError{Code: string(e.Code), Path: e.Path, Message: e.Message})
	}
	b.Emit(records.NewReceiptRecord(pipeline.TopicReceipts, rc))
}

func (s *Stage) envelope(meta *records.IngestMeta, body []byte, m *memo.Message, ev *events.Event) *records.Envelope {
	e := &s.env
	*e = records.Envelope{
		MessageUUID: meta.MessageUUID, MessageID: m.Header.MessageID.Value, TransmissionID: meta.TransmissionID,
		PostType: m.Header.PostType.Value, Label: m.Header.Label,
		SenderOrg: meta.SenderOrg, SenderSystem: meta.SenderSystem,
		RecipientID: m.Header.Recipient.RecipientID, ContactPointID: ev.ContactPoint,
		ReceivedAtMs: meta.ReceivedAt.UnixMilli(), Size: uint64(len(body)), Attachments: ev.Attachments,
		MassSend: meta.MassSend, BlobKey: meta.BlobKey,
	}
	if meta.BlobKey == "" {
		e.Body = body
	}
	switch m.Version {
	case memo.Version11:
		e.MemoVersion = 11
	default:
		e.MemoVersion = 12
	}
	if m.Header.MessageType == "NEMSMS" {
		e.MessageType = records.TypeNemSMS
	} else {
		e.MessageType = records.TypeDigitalPost
	}
	if m.Header.Recipient.IDType == "CVR" {
		e.RecipientType = records.IDCVR
	} else {
		e.RecipientType = records.IDCPR
	}
	if !ev.ValueDate.IsZero() {
		e.ValueDate = uint32(ev.ValueDate.Unix()/86400) + 1
	}
	if h, err := hex.DecodeString(meta.ContentSHA256); err == nil && len(h) == 32 {
		copy(e.ContentSHA256[:], h)
	} else {
		e.ContentSHA256 = sha256.Sum256(body)
	}
	return e
}

// Config of the stage.
type Config struct {
	Dedup           bool `yaml:"dedup"`
	DedupMaxEntries int  `yaml:"dedup_max_entries"`
}

func (c *Config) RegisterFlags(fs *pflag.FlagSet) {
	fs.BoolVar(&c.Dedup, "dedup", true, "make messageUUID the idempotency key (validate stage)")
	fs.IntVar(&c.DedupMaxEntries, "dedup-max-entries", 2_000_000, "messageUUIDs the idempotency index keeps (about 100 B each); older ones are forgotten")
}

func (c *Config) Validate() error {
	if c.Dedup && c.DedupMaxEntries < 1000 {
		return fmt.Errorf("validate.dedup_max_entries: %d is below 1000", c.DedupMaxEntries)
	}
	return nil
}
