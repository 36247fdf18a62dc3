package deliver

import (
	"context"
	"sync"
	"time"
)

// Protocol is how a recipient system gets its post.
type Protocol uint8

const (
	ProtoUnknown Protocol = iota
	// ProtoPush: memoflow POSTs each MeMo to the system's endpoint.
	ProtoPush
	// ProtoPull: the system lists, fetches, deletes and receipts through
	// the pull API ("true" pull; it exposes no endpoint).
	ProtoPull
	// ProtoPubSub: memoflow POSTs a small notification to the system's
	// endpoint; the system then pulls.
	ProtoPubSub
	// ProtoSFTP: memoflow writes each MeMo as a file on the system's SFTP
	// server (stages/transport/sftp); receipts come back as files.
	ProtoSFTP
	// ProtoSMTP: memoflow mails each MeMo, S/MIME signed and encrypted,
	// over STARTTLS (stages/transport/smtp).
	ProtoSMTP
)

func (p Protocol) String() string {
	switch p {
	case ProtoPush:
		return "REST_PUSH"
	case ProtoPull:
		return "REST_PULL"
	case ProtoPubSub:
		return "PUBLISH_SUBSCRIBE"
	case ProtoSFTP:
		return "SFTP"
	case ProtoSMTP:
		return "SMTP"
	}
	return "UNKNOWN"
}

// ParseProtocol maps the registry's names (NgDP serviceProtocol) to a
// Protocol; REST_PUBLISH_SUBSCRIBE is NgDP's spelling.
func ParseProtocol(s string) Protocol {
	switch s {
	case "REST_PUSH":
		return ProtoPush
	case "REST_PULL":
		return ProtoPull
	case "PUBLISH_SUBSCRIBE", "REST_PUBLISH_SUBSCRIBE":
		return ProtoPubSub
	case "SFTP":
		return ProtoSFTP
	case "SMTP":
		return ProtoSMTP
	}
	return ProtoUnknown
}

// System is what delivery needs to know of a recipient system. The
// registry is the source of truth; an adapter over its view implements
// Systems.
type System struct {
	ID  string
	Org string // CVR of the organisation it collects for
	// Protocol decides push, pull or publish/subscribe.
	Protocol Protocol
	// Endpoint: where pushes (or publish/subscribe notifications) go.
	Endpoint string
	// Credential is sent as `Authorization: Bearer <Credential>` with
	// every call to Endpoint (the system's inbound API token).
	Credential string
	// WantVersion is the MeMo version it takes (11 or 12; 0 means 11,
	// NgDP's default).
	WantVersion uint8
	// Active is false for a deactivated system: its post waits for pickup.
	Active bool
	// Kind says what a delivery means: a recipient system took it, a
	// mailbox provider made it available to the recipient, an SMS gateway
	// sent the NemSMS, a print provider will post the letter.
	Kind Kind
	// Contact is the contact person told when redelivery gives up.
	Contact string

	// SFTP systems (Endpoint sftp://host[:port]): the user memoflow logs
	// in as, the pinned host key(s) in authorized_keys form, the inbox
	// folder, and the folder the system writes receipt files to ("" when
	// it writes none).
	SFTPUser      string
	SSHHostKey    string
	Folder        string
	ReceiptFolder string
	// SMTP systems (Endpoint smtp://host[:port]): the system's address
	// and its certificate (PEM, a registry secret:/file: reference already
	// resolved) that mail is encrypted to.
	SMTPAddress string
	Certificate string
	// Template is the supplier's standard system this system selected
	// ("" for a system of its own): the transport settings above are the
	// template's, the identity (ID, Org, Contact) the selecting system's.
	Template string
}

// Kind of destination system.
type Kind uint8

const (
	KindRecipient Kind = iota // an organisation's recipient system
	KindMailbox               // a mailbox provider (viewing client)
	KindSMS                   // the NemSMS gateway
	KindPrint                 // the print provider (physical letters)
)

// Systems looks recipient systems up. Implementations are safe for
// concurrent use and answer from memory (delivery calls it per message).
type Systems interface {
	System(id string) (System, bool)
}

// Deactivator is implemented by the registry writer: it marks a system
// inactive (and logs SYSTEM_CHANGED with the reason). It must be
// idempotent: a replayed batch may ask twice.
type Deactivator interface {
	DeactivateSystem(ctx context.Context, systemID, reason string, at time.Time) error
}

// StaticSystems is a Systems in memory (tests, the simulator, a YAML file
// until the registry view is wired).
type StaticSystems struct {
	mu sync.RWMutex
	m  map[string]System
}

// NewStaticSystems returns a Systems holding ss.
func NewStaticSystems(ss ...System) *StaticSystems {
	s := &StaticSystems{m: map[string]System{}}
	for _, x := range ss {
		s.m[x.ID] = x
	}
	return s
}

func (s *StaticSystems) System(id string) (System, bool) {
	s.mu.RLock()
	x, ok := s.m[id]
	s.mu.RUnlock()
	return x, ok
}

// Put adds or replaces a system.
func (s *StaticSystems) Put(x System) {
	s.mu.Lock()
	s.m[x.ID] = x
	s.mu.Unlock()
}

// DeactivateSystem implements Deactivator for tests and the file-backed
// setup: the system turns inactive in memory.
func (s *StaticSystems) DeactivateSystem(_ context.Context, id, _ string, _ time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if x, ok := s.m[id]; ok {
		x.Active = false
		s.m[id] = x
	}
	return nil
}
