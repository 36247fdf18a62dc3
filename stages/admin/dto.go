package admin

import (
	"slices"
	"strings"

	"github.com/memoflow/memoflow/schemas/registry"
)

// The API's JSON shapes: camelCase, enums as strings, the organisation in
// every entity. They convert to and from the registry model one to one;
// fields the caller may not set (ids and organisations from the path,
// token hashes) are taken from the path or kept from the stored entity.

// OrgJSON is an organisation.
type OrgJSON struct {
	CVR   string `json:"cvr"`
	Name  string `json:"name"`
	Kind  string `json:"kind"`            // authority or company
	Setup int    `json:"setup,omitempty"` // authorities: 1, 2 or 3
}

func orgJSON(o *registry.Org) OrgJSON {
	return OrgJSON{CVR: o.CVR, Name: o.Name, Kind: o.Type.String(), Setup: int(o.Setup)}
}

func (j OrgJSON) entity() (*registry.Org, *Error) {
	o := &registry.Org{CVR: j.CVR, Name: j.Name, Setup: uint8(min(max(j.Setup, 0), 255))}
	switch j.Kind {
	case "authority":
		o.Type = registry.OrgAuthority
	case "company":
		o.Type = registry.OrgCompany
	default:
		return nil, fieldErr(CodeInvalid, "kind", "kind is authority or company, got %q", j.Kind)
	}
	return o, nil
}

// SenderSystemJSON is a sender system. Its tokens are never shown: Tokens
// counts them (POST .../tokens issues one).
type SenderSystemJSON struct {
	ID              string `json:"id"`
	Organisation    string `json:"organisation"`
	Name            string `json:"name"`
	ReceiptEndpoint string `json:"receiptEndpoint,omitempty"`
	Active          bool   `json:"active"`
	Tokens          int    `json:"tokens"`
}

func senderJSON(s *registry.SenderSystem) SenderSystemJSON {
	return SenderSystemJSON{ID: s.ID, Organisation: s.Org, Name: s.Name, ReceiptEndpoint: s.ReceiptEndpoint, Active: s.Active, Tokens: len(s.TokenSHA256)}
}

// ContactJSON is a system's contact person.
type ContactJSON struct {
	Name  string `json:"name"`
	Email string `json:"email"`
}

// SystemJSON is a recipient system, a supplier's standard system or a
// provider (mailbox, sms, print). The transport fields are per protocol
// (SFTP: sftpUser, sshHostKey, folder, receiptFolder; SMTP: smtpAddress,
// certificate); the model refuses another protocol's fields. A recipient
// system that selects a standard system (standardSystem set) has no
// protocol, endpoints, version or certificates of its own.
type SystemJSON struct {
	ID              string       `json:"id"`
	Organisation    string       `json:"organisation,omitempty"`
	Name            string       `json:"name"`
	Kind            string       `json:"kind,omitempty"`     // recipient, standard, mailbox, sms, print (always in answers)
	Role            string       `json:"role,omitempty"`     // recipient systems: default, cvr-post, regular
	Protocol        string       `json:"protocol,omitempty"` // REST_PUSH, REST_PULL, PUBLISH_SUBSCRIBE, SFTP, SMTP; empty for a selection
	Endpoint        string       `json:"endpoint,omitempty"` // push and publish/subscribe: https URL; sftp://host[:port]; smtp://host[:port]
	Credentials     string       `json:"credentials,omitempty"`
	ReceiptEndpoint string       `json:"receiptEndpoint,omitempty"`
	MemoVersion     string       `json:"memoVersion,omitempty"` // "1.1" or "1.2"; empty for a selection
	Active          bool         `json:"active"`
	Contact         *ContactJSON `json:"contact,omitempty"`
	SFTPUser        string       `json:"sftpUser,omitempty"`
	SSHHostKey      string       `json:"sshHostKey,omitempty"`
	Folder          string       `json:"folder,omitempty"`
	ReceiptFolder   string       `json:"receiptFolder,omitempty"`
	SMTPAddress     string       `json:"smtpAddress,omitempty"`
	Certificate     string       `json:"certificate,omitempty"`
	// StandardSystem is the id of the supplier's standard system this
	// recipient system selects (registry System.Template).
	StandardSystem string `json:"standardSystem,omitempty"`
	// SelectedBy (read only, a standard system's supplier sees it) lists
	// the authorities' systems that selected it.
	SelectedBy []SelectionRefJSON `json:"selectedBy,omitempty"`
}

// SelectionRefJSON names an authority's system that selected a standard
// system.
type SelectionRefJSON struct {
	Organisation string `json:"organisation"`
	System       string `json:"system"`
}

var systemKinds = map[string]registry.SystemKind{"recipient": registry.SystemRecipient, "standard": registry.SystemStandard,
	"mailbox": registry.SystemMailbox, "sms": registry.SystemSMS, "print": registry.SystemPrint}

func memoVersionString(v uint8) string {
	switch v {
	case 11:
		return "1.1"
	case 12:
		return "1.2"
	}
	return ""
}

func systemJSON(s *registry.System) SystemJSON {
	j := SystemJSON{ID: s.ID, Organisation: s.Org, Name: s.Name, Kind: s.SysKind.String(), Role: s.Role.String(), Protocol: s.Protocol.String(),
		Endpoint: s.Endpoint, Credentials: s.Credentials, ReceiptEndpoint: s.ReceiptEndpoint, Active: !s.Deactivated,
		MemoVersion: memoVersionString(s.MemoVersion), SFTPUser: s.SFTPUser, SSHHostKey: s.SSHHostKey, Folder: s.Folder,
		ReceiptFolder: s.ReceiptFolder, SMTPAddress: s.SMTPAddress, Certificate: s.Certificate, StandardSystem: s.Template}
	if s.Contact != (registry.Contact{}) {
		j.Contact = &ContactJSON{Name: s.Contact.Name, Email: s.Contact.Email}
	}
	return j
}

func (j SystemJSON) entity() (*registry.System, *Error) {
	s := &registry.System{ID: j.ID, Org: j.Organisation, Name: strings.TrimSpace(j.Name), Endpoint: j.Endpoint, Credentials: j.Credentials,
		ReceiptEndpoint: j.ReceiptEndpoint, Deactivated: !j.Active, SFTPUser: j.SFTPUser, SSHHostKey: normKeys(j.SSHHostKey),
		Folder: j.Folder, ReceiptFolder: j.ReceiptFolder, SMTPAddress: j.SMTPAddress, Certificate: normPEM(j.Certificate),
		Template: j.StandardSystem}
	var ok bool
	if s.SysKind, ok = systemKinds[j.Kind]; !ok {
		return nil, fieldErr(CodeInvalid, "kind", "kind is recipient, standard, mailbox, sms or print, got %q", j.Kind)
	}
	selection := j.StandardSystem != ""
	if j.Protocol != "" || !selection {
		if s.Protocol = registry.ParseProtocol(j.Protocol); s.Protocol == 0 {
			return nil, fieldErr(CodeInvalid, "protocol", "protocol is REST_PUSH, REST_PULL, PUBLISH_SUBSCRIBE, SFTP or SMTP, got %q", j.Protocol)
		}
	}
	if j.Role != "" {
		if s.Role = registry.ParseRole(j.Role); s.Role == 0 {
			return nil, fieldErr(CodeInvalid, "role", "role is default, cvr-post or regular, got %q", j.Role)
		}
	}
	switch j.MemoVersion {
	case "":
		if !selection {
			s.MemoVersion = 11 // NgDP's default: recipient systems receive 1.1 unless they ask for 1.2
		}
	case "1.1", "11":
		s.MemoVersion = 11
	case "1.2", "12":
		s.MemoVersion = 12
	default:
		return nil, fieldErr(CodeInvalid, "memoVersion", "memoVersion is 1.1 or 1.2, got %q", j.MemoVersion)
	}
	if j.Contact != nil {
		s.Contact = registry.Contact{Name: j.Contact.Name, Email: j.Contact.Email}
	}
	return s, nil
}

// normKeys and normPEM store host keys and certificates in one form
// (lines trimmed, no blank lines; a PEM ends with one newline), so the
// same key typed in the API, pasted in a sheet cell (which the import
// trims) or exported and imported again is the same value and an
// unchanged row writes nothing. References (secret:, file:) and text that
// is not PEM are left alone for the model to judge.
func normKeys(s string) string {
	var lines []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, "\n")
}

func normPEM(s string) string {
	t := strings.TrimSpace(s)
	if !strings.HasPrefix(t, "-----BEGIN ") {
		return s
	}
	return strings.ReplaceAll(t, "\r\n", "\n") + "\n"
}

// ForwardingJSON is a company's forwarding of its mailbox post (seed 001,
// "Videresendelse fra Virk.dk"): kind none, secure-mailbox (To is the
// trusted third party's CVR; at most 10 MB per message) or pickup (To is
// the pickup system's https URL, Credentials the secret:/file: reference
// memoflow presents to it; at most 99.5 MB).
type ForwardingJSON struct {
	Organisation string `json:"organisation,omitempty"`
	Kind         string `json:"kind"`
	To           string `json:"to,omitempty"`
	Credentials  string `json:"credentials,omitempty"`
}

// ForwardNone is the kind of "no forwarding".
const ForwardNone = "none"

func forwardingJSON(cvr string, f registry.Forwarding) ForwardingJSON {
	k := f.Kind.String()
	if !f.Set() {
		k = ForwardNone
	}
	return ForwardingJSON{Organisation: cvr, Kind: k, To: f.To, Credentials: f.Credentials}
}

func (j ForwardingJSON) forwarding() (registry.Forwarding, *Error) {
	f := registry.Forwarding{To: strings.TrimSpace(j.To), Credentials: j.Credentials}
	switch j.Kind {
	case ForwardNone, "":
		if f.To != "" || f.Credentials != "" {
			return f, fieldErr(CodeInvalid, "kind", "to and credentials are given but kind is %q; use secure-mailbox or pickup", ForwardNone)
		}
		return registry.Forwarding{}, nil
	}
	if f.Kind = registry.ParseForwardKind(j.Kind); f.Kind == 0 {
		return f, fieldErr(CodeInvalid, "kind", "kind is none, secure-mailbox or pickup, got %q", j.Kind)
	}
	return f, nil
}

// InfoFieldJSON is one of a contact point's information fields.
type InfoFieldJSON struct {
	Title string `json:"title"`
	Text  string `json:"text,omitempty"`
}

// ContactGroupJSON is a contact group.
type ContactGroupJSON struct {
	ID           string   `json:"id"`
	ParentID     string   `json:"parentId,omitempty"`
	Organisation string   `json:"organisation"`
	Name         string   `json:"name"`
	Keywords     []string `json:"keywords,omitempty"`
	VisibleTo    []string `json:"visibleTo"` // citizens, companies, authorities
}

// ContactPointJSON is a contact point.
type ContactPointJSON struct {
	ID              string          `json:"id"`
	ParentID        string          `json:"parentId,omitempty"`
	Organisation    string          `json:"organisation"`
	Name            string          `json:"name"`
	Keywords        []string        `json:"keywords,omitempty"`
	KLE             []string        `json:"kle,omitempty"`
	FORM            []string        `json:"form,omitempty"`
	EAN             []string        `json:"ean,omitempty"`
	SOR             []string        `json:"sor,omitempty"`
	VisibleTo       []string        `json:"visibleTo"`
	InfoFields      []InfoFieldJSON `json:"infoFields,omitempty"`
	RecipientSystem string          `json:"recipientSystem,omitempty"`
}

var audiences = []struct {
	name string
	bit  registry.Visibility
}{{"citizens", registry.VisibleCitizens}, {"companies", registry.VisibleCompanies}, {"authorities", registry.VisibleAuthorities}}

func visNames(v registry.Visibility) []string {
	out := []string{}
	for _, a := range audiences {
		if v&a.bit != 0 {
			out = append(out, a.name)
		}
	}
	return out
}

func parseVis(field string, names []string) (registry.Visibility, *Error) {
	var v registry.Visibility
	for _, n := range names {
		i := slices.IndexFunc(audiences, func(a struct {
			name string
			bit  registry.Visibility
		}) bool {
			return strings.EqualFold(a.name, n)
		})
		if i < 0 {
			return 0, fieldErr(CodeInvalid, field, "%q is not an audience; use citizens, companies or authorities", n)
		}
		v |= audiences[i].bit
	}
	return v, nil
}

func groupJSON(g *registry.ContactGroup) ContactGroupJSON {
	return ContactGroupJSON{ID: g.ID, ParentID: g.ParentID, Organisation: g.Org, Name: g.Name, Keywords: g.Keywords, VisibleTo: visNames(g.Visibility)}
}

func (j ContactGroupJSON) entity() (*registry.ContactGroup, *Error) {
	vis, err := parseVis("visibleTo", j.VisibleTo)
	if err != nil {
		return nil, err
	}
	return &registry.ContactGroup{ID: j.ID, ParentID: j.ParentID, Org: j.Organisation, Name: strings.TrimSpace(j.Name), Keywords: trimAll(j.Keywords), Visibility: vis}, nil
}

func pointJSON(p *registry.ContactPoint) ContactPointJSON {
	j := ContactPointJSON{ID: p.ID, ParentID: p.ParentID, Organisation: p.Org, Name: p.Name, Keywords: p.Keywords,
		KLE: p.KLE, FORM: p.FORM, EAN: p.EAN, SOR: p.SOR, VisibleTo: visNames(p.Visibility), RecipientSystem: p.System}
	for _, f := range p.Info {
		j.InfoFields = append(j.InfoFields, InfoFieldJSON{Title: f.Title, Text: f.Text})
	}
	return j
}

func (j ContactPointJSON) entity() (*registry.ContactPoint, *Error) {
	vis, err := parseVis("visibleTo", j.VisibleTo)
	if err != nil {
		return nil, err
	}
	p := &registry.ContactPoint{ID: j.ID, ParentID: j.ParentID, Org: j.Organisation, Name: strings.TrimSpace(j.Name), Keywords: trimAll(j.Keywords),
		KLE: trimAll(j.KLE), FORM: trimAll(j.FORM), EAN: trimAll(j.EAN), SOR: trimAll(j.SOR), Visibility: vis, System: j.RecipientSystem}
	for _, f := range j.InfoFields {
		p.Info = append(p.Info, registry.InfoField{Title: strings.TrimSpace(f.Title), Text: f.Text})
	}
	return p, nil
}

// trimAll trims each value and drops empty ones, as the sheet import does,
// so the API and the sheets store the same thing for the same input.
func trimAll(vs []string) []string {
	var out []string
	for _, v := range vs {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

// LegacyMailboxJSON maps a DP/DP2 postkasse (and emne) to a contact point.
type LegacyMailboxJSON struct {
	Organisation string `json:"organisation"`
	Mailbox      string `json:"mailbox"`           // postkasse
	Subject      string `json:"subject,omitempty"` // emne; empty maps the whole postkasse
	ContactPoint string `json:"contactPoint,omitempty"`
}

func legacyJSON(l *registry.LegacyMailbox) LegacyMailboxJSON {
	return LegacyMailboxJSON{Organisation: l.Org, Mailbox: l.Mailbox, Subject: l.Subject, ContactPoint: l.ContactPoint}
}

// Page is a page of a list (Spring Data's shape, as NgDP's pages).
type Page[T any] struct {
	Content       []T `json:"content"`
	Number        int `json:"number"`
	Size          int `json:"size"`
	TotalElements int `json:"totalElements"`
	TotalPages    int `json:"totalPages"`
}
