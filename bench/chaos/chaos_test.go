package chaos

import (
	"context"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/memoflow/memoflow/internal/chconn"
	"github.com/memoflow/memoflow/internal/chconn/chtest"
	"github.com/memoflow/memoflow/internal/recipientsim"
	"github.com/memoflow/memoflow/internal/sendclient"
	"github.com/memoflow/memoflow/pipeline"
	"github.com/memoflow/memoflow/schemas/memo"
	"github.com/memoflow/memoflow/schemas/registry"
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

// Delivered is the set of tags that end a message's delivery.
const delivered = "MEMO_AVAILABLE_TO_RECIPIENT|MEMO_SEND_READY_FOR_FETCH|MEMO_SEND_SENT_TO_RECIPIENT_SYSTEM|PHYSICAL_LETTER_SENT"

// seedRegistry writes a small synthetic registry whose push systems point
// at the recipient simulator, and returns its registered citizens.
func seedRegistry(ctx context.Context, addr, simURL string) ([]string, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.AllowAutoTopicCreation())
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	var recs []*kgo.Record
	var citizens []string
	err = registry.Generate(registry.GenConfig{Seed: 1, Citizens: 2000, Companies: 20, Authorities: 1, MailboxProviders: 2, NemSMSShare: -1}, func(c registry.Change) error {
		switch e := c.Entity.(type) {
		case *registry.System:
			if e.Protocol == registry.RestPush {
				e.Endpoint, e.Credentials = simURL+recipientsim.PushPath(e.ID), ""
			}
		case *registry.Citizen:
			citizens = append(citizens, e.CPR)
		}
		recs = append(recs, c.Record(pipeline.TopicRegistry))
		return nil
	})
	if err != nil {
		return nil, err
	}
	return citizens, cl.ProduceSync(ctx, recs...).FirstErr()
}

// TestChaosShort is the CI version of the chaos scenario: the broker and
// every stage as separate processes (two replicas of validate and
// deliver), a recipient simulator for the push systems; while a resumable
// send runs, stage replicas (ingest included) and the broker are SIGKILLed
// and restarted. The verdict, read from outside: every message reached a
// final delivery state exactly once in the event log, the simulator got
// every pushed message (duplicates reported), no consumer group has
// records left, the DLQ is empty.
func TestChaosShort(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos: skipped under -short")
	}
	// The event log's server is this run's own: the scenario stops it.
	chtest.Conn(t) // installs and starts ClickHouse when missing (skips without it)
	dir := t.TempDir()
	bin := buildBinary(t, dir)
	root, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatal(err)
	}
	ch, err := NewScriptClickHouse(filepath.Dir(strings.TrimSpace(string(root))), filepath.Join(dir, "clickhouse"))
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer ch.Stop(context.Background())
	ccfg := chconn.DefaultConfig()
	ccfg.Addr = ch.Addr
	conn, err := chconn.Open(context.Background(), ccfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	const db = "memoflow_chaos"
	chcfg := ccfg

	sim, err := recipientsim.New(recipientsim.Config{})
	if err != nil {
		t.Fatal(err)
	}
	simSrv := httptest.NewServer(sim.Handler())
	defer simSrv.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var citizens []string
	topo, err := Start(ctx, Options{
		Bin: bin, Dir: dir, ClickHouseAddr: chcfg.Addr, Database: db, SenderOrg: senderOrg,
		Stages: map[string]int{"ingest": 1, "validate": 2, "schedule": 1, "route": 1, "deliver": 2, "eventlog": 1, "receipts": 1},
		// Small sink batches so kills land between and inside inserts.
		ExtraArgs: []string{"--sink-batch-records", "2000", "--sink-batch-wait", "200ms"},
		BeforeStages: func(ctx context.Context, addr string) (err error) {
			citizens, err = seedRegistry(ctx, addr, simSrv.URL)
			return err
		},
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

	const n = 6000
	plan := Plan(PlanConfig{Seed: 7, Duration: 20 * time.Second, StageKills: 5, BrokerKills: 1, MaxPause: 2 * time.Second,
		ClickHouseOutages: 1, ClickHouseDown: 8 * time.Second},
		[]string{"ingest-1", "validate-1", "validate-2", "schedule-1", "route-1", "deliver-1", "deliver-2", "eventlog-1"})
	for _, f := range plan {
		t.Logf("fault %s", f)
	}
	faults := make(chan error, 1)
	go func() { faults <- Run(ctx, topo, ch, plan, &tl) }()

	// The sender: resumable, retrying through restarts of ingest and the
	// broker (503s and refused connections), as a mass sender would.
	journal := filepath.Join(dir, "send.journal")
	gen := memo.GenConfig{Seed: 99, Now: time.Now().UTC().Truncate(24 * time.Hour), SenderCVRs: []string{senderOrg},
		CitizenCPRs: citizens, CitizenShare: 1, CompanyShare: -1, AuthorityShare: -1, NemSMSShare: -1, ValueDateShare: -1}
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

	want := map[string]uint64{"MEMO_MASS_SEND_RECEIVED": n, "MEMO_SEND_VALIDATED": n, "MEMO_SEND_ROUTED": n, delivered: n}
	v, err := Judge(ctx, conn, db, topo.KafkaAddr, want,
		[]string{"validate", "schedule", "route", "deliver", "eventlog", "receipts"}, 240*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range v.Problems {
		t.Error(p)
	}
	st := sim.Stats()
	if pushed := v.EventsFound["MEMO_AVAILABLE_TO_RECIPIENT"]; uint64(st.Unique) != pushed {
		t.Errorf("the simulator accepted %d distinct messages, the event log says %d were made available", st.Unique, pushed)
	}
	kills := 0
	for _, p := range topo.all() {
		kills += p.Kills()
	}
	t.Logf("chaos short: %d messages, %d kills (%d broker), %d unexpected exits restarted; events %v; simulator %s",
		n, kills, topo.Broker.Kills(), tl.Count("exit"), v.EventsFound, st.Summary())
	for _, e := range tl.Entries() {
		t.Logf("%s %-10s %-12s %s", e.T.Format("15:04:05.000"), e.Kind, e.Target, e.Note)
	}
}
