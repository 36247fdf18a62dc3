package main

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/memoflow/memoflow/internal/sendclient"
	"github.com/memoflow/memoflow/schemas/memo"
)

// TestEndToEnd runs `memoflow run` in-process (embedded Kafka on a free
// port, the real ClickHouse), sends messages through the HTTP API and
// checks the event log: valid and invalid messages, a batch, a resend.
func TestEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test skipped in -short mode")
	}
	conn, db, dir, ready := startDemoRun(t, "e2e")
	api := ready["api"]
	tok, err := os.ReadFile(filepath.Join(dir, "demo", "sender.token"))
	if err != nil {
		t.Fatal(err)
	}
	token := strings.TrimSpace(string(tok))

	// One valid message, one invalid (schema), through the single API.
	g := memo.NewGenerator(e2eGen(1))
	valid, u := g.Next(nil)
	uuid := strings.ToLower(u.String())
	post := func(body []byte, uuid string) int {
		req, _ := http.NewRequest("POST", api+"/apis/v1/memos/?memo-message-uuid="+uuid, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/xml")
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if s := post(valid, uuid); s != 201 {
		t.Fatalf("valid message answered %d", s)
	}
	invalid, u2 := g.Next(nil)
	invalid = bytes.Replace(invalid, []byte("<memo:messageType>"), []byte("<memo:messageType>X"), 1)
	if s := post(invalid, strings.ToLower(u2.String())); s != 201 {
		t.Fatalf("schema-invalid message answered %d (ingest accepts well-formed XML; validate rejects)", s)
	}
	// A batch of 300, and the same batch again (resent: deduplicated).
	for i := 0; i < 2; i++ {
		sum, err := sendclient.Send(context.Background(),
			sendclient.NewGenSource(300, e2eGen(2)),
			sendclient.Options{URL: api, Token: token, BatchSize: 100})
		if err != nil || sum.Accepted != 300 {
			t.Fatalf("send %d: %v %+v", i, err, sum)
		}
	}
	// Every valid message is routed and reaches its destination once:
	// digital post to the citizen's mailbox provider, or print for an
	// exempt citizen (the demo registry exempts 1 in 50).
	want := map[string]uint64{
		"MEMO_SEND_RECEIVED": 2, "MEMO_MASS_SEND_RECEIVED": 300,
		"MEMO_SEND_VALIDATED": 301, "MEMO_SEND_VALIDATION_FAILED": 1,
		"MEMO_SEND_ROUTED": 301, "delivered": 301,
	}
	delivered := map[string]bool{
		"MEMO_AVAILABLE_TO_RECIPIENT": true, "MEMO_SEND_READY_FOR_FETCH": true,
		"MEMO_SEND_SENT_TO_RECIPIENT_SYSTEM": true, "PHYSICAL_LETTER_SENT": true,
	}
	var got map[string]uint64
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		got = map[string]uint64{}
		rows, err := conn.Query(context.Background(), "SELECT tag, count() FROM "+db+".events GROUP BY tag")
		if err == nil {
			for rows.Next() {
				var tag string
				var n uint64
				_ = rows.Scan(&tag, &n)
				got[tag] = n
				if delivered[tag] {
					got["delivered"] += n
				}
			}
			rows.Close()
		}
		done := true
		for k, w := range want {
			if got[k] != w {
				done = false
			}
		}
		if done {
			var dups uint64
			if err := conn.QueryRow(context.Background(), "SELECT count() FROM (SELECT tag, message_uuid, count() AS c FROM "+db+
				".events WHERE message_uuid != '' GROUP BY tag, message_uuid HAVING c > 1)").Scan(&dups); err != nil {
				t.Fatal(err)
			}
			if dups != 0 {
				t.Fatalf("%d (tag, messageUUID) pairs in the event log more than once: %v", dups, got)
			}
			t.Logf("event log: %v", got)
			return
		}
		time.Sleep(300 * time.Millisecond)
	}
	t.Fatalf("event log holds %v, want %v", got, want)
}

// e2eGen makes messages the demo registry can route deterministically:
// digital post from the demo authority to the citizens it registers for
// seeds 1-3, no value date (nothing held), no NemSMS.
func e2eGen(seed uint64) memo.GenConfig {
	return memo.GenConfig{Seed: seed, Now: time.Now().UTC().Truncate(24 * time.Hour), SenderCVRs: []string{demoOrg},
		CitizenShare: 1, CompanyShare: -1, AuthorityShare: -1, NemSMSShare: -1, ValueDateShare: -1}
}
