// Package route is the routing stage: it reads memo.ready (Envelopes due
// for delivery), decides each message's destination system from the
// registry View (domain.md "Message kinds and routing"), fills
// Envelope.Destination, DestinationProtocol and WantVersion and emits it
// to memo.routed, keyed so that per-system order holds and one hot
// destination does not stall the others. Messages that cannot be routed
// because of what the sender wrote get an INVALID receipt and a
// MEMO_SEND_VALIDATION_FAILED event, as validate does; messages that
// cannot be routed because the registry lacks a provider go to the DLQ
// (an operator fixes the registry and replays them). See DESIGN.md.
package route

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/memoflow/memoflow/internal/blob"
	"github.com/memoflow/memoflow/pipeline"
	"github.com/memoflow/memoflow/schemas/events"
	"github.com/memoflow/memoflow/schemas/records"
	"github.com/memoflow/memoflow/schemas/registry"
)

// Post types (MeMo postType).
const (
	PostMyndighed  = "MYNDIGHEDSPOST"
	PostVirksomhed = "VIRKSOMHEDSPOST"
)

// Codes of messages the stage refuses. INVALID ones go back to the sender;
// the DLQ ones are registry problems for an operator.
const (
	// MYNDIGHEDSPOST without a contact point.
	CodeContactPointMissing = "ROUTE_CONTACT_POINT_MISSING"
	// The contact point is neither a contact point nor a legacy mailbox
	// of the addressed authority.
	CodeContactPointUnknown = "ROUTE_CONTACT_POINT_UNKNOWN"
	// The contact point belongs to another authority.
	CodeContactPointOtherOrg = "ROUTE_CONTACT_POINT_OF_OTHER_AUTHORITY"
	// MYNDIGHEDSPOST to a CVR that is not an authority.
	CodeNotAuthority = "ROUTE_NOT_AN_AUTHORITY"
	// NEMSMS to a CPR that does not receive NemSMS (unknown, exempt, or
	// not signed up), or to a CVR.
	CodeNemSMSNotSubscribed = "ROUTE_NEMSMS_NOT_SUBSCRIBED"
	// A recipient id that is neither a CPR nor a CVR.
	CodeBadRecipient = "ROUTE_BAD_RECIPIENT"

	// DLQ: the registry lacks the system the rules lead to (no SMS or
	// print provider, an authority without a default system, a mailbox
	// provider id that is not a system).
	CodeNoSystem = "ROUTE_NO_SYSTEM"
	// DLQ: the record is not an Envelope.
	CodeMalformed = "ROUTE_MALFORMED"

	// Reasons on DIGITAL_POST_EXEMPTED events (ErrorCode): the recipient
	// is exempt, or not in the registry at all (not signed up for Digital
	// Post: a physical letter too, so the letter is always delivered).
	ReasonExempt       = "ROUTE_RECIPIENT_EXEMPT"
	ReasonUnregistered = "ROUTE_RECIPIENT_NOT_REGISTERED"
)

// Config of the stage.
type Config struct {
	// Spread is the number of partition-key suffixes a provider
	// destination (mailbox, SMS, print) is spread over; recipient systems
	// of organisations keep one key (strict per-system order).
	Spread int `yaml:"spread"`
	// SMSQuietFrom and SMSQuietUntil are the hours (Europe/Copenhagen)
	// between which NemSMS is held.
	SMSQuietFrom  int `yaml:"sms_quiet_from"`
	SMSQuietUntil int `yaml:"sms_quiet_until"`
}

// RegisterFlags binds the flags.
func (c *Config) RegisterFlags(fs *pflag.FlagSet) {
	fs.IntVar(&c.Spread, "route-spread", 32, "partition-key suffixes per mailbox/SMS/print provider, so a hot provider spreads over partitions (1: one key per system)")
	fs.IntVar(&c.SMSQuietFrom, "route-sms-quiet-from", 18, "hour (Europe/Copenhagen) from which NemSMS is held")
	fs.IntVar(&c.SMSQuietUntil, "route-sms-quiet-until", 8, "hour (Europe/Copenhagen) until which NemSMS is held")
}

// Validate checks the config; errors name the field and the fix.
func (c *Config) Validate() error {
	if c.Spread < 1 || c.Spread > 4096 {
		return fmt.Errorf("route.spread: %d is outside 1..4096; use about 2-3 times the partition count of memo.routed", c.Spread)
	}
	if c.SMSQuietFrom < 0 || c.SMSQuietFrom > 23 || c.SMSQuietUntil < 0 || c.SMSQuietUntil > 23 {
		return fmt.Errorf("route.sms_quiet_from/until: %d/%d; hours are 0..23", c.SMSQuietFrom, c.SMSQuietUntil)
	}
	return nil
}

// DefaultConfig is the configuration the flags default to.
func DefaultConfig() Config { return Config{Spread: 32, SMSQuietFrom: 18, SMSQuietUntil: 8} }

// Stage is the routing Transformer.
type Stage struct {
	view   *registry.View
	pseudo *events.Pseudonymizer
	now    func() time.Time
	cfg    Config
	loc    *time.Location

	env   records.Envelope // reused per record
	blobs blob.Store       // copies claim-checked bodies for forwarding
}

// Option configures a Stage.
type Option func(*Stage)

// WithClock sets the clock (tests; default time.Now).
func WithClock(now func() time.Time) Option { return func(s *Stage) { s.now = now } }

// WithBlobStore lets route copy the claim-checked body of a message it
// forwards (forward.go): the mailbox delivery deletes the original blob
// when it is done, which may be before the forward has read it.
func WithBlobStore(b blob.Store) Option { return func(s *Stage) { s.blobs = b } }

// New returns the stage. view must be caught up before the stage consumes
// (the command waits for view.CaughtUp before starting the runner).
func New(view *registry.View, pseudo *events.Pseudonymizer, cfg Config, opts ...Option) (*Stage, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if view == nil || pseudo == nil {
		return nil, errors.New("route: a registry view and a pseudonymizer are required")
	}
	loc, err := time.LoadLocation("Europe/Copenhagen")
	if err != nil {
		return nil, fmt.Errorf("route: time zone Europe/Copenhagen: %w (build with -tags timetzdata or install tzdata)", err)
	}
	s := &Stage{view: view, pseudo: pseudo, now: time.Now, cfg: cfg, loc: loc}
	for _, o := range opts {
		o(s)
	}
	return s, nil
}

func (s *Stage) Name() string { return "route" }

// Decision is where one message goes.
type Decision struct {
	System *registry.System // nil when refused
	// Effective is System as delivered: the same, or merged with the
	// standard system it selects (registry.View.Effective).
	Effective *registry.System
	// ContactPoint is the contact point the message was routed by (after
	// legacy mapping).
	ContactPoint string
	// Exempt is set when the letter goes to print because the recipient
	// is exempt or unregistered; Reason says which.
	Exempt bool
	Reason string
	// HoldUntilMs is set for NemSMS in the quiet hours: delivery must not
	// attempt it before.
	HoldUntilMs int64
	// Invalid is the INVALID code when the sender's addressing is wrong.
	Invalid string
	Message string
	// NoSystem is the DLQ reason when the registry lacks a system.
	NoSystem string
	// Forward is set when the message lands in a company's mailbox and
	// the company forwards its mailbox post (forward.go).
	Forward registry.Forwarding
}

// Decide applies the routing rules to e at time now. It allocates nothing
// on the common paths.
func (s *Stage) Decide(e *records.Envelope, now time.Time) Decision {
	d := s.decide(e, now)
	if d.System != nil {
		// An authority's selection of a supplier's standard system is
		// delivered by the template's protocol and version, under the
		// selecting system's id (its outbox, its receipts, its events).
		if d.Effective = s.view.Effective(d.System); d.Effective == nil {
			return Decision{NoSystem: "system " + d.System.ID + " selects standard system " + d.System.Template + ", which is not in the registry"}
		}
	}
	return d
}

func (s *Stage) decide(e *records.Envelope, now time.Time) Decision {
	v := s.view
	switch e.RecipientType {
	case records.IDCPR:
		if !registry.ValidCPR(e.RecipientID) {
			return Decision{Invalid: CodeBadRecipient, Message: "the recipient is not a CPR number"}
		}
		c, found := v.Citizen(e.RecipientID)
		if e.MessageType == records.TypeNemSMS {
			if !found || c.Status != registry.Registered || !c.NemSMS {
				return Decision{Invalid: CodeNemSMSNotSubscribed, Message: "the citizen does not receive NemSMS"}
			}
			d := s.provider(v.SMSProvider(), "no SMS provider system in the registry")
			d.HoldUntilMs = s.smsHold(now)
			return d
		}
		switch {
		case !found:
			d := s.provider(v.PrintProvider(), "no print provider system in the registry")
			d.Exempt, d.Reason = true, ReasonUnregistered
			return d
		case c.Status == registry.Exempt:
			d := s.provider(v.PrintProvider(), "no print provider system in the registry")
			d.Exempt, d.Reason = true, ReasonExempt
			return d
		}
		if c.Mailbox == nil {
			return Decision{NoSystem: "the citizen's mailbox provider " + c.MailboxID + " is not a system in the registry"}
		}
		return Decision{System: c.Mailbox}
	case records.IDCVR:
		if !registry.ValidCVR(e.RecipientID) {
			return Decision{Invalid: CodeBadRecipient, Message: "the recipient is not a CVR number"}
		}
		if e.MessageType == records.TypeNemSMS {
			return Decision{Invalid: CodeNemSMSNotSubscribed, Message: "NemSMS goes to citizens only"}
		}
		if o := v.Org(e.RecipientID); o != nil && o.Type == registry.OrgAuthority {
			return s.authority(e, o)
		}
		if e.PostType == PostMyndighed {
			return Decision{Invalid: CodeNotAuthority, Message: "MYNDIGHEDSPOST is addressed to an authority; " + e.RecipientID + " is not one"}
		}
		return s.company(e)
	}
	return Decision{Invalid: CodeBadRecipient, Message: "the recipient is neither CPR nor CVR"}
}

func (s *Stage) company(e *records.Envelope) Decision {
	c, found := s.view.Company(e.RecipientID)
	switch {
	case !found:
		d := s.provider(s.view.PrintProvider(), "no print provider system in the registry")
		d.Exempt, d.Reason = true, ReasonUnregistered
		return d
	case c.Status == registry.Exempt:
		d := s.provider(s.view.PrintProvider(), "no print provider system in the registry")
		d.Exempt, d.Reason = true, ReasonExempt
		return d
	case e.PostType == PostVirksomhed && c.SystemID != "":
		if c.System == nil {
			return Decision{NoSystem: "the company's recipient system " + c.SystemID + " is not a system in the registry"}
		}
		return Decision{System: c.System}
	}
	if c.Mailbox == nil {
		return Decision{NoSystem: "the company's mailbox provider " + c.MailboxID + " is not a system in the registry"}
	}
	return Decision{System: c.Mailbox, Forward: c.Forward}
}

// authority routes post to an authority: MYNDIGHEDSPOST by contact point
// (or legacy mailbox), anything else to the CVR-post system; what maps to
// no system goes to the default system; an authority without systems
// (setup 3) keeps its post in its mailbox.
func (s *Stage) authority(e *records.Envelope, o *registry.Org) Decision {
	v := s.view
	if e.PostType == PostMyndighed {
		cpID := e.ContactPointID
		if cpID == "" {
			return Decision{Invalid: CodeContactPointMissing, Message: "MYNDIGHEDSPOST must name a contact point of the authority"}
		}
		if cp := v.ContactPoint(cpID); cp != nil {
			if cp.Org != o.CVR {
				return Decision{Invalid: CodeContactPointOtherOrg, Message: "contact point " + cpID + " belongs to another authority than " + o.CVR}
			}
			return s.point(o, cp)
		}
		// A DP/DP2 address "postkasse/emne" (or a bare postkasse).
		mailbox, subject, legacy := strings.Cut(cpID, "/")
		if l := v.LegacyMailbox(o.CVR, mailbox, subject); l != nil {
			if cp := v.ContactPoint(l.ContactPoint); cp != nil && cp.Org == o.CVR {
				return s.point(o, cp)
			}
			return s.fallback(o, "") // known, mapped to nothing: always delivered
		}
		if legacy {
			return s.fallback(o, "") // unmapped legacy address
		}
		return Decision{Invalid: CodeContactPointUnknown, Message: "contact point " + cpID + " is not a contact point of authority " + o.CVR}
	}
	if sys := v.CVRPostSystem(o.CVR); sys != nil {
		return Decision{System: sys}
	}
	return s.fallback(o, "")
}

func (s *Stage) point(o *registry.Org, cp *registry.ContactPoint) Decision {
	if cp.System != "" {
		if sys := s.view.System(cp.System); sys != nil {
			return Decision{System: sys, ContactPoint: cp.ID}
		}
	}
	return s.fallback(o, cp.ID)
}

// fallback is the authority's default system; without one (setup 3, no
// pickup) its mailbox as a company registration.
func (s *Stage) fallback(o *registry.Org, cp string) Decision {
	if sys := s.view.DefaultSystem(o.CVR); sys != nil {
		return Decision{System: sys, ContactPoint: cp}
	}
	if c, ok := s.view.Company(o.CVR); ok && c.Mailbox != nil {
		// Seed 002: an authority without system pickup has its post in
		// its mailbox on Virk, from where it may forward it.
		return Decision{System: c.Mailbox, ContactPoint: cp, Forward: c.Forward}
	}
	return Decision{NoSystem: "authority " + o.CVR + " has no default recipient system and no mailbox"}
}

func (s *Stage) provider(sys *registry.System, missing string) Decision {
	if sys == nil {
		return Decision{NoSystem: missing}
	}
	return Decision{System: sys}
}

// smsHold returns the next end of the quiet hours when now is inside them
// (Unix ms), else 0. The wall clock of Europe/Copenhagen decides, so the
// hold follows daylight saving time.
func (s *Stage) smsHold(now time.Time) int64 {
	l := now.In(s.loc)
	h := l.Hour()
	from, until := s.cfg.SMSQuietFrom, s.cfg.SMSQuietUntil
	quiet := false
	if from > until {
		quiet = h >= from || h < until
	} else if from < until {
		quiet = h >= from && h < until
	}
	if !quiet {
		return 0
	}
	day := l.Day()
	if h >= until {
		day++ // evening: tomorrow morning
	}
	return time.Date(l.Year(), l.Month(), day, until, 0, 0, 0, s.loc).UnixMilli()
}

// Key returns the memo.routed key of a message for dest: the system id for
// an organisation's recipient system (one partition: per-system order), or
// "<id>#<n>" for a provider, n = FNV-1a(recipient) mod Spread, so a
// provider taking most of a national send spreads over the partitions
// while each recipient's messages stay in order on one of them.
func (s *Stage) Key(dst []byte, dest *registry.System, recipient string) []byte {
	return KeyFor(dst, dest, recipient, s.cfg.Spread)
}

// KeyFor is Key with the spread given: the forward stage keys the copies
// it routes to a trusted third party the same way.
func KeyFor(dst []byte, dest *registry.System, recipient string, spread int) []byte {
	dst = append(dst, dest.ID...)
	if dest.SysKind == registry.SystemRecipient || spread <= 1 {
		return dst
	}
	h := uint32(2166136261)
	for i := 0; i < len(recipient); i++ {
		h ^= uint32(recipient[i])
		h *= 16777619
	}
	dst = append(dst, '#')
	return strconv.AppendUint(dst, uint64(h%uint32(spread)), 10)
}

// DestinationOf returns the system id of a memo.routed key.
func DestinationOf(key []byte) string {
	k := string(key)
	if i := strings.LastIndexByte(k, '#'); i >= 0 {
		return k[:i]
	}
	return k
}

// Transform routes one batch: a pure function of the records, the
// registry and the clock.
func (s *Stage) Transform(ctx context.Context, b *pipeline.Batch) error {
	now := s.now()
	for _, r := range b.Records {
		e := &s.env
		if err := e.Decode(r.Value); err != nil {
			b.Reject(r, pipeline.Poison(CodeMalformed, err))
			continue
		}
		d := s.Decide(e, now)
		switch {
		case d.NoSystem != "":
			b.Reject(r, pipeline.Poison(CodeNoSystem, errors.New(d.NoSystem)))
			continue
		case d.Invalid != "":
			s.invalid(b, e, d, now)
			continue
		}
		e.Destination = d.System.ID
		e.DestinationProtocol = uint8(d.Effective.Protocol)
		e.WantVersion = d.Effective.MemoVersion
		if d.HoldUntilMs > e.NextAttemptMs {
			e.NextAttemptMs = d.HoldUntilMs
		}
		ev := s.event(e, now)
		ev.Tag = events.MemoSendRouted
		ev.RecipientSystem = d.System.ID
		if d.ContactPoint != "" {
			ev.ContactPoint = d.ContactPoint
		}
		evs := []events.Event{ev}
		if d.Exempt {
			ex := ev
			ex.Tag, ex.ErrorCode = events.DigitalPostExempted, d.Reason
			evs = append(evs, ex)
		}
		b.Emit(events.NewRecord(pipeline.TopicEvents, evs...))
		b.Emit(&kgo.Record{Topic: pipeline.TopicRouted, Key: s.Key(make([]byte, 0, len(e.Destination)+5), d.System, e.RecipientID),
			Value: e.Append(make([]byte, 0, e.EncodedLen()))})
		if d.Forward.Set() {
			// Same transaction as the mailbox copy: forwarded if and only
			// if routed (forward.go).
			fr, err := s.forwardRecord(ctx, e, d.Forward)
			if err != nil {
				return err
			}
			b.Emit(fr)
		}
	}
	return nil
}

func (s *Stage) event(e *records.Envelope, now time.Time) events.Event {
	ev := events.Event{
		Time: now, MessageUUID: e.MessageUUID, TransmissionID: e.TransmissionID,
		SenderOrg: e.SenderOrg, SenderSystem: e.SenderSystem, ContactPoint: e.ContactPointID,
		PostType: e.PostType, Size: e.Size, Attachments: e.Attachments,
	}
	idType := events.CPR
	if e.RecipientType == records.IDCVR {
		idType = events.CVR
	}
	ev.Recipient = s.pseudo.Recipient(idType, e.RecipientID)
	if e.MessageType == records.TypeNemSMS {
		ev.MessageType = "NEMSMS"
	} else {
		ev.MessageType = "DIGITALPOST"
	}
	if e.ValueDate > 0 {
		ev.ValueDate = time.Unix(int64(e.ValueDate-1)*86400, 0).UTC()
	}
	return ev
}

// invalid answers the sender: an INVALID receipt and the failed event.
func (s *Stage) invalid(b *pipeline.Batch, e *records.Envelope, d Decision, now time.Time) {
	ev := s.event(e, now)
	ev.Tag, ev.ErrorCode, ev.ReceiptStatus = events.MemoSendValidationFailed, d.Invalid, records.StatusInvalid
	b.Emit(events.NewRecord(pipeline.TopicEvents, ev))
	b.Emit(records.NewReceiptRecord(pipeline.TopicReceipts, &records.Receipt{
		TransmissionID: e.TransmissionID, MessageUUID: e.MessageUUID,
		ErrorCode: d.Invalid, ErrorMessage: d.Message,
		TimeStamp: records.TimeStampOf(now), ReceiptStatus: records.StatusInvalid,
		Kind: records.KindTechnical, SenderOrg: e.SenderOrg, SenderSystem: e.SenderSystem,
		Errors: []records.ReceiptError{{Code: d.Invalid, Path: "/Message/MessageHeader/Recipient", Message: d.Message}},
	}))
}
