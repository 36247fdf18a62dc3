package chaos

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/memoflow/memoflow/internal/chconn/chtest"
)

// buildBinary builds memoflow once into dir.
func buildBinary(t *testing.T, dir string) string {
	t.Helper()
	root, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "memoflow")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/memoflow")
	cmd.Dir = filepath.Dir(strings.TrimSpace(string(root)))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// shortMessages is the CI scenario's size (the "about 50,000").
const shortMessages = 50000

// TestChaosShort is the CI version of the chaos scenario (Run): the broker
// and every stage as separate processes (two replicas of validate and
// deliver, receipt-push), a ClickHouse server of the run's own, a recipient
// simulator and the sender's receipt endpoint; while a resumable send of
// shortMessages runs, three stage replicas and the ingest API are SIGKILLed
// and restarted, one recipient system is slow (10 s) for 10 s, 10% of the
// minor mailbox providers answer 503 for 30 s, and ClickHouse is stopped
// for 8 s. The broker is not killed here by default (`make chaos` kills it;
// CHAOS_SHORT_BROKER_KILLS=1 adds a broker kill: 4 of 4 such runs passed
// with 0 double-counted events and 0 duplicate pushes once the delay
// consumers became transactional, where 1 of 4 had counted one delivery
// event twice before; docs/reliability.md). The verdict, read from
// outside: every
// message reached a final delivery state exactly once in the event log and
// none failed, every pushed message reached the simulator with its own
// messageUUID as the idempotency key (duplicates reported), its final
// business receipt reached the sender, no consumer group (the delay topics'
// and receipt push's included) has records left, the DLQ is empty. The
// faults must have taken effect (pushes failed, the sender retried).
//
// 50,000 messages, as the issue asks: 111 s with the build on the 2-core
// machine when it is quiet; under other sessions' load (average 10–20) it
// stretches to about 4–5 minutes (docs/reliability.md).
func TestChaosShort(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos: skipped under -short")
	}
	chtest.Conn(t) // installs ClickHouse when missing (skips without it, fails in CI)
	dir := t.TempDir()
	bin := buildBinary(t, dir)
	root, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatal(err)
	}
	// CHAOS_SHORT_BROKER_KILLS=1 adds broker kills to the run
	// (how the runs in docs/reliability.md were made).
	brokerKills := 0
	if v := os.Getenv("CHAOS_SHORT_BROKER_KILLS"); v != "" {
		if brokerKills, err = strconv.Atoi(v); err != nil || brokerKills < 0 {
			t.Fatalf("CHAOS_SHORT_BROKER_KILLS=%q: want a count", v)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	rep, err := Run(ctx, Config{
		Bin: bin, Dir: dir, Root: filepath.Dir(strings.TrimSpace(string(root))), Messages: shortMessages,
		Plan: PlanConfig{Seed: 7, Duration: 30 * time.Second, StageKills: 3, BrokerKills: brokerKills, MaxPause: 2 * time.Second,
			ClickHouseOutages: 1, ClickHouseDown: 8 * time.Second, IngestKills: 1,
			// 30 s: each minor mailbox provider gets about 0.5% of the
			// post, so a shorter outage can fall entirely into a pause of
			// delivery (a rebalance after a kill) and see no push (20 s
			// did once, with the send paced).
			RecipientOutages: 1, RecipientDown: 30 * time.Second, SlowRecipients: 1, SlowFor: 10 * time.Second},
		Targets:      []string{"ingest-1", "validate-1", "validate-2", "schedule-1", "route-1", "deliver-1", "deliver-2", "eventlog-1"},
		JudgeTimeout: 4 * time.Minute,
		// 750 messages/s at most: the send spans the 30 s of faults even
		// on a quiet machine (unpaced, it was over before the ingest kill).
		SendBatchesPerSecond: 3,
	})
	if err != nil {
		t.Log(LogTails(dir, 3000))
		t.Fatal(err)
	}
	for _, p := range rep.Problems() {
		t.Error(p)
	}
	if rep.Lost != 0 {
		t.Errorf("%d messages lost", rep.Lost)
	}
	// The faults took effect, so the checks above were not vacuous.
	if rep.SenderErrors == 0 {
		t.Error("the sender saw no failed request: the ingest kill did not land mid-send")
	}
	if rep.Simulator.Failed == 0 {
		t.Error("no push failed: the recipient outage did not take effect, so redelivery was not exercised")
	}
	// Exempt citizens' letters go to the print outbox, not to a push.
	if rep.Keys.Pushes < int64(shortMessages-rep.Outbox) {
		t.Errorf("the key check saw %d pushes for %d messages (%d of them in the print outbox)", rep.Keys.Pushes, shortMessages, rep.Outbox)
	}
	if rep.Receipts.Final+rep.Outbox != shortMessages || rep.Outbox == 0 {
		t.Errorf("%d messages with a final business receipt at the sender and %d in the print outbox, want %d together (and some exempt)",
			rep.Receipts.Final, rep.Outbox, shortMessages)
	}
	kinds := map[string]int{}
	for _, e := range rep.Timeline {
		kinds[e.Kind+" "+e.Target]++
		kinds[e.Kind]++
	}
	for _, want := range []string{"kill-stage ingest-1", "clickhouse", "recipients-down", "slow-recipient"} {
		if kinds[want] == 0 {
			t.Errorf("the timeline has no %q", want)
		}
	}
	if len(rep.Recovery) != len(rep.Faults) {
		t.Errorf("%d recovery measurements for %d faults", len(rep.Recovery), len(rep.Faults))
	}
	if len(rep.Slow) != 1 {
		t.Errorf("%d slow-recipient reports, want 1", len(rep.Slow))
	}
	if t.Failed() {
		t.Log(LogTails(dir, 3000))
	}
	t.Logf("chaos short: %d messages in %.1fs, %d kills (%d broker), %d unexpected exits, %d sender requests retried; events %v; simulator %s; keys %+v; receipts %+v; duplicate pushes %+v",
		rep.Messages, rep.Seconds, rep.Kills, rep.BrokerKills, rep.Exits, rep.SenderErrors, rep.Verdict.EventsFound, rep.Simulator.Summary(), rep.Keys, rep.Receipts, rep.DupCauses)
	if rep.DupCauses.Total != rep.Duplicates {
		t.Errorf("the duplicate watch saw %d repeats, the simulator %d", rep.DupCauses.Total, rep.Duplicates)
	}
	for _, r := range rep.Recovery {
		t.Logf("recovery %-14s %-20s at %5.1fs ended %5.1fs: %5.1fs to 80%% of %.0f/s within=%v %s", r.Kind, r.Target, r.At, r.Ended, r.Second, r.Rate, r.Within, r.Note)
	}
	for _, sr := range rep.Slow {
		t.Logf("slow %s for %.0fs: others %.0f/s before, %.0f/s during (ratio %.2f)", sr.System, sr.For, sr.Before, sr.During, sr.Ratio)
	}
	for _, e := range rep.Timeline {
		t.Logf("%s %-11s %-12s %s", e.T.Format("15:04:05.000"), e.Kind, e.Target, e.Note)
	}
	// The report renders.
	if err := rep.WriteJSON(filepath.Join(dir, "chaos.json")); err != nil {
		t.Fatal(err)
	}
	if err := rep.WriteHTML(filepath.Join(dir, "chaos.html")); err != nil {
		t.Fatal(err)
	}
	// The JSON reads back, and its recovery figures derive again the same
	// (memoflow bench chaos --from).
	back, err := ReadReport(filepath.Join(dir, "chaos.json"))
	if err != nil {
		t.Fatal(err)
	}
	back.Recompute()
	if len(back.Recovery) != len(rep.Recovery) || back.RecoveryMiss != rep.RecoveryMiss || len(back.Slow) != len(rep.Slow) {
		t.Errorf("recomputed from JSON: %d recoveries (%d over), %d slow; the run had %d (%d), %d",
			len(back.Recovery), back.RecoveryMiss, len(back.Slow), len(rep.Recovery), rep.RecoveryMiss, len(rep.Slow))
	}
	html, _ := os.ReadFile(filepath.Join(dir, "chaos.html"))
	for _, want := range []string{"echarts.init", "kill-broker", "clickhouse"} {
		if !strings.Contains(string(html), want) {
			t.Errorf("chaos.html lacks %q", want)
		}
	}
}
