package admin

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/csv"
	"encoding/pem"
	"errors"
	"math/big"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/memoflow/memoflow/internal/auth"
	"github.com/memoflow/memoflow/schemas/registry"
)

const supplierOrg = "11223344"

// keys are an SSH host key pair's public halves and an RSA certificate,
// made once per test binary.
var keys = sync.OnceValue(func() (k struct{ host1, host2, cert string }) {
	pub := func() string {
		p, _, _ := ed25519.GenerateKey(rand.Reader)
		sp, _ := ssh.NewPublicKey(p)
		return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sp)))
	}
	k.host1, k.host2 = pub(), pub()
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "Fagsystem (funktionscertifikat)"},
		NotBefore: time.Unix(0, 0), NotAfter: time.Unix(4e9, 0), KeyUsage: x509.KeyUsageKeyEncipherment | x509.KeyUsageDigitalSignature}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	k.cert = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	return k
})

func sftpSys(id string) *registry.System {
	return &registry.System{ID: id, Org: orgA, Name: "Arkiv via SFTP", SysKind: registry.SystemRecipient, Protocol: registry.SFTP,
		Endpoint: "sftp://sftp.kommune-a.example:2222", SFTPUser: "digitalpost", SSHHostKey: keys().host1 + "\n" + keys().host2,
		Folder: "/inbox", ReceiptFolder: "/receipts", MemoVersion: 11, Role: registry.RoleRegular,
		Contact: registry.Contact{Name: "IT-vagten", Email: "it@kommune-a.example"}}
}

func smtpSys(id string) *registry.System {
	return &registry.System{ID: id, Org: orgA, Name: "Postmodtagelse (SMTP)", SysKind: registry.SystemRecipient, Protocol: registry.SMTP,
		Endpoint: "smtp://mail.kommune-a.example:587", SMTPAddress: "digitalpost@kommune-a.example", Certificate: keys().cert,
		MemoVersion: 12, Role: registry.RoleCVRPost, Deactivated: true}
}

func stdSys(id, org string) *registry.System {
	return &registry.System{ID: id, Org: org, Name: "ESDH Standard", SysKind: registry.SystemStandard, Protocol: registry.RestPush,
		Endpoint: "https://esdh.supplier.example/memos", Credentials: "secret:esdh-supplier", MemoVersion: 12}
}

func selectionSys(id, template string) *registry.System {
	return &registry.System{ID: id, Org: orgA, Name: "ESDH via leverandør", SysKind: registry.SystemRecipient, Template: template,
		Role: registry.RoleDefault, Credentials: "sha256:" + auth.HashToken("the-key")}
}

// systemsRegistry is an authority with every kind of recipient system,
// which is also a supplier of a standard system (so one export holds all
// three sheets' kinds), and a company registration with forwarding.
func systemsRegistry() *memRegistry {
	r := baseRegistry()
	for _, e := range []registry.Entity{
		&registry.Org{CVR: supplierOrg, Name: "Leverandøren", Type: registry.OrgCompany},
		stdSys("std-own", orgA), stdSys("std-esdh", supplierOrg),
		sftpSys("sys-sftp"), smtpSys("sys-smtp"), selectionSys("sel-esdh", "std-esdh"),
		&registry.System{ID: "sys-odd", Org: orgA, Name: "=HYPERLINK(\"x\")", SysKind: registry.SystemRecipient, Protocol: registry.RestPush,
			Endpoint: "https://a.example/memos", Credentials: "file:/etc/memoflow/a.token", ReceiptEndpoint: "https://a.example/receipts", MemoVersion: 12, Role: registry.RoleRegular},
		&registry.Company{CVR: orgA, Status: registry.Registered, Mailbox: "mailbox",
			Forward: registry.Forwarding{Kind: registry.ForwardPickup, To: "https://pickup.example/in", Credentials: "secret:pickup"}},
	} {
		r.m[e.Key()] = e
	}
	return r
}

func exportSystems(t *testing.T, r Reader, org string, format Format) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := ExportSystems(&buf, r, org, format); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

var full = SystemsAccess{Recipient: true, Standard: true}

// TestSystemsRoundTrip: export -> import of the systems workbook changes
// nothing, and into a registry without the systems it recreates the same
// entities, every new field included.
func TestSystemsRoundTrip(t *testing.T) {
	for _, format := range []Format{FormatXLSX, FormatCSV} {
		t.Run(string(format), func(t *testing.T) {
			r := systemsRegistry()
			data := exportSystems(t, r, orgA, format)
			if bytes.Contains(data, []byte("sysB")) {
				t.Fatal("export holds another organisation's systems")
			}
			res, err := newTestImporter(t, r).ImportSystems(context.Background(), orgA, "ann", data, "", false, full)
			if err != nil {
				t.Fatal(err)
			}
			if res.Written != 0 || res.RecipientSystems.Unchanged != 5 || res.StandardSystems.Unchanged != 1 || res.Forwarding.Unchanged != 1 {
				t.Fatalf("export -> import is not a no-op: %+v", res)
			}
			// Into a registry with the organisations, the company
			// registration without forwarding, and the supplier's template.
			empty := baseRegistry()
			for _, e := range []registry.Entity{
				&registry.Org{CVR: supplierOrg, Name: "Leverandøren", Type: registry.OrgCompany}, stdSys("std-esdh", supplierOrg),
				&registry.Company{CVR: orgA, Status: registry.Registered, Mailbox: "mailbox"},
			} {
				empty.m[e.Key()] = e
			}
			res, err = newTestImporter(t, empty).ImportSystems(context.Background(), orgA, "ann", data, "", false, full)
			if err != nil {
				t.Fatal(err)
			}
			if res.RecipientSystems.Created != 4 || res.RecipientSystems.Unchanged != 1 || res.StandardSystems.Created != 1 || res.Forwarding.Updated != 1 || len(res.APIKeys) != 0 {
				t.Fatalf("import into the empty registry: %+v", res)
			}
			for key, want := range r.m {
				if entityOrg(want) != orgA || (want.Kind() != registry.KindSystem && want.Kind() != registry.KindCompany) {
					continue
				}
				got, ok := empty.Get(key)
				if !ok {
					t.Errorf("%s not imported", key)
					continue
				}
				switch w := want.(type) {
				case *registry.System:
					if *w != *got.(*registry.System) {
						t.Errorf("%s:\n got  %+v\n want %+v", key, got, w)
					}
				case *registry.Company:
					if *w != *got.(*registry.Company) {
						t.Errorf("%s:\n got  %+v\n want %+v", key, got, w)
					}
				}
			}
		})
	}
}

// sysCSV builds a systems CSV from rows of header -> value.
func sysCSV(rows ...map[string]string) []byte {
	hdr := []string{CSVTypeHeader}
	for _, c := range csvSystemColumns() {
		hdr = append(hdr, c.Header)
	}
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	_ = w.Write(hdr)
	for _, r := range rows {
		rec := make([]string, len(hdr))
		for i, h := range hdr {
			rec[i] = r[h]
		}
		_ = w.Write(rec)
	}
	w.Flush()
	return buf.Bytes()
}

func TestSystemsImportBadRows(t *testing.T) {
	sftp := func(mod map[string]string) map[string]string {
		m := map[string]string{"Type": TypeSystem, "ID": "new-sftp", "Navn": "SFTP", "Rolle": "regular", "Protokol": "SFTP",
			"Endpoint": "sftp://x.example", "SFTP-bruger": "dp", "SSH-værtsnøgle": keys().host1, "SFTP-mappe": "/in"}
		for k, v := range mod {
			m[k] = v
		}
		return m
	}
	type werr struct{ column, code, registryCode string }
	for _, tc := range []struct {
		name string
		row  map[string]string
		may  SystemsAccess
		want []werr
	}{
		{"bad host key", sftp(map[string]string{"SSH-værtsnøgle": "ssh-ed25519 !!!"}), full,
			[]werr{{"SSH-værtsnøgle", CodeRegistryInvalid, registry.CodeBadSFTP}}},
		{"relative folder and bad contact", sftp(map[string]string{"SFTP-mappe": "in", "Kontaktperson": "x", "Kontaktperson e-mail": "nope"}), full,
			[]werr{{"SFTP-mappe", CodeRegistryInvalid, registry.CodeBadSFTP}}},
		{"bad contact and bad receipt endpoint", sftp(map[string]string{"Kontaktperson": "x", "Kontaktperson e-mail": "nope", "Kvitteringsendpoint": "ftp://x"}), full,
			[]werr{{"Kvitteringsendpoint", CodeRegistryInvalid, registry.CodeBadURL}, {"Kontaktperson e-mail", CodeRegistryInvalid, registry.CodeBadContact}}},
		{"unknown protocol", sftp(map[string]string{"Protokol": "FTP"}), full, []werr{{"Protokol", CodeBadValue, ""}}},
		{"bad role and version", sftp(map[string]string{"Rolle": "boss", "MeMo-version": "2.0"}), full,
			[]werr{{"Rolle", CodeBadValue, ""}, {"MeMo-version", CodeBadValue, ""}}},
		{"smtp certificate not PEM", map[string]string{"Type": TypeSystem, "ID": "new-smtp", "Navn": "SMTP", "Rolle": "regular", "Protokol": "SMTP",
			"Endpoint": "smtp://m.example", "SMTP-adresse": "a@b.example", "Certifikat": "MIIB"}, full,
			[]werr{{"Certifikat", CodeRegistryInvalid, registry.CodeBadSMTP}}},
		{"selection with its own endpoint", map[string]string{"Type": TypeSystem, "ID": "new-sel", "Navn": "Sel", "Rolle": "regular",
			"Endpoint": "https://x.example", "Standardsystem": "std-esdh"}, full,
			[]werr{{"Standardsystem", CodeRegistryInvalid, registry.CodeBadTemplate}}},
		{"own system turned into a selection", map[string]string{"Type": TypeSystem, "ID": "sys-sftp", "Navn": "Sel", "Rolle": "regular", "Standardsystem": "std-esdh"}, full,
			[]werr{{"Standardsystem", CodeSelectionID, ""}}},
		{"selection moved to another standard system", map[string]string{"Type": TypeSystem, "ID": "sel-esdh", "Navn": "Sel", "Rolle": "default", "Standardsystem": "std-own"}, full,
			[]werr{{"Standardsystem", CodeSelectionID, ""}}},
		{"standard system with a role", map[string]string{"Type": TypeStandard, "ID": "std-new", "Navn": "Std", "Rolle": "regular", "Protokol": "REST_PULL"}, full,
			[]werr{{"Rolle", CodeRegistryInvalid, registry.CodeBadRole}}},
		{"kind change", map[string]string{"Type": TypeStandard, "ID": "sys-sftp", "Navn": "Std", "Protokol": "REST_PULL"}, full,
			[]werr{{"ID", CodeDuplicateID, ""}}},
		{"another organisation's id", sftp(map[string]string{"ID": "sysB"}), full, []werr{{"ID", CodeForeignID, ""}}},
		{"forward to an http URL", map[string]string{"Type": TypeForwarding, "Videresendelse": "pickup", "Videresend til": "http://x.example"}, full,
			[]werr{{"Videresend til", CodeRegistryInvalid, registry.CodeBadForward}}},
		{"forward with a secret in clear", map[string]string{"Type": TypeForwarding, "Videresendelse": "afhentningssystem", "Videresend til": "https://x.example", "Videresendelse credentials": "hunter2"}, full,
			[]werr{{"Videresendelse credentials", CodeRegistryInvalid, registry.CodeCredentials}}},
		{"forward kind unknown", map[string]string{"Type": TypeForwarding, "Videresendelse": "fax"}, full, []werr{{"Videresendelse", CodeBadValue, ""}}},
		{"forwarding row with a system cell", map[string]string{"Type": TypeForwarding, "Videresendelse": "ingen", "Protokol": "SFTP"}, full,
			[]werr{{"Protokol", CodeBadValue, ""}}},
		{"a supplier changes a recipient system", sftp(nil), SystemsAccess{Standard: true}, []werr{{"", CodeNotAllowed, ""}}},
		{"an authority changes a standard system", map[string]string{"Type": TypeStandard, "ID": "std-new", "Navn": "Std", "Protokol": "REST_PULL"}, SystemsAccess{Recipient: true},
			[]werr{{"", CodeNotAllowed, ""}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := systemsRegistry()
			before := r.len()
			_, err := newTestImporter(t, r).ImportSystems(context.Background(), orgA, "ann", sysCSV(tc.row), "", false, tc.may)
			var ie *ImportError
			if !errors.As(err, &ie) {
				t.Fatalf("err = %v, want an *ImportError", err)
			}
			var got []werr
			for _, e := range ie.Errors {
				if e.Message == "" || e.Row != 2 {
					t.Errorf("error %+v: no message or not row 2", e)
				}
				got = append(got, werr{e.Column, e.Code, e.RegistryCode})
			}
			if len(got) != len(tc.want) {
				t.Fatalf("errors %+v, want %+v", ie.Errors, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("error %d: %+v, want %+v (%s)", i, got[i], tc.want[i], ie.Errors[i].Message)
				}
			}
			if r.len() != before || len(r.applied) != 0 {
				t.Fatal("a rejected import wrote")
			}
		})
	}
	// Forwarding for an organisation that is no company.
	r := systemsRegistry()
	_, err := newTestImporter(t, r).ImportSystems(context.Background(), orgB, "bob", sysCSV(map[string]string{"Type": TypeForwarding, "Videresendelse": "ingen"}), "", false, full)
	var ie *ImportError
	if !errors.As(err, &ie) || len(ie.Errors) != 1 || ie.Errors[0].Code != CodeNotACompany {
		t.Fatalf("forwarding of a non-company: %v", err)
	}
}

// TestSystemsImportIssuesKeys: a new selection without credentials gets an
// API key, shown once in the result and kept as its hash; a dry run
// issues none; an existing selection keeps its key when the cell is empty.
func TestSystemsImportIssuesKeys(t *testing.T) {
	row := map[string]string{"Type": TypeSystem, "ID": "sel-new", "Navn": "ESDH", "Rolle": "regular", "Standardsystem": "std-esdh"}
	r := systemsRegistry()
	im := newTestImporter(t, r)
	res, err := im.ImportSystems(context.Background(), orgA, "ann", sysCSV(row), "", true, full)
	if err != nil || res.RecipientSystems.Created != 1 || len(res.APIKeys) != 0 || len(r.applied) != 0 {
		t.Fatalf("dry run: %+v %v", res, err)
	}
	res, err = im.ImportSystems(context.Background(), orgA, "ann", sysCSV(row), "", false, full)
	if err != nil || len(res.APIKeys) != 1 {
		t.Fatalf("import: %+v %v", res, err)
	}
	k := res.APIKeys[0]
	s, _ := r.Get("sys/sel-new")
	if k.System.ID != "sel-new" || k.APIKeySHA256 != auth.HashToken(k.APIKey) || s.(*registry.System).Credentials != "sha256:"+k.APIKeySHA256 {
		t.Fatalf("key %+v, system %+v", k, s)
	}
	// Renamed, credentials cell empty: the key stays.
	row["Navn"] = "ESDH (ny)"
	if res, err = im.ImportSystems(context.Background(), orgA, "ann", sysCSV(row), "", false, full); err != nil || res.RecipientSystems.Updated != 1 || len(res.APIKeys) != 0 {
		t.Fatalf("rename: %+v %v", res, err)
	}
	if s, _ := r.Get("sys/sel-new"); s.(*registry.System).Credentials != "sha256:"+k.APIKeySHA256 || s.(*registry.System).Name != "ESDH (ny)" {
		t.Fatalf("after the rename: %+v", s)
	}
}
