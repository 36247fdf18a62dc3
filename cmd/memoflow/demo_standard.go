package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"

	"gopkg.in/yaml.v3"

	"github.com/memoflow/memoflow/internal/auth"
	"github.com/memoflow/memoflow/internal/recipientsim"
	"github.com/memoflow/memoflow/schemas/registry"
)

// The demo's standard system and pickup forwarding (issue 12; seed 001,
// 6.2 "standardsystemer" and "Videresendelse fra Virk.dk"):
//
//   - a supplier, the demo company demoSupplierCVR, with an administrator
//     token in <var>/demo/supplier.token (role supplier: it manages its
//     standard systems and reads the event log of their selections);
//   - its standard system demoStandard, REST_PUSH to the demo recipient
//     simulator (demo_sim.go);
//   - the demo authority's selection of it, demoSelection (a recipient
//     system whose Template is demoStandard: it takes the supplier's
//     protocol and endpoint), with its own contact point demoCPStandard,
//     and its API key in <var>/demo/selection.key (what the authority
//     hands back to its supplier: the supplier's system authenticates as
//     the selection with it, for the pull API and business receipts);
//   - every demoForwardEvery-th generated company, offset by
//     demoPickupOffset, forwards its mailbox post to a pickup URL on the
//     simulator (https), so a `send --generate` shows
//     MESSAGE_FORWARDED_TO_TRUSTED with recipient_system pickup:<host>.
//
// Unlike the first seed (demo_registry.go), these entries are checked at
// every start: what is missing is written, and the simulator's addresses
// are rewritten where the registry still holds the demo's own (loopback,
// the demo path) but another port. An entry an operator pointed elsewhere
// is left as it is.
const (
	demoSupplierCVR  = "10000024" // "Demo Systemleverandør A/S"; neither a generated company nor authority (TestDemoStandardEntities)
	demoSupplier     = "demo-supplier"
	demoStandard     = "demo-standard"
	demoSelection    = "demo-standard-selection"
	demoCPStandard   = "demo-cp-standard"
	demoPickup       = "demo-pickup" // the simulator's name for the pickup POSTs
	demoPickupOffset = 10            // pickup companies sit between the secure-mailbox ones (offset 0)
)

// startDemoStandard starts the simulator, gives the forward stage a client
// that trusts it, and writes what is missing or moved.
func startDemoStandard(ctx context.Context, a *app, w *registry.Writer, view *registry.View, seeds int) error {
	sim, err := startDemoRecipientSim(a)
	if err != nil {
		return err
	}
	a.demoForwardClient = sim.forwardClient(a.cfg.Forward.PerTarget)
	if es := demoStandardEntities(view, sim.pushURL(demoStandard)); len(es) > 0 {
		if err := w.Put(ctx, demoActor, es...); err != nil {
			return fmt.Errorf("demo standard system: %w", err)
		}
	}
	key := auth.NewToken()
	switch es, why := demoSelectionEntities(view, "sha256:"+auth.HashToken(key)); {
	case why != "":
		a.log.Warn("demo standard system not selected", "system", demoSelection, "reason", why)
	case len(es) > 0:
		if err := w.Put(ctx, demoActor, es...); err != nil {
			return fmt.Errorf("demo selection: %w", err)
		}
		if slices.ContainsFunc(es, func(e registry.Entity) bool { return e.Key() == "sys/"+demoSelection }) {
			// Written after the registry took the key: a file naming a key
			// the registry never saw would only mislead.
			if err := os.WriteFile(filepath.Join(a.cfg.VarDir, "demo", "selection.key"), []byte(key+"\n"), 0o600); err != nil {
				return fmt.Errorf("demo selection: %w", err)
			}
		}
	}
	es := demoPickupEntities(view, seeds, sim.pickupURL(demoPickup))
	if len(es) > 0 {
		if err := w.Put(ctx, demoActor, es...); err != nil {
			return fmt.Errorf("demo pickup forwarding: %w", err)
		}
	}
	a.log.Info("demo standard system and pickup forwarding", "supplier", demoSupplierCVR, "standard_system", demoStandard,
		"selection", demoSelection, "contact_point", demoCPStandard, "push", sim.pushURL(demoStandard),
		"pickup", sim.pickupURL(demoPickup), "pickup_companies_written", len(es), "simulator_stats", sim.statsURL(),
		"supplier_token_file", filepath.Join(a.cfg.VarDir, "demo", "supplier.token"),
		"selection_key_file", filepath.Join(a.cfg.VarDir, "demo", "selection.key"))
	return nil
}

// isDemoURL reports whether u is the demo simulator's URL for system (any
// loopback port): the entries the demo rewrites when the port moves.
func isDemoURL(u, scheme, system string) bool {
	p, err := url.Parse(u)
	return err == nil && p.Scheme == scheme && p.Hostname() == "127.0.0.1" && p.Path == recipientsim.PushPath(system)
}

// demoStandardEntities is the supplier and its standard system, for what
// is missing or still at an older address of the simulator.
func demoStandardEntities(view *registry.View, pushURL string) []registry.Entity {
	var es []registry.Entity
	if view.Org(demoSupplierCVR) == nil {
		es = append(es, &registry.Org{CVR: demoSupplierCVR, Name: "Demo Systemleverandør A/S", Type: registry.OrgCompany})
	}
	want := &registry.System{ID: demoStandard, Org: demoSupplierCVR, Name: "Demo standardsystem (push)", SysKind: registry.SystemStandard,
		Protocol: registry.RestPush, Endpoint: pushURL, MemoVersion: 12,
		Contact: registry.Contact{Name: "Demo Leverandør Support", Email: "support@leverandor.example"}}
	switch old := view.System(demoStandard); {
	case old == nil:
		es = append(es, want)
	case old.SysKind == registry.SystemStandard && old.Org == demoSupplierCVR && old.Endpoint != pushURL &&
		isDemoURL(old.Endpoint, "http", demoStandard):
		moved := *old // the supplier's other changes stay
		moved.Endpoint = pushURL
		es = append(es, &moved)
	}
	return es
}

// demoSelectionEntities is the demo authority's selection of the standard
// system (credentials: its API key's hash) and its contact point, for what
// is missing. why says why the selection cannot be made: the authority
// already has its 4 recipient systems (with --demo-recipient-url and both
// demo transports), or the standard system is not there.
func demoSelectionEntities(view *registry.View, credentials string) (es []registry.Entity, why string) {
	if view.System(demoSelection) == nil {
		if t := view.System(demoStandard); t == nil || t.SysKind != registry.SystemStandard {
			return nil, "standard system " + demoStandard + " is not in the registry"
		}
		n := 0
		for _, s := range view.OrgSystems(demoOrg) {
			if s.SysKind == registry.SystemRecipient && s.Role != registry.RoleCVRPost {
				n++
			}
		}
		if n >= registry.MaxAuthoritySystems {
			return nil, fmt.Sprintf("the demo authority %s has %d recipient systems already (at most %d)", demoOrg, n, registry.MaxAuthoritySystems)
		}
		es = append(es, &registry.System{ID: demoSelection, Org: demoOrg, Name: "Demo byggesagssystem (standardsystem)",
			SysKind: registry.SystemRecipient, Role: registry.RoleRegular, Template: demoStandard, Credentials: credentials,
			Contact: registry.Contact{Name: "Demo Drift", Email: "drift@demo.example"}})
	}
	if view.ContactPoint(demoCPStandard) == nil {
		es = append(es, &registry.ContactPoint{ID: demoCPStandard, ParentID: "demo-borgerservice", Org: demoOrg, Name: "Byggesager (standardsystem)",
			Keywords: []string{"byggesager", "standardsystem"}, KLE: []string{"02.00"}, Visibility: registry.VisibleAll, System: demoSelection})
	}
	return es, ""
}

// demoPickupCandidates are the companies the demo makes forward to the
// pickup URL: every demoForwardEvery-th company `send --generate` draws
// for seeds 1..seeds, from demoPickupOffset.
func demoPickupCandidates(seeds int) []string {
	var out []string
	seen := map[string]bool{}
	for s := 1; s <= seeds; s++ {
		_, cvrs, _ := genRecipients(uint64(s))
		for i := demoPickupOffset; i < len(cvrs); i += demoForwardEvery {
			if c := cvrs[i]; !seen[c] {
				seen[c] = true
				out = append(out, c)
			}
		}
	}
	return out
}

// demoPickupEntities is the pickup forwarding of the candidates. Once any
// candidate forwards to a demo pickup URL the setup counts as made, and
// only those whose URL names another port are rewritten (an operator's
// change of a company's forwarding stays); before that, every candidate
// with a mailbox, no system of its own and no forwarding gets it.
func demoPickupEntities(view *registry.View, seeds int, pickupURL string) []registry.Entity {
	type cand struct {
		cvr  string
		info registry.CompanyInfo
	}
	var cs []cand
	made := false
	for _, c := range demoPickupCandidates(seeds) {
		info, ok := view.Company(c)
		if !ok || info.SystemID != "" || info.MailboxID == "" {
			continue
		}
		cs = append(cs, cand{c, info})
		if f := info.Forward; f.Kind == registry.ForwardPickup && isDemoURL(f.To, "https", demoPickup) {
			made = true
		}
	}
	var es []registry.Entity
	for _, c := range cs {
		f := c.info.Forward
		switch {
		case made && (f.Kind != registry.ForwardPickup || f.To == pickupURL || !isDemoURL(f.To, "https", demoPickup)):
			continue
		case !made && f.Set():
			continue
		}
		es = append(es, &registry.Company{CVR: c.cvr, Status: c.info.Status, Mailbox: c.info.MailboxID,
			Forward: registry.Forwarding{Kind: registry.ForwardPickup, To: pickupURL, Credentials: f.Credentials}})
	}
	return es
}

// ensureDemoSupplierToken adds the demo supplier's administrator to the
// token file `memoflow run` writes (creating the file as tokenStore
// would), with its token in <var>/demo/supplier.token. A token file from
// before the supplier existed gets it added; one with it is left alone.
func ensureDemoSupplierToken(a *app) error {
	path := filepath.Join(a.cfg.VarDir, "tokens.yaml")
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		if err := writeDemoTokens(a, path); err != nil {
			return err
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("demo supplier token: %w", err)
	}
	var entries []auth.TokenEntry
	if err := yaml.Unmarshal(b, &entries); err != nil {
		return fmt.Errorf("demo supplier token: token file %s: %w", path, err)
	}
	for _, e := range entries {
		if e.Principal.ID == demoSupplier && e.Principal.Org == demoSupplierCVR {
			return nil
		}
	}
	tok := auth.NewToken()
	p := auth.Principal{ID: demoSupplier, Org: demoSupplierCVR, Roles: []auth.Role{auth.RoleSupplier}}
	dir := filepath.Join(a.cfg.VarDir, "demo")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	// supplier.token first: should the token file's write fail, the next
	// start makes a new token and overwrites it (the other way round, a
	// lost supplier.token would never be made again).
	if err := os.WriteFile(filepath.Join(dir, "supplier.token"), []byte(tok+"\n"), 0o600); err != nil {
		return err
	}
	if err := auth.WriteFile(path, append(entries, auth.TokenEntry{TokenSHA256: auth.HashToken(tok), Principal: p})); err != nil {
		return err
	}
	a.deps.mu.Lock()
	if a.deps.tokens != nil { // loaded already: this process knows it too
		a.deps.tokens.Put(auth.HashToken(tok), &p)
	}
	a.deps.mu.Unlock()
	a.log.Info("created the demo supplier's token", "file", filepath.Join(dir, "supplier.token"), "organisation", demoSupplierCVR)
	return nil
}
