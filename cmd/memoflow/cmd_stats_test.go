package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/segmentio/encoding/json"

	"github.com/memoflow/memoflow/internal/chconn/chtest"
	"github.com/memoflow/memoflow/internal/sendclient"
	"github.com/memoflow/memoflow/schemas/memo"
	"github.com/memoflow/memoflow/stages/eventquery"
)

// TestStatsTable checks the table layout: text left, numbers right, every
// column starting at the same place on every line, and hostile bytes from
// senders' ids not reaching the terminal.
func TestStatsTable(t *testing.T) {
	p := &eventquery.StatsPage{
		DateFrom: "2026-10-01", DateTo: "2026-10-31", Dimensions: []string{"day", "contactPoint"},
		Rows: []eventquery.StatsRow{
			{Key: map[string]string{"day": "2026-10-01", "contactPoint": "cp-1"}, Events: 7, SizeBytes: 1234567},
			{Key: map[string]string{"day": "2026-10-02", "contactPoint": ""}, Events: 123456, SizeBytes: 12},
			{Key: map[string]string{"day": "2026-10-02", "contactPoint": "køb\x1b[2Jx"}, Events: 1, SizeBytes: 1},
		},
		Totals: eventquery.StatsTotal{Events: 123464, SizeBytes: 1234580},
	}
	var b bytes.Buffer
	printStatsTable(&b, p)
	want := "" +
		"day         contactPoint  events    bytes\n" +
		"2026-10-01  cp-1               7  1234567\n" +
		"2026-10-02  -             123456       12\n" +
		"2026-10-02  køb?[2Jx           1        1\n" +
		"total                     123464  1234580\n" +
		"(2026-10-01 to 2026-10-31, 3 rows)\n"
	if b.String() != want {
		t.Errorf("table:\n%s\nwant:\n%s", b.String(), want)
	}

	b.Reset()
	printStatsTable(&b, &eventquery.StatsPage{DateFrom: "2026-10-01", DateTo: "2026-10-31",
		Rows: []eventquery.StatsRow{{Key: map[string]string{}, Events: 5, SizeBytes: 50}}, Totals: eventquery.StatsTotal{Events: 5, SizeBytes: 50}})
	if want := "events  bytes\n     5     50\n(2026-10-01 to 2026-10-31, 1 rows)\n"; b.String() != want {
		t.Errorf("total only:\n%q\nwant\n%q", b.String(), want)
	}
}

// TestStatsEndToEnd runs `memoflow run` in-process (every stage, the
// eventquery stage included), sends messages as the demo sender, and then
// asks `memoflow stats` as the demo log administrator: the table, --json
// and --csv agree with the event log's raw counts, refusals exit 1, usage
// errors 2, and the statistics read itself reaches the event log through
// Kafka and the eventlog stage.
func TestStatsEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test skipped in -short mode")
	}
	conn, db, dir, ready := startDemoRun(t, "stats")
	api := ready["api"]
	token := func(name string) string {
		b, err := os.ReadFile(filepath.Join(dir, "demo", name+".token"))
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	today := time.Now().UTC().Truncate(24 * time.Hour)
	sum, err := sendclient.Send(context.Background(),
		sendclient.NewGenSource(40, memo.GenConfig{Seed: 21, Now: today, SenderCVRs: []string{demoOrg}}),
		sendclient.Options{URL: api, Token: token("sender"), BatchSize: 20})
	if err != nil || sum.Accepted != 40 {
		t.Fatalf("send: %v %+v", err, sum)
	}
	raw := func(where string) map[string]uint64 {
		out := map[string]uint64{}
		rows, err := conn.Query(context.Background(), "SELECT tag, count() FROM "+db+".events WHERE "+where+" GROUP BY tag")
		if err != nil {
			return out
		}
		defer rows.Close()
		for rows.Next() {
			var tag string
			var n uint64
			_ = rows.Scan(&tag, &n)
			out[tag] = n
		}
		return out
	}
	sent := "sender_org = '" + demoOrg + "' AND tag != 'STATISTICS_READ'"
	deadline := time.Now().Add(60 * time.Second)
	for raw(sent)["MEMO_SEND_VALIDATED"] != 40 {
		if time.Now().After(deadline) {
			t.Fatalf("the event log holds %v, want 40 validated messages", raw(sent))
		}
		time.Sleep(300 * time.Millisecond)
	}
	admin := token("admin")
	from := today.AddDate(0, 0, -1).Format(time.DateOnly)
	to := today.AddDate(0, 0, 1).Format(time.DateOnly)
	stats := func(args ...string) (int, string, string) {
		return runCLI(t, append([]string{"stats", "--url", api, "--from", from, "--to", to}, args...)...)
	}

	// --json: the API's page, equal to the raw counts per tag. The later
	// stages (route, deliver) may still be writing events when the 40th
	// validation lands, so the comparison is retried until both sides
	// agree on a settled log: a stats API that miscounts never agrees.
	var want, got map[string]uint64
	jsonReads := 0
	for {
		want = raw(sent)
		jsonReads++
		code, out, errs := stats("--token", admin, "--dimensions", "tag", "--json")
		if code != 0 {
			t.Fatalf("stats --json: exit %d: %s", code, errs)
		}
		var page eventquery.StatsPage
		if err := json.Unmarshal([]byte(out), &page); err != nil {
			t.Fatalf("--json printed %q: %v", out, err)
		}
		got = map[string]uint64{}
		for _, r := range page.Rows {
			if r.Key["tag"] != "STATISTICS_READ" {
				got[r.Key["tag"]] = r.Events
			}
		}
		if fmt.Sprint(got) == fmt.Sprint(want) && fmt.Sprint(raw(sent)) == fmt.Sprint(want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stats per tag %v, raw %v", got, want)
		}
		time.Sleep(500 * time.Millisecond)
	}

	// The table, with the token from the environment.
	t.Setenv("MEMOFLOW_TOKEN", admin)
	code, out, errs := stats("-d", "tag", "--tag", "MEMO_SEND_VALIDATED,MEMO_MASS_SEND_RECEIVED")
	if code != 0 {
		t.Fatalf("stats: exit %d: %s", code, errs)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 5 || !strings.HasPrefix(lines[0], "tag") || !strings.HasPrefix(lines[3], "total") ||
		!strings.Contains(lines[3], strconv.FormatUint(want["MEMO_SEND_VALIDATED"]+want["MEMO_MASS_SEND_RECEIVED"], 10)) {
		t.Fatalf("table:\n%s", out)
	}

	// --csv: the API's CSV.
	code, out, errs = stats("-d", "day,tag", "--csv")
	if code != 0 {
		t.Fatalf("stats --csv: exit %d: %s", code, errs)
	}
	recs, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil || strings.Join(recs[0], ",") != "day,tag,events,sizeBytes" {
		t.Fatalf("--csv printed %q: %v", out, err)
	}

	// Refusals and usage errors.
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"--sender-organisation", "87654321"}, 1, "EVENTQUERY_ORGANISATION_FORBIDDEN"},
		{[]string{"--token", token("sender")}, 1, "AUTH_FORBIDDEN"},
		{[]string{"-d", "colour"}, 1, "EVENTQUERY_BAD_PARAMETER"},
		{[]string{"--csv", "--json"}, 2, "exclude"},
		{[]string{"--url", "http://127.0.0.1:1"}, 1, "not reachable"},
	} {
		code, _, errs := stats(tc.args...)
		if code != tc.code || !strings.Contains(errs, tc.msg) {
			t.Errorf("stats %v: exit %d %q, want %d with %q", tc.args, code, errs, tc.code, tc.msg)
		}
	}
	t.Setenv("MEMOFLOW_TOKEN", "")
	if code, _, errs := stats(); code != 2 || !strings.Contains(errs, "no token") {
		t.Errorf("no token: exit %d %q", code, errs)
	}

	// Every statistics read went through memo.events and the eventlog stage
	// into ClickHouse, with the administrator as the actor: every --json
	// attempt plus the table and the CSV, and the 3 refused for a bad
	// parameter or another organisation were not run, so not logged.
	deadline = time.Now().Add(60 * time.Second)
	for {
		var n uint64
		err := conn.QueryRow(context.Background(), "SELECT count() FROM "+db+".events WHERE tag = 'STATISTICS_READ' AND actor = 'demo-admin' AND sender_org = ?", demoOrg).Scan(&n)
		if err == nil && n == uint64(jsonReads+2) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d STATISTICS_READ events in the event log (%v), want %d", n, err, jsonReads+2)
		}
		time.Sleep(300 * time.Millisecond)
	}

	// The other endpoints of the stage answer too: one sent message's trail.
	var uuid string
	if err := conn.QueryRow(context.Background(), "SELECT any(message_uuid) FROM "+db+".events WHERE tag = 'MEMO_SEND_VALIDATED'").Scan(&uuid); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, api+"/apis/v1/events/"+uuid+"/proof", nil)
	req.Header.Set("Authorization", "Bearer "+admin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var pr eventquery.Proof
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &pr) != nil || pr.MessageUUID != uuid || len(pr.Events) < 2 {
		t.Fatalf("proof of %s: %d %s", uuid, resp.StatusCode, body)
	}
}

// startDemoRun starts `memoflow run` (every stage, the demo) on a fresh
// var dir and a ClickHouse database of its own, named after name and
// dropped after the test, and returns the connection, the database, the
// var dir and the ready line's key=values (api, kafka, stages, ...).
func startDemoRun(t *testing.T, name string) (driver.Conn, string, string, map[string]string) {
	t.Helper()
	conn, chcfg := chtest.Conn(t)
	db := fmt.Sprintf("memoflow_%s_%d", name, time.Now().UnixNano())
	t.Cleanup(func() { _ = conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db) })
	dir := t.TempDir()
	ready := startRunReady(t, "--var-dir", dir, "--broker-port", "0", "--http-addr", "127.0.0.1:0",
		"--clickhouse-addr", chcfg.Addr, "--clickhouse-database", db, "--sink-batch-wait", "200ms", "--log-level", "warn")
	return conn, db, dir, ready
}

// startRun starts `memoflow run` with args in-process and returns the API's
// base URL; the test's cleanup stops it.
func startRun(t *testing.T, args ...string) string {
	t.Helper()
	return startRunReady(t, args...)["api"]
}

// startRunReady is startRun returning every key=value of the ready line
// (api, kafka, stages, ...).
func startRunReady(t *testing.T, args ...string) map[string]string {
	t.Helper()
	root := newRootCmd()
	pr, pw := io.Pipe()
	root.SetOut(pw)
	root.SetErr(io.Discard)
	root.SetArgs(append([]string{"run"}, args...))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx); pw.Close() }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("memoflow run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("memoflow run did not stop within 30s")
		}
	})
	ready := map[string]string{}
	sc := bufio.NewScanner(pr)
	for sc.Scan() {
		if line := sc.Text(); strings.HasPrefix(line, "memoflow ready:") {
			for _, f := range strings.Fields(line) {
				if k, v, ok := strings.Cut(f, "="); ok {
					ready[k] = v
				}
			}
			break
		}
	}
	go io.Copy(io.Discard, pr)
	if ready["api"] == "" {
		t.Fatal("memoflow run never printed its ready line")
	}
	return ready
}
