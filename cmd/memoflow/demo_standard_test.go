package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/encoding/json"
	"github.com/spf13/cobra"
	"golang.org/x/crypto/ssh"

	"github.com/memoflow/memoflow/internal/auth"
	"github.com/memoflow/memoflow/schemas/memo"
	"github.com/memoflow/memoflow/schemas/records"
	"github.com/memoflow/memoflow/schemas/registry"
	"github.com/memoflow/memoflow/stages/admin"
	"github.com/memoflow/memoflow/stages/route"
)

// demoView is the demo registry as a fresh `memoflow run` seeds it before
// the standard system: with or without the push system, SFTP and SMTP.
func demoView(t *testing.T, pushURL string) (*registry.View, func([]registry.Entity)) {
	t.Helper()
	v, apply := checkedView(t)
	apply(demoEntities([]string{strings.Repeat("ab", 32)}, pushURL, 3))
	apply([]registry.Entity{&registry.System{ID: demoPull, Org: demoOrg, Name: "pull", SysKind: registry.SystemRecipient,
		Protocol: registry.RestPull, MemoVersion: 11, Role: registry.RoleDefault}})
	apply(demoForwardEntities(v, 3))
	pub, _, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	hostKey, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	apply(demoSFTPEntities("sftp://127.0.0.1:2222", strings.TrimSpace(string(ssh.MarshalAuthorizedKey(hostKey)))))
	apply(demoSMTPEntities("smtp://127.0.0.1:2525", "post@demo.example", "file:/dev/null"))
	return v, apply
}

// TestDemoStandardEntities: the supplier, its standard system and the
// demo authority's selection pass the Writer's checks beside the full demo
// registry; a letter to the selection's contact point routes to the
// selection and is delivered as the template says; generated company post
// of the pickup companies is marked for the pickup URL; a restart on
// another port rewrites only the demo's own addresses, and one on the same
// port writes nothing.
func TestDemoStandardEntities(t *testing.T) {
	v, apply := demoView(t, "")
	for _, cvr := range []string{demoSupplierCVR} {
		if _, ok := v.Company(cvr); ok || v.Org(cvr) != nil {
			t.Fatalf("the demo supplier %s is a generated company or authority: pick another CVR", cvr)
		}
	}
	push1, pickup1 := "http://127.0.0.1:4001/push/demo-standard", "https://127.0.0.1:4002/push/demo-pickup"
	apply(demoStandardEntities(v, push1))
	sel, why := demoSelectionEntities(v, "sha256:"+strings.Repeat("cd", 32))
	if why != "" || len(sel) != 2 {
		t.Fatalf("selection: %d entities, %q", len(sel), why)
	}
	apply(sel)
	pick := demoPickupEntities(v, 3, pickup1)
	if len(pick) < 3*200/demoForwardEvery-6 {
		t.Fatalf("%d pickup companies, want about %d", len(pick), 3*200/demoForwardEvery)
	}
	apply(pick)

	st, err := route.New(v, testPseudonymizer(t), route.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	noon := time.Date(2026, 11, 23, 11, 0, 0, 0, time.UTC)
	d := st.Decide(&records.Envelope{RecipientID: demoOrg, RecipientType: records.IDCVR, PostType: "MYNDIGHEDSPOST",
		MessageType: records.TypeDigitalPost, ContactPointID: demoCPStandard}, noon)
	if d.System == nil || d.System.ID != demoSelection || d.Effective == nil ||
		d.Effective.Protocol != registry.RestPush || d.Effective.Endpoint != push1 || d.Effective.Template != demoStandard {
		t.Fatalf("a letter to %s: %+v (effective %+v)", demoCPStandard, d, d.Effective)
	}
	pickupCVR := ""
	for _, e := range pick {
		c := e.(*registry.Company)
		d := st.Decide(&records.Envelope{RecipientID: c.CVR, RecipientType: records.IDCVR, PostType: "VIRKSOMHEDSPOST",
			MessageType: records.TypeDigitalPost}, noon)
		if d.System == nil || d.System.ID != demoMailbox || d.Forward.Kind != registry.ForwardPickup || d.Forward.To != pickup1 {
			t.Fatalf("company %s: %+v", c.CVR, d)
		}
		pickupCVR = c.CVR
	}

	// Same addresses: nothing to write.
	if es := demoStandardEntities(v, push1); len(es) != 0 {
		t.Fatalf("same address: %d standard entities written again", len(es))
	}
	if es, why := demoSelectionEntities(v, "sha256:"+strings.Repeat("ef", 32)); len(es) != 0 || why != "" {
		t.Fatalf("selection again: %d entities, %q", len(es), why)
	}
	if es := demoPickupEntities(v, 3, pickup1); len(es) != 0 {
		t.Fatalf("same address: %d pickup companies written again", len(es))
	}
	// An operator points one company elsewhere and turns another's
	// forwarding off; then the simulator moves.
	off := pick[0].(*registry.Company).CVR
	apply([]registry.Entity{
		&registry.Company{CVR: pickupCVR, Status: registry.Registered, Mailbox: demoMailbox,
			Forward: registry.Forwarding{Kind: registry.ForwardPickup, To: "https://pickup.example/post"}},
		&registry.Company{CVR: off, Status: registry.Registered, Mailbox: demoMailbox},
	})
	push2, pickup2 := "http://127.0.0.1:5001/push/demo-standard", "https://127.0.0.1:5002/push/demo-pickup"
	es := demoStandardEntities(v, push2)
	if len(es) != 1 || es[0].(*registry.System).Endpoint != push2 {
		t.Fatalf("moved simulator: standard entities %v", es)
	}
	apply(es)
	moved := demoPickupEntities(v, 3, pickup2)
	if len(moved) != len(pick)-2 {
		t.Fatalf("moved simulator: %d pickup companies rewritten, want %d (all but the operator's two)", len(moved), len(pick)-2)
	}
	for _, e := range moved {
		if c := e.(*registry.Company); c.CVR == pickupCVR || c.CVR == off || c.Forward.To != pickup2 {
			t.Fatalf("rewritten: %+v", c)
		}
	}
	// An operator's standard-system endpoint stays.
	own := *v.System(demoStandard)
	own.Endpoint = "https://leverandor.example/memo"
	apply([]registry.Entity{&own})
	if es := demoStandardEntities(v, push1); len(es) != 0 {
		t.Fatalf("an operator's endpoint is rewritten: %v", es)
	}
}

// TestDemoSelectionNeedsRoom: with --demo-recipient-url the demo authority
// has its 4 recipient systems (pull, push, SFTP, SMTP): the selection is
// left out with a reason instead of failing the start.
func TestDemoSelectionNeedsRoom(t *testing.T) {
	v, apply := demoView(t, "http://127.0.0.1:8090")
	apply(demoStandardEntities(v, "http://127.0.0.1:4001/push/demo-standard"))
	es, why := demoSelectionEntities(v, "sha256:"+strings.Repeat("cd", 32))
	if len(es) != 0 || !strings.Contains(why, "4 recipient systems") {
		t.Fatalf("full authority: %d entities, %q", len(es), why)
	}
}

// TestDemoStandardAndPickupRun: a fresh `memoflow run` has the supplier's
// token, the standard system with the demo authority's selection (admin
// API, as the supplier and as the authority's administrator) and a
// working selection key; a letter to the selection's contact point is
// pushed through the template (the simulator answered 2xx: the event log
// says sent to the selection), and a letter to a pickup company is POSTed
// to the pickup URL (MESSAGE_FORWARDED_TO_TRUSTED, target pickup:<host>).
func TestDemoStandardAndPickupRun(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test skipped in -short mode")
	}
	conn, db, dir, ready := startDemoRun(t, "demostd")
	api := ready["api"]
	file := func(name string) string {
		b, err := os.ReadFile(filepath.Join(dir, "demo", name))
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	get := func(path, token string) (int, []byte) {
		req, _ := http.NewRequest(http.MethodGet, api+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}

	// The registry through the admin API.
	code, body := get(admin.Prefix+"/organisations/"+demoSupplierCVR+"/standard-systems/"+demoStandard, file("supplier.token"))
	var std admin.SystemJSON
	if code != http.StatusOK || json.Unmarshal(body, &std) != nil || std.Kind != "standard" || std.Protocol != "REST_PUSH" ||
		len(std.SelectedBy) != 1 || std.SelectedBy[0].Organisation != demoOrg || std.SelectedBy[0].System != demoSelection {
		t.Fatalf("the supplier's standard system: %d %s", code, body)
	}
	code, body = get(admin.Prefix+"/organisations/"+demoOrg+"/recipient-systems/"+demoSelection, file("admin.token"))
	var sel admin.SystemJSON
	if code != http.StatusOK || json.Unmarshal(body, &sel) != nil || sel.StandardSystem != demoStandard {
		t.Fatalf("the authority's selection: %d %s", code, body)
	}
	// The selection key authenticates the supplier's system as the
	// selection (pull API: its outbox, empty: the template pushes).
	if code, body := get("/apis/v1/memos", file("selection.key")); code != http.StatusOK {
		t.Fatalf("pull API with the selection key: %d %s", code, body)
	}
	if code, _ := get("/apis/v1/memos", "not-a-key"); code != http.StatusUnauthorized {
		t.Fatalf("pull API with a wrong key: %d", code)
	}

	// One letter to the selection's contact point, one to a pickup company.
	today := time.Now().UTC().Truncate(24 * time.Hour)
	gen := func(seed uint64, c memo.GenConfig) (body []byte, uuid string) {
		// Each its own seed: the messageUUID is the generator's first draw.
		c.Seed, c.Now, c.SenderCVRs, c.NemSMSShare, c.ValueDateShare = seed, today, []string{demoOrg}, -1, -1
		b, u := memo.NewGenerator(c).Next(nil)
		return b, strings.ToLower(u.String())
	}
	toSel, uSel := gen(7, memo.GenConfig{Authorities: []memo.Authority{{CVR: demoOrg, ContactPoints: []string{demoCPStandard}}},
		AuthorityShare: 1, CitizenShare: -1, CompanyShare: -1})
	pickupCVR := demoPickupCandidates(1)[0]
	toPickup, uPickup := gen(8, memo.GenConfig{CompanyCVRs: []string{pickupCVR}, CompanyShare: 1, CitizenShare: -1, AuthorityShare: -1})
	if !bytes.Contains(toSel, []byte(demoCPStandard)) || !bytes.Contains(toPickup, []byte(pickupCVR)) {
		t.Fatal("the generator did not address the demo's recipients")
	}
	for _, m := range []struct {
		body []byte
		uuid string
	}{{toSel, uSel}, {toPickup, uPickup}} {
		req, _ := http.NewRequest(http.MethodPost, api+"/apis/v1/memos/?memo-message-uuid="+m.uuid, bytes.NewReader(m.body))
		req.Header.Set("Content-Type", "application/xml")
		req.Header.Set("Authorization", "Bearer "+file("sender.token"))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("send %s: %d", m.uuid, resp.StatusCode)
		}
	}

	// The event log.
	type want struct{ uuid, tag, system string }
	wants := []want{
		{uSel, "MEMO_SEND_SENT_TO_RECIPIENT_SYSTEM", demoSelection},
		{uPickup, "MESSAGE_FORWARDED_TO_TRUSTED", "pickup:127.0.0.1:"},
	}
	deadline := time.Now().Add(60 * time.Second)
	for _, w := range wants {
		for {
			var n uint64
			err := conn.QueryRow(context.Background(), "SELECT count() FROM "+db+".events WHERE message_uuid = ? AND tag = ? AND startsWith(recipient_system, ?)",
				w.uuid, w.tag, w.system).Scan(&n)
			if err == nil && n == 1 {
				break
			}
			if time.Now().After(deadline) {
				rows, _ := conn.Query(context.Background(), "SELECT tag, recipient_system, error_code FROM "+db+".events WHERE message_uuid = ?", w.uuid)
				var trail []string
				for rows != nil && rows.Next() {
					var tag, sys, code string
					_ = rows.Scan(&tag, &sys, &code)
					trail = append(trail, tag+"@"+sys+":"+code)
				}
				t.Fatalf("%s: %d events %s at %s* (%v); its trail: %v", w.uuid, n, w.tag, w.system, err, trail)
			}
			time.Sleep(300 * time.Millisecond)
		}
	}
}

// TestDemoSupplierToken: a fresh var dir gets the sender, the admin and
// the supplier in its token file, each token file naming a principal the
// file knows; a token file from before the supplier gets it added once;
// the file's principals stay the ones it had.
func TestDemoSupplierToken(t *testing.T) {
	newDemoApp := func(dir string) *app {
		cmd := &cobra.Command{Use: "run"}
		cfg := bindConfig(cmd)
		if err := cmd.ParseFlags([]string{"--var-dir", dir, "--log-level", "error"}); err != nil {
			t.Fatal(err)
		}
		if err := loadConfig(cmd, cfg); err != nil {
			t.Fatal(err)
		}
		a := newApp(cfg, io.Discard)
		a.generate = true
		t.Cleanup(a.close)
		return a
	}
	principals := func(dir string) map[string]string {
		s := auth.NewMemStore()
		if _, err := auth.LoadFile(filepath.Join(dir, "tokens.yaml"), s); err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for _, name := range []string{"sender", "admin", "supplier"} {
			b, err := os.ReadFile(filepath.Join(dir, "demo", name+".token"))
			if err != nil {
				continue
			}
			p, ok := s.Lookup(auth.HashToken(strings.TrimSpace(string(b))))
			if !ok {
				t.Fatalf("%s.token is not in the token file", name)
			}
			out[name] = p.ID + "@" + p.Org + ":" + fmt.Sprint(p.Roles)
		}
		return out
	}

	fresh := t.TempDir()
	if err := ensureDemoSupplierToken(newDemoApp(fresh)); err != nil {
		t.Fatal(err)
	}
	got := principals(fresh)
	if len(got) != 3 || got["supplier"] != demoSupplier+"@"+demoSupplierCVR+":[supplier]" || !strings.HasPrefix(got["sender"], demoSender+"@") {
		t.Fatalf("fresh: %v", got)
	}
	before, _ := os.ReadFile(filepath.Join(fresh, "tokens.yaml"))
	if err := ensureDemoSupplierToken(newDemoApp(fresh)); err != nil {
		t.Fatal(err)
	}
	if after, _ := os.ReadFile(filepath.Join(fresh, "tokens.yaml")); !bytes.Equal(before, after) {
		t.Fatal("a second start rewrote the token file")
	}

	// A var dir from before the supplier: sender and admin only.
	old := t.TempDir()
	if err := writeDemoTokens(newDemoApp(old), filepath.Join(old, "tokens.yaml")); err != nil {
		t.Fatal(err)
	}
	was := principals(old)
	a := newDemoApp(old)
	if _, err := a.tokenStore(true); err != nil { // loaded before the upgrade: the process learns it too
		t.Fatal(err)
	}
	if err := ensureDemoSupplierToken(a); err != nil {
		t.Fatal(err)
	}
	now := principals(old)
	if len(was) != 2 || len(now) != 3 || now["sender"] != was["sender"] || now["admin"] != was["admin"] || now["supplier"] == "" {
		t.Fatalf("upgrade: before %v, after %v", was, now)
	}
	b, _ := os.ReadFile(filepath.Join(old, "demo", "supplier.token"))
	if _, ok := a.deps.tokens.Lookup(auth.HashToken(strings.TrimSpace(string(b)))); !ok {
		t.Fatal("the running process's token store does not know the new supplier")
	}
}
