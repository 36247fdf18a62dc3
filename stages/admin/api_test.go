package admin

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/encoding/json"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/memoflow/memoflow/internal/auth"
	"github.com/memoflow/memoflow/schemas/events"
	"github.com/memoflow/memoflow/schemas/registry"
)

// env is the API over the real registry View and Writer on a kfake
// cluster: every change goes through memo.registry and memo.events.
type env struct {
	t      *testing.T
	opts   []kgo.Opt
	view   *registry.View
	srv    *httptest.Server
	tokens map[string]string // principal name -> token
}

func seedEntities() []registry.Entity {
	return []registry.Entity{
		&registry.Org{CVR: orgA, Name: "Kommune A", Type: registry.OrgAuthority, Setup: 1},
		&registry.Org{CVR: orgB, Name: "Styrelse B", Type: registry.OrgAuthority, Setup: 1},
		&registry.Org{CVR: "11223344", Name: "Bageriet", Type: registry.OrgCompany},
		&registry.System{ID: "mailbox", Name: "Mailbox provider", SysKind: registry.SystemMailbox, Protocol: registry.RestPull, MemoVersion: 12},
		&registry.System{ID: "sysA", Org: orgA, Name: "Fagsystem A", SysKind: registry.SystemRecipient, Protocol: registry.RestPull, MemoVersion: 11, Role: registry.RoleDefault},
		&registry.System{ID: "sysB", Org: orgB, Name: "Fagsystem B", SysKind: registry.SystemRecipient, Protocol: registry.RestPull, MemoVersion: 11, Role: registry.RoleDefault},
		&registry.SenderSystem{ID: "sndA", Org: orgA, Name: "Brevsystem A", Active: true},
		&registry.ContactGroup{ID: "gA", Org: orgA, Name: "Borgerservice", Visibility: registry.VisibleAll},
		&registry.ContactGroup{ID: "gB", Org: orgB, Name: "B's group"},
		&registry.ContactPoint{ID: "pA", ParentID: "gA", Org: orgA, Name: "Pas og kørekort", Keywords: []string{"Pas"}, KLE: []string{"01.02"}, Visibility: registry.VisibleCitizens, System: "sysA"},
		&registry.ContactPoint{ID: "pB", Org: orgB, Name: "B's point", Visibility: registry.VisibleAll},
		&registry.LegacyMailbox{Org: orgA, Mailbox: "BORGER", ContactPoint: "pA"},
		&registry.Company{CVR: supplierOrg, Status: registry.Registered, Mailbox: "mailbox"},
	}
}

var principals = map[string]*auth.Principal{
	"operator": {ID: "op", Org: "99999999", Roles: []auth.Role{auth.RoleOperator}},
	"sysA":     {ID: "sys-ann", Org: orgA, Roles: []auth.Role{auth.RoleSystemAdmin}},
	"conA":     {ID: "con-ann", Org: orgA, Roles: []auth.Role{auth.RoleContactAdmin}},
	"rightsA":  {ID: "rights-ann", Org: orgA, Roles: []auth.Role{auth.RoleRightsAdmin}},
	"conB":     {ID: "con-bob", Org: orgB, Roles: []auth.Role{auth.RoleContactAdmin}},
	"sender":   {ID: "sndA", Org: orgA, Roles: []auth.Role{auth.RoleSender}},
	"logs":     {ID: "log-ann", Org: orgA, Roles: []auth.Role{auth.RoleLogMessages, auth.RoleLogSearches}},
	"supA":     {ID: "sup-ann", Org: orgA, Roles: []auth.Role{auth.RoleSupplier}},
	// The company 11223344 is a supplier of standard systems and forwards
	// its mailbox post.
	"supC": {ID: "sup-sam", Org: supplierOrg, Roles: []auth.Role{auth.RoleSupplier}},
	"sysC": {ID: "sys-sam", Org: supplierOrg, Roles: []auth.Role{auth.RoleSystemAdmin}},
}

func newEnv(t *testing.T) *env {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "memo.registry", "memo.events"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	opts := []kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...)}
	prod, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(prod.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := registry.NewWriter(prod, nil, registry.WithoutEvents()).Put(ctx, "seed", seedEntities()...); err != nil {
		t.Fatal(err)
	}
	view, err := registry.NewView(ctx, opts, registry.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(view.Close)
	if err := view.WaitCaughtUp(ctx); err != nil {
		t.Fatal(err)
	}
	store := auth.NewMemStore()
	e := &env{t: t, opts: opts, view: view, tokens: map[string]string{}}
	for name, p := range principals {
		tok := auth.NewToken()
		store.Put(auth.HashToken(tok), p)
		e.tokens[name] = tok
	}
	api, err := NewAPI(Deps{Reader: view, Writer: registry.NewWriter(prod, view), Tokens: store,
		Log: slog.New(slog.DiscardHandler), Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	api.Register(mux)
	e.srv = httptest.NewServer(mux)
	t.Cleanup(e.srv.Close)
	return e
}

type answer struct {
	status int
	body   []byte
	err    Error
}

func (e *env) do(who, method, path string, body any, ct ...string) answer {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		rd = bytes.NewReader(j)
	}
	req, _ := http.NewRequest(method, e.srv.URL+Prefix+path, rd)
	if who != "" {
		req.Header.Set("Authorization", "Bearer "+e.tokens[who])
	}
	if len(ct) > 0 {
		req.Header.Set("Content-Type", ct[0])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	a := answer{status: resp.StatusCode}
	a.body, _ = io.ReadAll(resp.Body)
	if resp.StatusCode >= 400 {
		if err := json.Unmarshal(a.body, &a.err); err != nil || a.err.Code == "" {
			e.t.Fatalf("%s %s: error body %q is not {code, message, field}", method, path, a.body)
		}
	}
	return a
}

// TestRolesPerEndpoint calls every endpoint as every principal: a role the
// endpoint does not list is refused with AUTH_FORBIDDEN before anything
// happens; a listed one gets past the check (the ids do not exist and
// bodies are empty, so nothing changes).
func TestRolesPerEndpoint(t *testing.T) {
	e := newEnv(t)
	for _, ep := range Endpoints {
		path := strings.NewReplacer("{org}", orgA, "{id}", "nope", "{sha256}", strings.Repeat("0", 64)).Replace(ep.Path)
		t.Run(ep.Method+" "+ep.Path, func(t *testing.T) {
			if a := e.do("", ep.Method, path, nil); a.status != http.StatusUnauthorized || a.err.Code != auth.CodeMissing {
				t.Errorf("no token: %d %s", a.status, a.err.Code)
			}
			for name, p := range principals {
				if p.Org != orgA && !p.Has(auth.RoleOperator) {
					continue // another organisation: TestOtherOrganisation
				}
				a := e.do(name, ep.Method, path, []byte{})
				mayCall := p.Has(auth.RoleOperator) || slices.ContainsFunc(ep.Roles, p.Has)
				if mayCall && (a.status == http.StatusForbidden || a.status == http.StatusUnauthorized) {
					t.Errorf("%s (%v) refused: %d %s %s", name, p.Roles, a.status, a.err.Code, a.err.Message)
				}
				if !mayCall && (a.status != http.StatusForbidden || a.err.Code != auth.CodeForbidden) {
					t.Errorf("%s (%v) not refused: %d %s", name, p.Roles, a.status, a.body)
				}
			}
		})
	}
	if n := e.view.Stats(); n.ContactPoints != 2 || n.ContactGroups != 2 || n.Orgs != 3 {
		t.Fatalf("the role test changed the registry: %+v", n)
	}
}

// TestOtherOrganisation: an organisation's administrator neither sees nor
// changes another organisation's structure, whatever path it tries.
func TestOtherOrganisation(t *testing.T) {
	e := newEnv(t)
	for _, ep := range Endpoints {
		if !ep.Org || !slices.Contains(ep.Roles, auth.RoleContactAdmin) {
			continue
		}
		path := strings.NewReplacer("{org}", orgA, "{id}", "pA", "{sha256}", strings.Repeat("0", 64)).Replace(ep.Path)
		if a := e.do("conB", ep.Method, path, []byte(`{}`)); a.status != http.StatusForbidden || a.err.Code != CodeOrgForbidden {
			t.Errorf("conB %s %s: %d %s", ep.Method, path, a.status, a.body)
		}
	}
	for _, tc := range []struct {
		name, method, path string
		body               any
		status             int
		code, field        string
	}{
		{"read B's point via A's path", "GET", "/organisations/" + orgA + "/contact-points/pB", nil, 404, CodeNotFound, ""},
		{"overwrite B's point via A's path", "PUT", "/organisations/" + orgA + "/contact-points/pB", ContactPointJSON{Name: "mine now"}, 409, CodeConflict, "id"},
		{"delete B's point via A's path", "DELETE", "/organisations/" + orgA + "/contact-points/pB", nil, 404, CodeNotFound, ""},
		{"B's group as parent", "PUT", "/organisations/" + orgA + "/contact-points/new", ContactPointJSON{Name: "x", ParentID: "gB"}, 422, CodeInvalid, "parentId"},
		{"B's system", "PUT", "/organisations/" + orgA + "/contact-points/new", ContactPointJSON{Name: "x", RecipientSystem: "sysB"}, 422, CodeInvalid, "recipientSystem"},
		{"body names B", "PUT", "/organisations/" + orgA + "/contact-points/new", ContactPointJSON{Name: "x", Organisation: orgB}, 409, CodeConflict, "organisation"},
		{"search B", "GET", "/contact-points?organisation=" + orgB, nil, 403, CodeOrgForbidden, ""},
		{"map to B's point", "PUT", "/organisations/" + orgA + "/legacy-mailboxes", LegacyMailboxJSON{Mailbox: "X", ContactPoint: "pB"}, 422, CodeInvalid, "contactPoint"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := e.do("conA", tc.method, tc.path, tc.body)
			if a.status != tc.status || a.err.Code != tc.code || a.err.Field != tc.field {
				t.Fatalf("%d %s", a.status, a.body)
			}
		})
	}
	// A's search never shows B's points.
	a := e.do("conA", "GET", "/contact-points?q=point", nil)
	var page Page[ContactPointJSON]
	json.Unmarshal(a.body, &page)
	if a.status != 200 || page.TotalElements != 0 {
		t.Fatalf("A's search found B's point: %s", a.body)
	}
	if p := e.view.ContactPoint("pB"); p.Name != "B's point" {
		t.Fatalf("B's point changed: %+v", p)
	}
}

// TestCRUDWritesTopicAndEvents: changes land on memo.registry (the View
// reads them back) with CONTACT_POINT_CHANGED / SYSTEM_CHANGED events
// carrying the actor.
func TestCRUDWritesTopicAndEvents(t *testing.T) {
	e := newEnv(t)
	steps := []struct {
		who, method, path string
		body              any
		status            int
	}{
		{"conA", "PUT", "/organisations/" + orgA + "/contact-groups/gA2", ContactGroupJSON{Name: "Sundhed", ParentID: "gA", VisibleTo: []string{"citizens"}}, 201},
		{"conA", "PUT", "/organisations/" + orgA + "/contact-points/pA2", ContactPointJSON{Name: "Tandpleje", ParentID: "gA2", Keywords: []string{" Tænder ", ""}, KLE: []string{"29.09"},
			VisibleTo: []string{"citizens", "companies"}, InfoFields: []InfoFieldJSON{{Title: "Barnets CPR-nummer"}}, RecipientSystem: "sysA"}, 201},
		{"conA", "PUT", "/organisations/" + orgA + "/contact-points/pA2", ContactPointJSON{Name: "Tandplejen", ParentID: "gA2", VisibleTo: []string{"citizens"}}, 200},
		{"sysA", "PUT", "/organisations/" + orgA + "/recipient-systems/sysA2", SystemJSON{Name: "Nyt fagsystem", Protocol: "REST_PUSH", Endpoint: "https://a.example/memos", Role: "regular", MemoVersion: "1.2", Active: true}, 201},
		{"conA", "DELETE", "/organisations/" + orgA + "/contact-points/pA2", nil, 204},
	}
	for _, s := range steps {
		if a := e.do(s.who, s.method, s.path, s.body); a.status != s.status {
			t.Fatalf("%s %s %s: %d %s", s.who, s.method, s.path, a.status, a.body)
		}
	}
	if g := e.view.ContactGroup("gA2"); g == nil || g.ParentID != "gA" || g.Org != orgA || g.Visibility != registry.VisibleCitizens {
		t.Fatalf("group %+v", g)
	}
	if e.view.ContactPoint("pA2") != nil {
		t.Fatal("deleted point still in the view")
	}
	if s := e.view.System("sysA2"); s == nil || s.Org != orgA || s.MemoVersion != 12 || s.Role != registry.RoleRegular {
		t.Fatalf("system %+v", s)
	}
	// The events, in order, with the actors.
	cl, err := kgo.NewClient(append(e.opts, kgo.ConsumeTopics("memo.events"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	type ev struct {
		tag           events.Tag
		actor, cp, rs string
	}
	var got []ev
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for len(got) < 5 && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			evs, err := events.Decode(r.Value, nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, x := range evs {
				got = append(got, ev{x.Tag, x.Actor, x.ContactPoint, x.RecipientSystem})
			}
		})
	}
	slices.SortFunc(got, func(a, b ev) int { return strings.Compare(a.cp+a.rs+string(a.tag), b.cp+b.rs+string(b.tag)) })
	want := []ev{
		{events.ContactPointChanged, "con-ann", "gA2", ""},
		{events.ContactPointChanged, "con-ann", "pA2", ""},
		{events.ContactPointChanged, "con-ann", "pA2", ""},
		{events.ContactPointChanged, "con-ann", "pA2", "sysA"},
		{events.SystemChanged, "sys-ann", "", "sysA2"},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("events\n got  %+v\n want %+v", got, want)
	}
}

func TestAPIRefusals(t *testing.T) {
	e := newEnv(t)
	A := "/organisations/" + orgA
	for _, tc := range []struct {
		name, who, method, path string
		body                    any
		status                  int
		code, field             string
	}{
		{"unknown field", "conA", "PUT", A + "/contact-points/x", []byte(`{"name":"x","colour":"red"}`), 400, CodeBadRequest, "colour"},
		{"wrong type", "conA", "PUT", A + "/contact-points/x", []byte(`{"name":7}`), 400, CodeBadRequest, "name"},
		{"not json", "conA", "PUT", A + "/contact-points/x", []byte(`<xml/>`), 400, CodeBadRequest, ""},
		{"bad KLE", "conA", "PUT", A + "/contact-points/x", ContactPointJSON{Name: "x", KLE: []string{"1.2"}}, 422, CodeInvalid, "kle"},
		{"bad id", "conA", "PUT", A + "/contact-points/a%20b", ContactPointJSON{Name: "x"}, 422, CodeInvalid, "id"},
		{"no name", "conA", "PUT", A + "/contact-points/x", ContactPointJSON{}, 422, CodeInvalid, "name"},
		{"bad audience", "conA", "PUT", A + "/contact-points/x", ContactPointJSON{Name: "x", VisibleTo: []string{"aliens"}}, 422, CodeInvalid, "visibleTo"},
		{"three info fields", "conA", "PUT", A + "/contact-points/x", ContactPointJSON{Name: "x", InfoFields: []InfoFieldJSON{{Title: "a"}, {Title: "b"}, {Title: "c"}}}, 422, CodeInvalid, "infoFields"},
		{"parent is a point", "conA", "PUT", A + "/contact-points/x", ContactPointJSON{Name: "x", ParentID: "pA"}, 422, CodeInvalid, "parentId"},
		{"group cycle", "conA", "PUT", A + "/contact-groups/gA", ContactGroupJSON{Name: "x", ParentID: "gA"}, 422, CodeInvalid, "parentId"},
		{"group id of a point", "conA", "PUT", A + "/contact-groups/pA", ContactGroupJSON{Name: "x"}, 409, CodeConflict, "id"},
		{"path and body ids differ", "conA", "PUT", A + "/contact-points/x", ContactPointJSON{ID: "y", Name: "x"}, 409, CodeConflict, "id"},
		{"non-empty group", "conA", "DELETE", A + "/contact-groups/gA", nil, 409, CodeConflict, ""},
		{"mapped point", "conA", "DELETE", A + "/contact-points/pA", nil, 409, CodeConflict, ""},
		{"used system", "sysA", "DELETE", A + "/recipient-systems/sysA", nil, 409, CodeConflict, ""},
		{"push without endpoint", "sysA", "PUT", A + "/recipient-systems/s2", SystemJSON{Name: "x", Protocol: "REST_PUSH", Role: "regular"}, 422, CodeInvalid, "endpoint"},
		{"provider under an org", "sysA", "PUT", A + "/recipient-systems/s2", SystemJSON{Name: "x", Kind: "mailbox", Protocol: "REST_PULL"}, 422, CodeInvalid, "kind"},
		{"second default", "sysA", "PUT", A + "/recipient-systems/s2", SystemJSON{Name: "x", Protocol: "REST_PULL", Role: "bogus"}, 422, CodeInvalid, "role"},
		{"secret in clear", "sysA", "PUT", A + "/recipient-systems/s2", SystemJSON{Name: "x", Protocol: "REST_PULL", Role: "regular", Credentials: "hunter2"}, 422, CodeInvalid, "credentials"},
		{"contact structure of a company", "operator", "POST", "/organisations/11223344/contact-structure/import", []byte("Type,ID,Navn\n"), 422, CodeInvalid, "organisation"},
		{"unknown parameter", "conA", "GET", A + "/contact-points?colour=red", nil, 400, CodeBadParameter, "colour"},
		{"bad page size", "conA", "GET", A + "/contact-points?size=0", nil, 400, CodeBadParameter, "size"},
		{"bad audience filter", "conA", "GET", A + "/contact-points?visibleTo=aliens", nil, 400, CodeBadParameter, "visibleTo"},
		{"unknown endpoint", "conA", "GET", "/nothing", nil, 404, CodeNotFound, ""},
		{"org delete with content", "operator", "DELETE", A, nil, 409, CodeConflict, ""},
		{"fifth token", "rightsA", "POST", A + "/sender-systems/nope/tokens", nil, 404, CodeNotFound, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := e.do(tc.who, tc.method, tc.path, tc.body)
			if a.status != tc.status || a.err.Code != tc.code || a.err.Field != tc.field {
				t.Fatalf("%d %s", a.status, a.body)
			}
		})
	}
}

func TestTokens(t *testing.T) {
	e := newEnv(t)
	path := "/organisations/" + orgA + "/sender-systems/sndA/tokens"
	var hashes []string
	for i := range registry.MaxTokenHashes + 1 {
		a := e.do("rightsA", "POST", path, nil)
		if i == registry.MaxTokenHashes {
			if a.status != 409 || a.err.Field != "tokens" {
				t.Fatalf("token %d: %d %s", i, a.status, a.body)
			}
			break
		}
		var tok TokenJSON
		if a.status != 201 || json.Unmarshal(a.body, &tok) != nil || auth.HashToken(tok.Token) != tok.TokenSHA256 {
			t.Fatalf("issue: %d %s", a.status, a.body)
		}
		hashes = append(hashes, tok.TokenSHA256)
	}
	if s := e.view.SenderSystem("sndA"); !slices.Equal(s.TokenSHA256, hashes) {
		t.Fatalf("stored hashes %v, want %v", s.TokenSHA256, hashes)
	}
	// An issued token authenticates the sender system through the registry.
	rt := &RegistryTokens{Reader: e.view}
	if p, ok := rt.Lookup(hashes[0]); !ok || p.ID != "sndA" || p.Org != orgA {
		t.Fatalf("issued token does not authenticate: %+v %v", p, ok)
	}
	// The system admin's PUT keeps the tokens; GET never shows them.
	if a := e.do("sysA", "PUT", "/organisations/"+orgA+"/sender-systems/sndA", SenderSystemJSON{Name: "Renamed", Active: true}); a.status != 200 || bytes.Contains(a.body, []byte(hashes[0])) {
		t.Fatalf("put: %d %s", a.status, a.body)
	}
	if s := e.view.SenderSystem("sndA"); s.Name != "Renamed" || len(s.TokenSHA256) != registry.MaxTokenHashes {
		t.Fatalf("after put %+v", s)
	}
	if a := e.do("rightsA", "DELETE", path+"/"+hashes[1], nil); a.status != 204 {
		t.Fatalf("revoke: %d %s", a.status, a.body)
	}
	if s := e.view.SenderSystem("sndA"); slices.Contains(s.TokenSHA256, hashes[1]) || len(s.TokenSHA256) != 3 {
		t.Fatalf("after revoke %v", s.TokenSHA256)
	}
}

// TestImportExportHTTP: import over HTTP (raw and multipart, dry run and
// real, errors listed per row), export, and export -> import a no-op.
func TestImportExportHTTP(t *testing.T) {
	e := newEnv(t)
	A := "/organisations/" + orgA + "/contact-structure"
	good := xlsx(t, map[string][][]string{
		SheetGroups: {groupHeader, group("g1", "gA", "Børn")},
		SheetPoints: {pointHeader, point("p1", "g1", "Skole", "Søgeord", "skole;SFO", "Modtagersystem", "sysA", "Synlig for borgere", "Ja")},
	})
	bad := xlsx(t, map[string][][]string{SheetPoints: {pointHeader, point("p1", "nope", "Skole"), point("p2", "", "", "KLE", "x")}})

	a := e.do("conA", "POST", A+"/import?dryRun=true", good)
	var res Result
	if a.status != 200 || json.Unmarshal(a.body, &res) != nil || !res.DryRun || res.Points.Created != 1 || res.Written != 0 {
		t.Fatalf("dry run: %d %s", a.status, a.body)
	}
	if e.view.ContactPoint("p1") != nil {
		t.Fatal("a dry run wrote")
	}
	a = e.do("conA", "POST", A+"/import", bad)
	if a.status != 422 || a.err.Code != CodeImportRejected || len(a.err.Errors) != 3 {
		t.Fatalf("bad file: %d %s", a.status, a.body)
	}
	for _, re := range a.err.Errors {
		if re.Sheet != SheetPoints || re.Row == 0 || re.Column == "" || re.Cell == "" || re.Code == "" {
			t.Errorf("row error without its place: %+v", re)
		}
	}
	// Multipart, as browsers and curl -F send it.
	var mp bytes.Buffer
	mw := multipart.NewWriter(&mp)
	fw, _ := mw.CreateFormFile("file", "kontaktstruktur.xlsx")
	fw.Write(good)
	mw.Close()
	a = e.do("conA", "POST", A+"/import", mp.Bytes(), mw.FormDataContentType())
	if a.status != 200 || json.Unmarshal(a.body, &res) != nil || res.Written != 2 {
		t.Fatalf("import: %d %s", a.status, a.body)
	}
	if p := e.view.ContactPoint("p1"); p == nil || p.ParentID != "g1" || !slices.Equal(p.Keywords, []string{"skole", "SFO"}) {
		t.Fatalf("imported point %+v", p)
	}
	for _, format := range []string{"xlsx", "csv"} {
		a = e.do("conA", "GET", A+"/export?format="+format, nil)
		if a.status != 200 {
			t.Fatalf("export %s: %d %s", format, a.status, a.body)
		}
		b := e.do("conA", "POST", A+"/import?format="+format, a.body)
		if b.status != 200 || json.Unmarshal(b.body, &res) != nil || res.Written != 0 || res.Points.Unchanged != 2 || res.Groups.Unchanged != 2 {
			t.Fatalf("export %s -> import is not a no-op: %d %s", format, b.status, b.body)
		}
	}
	// Too large: refused before it is read.
	huge := make([]byte, DefaultLimits().MaxFileBytes+1<<17)
	if a := e.do("conA", "POST", A+"/import", huge); a.status != 413 || a.err.Code != CodeFileTooLarge {
		t.Fatalf("huge upload: %d %s", a.status, a.body)
	}
}

// TestOperatorAndMappings: operators create organisations and provider
// systems; contact administrators keep legacy mailbox mappings.
func TestOperatorAndMappings(t *testing.T) {
	e := newEnv(t)
	steps := []struct {
		who, method, path string
		body              any
		status            int
	}{
		{"operator", "PUT", "/organisations/55667788", OrgJSON{Name: "Ny Styrelse", Kind: "authority", Setup: 2}, 201},
		{"operator", "PUT", "/organisations/55667788", OrgJSON{Name: "Ny Styrelse", Kind: "authority", Setup: 4}, 422},
		{"operator", "PUT", "/systems/sms", SystemJSON{Name: "NemSMS", Kind: "sms", Protocol: "REST_PUSH", Endpoint: "https://sms.example/", MemoVersion: "1.1", Active: true}, 201},
		{"operator", "PUT", "/systems/sysA", SystemJSON{Name: "x", Kind: "mailbox", Protocol: "REST_PULL"}, 409},
		{"conA", "PUT", "/organisations/" + orgA + "/legacy-mailboxes", LegacyMailboxJSON{Mailbox: "BORGER", Subject: "PAS", ContactPoint: "pA"}, 201},
		{"conA", "PUT", "/organisations/" + orgA + "/legacy-mailboxes", LegacyMailboxJSON{Mailbox: "BORGER", Subject: "PAS"}, 200},
		{"conA", "PUT", "/organisations/" + orgA + "/legacy-mailboxes", LegacyMailboxJSON{Mailbox: "A/B"}, 422},
		{"conA", "DELETE", "/organisations/" + orgA + "/legacy-mailboxes?mailbox=BORGER&subject=PAS", nil, 204},
		{"conA", "DELETE", "/organisations/" + orgA + "/legacy-mailboxes?mailbox=BORGER&subject=PAS", nil, 404},
		{"operator", "DELETE", "/organisations/55667788", nil, 204},
	}
	for _, s := range steps {
		if a := e.do(s.who, s.method, s.path, s.body); a.status != s.status {
			t.Fatalf("%s %s %s: %d %s", s.who, s.method, s.path, a.status, a.body)
		}
	}
	if e.view.Org("55667788") != nil || e.view.SMSProvider() == nil || e.view.SMSProvider().ID != "sms" {
		t.Fatalf("operator changes not in the view: %+v", e.view.Stats())
	}
	if l := e.view.LegacyMailbox(orgA, "BORGER", "PAS"); l == nil || l.Subject != "" {
		t.Fatalf("after delete the postkasse mapping (no subject) answers: %+v", l)
	}
	// Lists are the caller's organisation's only.
	var orgs Page[OrgJSON]
	json.Unmarshal(e.do("conA", "GET", "/organisations", nil).body, &orgs)
	if len(orgs.Content) != 1 || orgs.Content[0].CVR != orgA {
		t.Fatalf("conA sees organisations %+v", orgs.Content)
	}
	json.Unmarshal(e.do("operator", "GET", "/organisations", nil).body, &orgs)
	if len(orgs.Content) != 3 {
		t.Fatalf("the operator sees %d organisations", len(orgs.Content))
	}
	var maps Page[LegacyMailboxJSON]
	json.Unmarshal(e.do("conA", "GET", "/organisations/"+orgA+"/legacy-mailboxes", nil).body, &maps)
	if len(maps.Content) != 1 || maps.Content[0].Mailbox != "BORGER" || maps.Content[0].ContactPoint != "pA" {
		t.Fatalf("mappings %+v", maps.Content)
	}
}
