// Package events is memoflow's event model: one Event per step of a
// message's life (or per administrative action), the NgDP tag vocabulary,
// the record format of the memo.events topic, and the Pseudonymizer that
// keeps personal identifiers (CPR numbers) out of Kafka and ClickHouse.
//
// An Event is metadata only, never content: no label, no notification text,
// no document, nothing from MessageBody. The event log is kept for years as
// legal proof of delivery and read by log administrators who may see
// metadata only.
package events

import "time"

// Event is one entry of the event log.
type Event struct {
	// Time of the step; kept to the millisecond, in UTC.
	Time time.Time
	Tag  Tag
	// MessageUUID is the message's idempotency key (empty for admin
	// events). It is logged as sent, even when it failed validation.
	MessageUUID string
	// TransmissionID identifies the submission (one per shipment; a mass
	// send shares one across its messages).
	TransmissionID string
	// SenderOrg is the sending organisation's CVR (in clear: companies and
	// authorities are not personal data).
	SenderOrg    string
	SenderSystem string
	// Recipient comes only from a Pseudonymizer: a CPR never appears in
	// clear here.
	Recipient       Recipient
	ContactPoint    string
	RecipientSystem string
	MessageType     string // DIGITALPOST, NEMSMS, PHYSICAL_LETTER
	PostType        string // MYNDIGHEDSPOST, VIRKSOMHEDSPOST
	// Size of the MeMo message in bytes (attachments included, base64).
	Size        uint64
	Attachments uint16
	// ValueDate is doNotDeliverUntilDate (a date; zero when absent).
	ValueDate time.Time
	// ReceiptStatus is RECEIVED, COMPLETED, INVALID or NOT_ALLOWED when the
	// step produced a receipt.
	ReceiptStatus string
	// ErrorCode is memoflow's stable error code for failed steps.
	ErrorCode string
	// Actor identifies the administrator or system user behind an admin
	// action (a user id, never a CPR).
	Actor string
}

// IDType is how a recipient is identified.
type IDType uint8

const (
	NoRecipient IDType = iota
	CPR                // a person (10 digits)
	CVR                // a company or an authority (8 digits)
	OtherID            // anything else a sender wrote; treated as personal
)

func (t IDType) String() string {
	switch t {
	case CPR:
		return "CPR"
	case CVR:
		return "CVR"
	case OtherID:
		return "OTHER"
	}
	return ""
}

// ParseIDType maps a MeMo idType ("CPR", "CVR", anything else) to an IDType.
func ParseIDType(s string) IDType {
	switch s {
	case "":
		return NoRecipient
	case "CPR":
		return CPR
	case "CVR":
		return CVR
	}
	return OtherID
}

// Recipient is a message's recipient as the event log may hold it: a
// well-formed CVR in clear, anything else as a keyed pseudonym. Its fields
// are unexported so that only a Pseudonymizer (or Decode, which checks the
// same rule) can make one.
type Recipient struct {
	idType IDType
	id     string // a CVR, or the hex HMAC-SHA256 of the identifier
	keyID  string // the pseudonym key; empty iff id is a CVR in clear
}

// Type is the identifier type the sender declared.
func (r Recipient) Type() IDType { return r.idType }

// ID is the CVR in clear, or the pseudonym (64 hex digits) when KeyID is set.
func (r Recipient) ID() string { return r.id }

// KeyID names the pseudonym key that produced ID; empty for a CVR in clear.
func (r Recipient) KeyID() string { return r.keyID }

// Pseudonymised reports whether ID is a pseudonym rather than a CVR.
func (r Recipient) Pseudonymised() bool { return r.keyID != "" }

// isCVR reports whether s may be stored in clear: exactly 8 digits.
func isCVR(s string) bool {
	if len(s) != 8 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// isPseudonym reports whether s has the form of a pseudonym.
func isPseudonym(s string) bool {
	if len(s) != pseudonymLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
