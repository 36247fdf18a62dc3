package admin

import (
	"fmt"
	"slices"
	"strings"

	"github.com/memoflow/memoflow/schemas/registry"
)

// The systems workbook: an organisation's recipient systems (sheet
// Modtagersystemer), a supplier's standard systems (Standardsystemer) and
// a company's forwarding (Videresendelse), one entity per row, in the same
// conventions as the contact-structure sheet (Danish headers, English
// aliases, Ja/Nej, formula escaping). CSV holds all three with a Type
// column. Certificates and host keys are multi-line cells.

// Sheet names and CSV types of the systems workbook.
const (
	SheetSystems    = "Modtagersystemer"
	SheetStandard   = "Standardsystemer"
	SheetForwarding = "Videresendelse"
	TypeSystem      = "Modtagersystem"
	TypeStandard    = "Standardsystem"
	TypeForwarding  = "Videresendelse"
)

var systemSheetAliases = map[string]string{
	"modtagersystemer": SheetSystems, "recipient systems": SheetSystems, "recipientsystems": SheetSystems,
	"standardsystemer": SheetStandard, "standard systems": SheetStandard, "standardsystems": SheetStandard,
	"videresendelse": SheetForwarding, "forwarding": SheetForwarding,
}

func sysText(header string, aliases []string, field string, required bool, doc string, ptr func(*registry.System) *string, norm func(string) string) column {
	return column{Header: header, Aliases: aliases, Field: field, Required: required, Doc: doc,
		get: func(e entityRow) string { return *ptr(e.s) },
		set: func(e entityRow, v string) *cellErr {
			if norm != nil {
				v = norm(v)
			}
			*ptr(e.s) = v
			return nil
		}}
}

func forwardText(header string, aliases []string, field, doc string, ptr func(*registry.Forwarding) *string) column {
	return column{Header: header, Aliases: aliases, Field: field, Doc: doc,
		get: func(e entityRow) string { return *ptr(&e.c.Forward) },
		set: func(e entityRow, v string) *cellErr { *ptr(&e.c.Forward) = v; return nil }}
}

// forwardKinds are the Videresendelse cells: the API's names and Danish.
var forwardKinds = map[string]registry.ForwardKind{
	"none": 0, "ingen": 0, "": 0,
	"secure-mailbox": registry.ForwardSecureMailbox, "sikker postkasse": registry.ForwardSecureMailbox,
	"pickup": registry.ForwardPickup, "afhentningssystem": registry.ForwardPickup,
}

var (
	// SystemColumns is the Modtagersystemer sheet (and the system part of
	// the CSV).
	SystemColumns = []column{
		sysText("ID", nil, "id", true, "Id of the system (1-64 of A-Z a-z 0-9 . _ : -); rows merge with the registry by it.",
			func(s *registry.System) *string { return &s.ID }, nil),
		sysText("Navn", []string{"Name"}, "name", true, "Name of the system (1-256 bytes).",
			func(s *registry.System) *string { return &s.Name }, nil),
		{Header: "Rolle", Aliases: []string{"Role"}, Field: "role",
			Doc: "Recipient systems: default (what maps to no contact point; one per authority), cvr-post (post to the authority's CVR) or regular. Empty for standard systems.",
			get: func(e entityRow) string { return e.s.Role.String() },
			set: func(e entityRow, v string) *cellErr {
				if v == "" {
					e.s.Role = 0
					return nil
				}
				if e.s.Role = registry.ParseRole(strings.ToLower(v)); e.s.Role == 0 {
					return &cellErr{CodeBadValue, fmt.Sprintf("%q is not default, cvr-post or regular", truncate(v, 40))}
				}
				return nil
			}},
		{Header: "Protokol", Aliases: []string{"Protocol"}, Field: "protocol",
			Doc: "REST_PUSH, REST_PULL, PUBLISH_SUBSCRIBE, SFTP or SMTP. Empty when the row selects a standard system.",
			get: func(e entityRow) string { return e.s.Protocol.String() },
			set: func(e entityRow, v string) *cellErr {
				if v == "" {
					e.s.Protocol = 0
					return nil
				}
				if e.s.Protocol = registry.ParseProtocol(strings.ToUpper(v)); e.s.Protocol == 0 {
					return &cellErr{CodeBadValue, fmt.Sprintf("%q is not REST_PUSH, REST_PULL, PUBLISH_SUBSCRIBE, SFTP or SMTP", truncate(v, 40))}
				}
				return nil
			}},
		sysText("Endpoint", []string{"Adresse"}, "endpoint", false, "REST_PUSH and PUBLISH_SUBSCRIBE: the https URL; SFTP: sftp://host[:port]; SMTP: smtp://host[:port]; empty for REST_PULL.",
			func(s *registry.System) *string { return &s.Endpoint }, nil),
		sysText("Credentials", []string{"Legitimation"}, "credentials", false, "A reference, never a secret: secret:<name>, file:<path>, or sha256:<64 hex> of an API key (pull systems, selections). Empty on a new selection: the import issues its API key.",
			func(s *registry.System) *string { return &s.Credentials }, nil),
		sysText("Kvitteringsendpoint", []string{"Receipt endpoint"}, "receipt_endpoint", false, "Optional https URL business receipts are pushed to.",
			func(s *registry.System) *string { return &s.ReceiptEndpoint }, nil),
		{Header: "MeMo-version", Aliases: []string{"MeMo version", "Memo version"}, Field: "memo_version",
			Doc: "1.1 or 1.2 (empty: 1.1); empty when the row selects a standard system.",
			get: func(e entityRow) string { return memoVersionString(e.s.MemoVersion) },
			set: func(e entityRow, v string) *cellErr {
				switch v {
				case "":
					e.s.MemoVersion = 0 // 1.1 unless a selection, after every column is read
				case "1.1", "11":
					e.s.MemoVersion = 11
				case "1.2", "12":
					e.s.MemoVersion = 12
				default:
					return &cellErr{CodeBadValue, fmt.Sprintf("%q is not 1.1 or 1.2", truncate(v, 40))}
				}
				return nil
			}},
		{Header: "Aktiv", Aliases: []string{"Active"}, Field: "active",
			Doc: "Ja (or empty) if the system receives; Nej deactivates it (its post waits for pickup).",
			get: func(e entityRow) string { return boolCell(!e.s.Deactivated) },
			set: func(e entityRow, v string) *cellErr {
				if v == "" {
					e.s.Deactivated = false
					return nil
				}
				b, ok := parseBool(v)
				if !ok {
					return &cellErr{CodeBadValue, "\"" + truncate(v, 40) + "\" is not Ja or Nej"}
				}
				e.s.Deactivated = !b
				return nil
			}},
		sysText("Kontaktperson", []string{"Contact name"}, "contact.name", false, "Who is told when delivery keeps failing (with the e-mail).",
			func(s *registry.System) *string { return &s.Contact.Name }, nil),
		sysText("Kontaktperson e-mail", []string{"Contact e-mail", "Contact email"}, "contact.email", false, "The contact person's plain e-mail address.",
			func(s *registry.System) *string { return &s.Contact.Email }, nil),
		sysText("SFTP-bruger", []string{"SFTP user"}, "sftp_user", false, "SFTP: the user memoflow logs in as (1-64 of A-Z a-z 0-9 . _ -).",
			func(s *registry.System) *string { return &s.SFTPUser }, nil),
		sysText("SSH-værtsnøgle", []string{"SSH host key"}, "ssh_host_key", false, "SFTP: the server's public host key in authorized_keys form (\"ssh-ed25519 AAAA...\"), two lines while it changes key.",
			func(s *registry.System) *string { return &s.SSHHostKey }, normKeys),
		sysText("SFTP-mappe", []string{"Folder", "SFTP folder"}, "folder", false, "SFTP: the absolute inbox folder.",
			func(s *registry.System) *string { return &s.Folder }, nil),
		sysText("Kvitteringsmappe", []string{"Receipt folder"}, "receipt_folder", false, "SFTP, optional: the absolute folder the system writes receipt files to (not the inbox).",
			func(s *registry.System) *string { return &s.ReceiptFolder }, nil),
		sysText("SMTP-adresse", []string{"SMTP address"}, "smtp_address", false, "SMTP: the system's plain e-mail address.",
			func(s *registry.System) *string { return &s.SMTPAddress }, nil),
		sysText("Certifikat", []string{"Certificate"}, "certificate", false, "SMTP: the system's OCES certificate (PEM, RSA) messages are encrypted to, or a secret:/file: reference.",
			func(s *registry.System) *string { return &s.Certificate }, normPEM),
		sysText("Standardsystem", []string{"Standard system", "Template"}, "template", false, "Id of the supplier's standard system this recipient system selects (GET /standard-systems lists them); protocol, endpoints, version and certificates are then empty.",
			func(s *registry.System) *string { return &s.Template }, nil),
	}
	// StandardColumns is the Standardsystemer sheet: a supplier's systems
	// have no role and select nothing.
	StandardColumns = slices.DeleteFunc(slices.Clone(SystemColumns), func(c column) bool { return c.Field == "role" || c.Field == "template" })
	// ForwardingColumns is the Videresendelse sheet: one row.
	ForwardingColumns = []column{
		{Header: "Videresendelse", Aliases: []string{"Forwarding"}, Field: "forward.kind", Required: true,
			Doc: "none (ingen), secure-mailbox (sikker postkasse; at most 10 MB per message) or pickup (afhentningssystem; at most 99.5 MB).",
			get: func(e entityRow) string {
				if !e.c.Forward.Set() {
					return ForwardNone
				}
				return e.c.Forward.Kind.String()
			},
			set: func(e entityRow, v string) *cellErr {
				k, ok := forwardKinds[strings.ToLower(v)]
				if !ok {
					return &cellErr{CodeBadValue, fmt.Sprintf("%q is not none, secure-mailbox or pickup", truncate(v, 40))}
				}
				e.c.Forward.Kind = k
				return nil
			}},
		forwardText("Videresend til", []string{"Forward to"}, "forward.to", "secure-mailbox: the trusted third party's CVR; pickup: the pickup system's https URL.",
			func(f *registry.Forwarding) *string { return &f.To }),
		forwardText("Videresendelse credentials", []string{"Forward credentials"}, "forward.credentials", "pickup: the secret:/file: reference memoflow presents to the pickup system; empty for secure-mailbox.",
			func(f *registry.Forwarding) *string { return &f.Credentials }),
	}
)

// csvSystemColumns is the CSV's layout after Type: every system column,
// then the forwarding columns.
func csvSystemColumns() []column { return append(slices.Clone(SystemColumns), ForwardingColumns...) }
