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
