package main

import (
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/memoflow/memoflow/internal/recipientsim"

	"github.com/memoflow/memoflow/schemas/events"
	"github.com/memoflow/memoflow/schemas/memo"
	"github.com/memoflow/memoflow/schemas/records"
	"github.com/memoflow/memoflow/schemas/registry"
	"github.com/memoflow/memoflow/stages/route"
)

// TestDemoRegistryCoversGeneratedRecipients: every message `memoflow send
// --generate --seed 1..3` writes routes to a system of the demo registry
// (none is refused, none lands in the DLQ), and the demo registry passes
// the Writer's checks.
func TestDemoRegistryCoversGeneratedRecipients(t *testing.T) {
	hash := "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	for _, url := range []string{"", "http://127.0.0.1:8090"} {
		v := registry.NewMemView()
		w := registry.NewWriter(nil, v)
		es := demoEntities([]string{hash}, url, 3)
		es = append(es, &registry.System{ID: demoPull, Org: demoOrg, Name: "pull", SysKind: registry.SystemRecipient,
			Protocol: registry.RestPull, MemoVersion: 11, Role: registry.RoleDefault})
		for _, e := range es {
			c := registry.NewChange(e, demoActor, time.Now())
			if err := w.Check(c); err != nil {
				t.Fatalf("demo entity %s: %v", e.Key(), err)
			}
			v.Apply(c)
		}
		if st := v.Stats(); st.Citizens < 2900 || st.Companies < 590 || st.ContactPoints < 180 {
			t.Fatalf("demo registry too small: %+v", st)
		}
		p := testPseudonymizer(t)
		st, err := route.New(v, p, route.DefaultConfig())
		if err != nil {
			t.Fatal(err)
		}
		noon := time.Date(2026, 11, 23, 11, 0, 0, 0, time.UTC)
		dests := map[string]int{}
		for seed := uint64(1); seed <= 3; seed++ {
			g := memo.NewGenerator(memo.GenConfig{Seed: seed, Now: noon, SenderCVRs: []string{demoOrg}})
			for i := 0; i < 3000; i++ {
				b, _ := g.Next(nil)
				m, err := memo.Parse(b)
				if err != nil {
					t.Fatal(err)
				}
				e := &records.Envelope{RecipientID: m.Header.Recipient.RecipientID, PostType: m.Header.PostType.Value, MessageType: records.TypeDigitalPost, RecipientType: records.IDCPR}
				if m.Header.Recipient.IDType == "CVR" {
					e.RecipientType = records.IDCVR
				}
				if m.Header.MessageType == "NEMSMS" {
					e.MessageType = records.TypeNemSMS
				}
				if m.Header.Recipient.ContactPoint != nil {
					e.ContactPointID = m.Header.Recipient.ContactPoint.ContactPointID
				}
				d := st.Decide(e, noon)
				if d.System == nil {
					// Exempt demo citizens cannot take NemSMS: the one refusal allowed.
					if d.Invalid == route.CodeNemSMSNotSubscribed {
						if c, _ := v.Citizen(e.RecipientID); c.Status == registry.Exempt {
							continue
						}
					}
					t.Fatalf("seed %d: %s %s %s cp=%q not routed: %+v", seed, m.Header.Recipient.IDType, e.RecipientID, e.PostType, e.ContactPointID, d)
				}
				if d.Reason == route.ReasonUnregistered {
					t.Fatalf("seed %d: recipient %s is not in the demo registry", seed, e.RecipientID)
				}
				dests[d.System.ID]++
				if d.System.Protocol == registry.RestPush {
					dests["(push)"]++
				}
			}
		}
		t.Logf("push url %q: destinations %v", url, dests)
		if (url != "") != (dests["(push)"] > 0) {
			t.Errorf("push url %q but %d messages pushed", url, dests["(push)"])
		}
		if dests[demoMailbox] == 0 || dests[demoSMS] == 0 || dests[demoPrint] == 0 {
			t.Errorf("demo traffic does not reach mailbox, SMS and print: %v", dests)
		}
	}
}

func testPseudonymizer(t *testing.T) *events.Pseudonymizer {
	t.Helper()
	p, err := events.NewPseudonymizer(events.Key{ID: "demo1", Secret: []byte("0123456789abcdef0123456789abcdef")})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestDemoTransportSystems: the demo's SFTP and SMTP systems pass the
// Writer's checks beside the full demo registry (the authority's system
// limit included, with the push system), and a letter to the demo
// authority naming their contact point routes to them.
func TestDemoTransportSystems(t *testing.T) {
	hash := "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	keys, err := recipientsim.LoadTransportKeys(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	v := registry.NewMemView()
	w := registry.NewWriter(nil, v)
	es := demoEntities([]string{hash}, "http://127.0.0.1:8090", 1)
	es = append(es, &registry.System{ID: demoPull, Org: demoOrg, Name: "pull", SysKind: registry.SystemRecipient,
		Protocol: registry.RestPull, MemoVersion: 11, Role: registry.RoleDefault})
	pem := string(keys.System.CertPEM())
	hostKey := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(keys.HostKey.PublicKey())))
	es = append(es, demoSFTPEntities("sftp://127.0.0.1:2222", hostKey)...)
	es = append(es, demoSMTPEntities("smtp://127.0.0.1:2525", "post@demo.example", pem)...)
	for _, e := range es {
		c := registry.NewChange(e, demoActor, time.Now())
		if err := w.Check(c); err != nil {
			t.Fatalf("demo entity %s: %v", e.Key(), err)
		}
		v.Apply(c)
	}
	st, err := route.New(v, testPseudonymizer(t), route.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	noon := time.Date(2026, 11, 23, 11, 0, 0, 0, time.UTC)
	for cp, want := range map[string]registry.Protocol{demoCPSFTP: registry.SFTP, demoCPSMTP: registry.SMTP} {
		e := &records.Envelope{RecipientID: demoOrg, RecipientType: records.IDCVR, PostType: "MYNDIGHEDSPOST",
			MessageType: records.TypeDigitalPost, ContactPointID: cp}
		d := st.Decide(e, noon)
		if d.System == nil || d.System.Protocol != want {
			t.Fatalf("contact point %s: %+v", cp, d)
		}
	}
}

// checkedView is an empty in-memory registry and a function applying
// entities to it after the Writer's checks, as the demo seeding does.
func checkedView(t *testing.T) (*registry.View, func([]registry.Entity)) {
	v := registry.NewMemView()
	w := registry.NewWriter(nil, v)
	return v, func(es []registry.Entity) {
		t.Helper()
		for _, e := range es {
			c := registry.NewChange(e, demoActor, time.Now())
			if err := w.Check(c); err != nil {
				t.Fatalf("demo entity %s: %v", e.Key(), err)
			}
			v.Apply(c)
		}
	}
}

// TestDemoForwarding: the demo registry has companies that forward their
// mailbox post to the demo's trusted third party, so a generated send
// exercises the forward stage: route marks their letters for forwarding
// (and only theirs), and the third party's copy has a destination, as the
// forward stage needs (its mailbox). The setup is written once: with the
// third party registered, nothing more is written.
func TestDemoForwarding(t *testing.T) {
	hash := "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	v, apply := checkedView(t)
	apply(demoEntities([]string{hash}, "", 3))
	apply([]registry.Entity{&registry.System{ID: demoPull, Org: demoOrg, Name: "pull", SysKind: registry.SystemRecipient,
		Protocol: registry.RestPull, MemoVersion: 11, Role: registry.RoleDefault}})
	if _, ok := v.Company(demoTrustedCVR); ok {
		t.Fatalf("the trusted third party %s is one of the generated companies: pick another CVR", demoTrustedCVR)
	}
	if o := v.Org(demoTrustedCVR); o != nil {
		t.Fatalf("the trusted third party %s is a generated authority: pick another CVR", demoTrustedCVR)
	}
	es := demoForwardEntities(v, 3)
	if len(es) < 3*200/demoForwardEvery-3 {
		t.Fatalf("%d forwarding entities, want about %d", len(es), 3*200/demoForwardEvery+1)
	}
	if last, ok := es[len(es)-1].(*registry.Company); !ok || last.CVR != demoTrustedCVR {
		t.Fatalf("the marker (the trusted third party) is not written last: %v", es[len(es)-1].Key())
	}
	apply(es)
	if again := demoForwardEntities(v, 3); again != nil {
		t.Fatalf("a second start writes %d entities again", len(again))
	}
	tp, ok := v.Company(demoTrustedCVR)
	if !ok || tp.Mailbox == nil || tp.Forward.Set() {
		t.Fatalf("trusted third party: %+v", tp)
	}

	st, err := route.New(v, testPseudonymizer(t), route.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	noon := time.Date(2026, 11, 23, 11, 0, 0, 0, time.UTC)
	// The copy's destination: the forward stage routes it as route routes
	// company post to the third party.
	cp := st.Decide(&records.Envelope{RecipientID: demoTrustedCVR, RecipientType: records.IDCVR, PostType: "VIRKSOMHEDSPOST",
		MessageType: records.TypeDigitalPost}, noon)
	if cp.System == nil || cp.System.ID != demoMailbox || cp.Forward.Set() {
		t.Fatalf("a copy to the trusted third party: %+v", cp)
	}
	forwarding := map[string]bool{}
	for _, e := range es[:len(es)-1] {
		forwarding[e.(*registry.Company).CVR] = true
	}
	forwarded, companyPost := 0, 0
	for seed := uint64(1); seed <= 3; seed++ {
		g := memo.NewGenerator(memo.GenConfig{Seed: seed, Now: noon, SenderCVRs: []string{demoOrg}, CitizenShare: -1, CompanyShare: 1, AuthorityShare: -1})
		for i := 0; i < 2000; i++ {
			b, _ := g.Next(nil)
			m, err := memo.Parse(b)
			if err != nil {
				t.Fatal(err)
			}
			e := &records.Envelope{RecipientID: m.Header.Recipient.RecipientID, RecipientType: records.IDCVR,
				PostType: m.Header.PostType.Value, MessageType: records.TypeDigitalPost}
			d := st.Decide(e, noon)
			if d.System == nil {
				t.Fatalf("seed %d: company %s not routed: %+v", seed, e.RecipientID, d)
			}
			companyPost++
			if d.Forward.Set() {
				forwarded++
				if !forwarding[e.RecipientID] || d.Forward.To != demoTrustedCVR || d.Forward.Kind != registry.ForwardSecureMailbox {
					t.Fatalf("company %s forwards %+v", e.RecipientID, d.Forward)
				}
			} else if forwarding[e.RecipientID] && d.System.ID == demoMailbox {
				t.Fatalf("a letter in forwarding company %s's mailbox is not forwarded: %+v", e.RecipientID, d)
			}
		}
	}
	t.Logf("%d of %d generated company letters forwarded", forwarded, companyPost)
	if forwarded == 0 || forwarded > companyPost/5 {
		t.Errorf("%d of %d company letters forwarded: want a few percent", forwarded, companyPost)
	}
}
