package admin

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/segmentio/encoding/json"

	"github.com/memoflow/memoflow/internal/auth"
	"github.com/memoflow/memoflow/schemas/registry"
)

// TestStandardSystems: a supplier registers a standard system; an
// authority finds it in the drop-down and selects it: its recipient
// system is created with the template and an API key that authenticates
// as that system; the registry's limits and guards answer with their
// codes.
func TestStandardSystems(t *testing.T) {
	e := newEnv(t)
	A, C := "/organisations/"+orgA, "/organisations/"+supplierOrg
	std := SystemJSON{Name: "ESDH Standard", Protocol: "REST_PULL", MemoVersion: "1.2", Active: true}
	if a := e.do("supC", "PUT", C+"/standard-systems/std-esdh", std); a.status != http.StatusCreated {
		t.Fatalf("register: %d %s", a.status, a.body)
	}
	std2 := SystemJSON{Name: "Arkiv (SFTP)", Protocol: "SFTP", Endpoint: "sftp://sftp.supplier.example", SFTPUser: "memoflow",
		SSHHostKey: keys().host1 + "\n", Folder: "/in", MemoVersion: "1.1", Active: true}
	if a := e.do("supC", "PUT", C+"/standard-systems/std-sftp", std2); a.status != http.StatusCreated {
		t.Fatalf("register SFTP: %d %s", a.status, a.body)
	}
	if s := e.view.System("std-sftp"); s == nil || s.SysKind != registry.SystemStandard || s.SSHHostKey != keys().host1 || s.Org != supplierOrg {
		t.Fatalf("standard system in the view: %+v", s)
	}

	// The drop-down, for any system administrator.
	a := e.do("sysA", "GET", "/standard-systems", nil)
	var dd Page[StandardSystemJSON]
	if err := json.Unmarshal(a.body, &dd); err != nil || a.status != 200 || dd.TotalElements != 2 {
		t.Fatalf("drop-down: %d %s", a.status, a.body)
	}
	if got := dd.Content[0]; got.SupplierName != "Bageriet" || got.Protocol == "" || got.Organisation != supplierOrg {
		t.Fatalf("drop-down entry %+v", got)
	}

	// Select: a new recipient system with the template and a key.
	a = e.do("sysA", "POST", A+"/standard-system-selections", SelectionJSON{ID: "sel-esdh", StandardSystem: "std-esdh", Name: "ESDH via leverandør", Role: "regular",
		Contact: &ContactJSON{Name: "IT", Email: "it@kommune-a.example"}})
	var key APIKeyJSON
	if err := json.Unmarshal(a.body, &key); err != nil || a.status != http.StatusCreated || key.APIKey == "" {
		t.Fatalf("select: %d %s", a.status, a.body)
	}
	sel := e.view.System("sel-esdh")
	if sel == nil || sel.Template != "std-esdh" || sel.Org != orgA || sel.Credentials != "sha256:"+auth.HashToken(key.APIKey) || key.APIKeySHA256 != auth.HashToken(key.APIKey) {
		t.Fatalf("selection %+v, key %+v", sel, key)
	}
	if eff := e.view.Effective(sel); eff == nil || eff.Protocol != registry.RestPull || eff.MemoVersion != 12 || eff.ID != "sel-esdh" {
		t.Fatalf("effective %+v", eff)
	}
	tokens := &RegistryTokens{Reader: e.view}
	if p, ok := tokens.Lookup(auth.HashToken(key.APIKey)); !ok || p.ID != "sel-esdh" || p.Org != orgA || !p.Has(auth.RoleRecipientSystem) {
		t.Fatalf("the key does not authenticate the selection: %+v %v", p, ok)
	}
	// The supplier sees who selected it.
	a = e.do("supC", "GET", C+"/standard-systems/std-esdh", nil)
	var got SystemJSON
	if json.Unmarshal(a.body, &got); !slices.Equal(got.SelectedBy, []SelectionRefJSON{{orgA, "sel-esdh"}}) || got.Kind != "standard" {
		t.Fatalf("selectedBy: %s", a.body)
	}
	// Renaming the selection keeps its key; a new key replaces it.
	a = e.do("sysA", "PUT", A+"/recipient-systems/sel-esdh", SystemJSON{Name: "ESDH (ny)", Role: "regular", StandardSystem: "std-esdh", Active: true})
	if a.status != 200 || e.view.System("sel-esdh").Credentials != sel.Credentials {
		t.Fatalf("rename: %d %s", a.status, a.body)
	}
	a = e.do("sysA", "POST", A+"/recipient-systems/sel-esdh/api-key", nil)
	var key2 APIKeyJSON
	if json.Unmarshal(a.body, &key2); a.status != http.StatusCreated || key2.APIKey == "" || key2.APIKey == key.APIKey {
		t.Fatalf("new key: %d %s", a.status, a.body)
	}
	if _, ok := tokens.Lookup(auth.HashToken(key.APIKey)); ok {
		t.Fatal("the replaced key still authenticates")
	}
	tokens = &RegistryTokens{Reader: e.view} // a fresh index (no Refresh wait)
	if p, ok := tokens.Lookup(auth.HashToken(key2.APIKey)); !ok || p.ID != "sel-esdh" {
		t.Fatal("the new key does not authenticate")
	}

	if a := e.do("sysA", "PUT", A+"/recipient-systems/s-push2", SystemJSON{Name: "push", Role: "regular", Protocol: "REST_PUSH", Endpoint: "https://a.example/in", Active: true}); a.status != 201 {
		t.Fatalf("push system: %d %s", a.status, a.body)
	}
	for _, tc := range []struct {
		name, who, method, path string
		body                    any
		status                  int
		code, field, regCode    string
	}{
		{"SFTP host key missing", "supC", "PUT", C + "/standard-systems/std-x", SystemJSON{Name: "x", Protocol: "SFTP", Endpoint: "sftp://h.example", SFTPUser: "u", Folder: "/in"}, 422, CodeInvalid, "sshHostKey", registry.CodeBadSFTP},
		{"SMTP certificate not PEM", "sysA", "PUT", A + "/recipient-systems/s-smtp", SystemJSON{Name: "x", Role: "regular", Protocol: "SMTP", Endpoint: "smtp://m.example", SMTPAddress: "a@b.example", Certificate: "MIIB"}, 422, CodeInvalid, "certificate", registry.CodeBadSMTP},
		{"SMTP address named", "sysA", "PUT", A + "/recipient-systems/s-smtp", SystemJSON{Name: "x", Role: "regular", Protocol: "SMTP", Endpoint: "smtp://m.example", SMTPAddress: "Post <a@b.example>", Certificate: keys().cert}, 422, CodeInvalid, "smtpAddress", registry.CodeBadSMTP},
		{"SFTP field on a push system", "sysA", "PUT", A + "/recipient-systems/s-push", SystemJSON{Name: "x", Role: "regular", Protocol: "REST_PUSH", Endpoint: "https://x.example", Folder: "/in"}, 422, CodeInvalid, "folder", registry.CodeBadProtocol},
		{"selection with an endpoint", "sysA", "PUT", A + "/recipient-systems/s-sel", SystemJSON{Name: "x", Role: "regular", StandardSystem: "std-esdh", Endpoint: "https://x.example"}, 422, CodeInvalid, "standardSystem", registry.CodeBadTemplate},
		{"selection of no standard system", "sysA", "PUT", A + "/recipient-systems/s-sel", SystemJSON{Name: "x", Role: "regular", StandardSystem: "sysB"}, 422, CodeInvalid, "standardSystem", registry.CodeBadTemplate},
		{"select no standard system", "sysA", "POST", A + "/standard-system-selections", SelectionJSON{ID: "s-sel", StandardSystem: "sysB", Name: "x", Role: "regular"}, 422, CodeInvalid, "standardSystem", ""},
		{"select under an existing id", "sysA", "POST", A + "/standard-system-selections", SelectionJSON{ID: "sysA", StandardSystem: "std-esdh", Name: "x", Role: "regular"}, 409, CodeConflict, "id", ""},
		{"own system into a selection", "sysA", "PUT", A + "/recipient-systems/sysA", SystemJSON{Name: "x", Role: "default", StandardSystem: "std-esdh", Active: true}, 409, CodeConflict, "standardSystem", ""},
		{"selection to another supplier", "sysA", "PUT", A + "/recipient-systems/sel-esdh", SystemJSON{Name: "x", Role: "regular", StandardSystem: "std-sftp", Active: true}, 409, CodeConflict, "standardSystem", ""},
		{"delete a selected standard system", "supC", "DELETE", C + "/standard-systems/std-esdh", nil, 409, CodeConflict, "standardSystem", registry.CodeBadTemplate},
		{"operator turns it into a mailbox", "operator", "PUT", "/systems/std-esdh", SystemJSON{Name: "x", Kind: "mailbox", Protocol: "REST_PULL", Active: true}, 409, CodeConflict, "standardSystem", registry.CodeBadTemplate},
		{"standard system with a role", "supC", "PUT", C + "/standard-systems/std-x", SystemJSON{Name: "x", Role: "regular", Protocol: "REST_PULL"}, 422, CodeInvalid, "role", registry.CodeBadRole},
		{"recipient kind under standard systems", "supC", "PUT", C + "/standard-systems/std-x", SystemJSON{Name: "x", Kind: "recipient", Protocol: "REST_PULL"}, 422, CodeInvalid, "kind", ""},
		{"another supplier's standard system", "supA", "GET", A + "/standard-systems/std-esdh", nil, 404, CodeNotFound, "", ""},
		{"a supplier's path of another org", "supC", "GET", A + "/standard-systems", nil, 403, CodeOrgForbidden, "", ""},
		{"key for a push system", "sysA", "POST", A + "/recipient-systems/s-push2/api-key", nil, 409, CodeConflict, "credentials", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := e.do(tc.who, tc.method, tc.path, tc.body)
			if a.status != tc.status || a.err.Code != tc.code || a.err.Field != tc.field || a.err.RegistryCode != tc.regCode {
				t.Fatalf("%d %s", a.status, a.body)
			}
		})
	}

	// The 4 + 1 limit holds for selections: sysA (default), sel-esdh and
	// s-push2 are three; one more regular one, then the fifth is refused;
	// one CVR-post selection fits, a second does not.
	for i, tc := range []struct {
		id, role string
		status   int
	}{{"sel-3", "regular", 201}, {"sel-4", "regular", 422}, {"sel-cvr", "cvr-post", 201}, {"sel-cvr2", "cvr-post", 422}} {
		a := e.do("sysA", "POST", A+"/standard-system-selections", SelectionJSON{ID: tc.id, StandardSystem: "std-sftp", Name: "x", Role: tc.role})
		if a.status != tc.status || (tc.status == 422 && a.err.RegistryCode != registry.CodeTooManySystems) {
			t.Fatalf("selection %d (%s): %d %s", i, tc.id, a.status, a.body)
		}
	}

	// Once nobody selects it, the supplier may delete it.
	for _, id := range []string{"sel-esdh"} {
		if a := e.do("sysA", "DELETE", A+"/recipient-systems/"+id, nil); a.status != 204 {
			t.Fatalf("delete selection: %d %s", a.status, a.body)
		}
	}
	if a := e.do("supC", "DELETE", C+"/standard-systems/std-esdh", nil); a.status != 204 || e.view.System("std-esdh") != nil {
		t.Fatalf("delete standard system: %d %s", a.status, a.body)
	}
}

// TestForwarding: a company's forwarding through the API, with the
// registry's codes on bad settings.
func TestForwarding(t *testing.T) {
	e := newEnv(t)
	C := "/organisations/" + supplierOrg + "/forwarding"
	get := func() ForwardingJSON {
		a := e.do("sysC", "GET", C, nil)
		var f ForwardingJSON
		if err := json.Unmarshal(a.body, &f); err != nil || a.status != 200 {
			t.Fatalf("GET: %d %s", a.status, a.body)
		}
		return f
	}
	if f := get(); f.Kind != ForwardNone || f.Organisation != supplierOrg {
		t.Fatalf("initial %+v", f)
	}
	for _, tc := range []struct {
		name    string
		body    ForwardingJSON
		status  int
		field   string
		regCode string
	}{
		{"secure mailbox", ForwardingJSON{Kind: "secure-mailbox", To: orgA}, 200, "", ""},
		{"pickup", ForwardingJSON{Kind: "pickup", To: "https://pickup.example/in", Credentials: "secret:pickup"}, 200, "", ""},
		{"pickup over http", ForwardingJSON{Kind: "pickup", To: "http://pickup.example/in"}, 422, "to", registry.CodeBadForward},
		{"pickup with a secret in clear", ForwardingJSON{Kind: "pickup", To: "https://pickup.example/in", Credentials: "hunter2"}, 422, "credentials", registry.CodeCredentials},
		{"secure mailbox to itself", ForwardingJSON{Kind: "secure-mailbox", To: supplierOrg}, 422, "to", registry.CodeBadForward},
		{"unknown kind", ForwardingJSON{Kind: "fax", To: orgA}, 422, "kind", ""},
		{"none with a target", ForwardingJSON{Kind: "none", To: orgA}, 422, "kind", ""},
		{"organisation differs", ForwardingJSON{Organisation: orgA, Kind: "none"}, 409, "organisation", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := e.do("sysC", "PUT", C, tc.body)
			if a.status != tc.status || a.err.Field != tc.field || a.err.RegistryCode != tc.regCode {
				t.Fatalf("%d %s", a.status, a.body)
			}
			if tc.status == 200 {
				if f := get(); f.Kind != tc.body.Kind || f.To != tc.body.To || f.Credentials != tc.body.Credentials {
					t.Fatalf("stored %+v", f)
				}
				c, _ := e.view.Company(supplierOrg)
				if c.Forward.Kind.String() != tc.body.Kind {
					t.Fatalf("view %+v", c.Forward)
				}
			}
		})
	}
	if a := e.do("sysC", "DELETE", C, nil); a.status != 204 || get().Kind != ForwardNone {
		t.Fatalf("DELETE: %d %s", a.status, a.body)
	}
	// An authority is no company: nothing to forward.
	if a := e.do("sysA", "GET", "/organisations/"+orgA+"/forwarding", nil); a.status != 404 || a.err.Code != CodeNotFound {
		t.Fatalf("authority: %d %s", a.status, a.body)
	}
}

// TestSystemsWorkbookHTTP: export and import over HTTP, with the Writer's
// checks (unknown template) found by a dry run.
func TestSystemsWorkbookHTTP(t *testing.T) {
	e := newEnv(t)
	A := "/organisations/" + orgA
	csvBody := sysCSV(map[string]string{"Type": TypeSystem, "ID": "sel-x", "Navn": "x", "Rolle": "regular", "Standardsystem": "nope"})
	a := e.do("sysA", "POST", A+"/systems/import?dryRun=true&format=csv", csvBody, "text/csv")
	if a.status != 422 || a.err.Code != CodeImportRejected || len(a.err.Errors) != 1 || a.err.Errors[0].RegistryCode != registry.CodeBadTemplate || a.err.Errors[0].Column != "Standardsystem" {
		t.Fatalf("unknown template: %d %s", a.status, a.body)
	}
	sftp := sysCSV(map[string]string{"Type": TypeSystem, "ID": "s-sftp", "Navn": "SFTP", "Rolle": "regular", "Protokol": "SFTP",
		"Endpoint": "sftp://x.example", "SFTP-bruger": "dp", "SSH-værtsnøgle": keys().host1, "SFTP-mappe": "/in"})
	if a := e.do("sysA", "POST", A+"/systems/import", sftp, "text/csv"); a.status != 200 || e.view.System("s-sftp") == nil {
		t.Fatalf("import: %d %s", a.status, a.body)
	}
	a = e.do("sysA", "GET", A+"/systems/export", nil)
	if a.status != 200 {
		t.Fatalf("export: %d %s", a.status, a.body)
	}
	var res SystemsResult
	if b := e.do("sysA", "POST", A+"/systems/import", a.body); b.status != 200 || json.Unmarshal(b.body, &res) != nil || res.Written != 0 || res.RecipientSystems.Unchanged != 2 {
		t.Fatalf("re-import of the export: %d %s", b.status, b.body)
	}
	// A supplier may import the same file (nothing of it changes) but not
	// change a recipient system.
	if b := e.do("supA", "POST", A+"/systems/import", a.body); b.status != 200 {
		t.Fatalf("supplier re-import: %d %s", b.status, b.body)
	}
	if b := e.do("supA", "POST", A+"/systems/import?format=csv", sysCSV(map[string]string{"Type": TypeSystem, "ID": "s-2", "Navn": "x", "Rolle": "regular", "Protokol": "REST_PULL"})); b.status != 422 || b.err.Errors[0].Code != CodeNotAllowed {
		t.Fatalf("supplier changes a recipient system: %d %s", b.status, b.body)
	}
}

// TestOtherOrganisationSystems: a supplier's or a system administrator's
// organisation-scoped endpoints refuse another organisation's path.
func TestOtherOrganisationSystems(t *testing.T) {
	e := newEnv(t)
	n := 0
	for _, ep := range Endpoints {
		if !ep.Org {
			continue
		}
		for _, who := range []string{"supC", "sysC"} {
			if !slices.ContainsFunc(ep.Roles, principals[who].Has) {
				continue
			}
			n++
			path := strings.NewReplacer("{org}", orgA, "{id}", "sysA", "{sha256}", strings.Repeat("0", 64)).Replace(ep.Path)
			if a := e.do(who, ep.Method, path, []byte(`{}`)); a.status != http.StatusForbidden || a.err.Code != CodeOrgForbidden {
				t.Errorf("%s %s %s: %d %s", who, ep.Method, path, a.status, a.body)
			}
		}
	}
	if n < 15 {
		t.Fatalf("only %d endpoint/principal pairs checked", n)
	}
	if s := e.view.System("sysA"); s == nil || s.Name != "Fagsystem A" {
		t.Fatalf("sysA changed: %+v", s)
	}
}
