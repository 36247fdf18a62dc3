// Package registry is memoflow's registry: who may send, who receives, and
// where every message goes. Organisations, sender systems, recipient
// systems (and the providers that are systems too: mailbox providers, the
// SMS provider, the physical-print provider), contact structures, legacy
// mailbox mappings, citizens and companies.
//
// The compacted topic memo.registry is the source of truth: one record per
// entity, key = the entity's compact key ("org/12345678", "cit/0101011234",
// "cp/<id>"), value = a Change (the entity, the actor, the time), a
// tombstone to delete. Every routing instance materialises it in a View;
// the Writer validates and produces changes. See DESIGN.md.
package registry

import (
	"net/mail"
	"net/url"
	"strings"
)

// Kind is the type of a registry entity; it is the first byte of a value
// and decides the key prefix.
type Kind uint8

const (
	KindOrg           Kind = 1
	KindSenderSystem  Kind = 2
	KindSystem        Kind = 3
	KindContactGroup  Kind = 4
	KindContactPoint  Kind = 5
	KindLegacyMailbox Kind = 6
	KindCitizen       Kind = 7
	KindCompany       Kind = 8
)

// Key prefixes, one per Kind.
var kindPrefix = [...]string{
	KindOrg: "org/", KindSenderSystem: "snd/", KindSystem: "sys/", KindContactGroup: "cg/",
	KindContactPoint: "cp/", KindLegacyMailbox: "leg/", KindCitizen: "cit/", KindCompany: "com/",
}

var kindNames = [...]string{
	KindOrg: "organisation", KindSenderSystem: "sender system", KindSystem: "system", KindContactGroup: "contact group",
	KindContactPoint: "contact point", KindLegacyMailbox: "legacy mailbox", KindCitizen: "citizen", KindCompany: "company",
}

func (k Kind) String() string {
	if int(k) < len(kindNames) && kindNames[k] != "" {
		return kindNames[k]
	}
	return "unknown"
}

// KindOfKey returns the Kind a key's prefix names (0 if none).
func KindOfKey(key string) Kind {
	for k, p := range kindPrefix {
		if p != "" && strings.HasPrefix(key, p) {
			return Kind(k)
		}
	}
	return 0
}

// Entity is one registry entity.
type Entity interface {
	Kind() Kind
	// Key is the compact key of the memo.registry record.
	Key() string
	// Validate checks the entity on its own; rules that span entities
	// (system limits, references) are checked by the Writer against a View.
	Validate() error
	appendTo(dst []byte) []byte
}

// OrgKind says whether an organisation is a public authority or a company.
type OrgKind uint8

const (
	OrgAuthority OrgKind = 1
	OrgCompany   OrgKind = 2
)

func (k OrgKind) String() string {
	switch k {
	case OrgAuthority:
		return "authority"
	case OrgCompany:
		return "company"
	}
	return ""
}

// Org is an organisation that sends or receives as an organisation. An
// authority has a Setup (domain.md, seed 002): 1 contactable with a contact
// structure and system pickup, 2 system pickup without contact structure,
// 3 no pickup (its post stays in its mailbox on Virk). A company has none.
type Org struct {
	CVR   string
	Name  string
	Type  OrgKind
	Setup uint8
}

func (o *Org) Kind() Kind  { return KindOrg }
func (o *Org) Key() string { return "org/" + o.CVR }

func (o *Org) Validate() error {
	if err := checkCVR("cvr", o.CVR); err != nil {
		return err
	}
	if err := checkName("name", o.Name); err != nil {
		return err
	}
	switch o.Type {
	case OrgAuthority:
		if o.Setup < 1 || o.Setup > 3 {
			return errf(CodeBadSetup, "setup", "an authority's setup is 1, 2 or 3 (got %d)", o.Setup)
		}
	case OrgCompany:
		if o.Setup != 0 {
			return errf(CodeBadSetup, "setup", "only authorities have a setup; leave it empty for a company")
		}
	default:
		return errf(CodeBadKind, "kind", "organisation kind must be authority or company")
	}
	return nil
}

// MaxTokenHashes bounds a sender system's API tokens (rotation keeps a few).
const MaxTokenHashes = 4

// SenderSystem is an organisation's system that submits MeMo messages. Its
// API tokens are kept as SHA-256 hashes (internal/auth.HashToken), never in
// clear. Receipts are pushed to ReceiptEndpoint when set.
type SenderSystem struct {
	ID              string
	Org             string // CVR of the owning organisation
	Name            string
	TokenSHA256     []string
	ReceiptEndpoint string
	Active          bool
}

func (s *SenderSystem) Kind() Kind  { return KindSenderSystem }
func (s *SenderSystem) Key() string { return "snd/" + s.ID }

func (s *SenderSystem) Validate() error {
	if err := checkID("id", s.ID); err != nil {
		return err
	}
	if err := checkCVR("org", s.Org); err != nil {
		return err
	}
	if err := checkName("name", s.Name); err != nil {
		return err
	}
	if len(s.TokenSHA256) > MaxTokenHashes {
		return errf(CodeBadToken, "token_sha256", "at most %d token hashes (got %d)", MaxTokenHashes, len(s.TokenSHA256))
	}
	for _, h := range s.TokenSHA256 {
		if !isHex64(h) {
			return errf(CodeBadToken, "token_sha256", "a token hash is 64 lowercase hex digits (SHA-256 of the token), never the token")
		}
	}
	return checkURL("receipt_endpoint", s.ReceiptEndpoint, false)
}

// SystemKind says what a System is for. Every destination is a System.
type SystemKind uint8

const (
	// SystemRecipient is an organisation's recipient system (authority or
	// company); it has a Role.
	SystemRecipient SystemKind = 1
	// SystemMailbox is a mailbox provider (a viewing client's back end) that
	// holds citizens' and companies' post.
	SystemMailbox SystemKind = 2
	// SystemSMS is the NemSMS provider.
	SystemSMS SystemKind = 3
	// SystemPrint is the physical-print provider for exempt citizens.
	SystemPrint SystemKind = 4
	// SystemStandard is a supplier's standard system (seed 001, 6.2): set
	// up once by the supplier (Org is the supplier's CVR) with its protocol,
	// endpoint and certificates; an authority selects it with a recipient
	// System whose Template names it, instead of registering its own. It
	// receives nothing by itself and has no Role.
	SystemStandard SystemKind = 5
)

func (k SystemKind) String() string {
	switch k {
	case SystemRecipient:
		return "recipient"
	case SystemMailbox:
		return "mailbox"
	case SystemSMS:
		return "sms"
	case SystemPrint:
		return "print"
	case SystemStandard:
		return "standard"
	}
	return ""
}

// Protocol is how memoflow hands post to a system.
type Protocol uint8

const (
	// RestPush: memoflow calls the system's endpoint.
	RestPush Protocol = 1
	// RestPull: the system lists, fetches, deletes and receipts; no
	// endpoint of its own.
	RestPull Protocol = 2
	// PublishSubscribe: a notification to the endpoint, then a fetch.
	PublishSubscribe Protocol = 3
	// SFTP: one file per message on the system's SFTP server, memoflow
	// authenticated by its SSH key, the server's host key pinned in
	// SSHHostKey (seed 003, task package 7).
	SFTP Protocol = 4
	// SMTP: an e-mail per message over STARTTLS, S/MIME signed with
	// memoflow's function certificate and encrypted to Certificate.
	SMTP Protocol = 5
)

func (p Protocol) String() string {
	switch p {
	case RestPush:
		return "REST_PUSH"
	case RestPull:
		return "REST_PULL"
	case PublishSubscribe:
		return "PUBLISH_SUBSCRIBE"
	case SFTP:
		return "SFTP"
	case SMTP:
		return "SMTP"
	}
	return ""
}

// ParseProtocol is the inverse of Protocol.String (0 if unknown).
func ParseProtocol(s string) Protocol {
	switch s {
	case "REST_PUSH":
		return RestPush
	case "REST_PULL":
		return RestPull
	case "PUBLISH_SUBSCRIBE":
		return PublishSubscribe
	case "SFTP":
		return SFTP
	case "SMTP":
		return SMTP
	}
	return 0
}

// Role of a recipient system within its organisation.
type Role uint8

const (
	// RoleRegular systems receive post for the contact points linked to them.
	RoleRegular Role = 1
	// RoleDefault receives what maps to no contact point (one per authority).
	RoleDefault Role = 2
	// RoleCVRPost receives post addressed to the authority's CVR (the
	// mandatory fifth system).
	RoleCVRPost Role = 3
)

func (r Role) String() string {
	switch r {
	case RoleRegular:
		return "regular"
	case RoleDefault:
		return "default"
	case RoleCVRPost:
		return "cvr-post"
	}
	return ""
}

// ParseRole is the inverse of Role.String (0 if unknown).
func ParseRole(s string) Role {
	switch s {
	case "regular":
		return RoleRegular
	case "default":
		return RoleDefault
	case "cvr-post":
		return RoleCVRPost
	}
	return 0
}

// Contact is the person notified when delivery to a system keeps failing.
type Contact struct {
	Name  string
	Email string
}

// System limits per organisation (domain.md "Actors"): an authority
// connects at most 4 recipient systems plus 1 for its CVR post, a company
// at most 1. The Writer enforces them against its View.
const (
	MaxAuthoritySystems = 4
	MaxAuthorityCVRPost = 1
	MaxCompanySystems   = 1
)

// System is a destination: an organisation's recipient system or a
// provider (mailbox, SMS, print). Credentials is a reference, never a
// secret: "secret:<name>" (a secret store entry), "file:<path>", or for
// pull authentication "sha256:<64 hex>" (the hash of the system's token).
// A deactivated system still receives routed post: it waits for pickup.
type System struct {
	ID              string
	Org             string // owning organisation's CVR (required for recipient systems)
	Name            string
	SysKind         SystemKind
	Protocol        Protocol
	Endpoint        string
	Credentials     string
	ReceiptEndpoint string
	MemoVersion     uint8 // 11 or 12: the MeMo version it wants
	Deactivated     bool
	Contact         Contact
	Role            Role // recipient systems only

	// SFTP systems: Endpoint is sftp://host[:port]. SFTPUser is the user
	// memoflow logs in as; SSHHostKey the server's public key(s) in
	// authorized_keys form, one per line (two while the server changes its
	// key), never "accept any"; Folder the absolute inbox folder;
	// ReceiptFolder, optional, where the system writes receipt files.
	SFTPUser      string
	SSHHostKey    string
	Folder        string
	ReceiptFolder string
	// SMTP systems: Endpoint is smtp://host[:port]; SMTPAddress the
	// system's e-mail address; Certificate its OCES certificate (PEM, or a
	// secret:/file: reference) that messages are encrypted to.
	SMTPAddress string
	Certificate string

	// Template, on an authority's recipient system, names the supplier's
	// standard system it selected (kind standard): protocol, endpoint,
	// certificates and MeMo version come from there, and this entry holds
	// no protocol or endpoint of its own. Credentials stays the
	// authority's own (for a pull template: the hash of the API key the
	// authority hands back to its supplier).
	Template string
}

// hasExt reports whether s uses any field added after the first format
// (SFTP, SMTP, standard systems); the codec writes them only then, so
// older values decode unchanged.
func (s *System) hasExt() bool { return s.hasTransportFields() || s.Template != "" }

// transportFields are the SFTP and SMTP fields with their names and
// protocol, for the checks that want them set or empty.
func (s *System) transportFields() [6]struct{ name, proto, v string } {
	return [6]struct{ name, proto, v string }{
		{"sftp_user", "SFTP", s.SFTPUser}, {"ssh_host_key", "SFTP", s.SSHHostKey},
		{"folder", "SFTP", s.Folder}, {"receipt_folder", "SFTP", s.ReceiptFolder},
		{"smtp_address", "SMTP", s.SMTPAddress}, {"certificate", "SMTP", s.Certificate},
	}
}

func (s *System) hasTransportFields() bool {
	for _, f := range s.transportFields() {
		if f.v != "" {
			return true
		}
	}
	return false
}

func (s *System) Kind() Kind  { return KindSystem }
func (s *System) Key() string { return "sys/" + s.ID }

func (s *System) Validate() error {
	if err := checkID("id", s.ID); err != nil {
		return err
	}
	if s.SysKind < SystemRecipient || s.SysKind > SystemStandard {
		return errf(CodeBadKind, "kind", "system kind must be recipient, mailbox, sms, print or standard")
	}
	if s.Org != "" || s.SysKind == SystemRecipient || s.SysKind == SystemStandard {
		if err := checkCVR("org", s.Org); err != nil {
			return err
		}
	}
	if err := checkName("name", s.Name); err != nil {
		return err
	}
	if s.Template != "" {
		return s.validateSelection()
	}
	if err := s.validateProtocol(); err != nil {
		return err
	}
	if err := checkURL("receipt_endpoint", s.ReceiptEndpoint, false); err != nil {
		return err
	}
	if err := checkCredentials(s.Credentials); err != nil {
		return err
	}
	if s.MemoVersion != 11 && s.MemoVersion != 12 {
		return errf(CodeBadVersion, "memo_version", "MeMo version wanted is 11 (1.1) or 12 (1.2), got %d", s.MemoVersion)
	}
	return s.validateRole()
}

// validateSelection checks an authority's system that selects a standard
// system: only its own identity, role, contact and credentials; the rest
// comes from the template (the Writer checks the template exists).
func (s *System) validateSelection() error {
	if s.SysKind != SystemRecipient {
		return errf(CodeBadTemplate, "template", "only a recipient system selects a standard system (this one is %s)", s.SysKind)
	}
	if err := checkID("template", s.Template); err != nil {
		return err
	}
	if s.Template == s.ID {
		return errf(CodeBadTemplate, "template", "a system cannot select itself as its standard system")
	}
	if s.Protocol != 0 || s.Endpoint != "" || s.ReceiptEndpoint != "" || s.MemoVersion != 0 || s.hasTransportFields() {
		return errf(CodeBadTemplate, "template", "a system that selects standard system %q takes protocol, endpoints, version and certificates from it; leave them empty", s.Template)
	}
	if err := checkCredentials(s.Credentials); err != nil {
		return err
	}
	return s.validateRole()
}

// validateProtocol checks the protocol and the fields it needs; fields of
// another protocol must be empty, so a half-migrated entry is caught.
func (s *System) validateProtocol() error {
	switch s.Protocol {
	case RestPush, PublishSubscribe:
		if s.Endpoint == "" {
			return errf(CodeEndpointMissing, "endpoint", "%s needs the system's endpoint URL", s.Protocol)
		}
	case RestPull:
	case SFTP:
		return s.validateSFTP()
	case SMTP:
		return s.validateSMTP()
	default:
		return errf(CodeBadProtocol, "protocol", "protocol must be REST_PUSH, REST_PULL, PUBLISH_SUBSCRIBE, SFTP or SMTP")
	}
	if err := checkURL("endpoint", s.Endpoint, false); err != nil {
		return err
	}
	return s.noTransportFields("")
}

func (s *System) noTransportFields(except string) error {
	for _, f := range s.transportFields() {
		if f.v != "" && f.proto != except {
			return errf(CodeBadProtocol, f.name, "%s is an %s field; this system's protocol is %s", f.name, f.proto, s.Protocol)
		}
	}
	return nil
}

func (s *System) validateSFTP() error {
	if _, _, err := ParseHostPort(s.Endpoint, "sftp", 22); err != nil {
		return errf(CodeEndpointMissing, "endpoint", "an SFTP system's endpoint is sftp://host[:port] (%v)", err)
	}
	if !validUser(s.SFTPUser) {
		return errf(CodeBadSFTP, "sftp_user", "%q: the SFTP user is 1-64 of A-Z, a-z, 0-9, '.', '_', '-'", s.SFTPUser)
	}
	if err := checkHostKeys(s.SSHHostKey); err != nil {
		return err
	}
	if !absPath(s.Folder) {
		return errf(CodeBadSFTP, "folder", "%q: the inbox folder is an absolute path without '..' (at most 1024 bytes)", s.Folder)
	}
	if s.ReceiptFolder != "" && (!absPath(s.ReceiptFolder) || s.ReceiptFolder == s.Folder) {
		return errf(CodeBadSFTP, "receipt_folder", "%q: the receipt folder is an absolute path without '..', not the inbox folder", s.ReceiptFolder)
	}
	return s.noTransportFields("SFTP")
}

func (s *System) validateSMTP() error {
	if _, _, err := ParseHostPort(s.Endpoint, "smtp", 25); err != nil {
		return errf(CodeEndpointMissing, "endpoint", "an SMTP system's endpoint is smtp://host[:port] (%v)", err)
	}
	if a, err := mail.ParseAddress(s.SMTPAddress); err != nil || a.Address != s.SMTPAddress {
		return errf(CodeBadSMTP, "smtp_address", "%q is not a plain e-mail address", s.SMTPAddress)
	}
	if err := checkCertificate(s.Certificate); err != nil {
		return err
	}
	return s.noTransportFields("SMTP")
}

func (s *System) validateRole() error {
	if s.SysKind == SystemRecipient {
		if s.Role < RoleRegular || s.Role > RoleCVRPost {
			return errf(CodeBadRole, "role", "a recipient system's role is default, cvr-post or regular")
		}
	} else if s.Role != 0 {
		return errf(CodeBadRole, "role", "only recipient systems have a role; leave it empty for a %s provider", s.SysKind)
	}
	if s.Contact != (Contact{}) {
		if err := checkName("contact.name", s.Contact.Name); err != nil {
			return &Error{Code: CodeBadContact, Field: "contact.name", Message: err.(*Error).Message}
		}
		if a, err := mail.ParseAddress(s.Contact.Email); err != nil || a.Address != s.Contact.Email {
			return errf(CodeBadContact, "contact.email", "%q is not a plain e-mail address", s.Contact.Email)
		}
	}
	return nil
}

// Visibility says which audiences see a contact point or group when they
// search; hidden points can still be addressed by ID.
type Visibility uint8

const (
	VisibleCitizens    Visibility = 1
	VisibleCompanies   Visibility = 2
	VisibleAuthorities Visibility = 4
	VisibleAll                    = VisibleCitizens | VisibleCompanies | VisibleAuthorities
)

// Limits of the contact structure.
const (
	MaxInfoFields  = 2
	MaxKeywords    = 64
	MaxCodes       = 32
	maxInfoTitle   = 256
	maxInfoText    = 4000
	maxLegacyField = 128
)

// InfoField is one of a contact point's at most 2 information fields.
type InfoField struct {
	Title string
	Text  string
}

// ContactGroup nests contact points (and groups) of one authority by
// ParentID (empty: top level). Cycles and dangling parents are checked
// across entities (admin import), not here.
type ContactGroup struct {
	ID         string
	ParentID   string
	Org        string // the authority's CVR
	Name       string
	Keywords   []string
	Visibility Visibility
}

func (g *ContactGroup) Kind() Kind  { return KindContactGroup }
func (g *ContactGroup) Key() string { return "cg/" + g.ID }

func (g *ContactGroup) Validate() error {
	if err := checkNode(g.ID, g.ParentID, g.Org, g.Name, g.Keywords, g.Visibility); err != nil {
		return err
	}
	return nil
}

// ContactPoint is an addressable unit of an authority: MYNDIGHEDSPOST
// names one, and it goes to the point's recipient System (empty: the
// authority's default system). Keywords are searched case-insensitively,
// the name included; KLE and FORM are subject codes, EAN/GLN and SOR
// location codes.
type ContactPoint struct {
	ID         string
	ParentID   string // contact group (empty: top level)
	Org        string // the authority's CVR
	Name       string
	Keywords   []string
	KLE        []string
	FORM       []string
	EAN        []string
	SOR        []string
	Visibility Visibility
	Info       []InfoField
	System     string // recipient system id
}

func (p *ContactPoint) Kind() Kind  { return KindContactPoint }
func (p *ContactPoint) Key() string { return "cp/" + p.ID }

func (p *ContactPoint) Validate() error {
	if err := checkNode(p.ID, p.ParentID, p.Org, p.Name, p.Keywords, p.Visibility); err != nil {
		return err
	}
	if err := checkCodes("kle", CodeBadKLE, p.KLE, isKLE, "a KLE code is dd, dd.dd or dd.dd.dd"); err != nil {
		return err
	}
	if err := checkCodes("form", CodeBadFORM, p.FORM, isFORM, "a FORM code is 1-32 of A-Z, 0-9 and '.'"); err != nil {
		return err
	}
	if err := checkCodes("ean", CodeBadEAN, p.EAN, func(s string) bool { return len(s) == 13 && digits(s) }, "an EAN/GLN location number is 13 digits"); err != nil {
		return err
	}
	if err := checkCodes("sor", CodeBadSOR, p.SOR, func(s string) bool { return len(s) >= 1 && len(s) <= 18 && digits(s) }, "a SOR code is 1-18 digits"); err != nil {
		return err
	}
	if len(p.Info) > MaxInfoFields {
		return errf(CodeTooManyInfo, "info", "at most %d information fields (got %d)", MaxInfoFields, len(p.Info))
	}
	for _, f := range p.Info {
		if f.Title == "" || len(f.Title) > maxInfoTitle || len(f.Text) > maxInfoText {
			return errf(CodeBadInfo, "info", "an information field has a title of 1-%d bytes and a text of at most %d", maxInfoTitle, maxInfoText)
		}
	}
	if p.System != "" {
		if err := checkID("system", p.System); err != nil {
			return err
		}
	}
	return nil
}

func checkNode(id, parent, org, name string, kw []string, vis Visibility) error {
	if err := checkID("id", id); err != nil {
		return err
	}
	if parent != "" {
		if err := checkID("parent_id", parent); err != nil {
			return err
		}
		if parent == id {
			return errf(CodeSelfParent, "parent_id", "%q cannot be its own parent", id)
		}
	}
	if err := checkCVR("org", org); err != nil {
		return err
	}
	if err := checkName("name", name); err != nil {
		return err
	}
	if len(kw) > MaxKeywords {
		return errf(CodeBadKeyword, "keywords", "at most %d keywords (got %d)", MaxKeywords, len(kw))
	}
	for _, k := range kw {
		if k == "" || len(k) > 256 {
			return errf(CodeBadKeyword, "keywords", "a keyword is 1-256 bytes")
		}
	}
	if vis&^VisibleAll != 0 {
		return errf(CodeBadVisibility, "visibility", "visibility is a set of citizens, companies and authorities")
	}
	return nil
}

// LegacyMailbox maps a DP/DP2 address (postkasse, emne) of an authority to
// one of its contact points. An empty Subject maps the whole postkasse; an
// empty ContactPoint records a known mailbox mapped to nothing, which goes
// to the default system (it is always delivered).
type LegacyMailbox struct {
	Org          string
	Mailbox      string // postkasse
	Subject      string // emne
	ContactPoint string
}

func (l *LegacyMailbox) Kind() Kind { return KindLegacyMailbox }
func (l *LegacyMailbox) Key() string {
	return LegacyKey(l.Org, l.Mailbox, l.Subject)
}

// LegacyKey is the key of a legacy mailbox mapping.
func LegacyKey(org, mailbox, subject string) string {
	return "leg/" + org + "/" + mailbox + "/" + subject
}

func (l *LegacyMailbox) Validate() error {
	if err := checkCVR("org", l.Org); err != nil {
		return err
	}
	if l.Mailbox == "" || len(l.Mailbox) > maxLegacyField || strings.ContainsRune(l.Mailbox, '/') {
		return errf(CodeBadLegacy, "mailbox", "postkasse is 1-%d bytes without '/'", maxLegacyField)
	}
	if len(l.Subject) > maxLegacyField || strings.ContainsRune(l.Subject, '/') {
		return errf(CodeBadLegacy, "subject", "emne is at most %d bytes without '/'", maxLegacyField)
	}
	if l.ContactPoint != "" {
		return checkID("contact_point", l.ContactPoint)
	}
	return nil
}

// Registration is a citizen's or company's Digital Post status.
type Registration uint8

const (
	Registered Registration = 1
	// Exempt (fritaget): post goes by another channel, a physical letter.
	Exempt Registration = 2
)

func (r Registration) String() string {
	switch r {
	case Registered:
		return "registered"
	case Exempt:
		return "exempt"
	}
	return ""
}

// Citizen is a person's Digital Post registration. A registered citizen's
// post goes to the Mailbox provider system; an exempt citizen's to the
// physical-print provider. NemSMS says whether the citizen receives NemSMS.
// There are 5 million: the codec and the View keep them small.
type Citizen struct {
	CPR     string
	Status  Registration
	NemSMS  bool
	Mailbox string // mailbox provider system id (required when registered)
}

func (c *Citizen) Kind() Kind  { return KindCitizen }
func (c *Citizen) Key() string { return "cit/" + c.CPR }

func (c *Citizen) Validate() error {
	if err := checkCPR("cpr", c.CPR); err != nil {
		return err
	}
	return checkRegistration(c.Status, c.Mailbox)
}

// Company is a company's Digital Post registration: VIRKSOMHEDSPOST goes
// to its own recipient System when it has one, else to its mailbox.
type Company struct {
	CVR     string
	Status  Registration
	Mailbox string // mailbox provider system id
	System  string // optional own recipient system id
	// Forward, for a company without its own recipient system, sends its
	// mailbox post on (seed 001: "Videresendelse fra Virk.dk").
	Forward Forwarding
}

// ForwardKind says where a company's mailbox post is forwarded.
type ForwardKind uint8

const (
	// ForwardSecureMailbox forwards to a trusted third party's secure
	// mailbox (with the company certificate); messages above
	// MaxForwardSecureMailbox stay in the mailbox.
	ForwardSecureMailbox ForwardKind = 1
	// ForwardPickup forwards to a pickup system by URL, up to
	// MaxForwardPickup.
	ForwardPickup ForwardKind = 2
)

// Forwarding size limits (seed 001): 10 MB to a secure mailbox, 99.5 MB to
// a pickup system.
const (
	MaxForwardSecureMailbox = 10 * 1000 * 1000
	MaxForwardPickup        = 99_500_000
)

func (k ForwardKind) String() string {
	switch k {
	case ForwardSecureMailbox:
		return "secure-mailbox"
	case ForwardPickup:
		return "pickup"
	}
	return ""
}

// ParseForwardKind is the inverse of ForwardKind.String (0 if unknown).
func ParseForwardKind(s string) ForwardKind {
	switch s {
	case "secure-mailbox":
		return ForwardSecureMailbox
	case "pickup":
		return ForwardPickup
	}
	return 0
}

// Forwarding is a company's forwarding setting; the zero value is none.
// To is the trusted third party's CVR (secure mailbox) or the pickup
// system's https URL; Credentials the reference to what memoflow
// presents to a pickup system (secret:/file:).
type Forwarding struct {
	Kind        ForwardKind
	To          string
	Credentials string
}

// Set reports whether forwarding is on.
func (f Forwarding) Set() bool { return f.Kind != 0 }

func (f Forwarding) validate(cvr string) error {
	switch f.Kind {
	case 0:
		if f.To != "" || f.Credentials != "" {
			return errf(CodeBadForward, "forward.kind", "forwarding target given without a kind (secure-mailbox or pickup)")
		}
		return nil
	case ForwardSecureMailbox:
		if !ValidCVR(f.To) {
			return errf(CodeBadForward, "forward.to", "%q: a secure mailbox is forwarded to by the trusted third party's CVR number", f.To)
		}
		if f.To == cvr {
			return errf(CodeBadForward, "forward.to", "a company cannot forward its post to itself")
		}
		if f.Credentials != "" {
			return errf(CodeBadForward, "forward.credentials", "forwarding to a secure mailbox uses the company certificate; leave credentials empty")
		}
		return nil
	case ForwardPickup:
		u, err := url.Parse(f.To)
		if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil {
			return errf(CodeBadForward, "forward.to", "%q: a pickup system is an absolute https URL without credentials", f.To)
		}
		if err := checkCredentials(f.Credentials); err != nil {
			return &Error{Code: CodeCredentials, Field: "forward.credentials", Message: err.(*Error).Message}
		}
		return nil
	}
	return errf(CodeBadForward, "forward.kind", "forwarding kind must be secure-mailbox or pickup")
}

func (c *Company) Kind() Kind  { return KindCompany }
func (c *Company) Key() string { return "com/" + c.CVR }

func (c *Company) Validate() error {
	if err := checkCVR("cvr", c.CVR); err != nil {
		return err
	}
	if err := checkRegistration(c.Status, c.Mailbox); err != nil {
		return err
	}
	if c.System != "" {
		if c.Forward.Set() {
			return errf(CodeBadForward, "forward.kind", "a company with its own recipient system gets its post there; forwarding is for mailbox post only")
		}
		return checkID("system", c.System)
	}
	return c.Forward.validate(c.CVR)
}

func checkRegistration(st Registration, mailbox string) error {
	switch st {
	case Registered:
		if mailbox == "" {
			return errf(CodeMailboxMissing, "mailbox", "a registered recipient needs a mailbox provider system")
		}
	case Exempt:
	default:
		return errf(CodeBadStatus, "status", "status must be registered or exempt")
	}
	if mailbox != "" {
		return checkID("mailbox", mailbox)
	}
	return nil
}

// --- field checks ---

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// ValidCVR reports whether s has a CVR's shape: 8 digits, not starting
// with 0. (The modulus-11 check is not applied: issued numbers exist that
// fail it, and the demo organisation is one.)
func ValidCVR(s string) bool { return len(s) == 8 && s[0] != '0' && digits(s) }

// ValidCPR reports whether s has a CPR's shape: 10 digits whose first six
// are a date DDMMYY (day 01-31, month 01-12; no modulus-11 check, which
// was dropped in 2007).
func ValidCPR(s string) bool {
	if len(s) != 10 || !digits(s) {
		return false
	}
	d := int(s[0]-'0')*10 + int(s[1]-'0')
	m := int(s[2]-'0')*10 + int(s[3]-'0')
	return d >= 1 && d <= 31 && m >= 1 && m <= 12
}

func checkCVR(field, s string) error {
	if !ValidCVR(s) {
		return errf(CodeBadCVR, field, "%q is not a CVR number (8 digits, not starting with 0)", s)
	}
	return nil
}

func checkCPR(field, s string) error {
	if !ValidCPR(s) {
		return errf(CodeBadCPR, field, "not a CPR number (10 digits, DDMMYY first)")
	}
	return nil
}

// maxID bounds ids (UUIDs are 36).
const maxID = 64

// ValidID reports whether s is a usable id: 1-64 of A-Z a-z 0-9 . _ : -.
func ValidID(s string) bool {
	if s == "" || len(s) > maxID {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-' || c == ':') {
			return false
		}
	}
	return true
}

func checkID(field, s string) error {
	if !ValidID(s) {
		return errf(CodeBadID, field, "%q: an id is 1-%d of A-Z, a-z, 0-9, '.', '_', ':' and '-'", s, maxID)
	}
	return nil
}

func checkName(field, s string) error {
	if strings.TrimSpace(s) == "" || len(s) > 256 {
		return errf(CodeBadName, field, "a name is 1-256 bytes, not blank")
	}
	return nil
}

func checkURL(field, s string, required bool) error {
	if s == "" {
		if required {
			return errf(CodeBadURL, field, "required")
		}
		return nil
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return errf(CodeBadURL, field, "%q is not an absolute http(s) URL without credentials", s)
	}
	return nil
}

func isHex64(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// checkCredentials accepts references only: a secret in clear in a
// compacted topic would live forever on every broker and every replica.
func checkCredentials(s string) error {
	switch {
	case s == "":
		return nil
	case strings.HasPrefix(s, "secret:") && len(s) > len("secret:") && len(s) <= 256:
		return nil
	case strings.HasPrefix(s, "file:") && len(s) > len("file:") && len(s) <= 1024:
		return nil
	case strings.HasPrefix(s, "sha256:") && isHex64(s[len("sha256:"):]):
		return nil
	}
	return errf(CodeCredentials, "credentials", "credentials are a reference (secret:<name>, file:<path> or sha256:<64 hex> of a pull token), never a secret in clear")
}

func checkCodes(field, code string, vals []string, ok func(string) bool, what string) error {
	if len(vals) > MaxCodes {
		return errf(code, field, "at most %d codes (got %d)", MaxCodes, len(vals))
	}
	for _, v := range vals {
		if !ok(v) {
			return errf(code, field, "%q: %s", v, what)
		}
	}
	return nil
}

func isKLE(s string) bool {
	// dd, dd.dd, dd.dd.dd
	if len(s) != 2 && len(s) != 5 && len(s) != 8 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if i%3 == 2 {
			if s[i] != '.' {
				return false
			}
		} else if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func isFORM(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.') {
			return false
		}
	}
	return true
}
