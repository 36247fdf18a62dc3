package main

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/memoflow/memoflow/schemas/memo"
	"github.com/memoflow/memoflow/schemas/registry"
	"github.com/memoflow/memoflow/stages/forward"
)

// TestForwardInRun: `memoflow run` with every stage; a demo company is set
// to forward its mailbox post to another demo company (a trusted third
// party); a letter to it lands in its mailbox, is forwarded, and the copy
// is routed to the third party under its own messageUUID: the event log
// shows MESSAGE_FORWARDED_TO_TRUSTED for the letter and the copy's own
// routing and delivery events.
func TestForwardInRun(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test skipped in -short mode")
	}
	conn, db, dir, ready := startDemoRun(t, "fwd")
	api, brokers, stages := ready["api"], ready["kafka"], ready["stages"]
	if brokers == "" {
		t.Fatal("memoflow run printed no kafka= in its ready line")
	}
	if !strings.Contains(stages, "forward") {
		t.Fatalf("memoflow run does not run the forward stage: %s", stages)
	}
	tok, err := os.ReadFile(filepath.Join(dir, "demo", "sender.token"))
	if err != nil {
		t.Fatal(err)
	}
	token := strings.TrimSpace(string(tok))

	// A letter to a demo company (seed 1's companies are in the demo
	// registry), and another demo company as the trusted third party.
	cfg := e2eGen(1)
	cfg.CitizenShare, cfg.CompanyShare = -1, 1
	g := memo.NewGenerator(cfg)
	body, u := g.Next(nil)
	uuid := strings.ToLower(u.String())
	m, err := memo.Parse(body)
	if err != nil {
		t.Fatal(err)
	}
	company := m.Header.Recipient.RecipientID
	_, cvrs, _ := genRecipients(1)
	trusted := cvrs[0]
	if trusted == company {
		trusted = cvrs[1]
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	view, err := registry.NewView(ctx, []kgo.Opt{kgo.SeedBrokers(brokers)})
	if err != nil {
		t.Fatal(err)
	}
	defer view.Close()
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	if err := view.WaitCaughtUp(wctx); err != nil {
		t.Fatal(err)
	}
	c, ok := view.Company(company)
	if !ok || c.Mailbox == nil {
		t.Fatalf("demo company %s has no mailbox", company)
	}
	err = registry.NewWriter(cl, view).Put(ctx, "test", &registry.Company{CVR: company, Status: registry.Registered, Mailbox: c.MailboxID,
		Forward: registry.Forwarding{Kind: registry.ForwardSecureMailbox, To: trusted}})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // route's View tails the change within milliseconds

	req, _ := http.NewRequest("POST", api+"/apis/v1/memos/?memo-message-uuid="+uuid, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/xml")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("send: HTTP %d", resp.StatusCode)
	}

	cp := forward.CopyUUID(uuid, trusted)
	want := []string{uuid + " MEMO_SEND_ROUTED", uuid + " MESSAGE_FORWARDED_TO_TRUSTED", cp + " MEMO_SEND_ROUTED", cp + " MEMO_SEND_READY_FOR_FETCH"}
	deadline := time.Now().Add(60 * time.Second)
	var got []string
	for time.Now().Before(deadline) {
		got = got[:0]
		rows, err := conn.Query(context.Background(), "SELECT message_uuid, tag FROM "+db+".events WHERE message_uuid IN ('"+uuid+"', '"+cp+"') ORDER BY message_uuid, tag")
		if err == nil {
			for rows.Next() {
				var mu, tag string
				if err := rows.Scan(&mu, &tag); err != nil {
					t.Fatal(err)
				}
				got = append(got, mu+" "+tag)
			}
			rows.Close()
		}
		all := true
		for _, w := range want {
			if !slices.Contains(got, w) {
				all = false
			}
		}
		if all {
			t.Logf("events: %v", got)
			return
		}
		time.Sleep(300 * time.Millisecond)
	}
	t.Fatalf("events %v, want at least %v", got, want)
}
