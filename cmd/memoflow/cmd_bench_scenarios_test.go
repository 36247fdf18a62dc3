package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/encoding/json"

	"github.com/memoflow/memoflow/internal/chconn/chtest"
)

// runBenchScenario runs `memoflow bench ARGS...` against the embedded
// broker and the real ClickHouse and returns the JSON report; the run
// must exit 0.
func runBenchScenario(t *testing.T, args ...string) (map[string]any, string) {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end bench skipped in -short mode")
	}
	_, chcfg := chtest.Conn(t)
	jsonPath := filepath.Join(t.TempDir(), "r.json")
	var out bytes.Buffer
	root := newRootCmd()
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(append(append([]string{"bench"}, args...), "--cache-dir", filepath.Join(os.TempDir(), "memoflow-bench-test"),
		"--clickhouse-addr", chcfg.Addr, "--sink-batch-wait", "200ms", "--stall-timeout", "30s", "--json", jsonPath))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := root.ExecuteContext(ctx); err != nil {
		t.Fatalf("bench %v: %v\n%s", args, err, out.String())
	}
	b, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	var rep map[string]any
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if rep["ok"] != true || rep["lost"] != float64(0) {
		t.Fatalf("report ok=%v lost=%v\n%s", rep["ok"], rep["lost"], out.String())
	}
	return rep, out.String()
}

func detail(rep map[string]any, name string) (float64, bool) {
	ds, _ := rep["details"].([]any)
	for _, d := range ds {
		m, _ := d.(map[string]any)
		if m["name"] == name {
			v, _ := m["value"].(float64)
			return v, true
		}
	}
	return 0, false
}

func tags(rep map[string]any) map[string]float64 {
	out := map[string]float64{}
	m, _ := rep["events_by_tag"].(map[string]any)
	for k, v := range m {
		out[k], _ = v.(float64)
	}
	return out
}

// TestBenchMassSendWhole: the default stages take every message through
// schedule, route and deliver to the recipient simulator; the event log
// holds five rows per message (received, validated, routed, delivered,
// business receipt), exactly; the null pipeline has the same four hops.
func TestBenchMassSendWhole(t *testing.T) {
	rep, out := runBenchScenario(t, "mass-send", "--messages", "1500", "--batch-size", "500", "--seed", "44", "--null-records", "1500")
	if !strings.Contains(rep["arrival_point"].(string), "recipient simulator") {
		t.Fatalf("arrival point %v", rep["arrival_point"])
	}
	if rep["events_expected"] != float64(7500) || rep["events_in_clickhouse"] != float64(7500) {
		t.Fatalf("events expected %v, in ClickHouse %v\n%s", rep["events_expected"], rep["events_in_clickhouse"], out)
	}
	tg := tags(rep)
	if tg["MEMO_SEND_ROUTED"] != 1500 || tg["BUSINESS_RECEIPT_CREATED"] != 1500 || tg["NEM_SMS_SENT_SUCCESSFULLY"] == 0 ||
		tg["MEMO_AVAILABLE_TO_RECIPIENT"]+tg["NEM_SMS_SENT_SUCCESSFULLY"] != 1500 {
		t.Fatalf("events by tag %v", tg)
	}
	null, _ := rep["null"].(map[string]any)
	if null["hops"] != float64(4) || rep["ratio"].(float64) <= 0 {
		t.Fatalf("null %v ratio %v", null, rep["ratio"])
	}
}

// TestBenchValueDateRelease: held messages are released only when the
// date comes, all of them reach their recipients with the live ones, and
// the schedule stage's two events are in the log for each.
func TestBenchValueDateRelease(t *testing.T) {
	rep, out := runBenchScenario(t, "value-date-release", "--messages", "1000", "--batch-size", "500", "--seed", "45",
		"--live-messages", "300", "--live-rate", "150", "--null-records", "-1")
	tg := tags(rep)
	if tg["DELAYED_MEMO_SEND_VALIDATED_AWAITING_DELAY"] != 1000 || tg["DELAYED_MEMO_SEND_SENT"] != 1000 || tg["MEMO_SEND_ROUTED"] != 1300 {
		t.Fatalf("events by tag %v\n%s", tg, out)
	}
	if r, ok := detail(rep, "release rate"); !ok || r <= 0 {
		t.Fatalf("release rate %v %v\n%s", r, ok, out)
	}
	if _, ok := detail(rep, "live before p99"); !ok {
		t.Fatalf("no live latency before the release\n%s", out)
	}
}

// TestBenchFailingRecipients: messages to the down systems go to the
// retry topics and arrive once the systems are back; none is lost.
func TestBenchFailingRecipients(t *testing.T) {
	rep, out := runBenchScenario(t, "failing-recipients", "--messages", "2000", "--batch-size", "500", "--seed", "46", "--null-records", "-1")
	retried, _ := detail(rep, "via retry topics")
	after, _ := detail(rep, "delivered after recovery")
	if retried == 0 || after != retried {
		t.Fatalf("via retry %v, delivered after recovery %v\n%s", retried, after, out)
	}
	if r, ok := detail(rep, "healthy ratio"); !ok || r <= 0 {
		t.Fatalf("healthy ratio %v\n%s", r, out)
	}
	if tags(rep)["MEMO_SEND_SENT_TO_RECIPIENT_SYSTEM_FAILED"] < retried {
		t.Fatalf("fewer failed attempts than retried messages: %v", tags(rep))
	}
}

// TestBenchLarge: 10 MB documents through the claim check, one by one.
func TestBenchLarge(t *testing.T) {
	rep, out := runBenchScenario(t, "large", "--messages", "3", "--seed", "47", "--null-records", "200")
	mix, _ := rep["mix"].(map[string]any)
	if mix["median_bytes"].(float64) < 13<<20 || rep["accepted"] != float64(3) {
		t.Fatalf("mix %v accepted %v\n%s", mix, rep["accepted"], out)
	}
	if tags(rep)["MEMO_SEND_RECEIVED"] != 3 || tags(rep)["MEMO_AVAILABLE_TO_RECIPIENT"] != 3 {
		t.Fatalf("events by tag %v", tags(rep))
	}
	if v, ok := detail(rep, "body throughput"); !ok || v <= 0 {
		t.Fatalf("body throughput %v\n%s", v, out)
	}
}

// TestBenchProtocolMix: --protocol-mix moves shares of the push systems to
// in-process SFTP and SMTP recipients; every message still arrives (the
// verdict counts all three), each protocol carries some, and the event
// log is exact.
func TestBenchProtocolMix(t *testing.T) {
	rep, out := runBenchScenario(t, "mass-send", "--messages", "400", "--direct", "--protocol-mix", "rest=50,sftp=25,smtp=25")
	var sum float64
	for _, p := range []string{"REST push", "SFTP", "SMTP"} {
		n, ok := detail(rep, "arrivals over "+p)
		if !ok || n == 0 {
			t.Fatalf("no arrivals over %s (%v)\n%s", p, ok, out)
		}
		sum += n
	}
	if sum != 400 || rep["events_expected"] != rep["events_in_clickhouse"] {
		t.Fatalf("arrivals %v of 400, events %v of %v\n%s", sum, rep["events_in_clickhouse"], rep["events_expected"], out)
	}
}
