package chaos

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/memoflow/memoflow/internal/chconn/chtest"
	"github.com/memoflow/memoflow/internal/sendclient"
	"github.com/memoflow/memoflow/schemas/memo"
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

const senderOrg = "12345678"

// TestChaosShort is the CI version of the chaos scenario over the stages
// that exist: the broker, ingest, two validate replicas, the event-log and
// receipts sinks as separate processes; while a resumable send runs,
// stage replicas (ingest included) are SIGKILLed and restarted and the
// broker is SIGKILLed and restarted from its data dir. The verdict, read
// from outside: the event log holds exactly one row per expected event,
// no consumer group lags, and the DLQ is empty.
func TestChaosShort(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos: skipped under -short")
	}
	conn, chcfg := chtest.Conn(t)
	dir := t.TempDir()
	bin := buildBinary(t, dir)
	db := chtest.Database(t, conn)

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	topo, err := Start(ctx, Options{
		Bin: bin, Dir: dir, ClickHouseAddr: chcfg.Addr, Database: db, SenderOrg: senderOrg,
		Stages: map[string]int{"ingest": 1, "validate": 2, "eventlog": 1, "receipts": 1},
		// Small sink batches so kills land between and inside inserts.
		ExtraArgs: []string{"--sink-batch-records", "2000", "--sink-batch-wait", "200ms"},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		topo.Close()
		if t.Failed() {
			for _, l := range topo.Logs() {
				b, _ := os.ReadFile(l)
				if len(b) > 3000 {
					b = b[len(b)-3000:]
				}
				t.Logf("--- %s (tail)\n%s", filepath.Base(l), b)
			}
		}
	}()
	var tl Timeline
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	go topo.Watch(wctx, &tl)

	const n = 20000
	plan := Plan(PlanConfig{Seed: 7, Duration: 20 * time.Second, StageKills: 4, BrokerKills: 1, MaxPause: 2 * time.Second},
		[]string{"ingest-1", "validate-1", "validate-2", "eventlog-1", "receipts-1"})
	for _, f := range plan {
		t.Logf("fault %s", f)
	}
	faults := make(chan error, 1)
	go func() { faults <- Run(ctx, topo, nil, plan, &tl) }()

	// The sender: resumable, retrying through restarts of ingest and the
	// broker (503s and refused connections), as a mass sender would.
	journal := filepath.Join(dir, "send.journal")
	gen := memo.GenConfig{Seed: 99, Now: time.Now().UTC().Truncate(24 * time.Hour), SenderCVRs: []string{senderOrg}}
	accepted := 0
	for round := 0; round < 20 && accepted < n; round++ {
		sum, err := sendclient.Send(ctx, sendclient.NewGenSource(n, gen), sendclient.Options{
			URL: topo.APIURL, Token: topo.SenderToken, BatchSize: 250, Concurrency: 2, Journal: journal, MaxAttempts: 30,
		})
		if sum != nil {
			accepted += sum.Accepted
			if sum.Rejected > 0 {
				t.Fatalf("rejected %d messages: %v", sum.Rejected, sum.RejectedByCode)
			}
		}
		if err != nil {
			tl.Add("sender", "send", "stopped, resuming from the journal: "+err.Error())
			time.Sleep(time.Second)
		}
	}
	if accepted != n {
		t.Fatalf("accepted %d of %d messages", accepted, n)
	}
	if err := <-faults; err != nil {
		t.Fatalf("fault schedule: %v", err)
	}

	want := map[string]uint64{"MEMO_MASS_SEND_RECEIVED": n, "MEMO_SEND_VALIDATED": n}
	v, err := Judge(ctx, conn, db, topo.KafkaAddr, want, []string{"validate", "eventlog", "receipts"}, 120*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range v.Problems {
		t.Error(p)
	}
	kills := 0
	for _, p := range topo.all() {
		kills += p.Kills()
	}
	t.Logf("chaos short: %d messages, %d kills (%d broker), %d unexpected exits restarted, event log exact",
		n, kills, topo.Broker.Kills(), tl.Count("exit"))
	for _, e := range tl.Entries() {
		t.Logf("%s %-10s %-12s %s", e.T.Format("15:04:05.000"), e.Kind, e.Target, e.Note)
	}
}
