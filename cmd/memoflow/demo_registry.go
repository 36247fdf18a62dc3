package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/memoflow/memoflow/internal/auth"
	"github.com/memoflow/memoflow/internal/recipientsim"
	"github.com/memoflow/memoflow/schemas/memo"
	"github.com/memoflow/memoflow/schemas/registry"
)

// demoOptions are `memoflow run`'s demo registry flags.
type demoOptions struct {
	enabled      bool
	recipientURL string
	seeds        int
}

func addDemoFlags(cmd *cobra.Command) *demoOptions {
	o := &demoOptions{}
	f := cmd.Flags()
	f.BoolVar(&o.enabled, "demo", true, "seed the demo registry once (demo authority, systems, the citizens and companies that memoflow send --generate addresses)")
	f.StringVar(&o.recipientURL, "demo-recipient-url", os.Getenv("MEMOFLOW_DEMO_RECIPIENT_URL"),
		"base URL of the recipient simulator; with it the demo gets a REST_PUSH recipient system pushing there")
	f.IntVar(&o.seeds, "demo-seeds", 3, "register the recipients of memoflow send --generate with seeds 1..N")
	return o
}

// Demo registry identities.
const (
	demoActor   = "memoflow-demo"
	demoMailbox = "demo-mailbox"
	demoSMS     = "demo-sms"
	demoPrint   = "demo-print"
	demoPull    = "demo-pull"    // the demo authority's default system (REST_PULL)
	demoCVRPost = "demo-cvrpost" // its CVR-post system (REST_PULL)
	demoPush    = "demo-push"    // REST_PUSH to the recipient simulator, when configured
)

// seedDemoRegistry writes the demo registry unless the View already holds
// it (the demo authority's default system is the marker: it is written
// last, so a seed cut short is completed on the next start). It writes no
// events: seeding is not an administrator's action.
func seedDemoRegistry(ctx context.Context, a *app, o *demoOptions) error {
	if o == nil || !o.enabled || a.cfg.Auth.TokensFile != "" {
		return nil // a configured token file means a real deployment
	}
	if err := ensureDemoSupplierToken(a); err != nil {
		return err
	}
	view, err := a.registryView(ctx)
	if err != nil {
		return err
	}
	prod, err := a.producerClient()
	if err != nil {
		return err
	}
	w := registry.NewWriter(prod, view, registry.WithoutEvents())
	if view.System(demoPull) == nil {
		if err := seedDemoEntities(ctx, a, o, view, w); err != nil {
			return err
		}
	}
	// Separately from the marker above, so a registry seeded before
	// forwarding existed gets it too.
	if es := demoForwardEntities(view, o.seeds); len(es) > 0 {
		if err := w.Put(ctx, demoActor, es...); err != nil {
			return fmt.Errorf("demo forwarding: %w", err)
		}
		a.log.Info("demo forwarding", "companies", len(es)-1, "every", demoForwardEvery, "to", demoTrustedCVR, "kind", registry.ForwardSecureMailbox.String())
	}
	if err := startDemoTransports(ctx, a, w, view); err != nil {
		return err
	}
	return startDemoStandard(ctx, a, w, view, o.seeds)
}

// The demo's forwarding of company post (seed 001, "Videresendelse fra
// Virk.dk"; stages/forward): every demoForwardEvery-th company of each
// `send --generate` seed forwards its mailbox post to the secure mailbox
// of a trusted third party, the demo company demoTrustedCVR (an
// accountant, with a mailbox at the demo mailbox provider). So a
// generated send exercises the forward stage: each such letter lands in
// the company's mailbox, and a copy under its own messageUUID reaches the
// third party's mailbox (MESSAGE_FORWARDED_TO_TRUSTED in the event log).
// Pickup forwarding (a POST to the company's pickup URL) is the demo's
// too: demo_standard.go.
const (
	demoTrustedCVR   = "10000016" // "Demo Revision ApS"; not a CVR the generator draws (TestDemoForwarding)
	demoForwardEvery = 20
)

// demoForwardEntities is the demo's forwarding setup for the companies
// view holds, the third party last (the marker: nothing is written once it
// is registered, so an operator's later change of a company's forwarding
// stays). A company that has its own system, forwards already or has no
// mailbox is left as it is.
func demoForwardEntities(view *registry.View, seeds int) []registry.Entity {
	if _, ok := view.Company(demoTrustedCVR); ok {
		return nil
	}
	var es []registry.Entity
	seen := map[string]bool{demoTrustedCVR: true}
	for s := 1; s <= seeds; s++ {
		_, cvrs, _ := genRecipients(uint64(s))
		for i := 0; i < len(cvrs); i += demoForwardEvery {
			c := cvrs[i]
			info, ok := view.Company(c)
			if seen[c] || !ok || info.SystemID != "" || info.Forward.Set() || info.MailboxID == "" {
				continue
			}
			seen[c] = true
			es = append(es, &registry.Company{CVR: c, Status: info.Status, Mailbox: info.MailboxID,
				Forward: registry.Forwarding{Kind: registry.ForwardSecureMailbox, To: demoTrustedCVR}})
		}
	}
	if len(es) == 0 {
		return nil
	}
	return append(es, &registry.Company{CVR: demoTrustedCVR, Status: registry.Registered, Mailbox: demoMailbox})
}

// seedDemoEntities writes the demo registry (the marker last).
func seedDemoEntities(ctx context.Context, a *app, o *demoOptions, view *registry.View, w *registry.Writer) error {
	if _, err := a.tokenStore(a.generate); err != nil {
		return err
	}
	hashes, err := demoSenderHashes(filepath.Join(a.cfg.VarDir, "tokens.yaml"))
	if err != nil {
		return err
	}
	es := demoEntities(hashes, o.recipientURL, o.seeds)
	// Systems and organisations first (the rest refers to them), then in
	// chunks, so one produce stays small; the marker last.
	const chunk = 2000
	for i := 0; i < len(es); i += chunk {
		if err := w.Put(ctx, demoActor, es[i:min(i+chunk, len(es))]...); err != nil {
			return fmt.Errorf("demo registry: %w", err)
		}
	}
	if err := w.Put(ctx, demoActor, &registry.System{ID: demoPull, Org: demoOrg, Name: "Demo ESDH (pull)", SysKind: registry.SystemRecipient,
		Protocol: registry.RestPull, MemoVersion: 11, Role: registry.RoleDefault,
		Contact: registry.Contact{Name: "Demo Drift", Email: "drift@demo.example"}}); err != nil {
		return fmt.Errorf("demo registry: %w", err)
	}
	st := view.Stats()
	a.log.Info("demo registry seeded", "authority", demoOrg, "citizens", st.Citizens, "companies", st.Companies,
		"contact_points", st.ContactPoints, "systems", st.Systems, "push_to", o.recipientURL)
	return nil
}

// demoSenderHashes reads the demo sender's token hashes from the token file
// `memoflow run` wrote.
func demoSenderHashes(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("demo registry: %w", err)
	}
	var entries []auth.TokenEntry
	if err := yaml.Unmarshal(b, &entries); err != nil {
		return nil, fmt.Errorf("demo registry: token file %s: %w", path, err)
	}
	var out []string
	for _, e := range entries {
		if e.Principal.ID == demoSender && e.Principal.Org == demoOrg && len(out) < registry.MaxTokenHashes {
			out = append(out, e.TokenSHA256)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("demo registry: the token file has no demo sender")
	}
	return out, nil
}

// demoEntities is the demo registry but for its marker system.
func demoEntities(senderHashes []string, recipientURL string, seeds int) []registry.Entity {
	es := []registry.Entity{
		&registry.Org{CVR: demoOrg, Name: "Demo Kommune", Type: registry.OrgAuthority, Setup: 1},
		&registry.SenderSystem{ID: demoSender, Org: demoOrg, Name: "Demo ESDH", TokenSHA256: senderHashes, Active: true},
		&registry.System{ID: demoMailbox, Name: "Demo mailbox provider", SysKind: registry.SystemMailbox, Protocol: registry.RestPull, MemoVersion: 12},
		&registry.System{ID: demoSMS, Name: "Demo NemSMS provider", SysKind: registry.SystemSMS, Protocol: registry.RestPull, MemoVersion: 11},
		&registry.System{ID: demoPrint, Name: "Demo print provider", SysKind: registry.SystemPrint, Protocol: registry.RestPull, MemoVersion: 11},
		&registry.System{ID: demoCVRPost, Org: demoOrg, Name: "Demo CVR post (pull)", SysKind: registry.SystemRecipient,
			Protocol: registry.RestPull, MemoVersion: 12, Role: registry.RoleCVRPost},
		&registry.ContactGroup{ID: "demo-borgerservice", Org: demoOrg, Name: "Borgerservice", Keywords: []string{"borger"}, Visibility: registry.VisibleAll},
	}
	pointSystem := demoPull
	if recipientURL != "" {
		es = append(es, &registry.System{ID: demoPush, Org: demoOrg, Name: "Demo fagsystem (push)", SysKind: registry.SystemRecipient,
			Protocol: registry.RestPush, Endpoint: strings.TrimRight(recipientURL, "/") + recipientsim.PushPath(demoPush),
			MemoVersion: 12, Role: registry.RoleRegular, Contact: registry.Contact{Name: "Demo Drift", Email: "drift@demo.example"}})
		pointSystem = demoPush
	}
	// demoPull is written last (the marker); points naming it are written
	// with it... so they name pointSystem only when that is demoPush, and
	// no system (the default, demoPull) otherwise.
	if pointSystem == demoPull {
		pointSystem = ""
	}
	for i, name := range []string{"Pas og kørekort", "Boligstøtte", "Skat og opkrævning", "Børn og skole", "Ældre og pleje"} {
		es = append(es, &registry.ContactPoint{ID: "demo-cp-" + strconv.Itoa(i+1), ParentID: "demo-borgerservice", Org: demoOrg, Name: name,
			Keywords: strings.Fields(strings.ToLower(name)), KLE: []string{"00.01"}, Visibility: registry.VisibleAll, System: pointSystem,
			Info: []registry.InfoField{{Title: "Åbningstid", Text: "Man-fre 10-15"}}})
	}
	es = append(es, &registry.LegacyMailbox{Org: demoOrg, Mailbox: "BORGERSERVICE", ContactPoint: "demo-cp-1"})

	// The recipients `memoflow send --generate --seed S` addresses.
	seenCPR, seenCVR := map[string]bool{}, map[string]bool{demoOrg: true}
	for s := 1; s <= seeds; s++ {
		cprs, cvrs, auths := genRecipients(uint64(s))
		for _, au := range auths {
			if seenCVR[au.CVR] {
				continue
			}
			seenCVR[au.CVR] = true
			// The generated authorities' default systems pull, or push to the
			// recipient simulator when there is one, so it gets real traffic.
			dflt := &registry.System{ID: "demo-dflt-" + au.CVR, Org: au.CVR, Name: "Default " + au.CVR, SysKind: registry.SystemRecipient,
				Protocol: registry.RestPull, MemoVersion: 11, Role: registry.RoleDefault}
			if recipientURL != "" {
				dflt.Protocol, dflt.Endpoint = registry.RestPush, strings.TrimRight(recipientURL, "/")+recipientsim.PushPath(dflt.ID)
			}
			es = append(es, &registry.Org{CVR: au.CVR, Name: "Demo myndighed " + au.CVR, Type: registry.OrgAuthority, Setup: 1}, dflt)
			for _, cp := range au.ContactPoints {
				es = append(es, &registry.ContactPoint{ID: cp, Org: au.CVR, Name: "Kontaktpunkt " + cp[:8], Visibility: registry.VisibleAll})
			}
		}
		for i, c := range cprs {
			if seenCPR[c] {
				continue
			}
			seenCPR[c] = true
			cit := &registry.Citizen{CPR: c, Status: registry.Registered, NemSMS: true, Mailbox: demoMailbox}
			if i%50 == 49 {
				// A few exempt citizens show the physical-letter path.
				cit.Status, cit.NemSMS, cit.Mailbox = registry.Exempt, false, ""
			}
			es = append(es, cit)
		}
		for _, c := range cvrs {
			if seenCVR[c] {
				continue
			}
			seenCVR[c] = true
			es = append(es, &registry.Company{CVR: c, Status: registry.Registered, Mailbox: demoMailbox})
		}
	}
	return es
}

// genRecipients returns the default recipients memo.NewGenerator draws for
// seed: 1000 CPRs, 200 CVRs and 20 authorities with 3 contact points each.
// It repeats the generator's own draws (schemas/memo/gen.go NewGenerator);
// TestDemoRegistryCoversGeneratedRecipients fails if the two drift apart.
func genRecipients(seed uint64) (cprs, cvrs []string, auths []memo.Authority) {
	r := rand.New(rand.NewPCG(seed^0xabcdef, 42))
	two := func(b []byte, n int) []byte { return append(b, byte('0'+n/10%10), byte('0'+n%10)) }
	cprs = make([]string, 1000)
	for i := range cprs {
		b := make([]byte, 0, 10)
		b = two(b, 1+r.IntN(28))
		b = two(b, 1+r.IntN(12))
		b = two(b, r.IntN(100))
		b = two(b, r.IntN(100))
		b = two(b, r.IntN(100))
		cprs[i] = string(b)
	}
	cvrs = make([]string, 200)
	for i := range cvrs {
		cvrs[i] = strconv.Itoa(10000000 + r.IntN(89999999))
	}
	auths = make([]memo.Authority, 20)
	for i := range auths {
		a := memo.Authority{CVR: strconv.Itoa(20000000 + r.IntN(79999999))}
		for k := 0; k < 3; k++ {
			var u memo.UUID
			x, y := r.Uint64(), r.Uint64()
			for j := 0; j < 8; j++ {
				u[j] = byte(x >> (8 * j))
				u[8+j] = byte(y >> (8 * j))
			}
			u[6] = u[6]&0x0f | 0x40
			u[8] = u[8]&0x3f | 0x80
			a.ContactPoints = append(a.ContactPoints, u.String())
		}
		auths[i] = a
	}
	return cprs, cvrs, auths
}
