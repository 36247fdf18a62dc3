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

// SystemJSON is a recipient system or a provider (mailbox, sms, print).
type SystemJSON struct {
	ID              string       `json:"id"`
	Organisation    string       `json:"organisation,omitempty"`
	Name            string       `json:"name"`
	Kind            string       `json:"kind"`               // recipient, mailbox, sms, print
	Role            string       `json:"role,omitempty"`     // recipient systems: default, cvr-post, regular
	Protocol        string       `json:"protocol"`           // REST_PUSH, REST_PULL, PUBLISH_SUBSCRIBE
	Endpoint        string       `json:"endpoint,omitempty"` // push and publish/subscribe
	Credentials     string       `json:"credentials,omitempty"`
	ReceiptEndpoint string       `json:"receiptEndpoint,omitempty"`
	MemoVersion     string       `json:"memoVersion"` // "1.1" or "1.2"
	Active          bool         `json:"active"`
	Contact         *ContactJSON `json:"contact,omitempty"`
}

var systemKinds = map[string]registry.SystemKind{"recipient": registry.SystemRecipient, "mailbox": registry.SystemMailbox, "sms": registry.SystemSMS, "print": registry.SystemPrint}

func systemJSON(s *registry.System) SystemJSON {
	j := SystemJSON{ID: s.ID, Organisation: s.Org, Name: s.Name, Kind: s.SysKind.String(), Role: s.Role.String(), Protocol: s.Protocol.String(),
		Endpoint: s.Endpoint, Credentials: s.Credentials, ReceiptEndpoint: s.ReceiptEndpoint, Active: !s.Deactivated}
	switch s.MemoVersion {
	case 11:
		j.MemoVersion = "1.1"
	case 12:
		j.MemoVersion = "1.2"
	}
	if s.Contact != (registry.Contact{}) {
		j.Contact = &ContactJSON{Name: s.Contact.Name, Email: s.Contact.Email}
	}
	return j
}

func (j SystemJSON) entity() (*registry.System, *Error) {
	s := &registry.System{ID: j.ID, Org: j.Organisation, Name: j.Name, Endpoint: j.Endpoint, Credentials: j.Credentials,
		ReceiptEndpoint: j.ReceiptEndpoint, Deactivated: !j.Active}
	var ok bool
	if s.SysKind, ok = systemKinds[j.Kind]; !ok {
		return nil, fieldErr(CodeInvalid, "kind", "kind is recipient, mailbox, sms or print, got %q", j.Kind)
	}
	if s.Protocol = registry.ParseProtocol(j.Protocol); s.Protocol == 0 {
		return nil, fieldErr(CodeInvalid, "protocol", "protocol is REST_PUSH, REST_PULL or PUBLISH_SUBSCRIBE, got %q", j.Protocol)
	}
	if j.Role != "" {
		if s.Role = registry.ParseRole(j.Role); s.Role == 0 {
			return nil, fieldErr(CodeInvalid, "role", "role is default, cvr-post or regular, got %q", j.Role)
		}
	}
	switch j.MemoVersion {
	case "1.1", "", "11":
		s.MemoVersion = 11 // NgDP's default: recipient systems receive 1.1 unless they ask for 1.2
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
