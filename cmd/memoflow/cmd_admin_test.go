package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/memoflow/memoflow/internal/auth"
	"github.com/memoflow/memoflow/schemas/registry"
	"github.com/memoflow/memoflow/stages/admin"
)

// adminServer is the admin API over a real registry on kfake, as the
// admin-api stage mounts it.
func adminServer(t *testing.T) (url, token string, view *registry.View) {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "memo.registry", "memo.events"))
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
	if err := registry.NewWriter(prod, nil, registry.WithoutEvents()).Put(ctx, "seed",
		&registry.Org{CVR: "12345678", Name: "Demo Kommune", Type: registry.OrgAuthority, Setup: 1},
		&registry.System{ID: "esdh", Org: "12345678", Name: "ESDH", SysKind: registry.SystemRecipient, Protocol: registry.RestPull, MemoVersion: 11, Role: registry.RoleDefault},
		&registry.ContactGroup{ID: "g1", Org: "12345678", Name: "Borgerservice", Visibility: registry.VisibleAll},
		&registry.ContactPoint{ID: "p1", ParentID: "g1", Org: "12345678", Name: "=Pas", Keywords: []string{"pas"}, Visibility: registry.VisibleAll, System: "esdh"},
		&registry.Org{CVR: "11223344", Name: "Leverandøren", Type: registry.OrgCompany},
		&registry.System{ID: "std-esdh", Org: "11223344", Name: "ESDH Standard", SysKind: registry.SystemStandard, Protocol: registry.RestPull, MemoVersion: 12},
	); err != nil {
		t.Fatal(err)
	}
	view, err = registry.NewView(ctx, opts, registry.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(view.Close)
	if err := view.WaitCaughtUp(ctx); err != nil {
		t.Fatal(err)
	}
	store := auth.NewMemStore()
	token = auth.NewToken()
	store.Put(auth.HashToken(token), &auth.Principal{ID: "ann", Org: "12345678", Roles: []auth.Role{auth.RoleContactAdmin, auth.RoleSystemAdmin}})
	api, err := admin.NewAPI(admin.Deps{Reader: view, Writer: registry.NewWriter(prod, view), Tokens: store,
		Log: slog.New(slog.DiscardHandler), Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	api.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL, token, view
}

func runAdmin(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	root := newRootCmd()
	var o, e bytes.Buffer
	root.SetOut(&o)
	root.SetErr(&e)
	root.SetArgs(append([]string{"admin"}, args...))
	err = root.ExecuteContext(context.Background())
	return o.String(), e.String(), err
}

func exitCode(err error) int {
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	if err != nil && isUsage(err) {
		return 2
	}
	if err != nil {
		return 1
	}
	return 0
}

func TestAdminImportExportCommands(t *testing.T) {
	url, token, view := adminServer(t)
	dir := t.TempDir()
	conn := []string{"--url", url, "--token", token}
	for _, format := range []string{"xlsx", "csv"} {
		out := filepath.Join(dir, "structure."+format)
		if _, stderr, err := runAdmin(t, append([]string{"export", "--format", format, "--out", out}, conn...)...); err != nil {
			t.Fatalf("export %s: %v %s", format, err, stderr)
		}
		stdout, stderr, err := runAdmin(t, append([]string{"import", out}, conn...)...)
		if err != nil || !strings.Contains(stdout, "1 rows, 0 new, 0 changed, 1 unchanged") || !strings.Contains(stdout, "0 registry changes written") {
			t.Fatalf("re-import of the %s export: %v\n%s%s", format, err, stdout, stderr)
		}
	}
	// An edited CSV: a dry run writes nothing, the import writes.
	csvPath := filepath.Join(dir, "structure.csv")
	b, _ := os.ReadFile(csvPath)
	edited := string(b) + "Kontaktpunkt,p2,g1,Kørekort,kørekort,,,,,Ja,Nej,Nej,,,,,esdh\n"
	os.WriteFile(csvPath, []byte(edited), 0o644)
	stdout, _, err := runAdmin(t, append([]string{"import", csvPath, "--dry-run"}, conn...)...)
	if err != nil || !strings.Contains(stdout, "dry run") || view.ContactPoint("p2") != nil {
		t.Fatalf("dry run: %v %s", err, stdout)
	}
	if stdout, _, err = runAdmin(t, append([]string{"import", csvPath}, conn...)...); err != nil || !strings.Contains(stdout, "1 registry changes written") {
		t.Fatalf("import: %v %s", err, stdout)
	}
	if p := view.ContactPoint("p2"); p == nil || p.Name != "Kørekort" || p.Visibility != registry.VisibleCitizens {
		t.Fatalf("p2 = %+v", p)
	}
	if p := view.ContactPoint("p1"); p.Name != "=Pas" {
		t.Fatalf("the escaped name came back as %q", p.Name)
	}
	// A bad file: exit 1, every error on stderr, nothing written.
	bad := filepath.Join(dir, "bad.csv")
	os.WriteFile(bad, []byte("Type,ID,Parent ID,Navn,KLE\nKontaktpunkt,p3,nope,X,1\nKontaktpunkt,p4,,,\n"), 0o644)
	_, stderr, err := runAdmin(t, append([]string{"import", bad}, conn...)...)
	if exitCode(err) != 1 {
		t.Fatalf("bad file: exit %d (%v)", exitCode(err), err)
	}
	for _, want := range []string{"IMPORT_REJECTED", "CSV row 2 column Parent ID (C2): IMPORT_PARENT_UNKNOWN", "CSV row 2 column KLE (E2): IMPORT_BAD_CODE", "CSV row 3 column Navn (D3): IMPORT_MISSING_FIELD"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	if view.ContactPoint("p3") != nil {
		t.Fatal("a refused import wrote")
	}
	// Usage errors: exit 2.
	for _, args := range [][]string{{"import"}, {"import", bad, "--url", url}, {"export", "--format", "pdf", "--token", token}} {
		t.Setenv("MEMOFLOW_TOKEN", "")
		if _, _, err := runAdmin(t, args...); exitCode(err) != 2 {
			t.Errorf("%v: exit %d (%v), want 2", args, exitCode(err), err)
		}
	}
}

// TestAdminSystemsCommands: export --systems and import --systems, with
// the API key of a new selection of a standard system printed once.
func TestAdminSystemsCommands(t *testing.T) {
	url, token, view := adminServer(t)
	dir := t.TempDir()
	conn := []string{"--url", url, "--token", token}
	out := filepath.Join(dir, "systemer.csv")
	if _, stderr, err := runAdmin(t, append([]string{"export", "--systems", "--format", "csv", "--out", out}, conn...)...); err != nil {
		t.Fatalf("export: %v %s", err, stderr)
	}
	stdout, stderr, err := runAdmin(t, append([]string{"import", "--systems", out}, conn...)...)
	if err != nil || !strings.Contains(stdout, "recipient systems: 1 rows, 0 new, 0 changed, 1 unchanged") || !strings.Contains(stdout, "0 registry changes written") {
		t.Fatalf("re-import of the export: %v\n%s%s", err, stdout, stderr)
	}
	b, _ := os.ReadFile(out)
	header, _, _ := strings.Cut(strings.TrimPrefix(string(b), "\xEF\xBB\xBF"), "\n")
	cols := strings.Split(header, ",")
	row := make([]string, len(cols))
	for i, c := range cols {
		row[i] = map[string]string{"Type": "Modtagersystem", "ID": "sel-1", "Navn": "ESDH via leverandør", "Rolle": "regular", "Standardsystem": "std-esdh"}[c]
	}
	sel := filepath.Join(dir, "sel.csv")
	os.WriteFile(sel, []byte(header+"\n"+strings.Join(row, ",")+"\n"), 0o644)
	stdout, stderr, err = runAdmin(t, append([]string{"import", "--systems", sel}, conn...)...)
	if err != nil || !strings.Contains(stdout, "API key of sel-1 (selects std-esdh") {
		t.Fatalf("selection: %v\n%s%s", err, stdout, stderr)
	}
	key := strings.TrimSpace(stdout[strings.LastIndex(stdout, ": ")+2:])
	if s := view.System("sel-1"); s == nil || s.Credentials != "sha256:"+auth.HashToken(key) {
		t.Fatalf("selection %+v, printed key %q", s, key)
	}
}
