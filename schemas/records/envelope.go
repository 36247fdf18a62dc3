// Package records defines the records that travel between stages after
// ingest: the Envelope (memo.valid, memo.ready, memo.routed, memo.retry) and
// the headers of memo.ingest. No stage after parse reads XML again: the
// Envelope carries every header field routing and delivery need, plus the
// original MeMo bytes (or a claim-check reference to them).
package records

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/memoflow/memoflow/internal/wire"
)

// Message types and recipient id types, as small numbers on the wire.
const (
	TypeDigitalPost uint8 = 1
	TypeNemSMS      uint8 = 2

	IDCPR uint8 = 1
	IDCVR uint8 = 2
)

// Envelope is a parsed, validated message on its way to delivery.
type Envelope struct {
	MessageUUID    string
	MessageID      string
	TransmissionID string
	MemoVersion    uint8 // 11 or 12
	MessageType    uint8 // TypeDigitalPost, TypeNemSMS
	PostType       string
	Label          string // shown to the recipient; metadata, not content
	SenderOrg      string // CVR of the sending organisation
	SenderSystem   string // id of the sender system that submitted it
	RecipientType  uint8  // IDCPR, IDCVR
	RecipientID    string // CPR or CVR in clear: Kafka is inside the trust boundary; events pseudonymise
	ContactPointID string
	// ValueDate is doNotDeliverUntilDate as days since 1970-01-01 plus one
	// (0: none), so the zero Envelope has no value date.
	ValueDate     uint32
	ReceivedAtMs  int64  // when ingest accepted it (Unix ms)
	Size          uint64 // bytes of the MeMo as submitted
	Attachments   uint16
	MassSend      bool
	ContentSHA256 [32]byte
	// BlobKey is set when the MeMo lives in the blob store (claim check);
	// Body is then empty.
	BlobKey string
	// Routing, set by route.
	Destination         string // recipient system id
	DestinationProtocol uint8
	WantVersion         uint8 // MeMo version the destination wants (11, 12)
	Attempt             uint16
	NextAttemptMs       int64
	// Body is the original MeMo, never altered in transit.
	Body []byte
}

const formatV1 = 1

// ErrMalformed is wrapped by every decoding error.
var ErrMalformed = errors.New("malformed envelope")

// Append appends e's encoding to dst.
//
// Format 1: byte 1; then the fields in declaration order: strings as
// uvarint length + bytes, small ints as one byte, counters as uvarints,
// times as varints, the hash as 32 raw bytes, flags as one byte.
func (e *Envelope) Append(dst []byte) []byte {
	dst = append(dst, formatV1)
	dst = wire.AppendStr(dst, e.MessageUUID)
	dst = wire.AppendStr(dst, e.MessageID)
	dst = wire.AppendStr(dst, e.TransmissionID)
	dst = append(dst, e.MemoVersion, e.MessageType)
	dst = wire.AppendStr(dst, e.PostType)
	dst = wire.AppendStr(dst, e.Label)
	dst = wire.AppendStr(dst, e.SenderOrg)
	dst = wire.AppendStr(dst, e.SenderSystem)
	dst = append(dst, e.RecipientType)
	dst = wire.AppendStr(dst, e.RecipientID)
	dst = wire.AppendStr(dst, e.ContactPointID)
	dst = binary.AppendUvarint(dst, uint64(e.ValueDate))
	dst = binary.AppendVarint(dst, e.ReceivedAtMs)
	dst = binary.AppendUvarint(dst, e.Size)
	dst = binary.AppendUvarint(dst, uint64(e.Attachments))
	var flags byte
	if e.MassSend {
		flags |= 1
	}
	dst = append(dst, flags)
	dst = append(dst, e.ContentSHA256[:]...)
	dst = wire.AppendStr(dst, e.BlobKey)
	dst = wire.AppendStr(dst, e.Destination)
	dst = append(dst, e.DestinationProtocol, e.WantVersion)
	dst = binary.AppendUvarint(dst, uint64(e.Attempt))
	dst = binary.AppendVarint(dst, e.NextAttemptMs)
	dst = binary.AppendUvarint(dst, uint64(len(e.Body)))
	return append(dst, e.Body...)
}

// Size hint for Append.
func (e *Envelope) EncodedLen() int {
	return 128 + len(e.MessageUUID) + len(e.MessageID) + len(e.TransmissionID) + len(e.PostType) +
		len(e.Label) + len(e.SenderOrg) + len(e.SenderSystem) + len(e.RecipientID) +
		len(e.ContactPointID) + len(e.BlobKey) + len(e.Destination) + len(e.Body) + 14*binary.MaxVarintLen64
}

// Decode fills e from b. Header strings are copied; Body aliases b, so b
// must not be reused while e lives.
func (e *Envelope) Decode(b []byte) error {
	d := wire.Decoder{B: b, Malformed: ErrMalformed}
	if v := d.Byte(); v != formatV1 && d.Err == nil {
		return fmt.Errorf("%w: unknown format %d", ErrMalformed, v)
	}
	str := func() string { return d.Str(1 << 20) }
	e.MessageUUID = str()
	e.MessageID = str()
	e.TransmissionID = str()
	e.MemoVersion = d.Byte()
	e.MessageType = d.Byte()
	e.PostType = str()
	e.Label = str()
	e.SenderOrg = str()
	e.SenderSystem = str()
	e.RecipientType = d.Byte()
	e.RecipientID = str()
	e.ContactPointID = str()
	e.ValueDate = uint32(d.Uvarint(1 << 32))
	e.ReceivedAtMs = d.Varint()
	e.Size = d.Uvarint(1 << 40)
	e.Attachments = uint16(d.Uvarint(1 << 16))
	flags := d.Byte()
	e.MassSend = flags&1 != 0
	copy(e.ContentSHA256[:], d.Raw(32))
	e.BlobKey = str()
	e.Destination = str()
	e.DestinationProtocol = d.Byte()
	e.WantVersion = d.Byte()
	e.Attempt = uint16(d.Uvarint(1 << 16))
	e.NextAttemptMs = d.Varint()
	n := d.Uvarint(1 << 31)
	e.Body = d.Raw(int(n))
	if d.Err != nil {
		return d.Err
	}
	if len(d.B) != 0 {
		return fmt.Errorf("%w: %d trailing bytes", ErrMalformed, len(d.B))
	}
	return nil
}
