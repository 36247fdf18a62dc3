package chaos

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/memoflow/memoflow/internal/chconn/chtest"
	"github.com/memoflow/memoflow/internal/sendclient"
	"github.com/memoflow/memoflow/pipeline"
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
	got := waitEvents(ctx, t, conn, db, want, 120*time.Second)
	for tag, w := range want {
		if got[tag] != w {
			t.Errorf("event log: %d %s rows, want exactly %d", got[tag], tag, w)
		}
	}
	// No message twice under one tag (a double count would hide behind a
	// loss in the totals).
	var dups uint64
	if err := conn.QueryRow(ctx, fmt.Sprintf(
		"SELECT count() FROM (SELECT tag, message_uuid, count() AS c FROM %s.events GROUP BY tag, message_uuid HAVING c > 1)", db)).Scan(&dups); err != nil {
		t.Fatal(err)
	}
	if dups != 0 {
		t.Errorf("%d (tag, messageUUID) pairs counted more than once", dups)
	}
	checkKafka(ctx, t, topo.KafkaAddr, []string{"validate", "eventlog", "receipts"})
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

func waitEvents(ctx context.Context, t *testing.T, conn driver.Conn, db string, want map[string]uint64, timeout time.Duration) map[string]uint64 {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var got map[string]uint64
	for {
		got = map[string]uint64{}
		rows, err := conn.Query(ctx, fmt.Sprintf("SELECT tag, count() FROM %s.events GROUP BY tag", db))
		if err == nil {
			for rows.Next() {
				var tag string
				var c uint64
				if rows.Scan(&tag, &c) == nil {
					got[tag] = c
				}
			}
			rows.Close()
		}
		done := true
		for tag, w := range want {
			if got[tag] < w {
				done = false
			}
		}
		if done || time.Now().After(deadline) {
			// Give a straggling duplicate a moment to show itself.
			time.Sleep(2 * time.Second)
			return got
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// checkKafka: every group has processed every data record of its inputs,
// and nothing is in the DLQ. Lag as kadm computes it (end offset minus
// committed) stays at 1 per partition behind a transaction's commit
// marker, which no consumer ever receives; so the check reads from each
// committed offset with read_committed and counts the data records left.
func checkKafka(ctx context.Context, t *testing.T, addr string, groups []string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	deadline := time.Now().Add(30 * time.Second)
	for {
		var behind []string
		for _, g := range prefixed(groups) {
			n, err := unprocessed(ctx, adm, addr, g)
			if err != nil {
				behind = append(behind, fmt.Sprintf("%s: %v", g, err))
			} else if n > 0 {
				behind = append(behind, fmt.Sprintf("%s has %d records to process", g, n))
			}
		}
		if len(behind) == 0 {
			break
		}
		if time.Now().After(deadline) {
			sort.Strings(behind)
			t.Errorf("consumer groups not caught up: %v", behind)
			break
		}
		time.Sleep(time.Second)
	}
	ends, err := adm.ListEndOffsets(ctx, pipeline.TopicDLQ)
	if err != nil {
		t.Fatal(err)
	}
	starts, err := adm.ListStartOffsets(ctx, pipeline.TopicDLQ)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := countRecords(ctx, addr, starts.Offsets(), ends.Offsets()); err != nil {
		t.Fatal(err)
	} else if n != 0 {
		t.Errorf("%d records in the DLQ; nothing here is poison", n)
	}
}

// unprocessed counts the data records after group's committed offsets.
func unprocessed(ctx context.Context, adm *kadm.Client, addr, group string) (int, error) {
	committed, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		return 0, err
	}
	if err := committed.Error(); err != nil {
		return 0, err
	}
	from := committed.Offsets()
	ends, err := adm.ListEndOffsets(ctx, from.TopicsSet().Topics()...)
	if err != nil {
		return 0, err
	}
	return countRecords(ctx, addr, from, ends.Offsets())
}

// countRecords reads [from, to) of every partition with read_committed and
// counts the data records (control markers are never returned).
func countRecords(ctx context.Context, addr string, from, to kadm.Offsets) (int, error) {
	parts := map[string]map[int32]kgo.Offset{}
	todo := 0
	from.Each(func(o kadm.Offset) {
		end, ok := to.Lookup(o.Topic, o.Partition)
		if !ok || o.At >= end.At {
			return
		}
		if parts[o.Topic] == nil {
			parts[o.Topic] = map[int32]kgo.Offset{}
		}
		parts[o.Topic][o.Partition] = kgo.NewOffset().At(o.At)
		todo++
	})
	if todo == 0 {
		return 0, nil
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumePartitions(parts), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	n := 0
	for {
		pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		fs := cl.PollFetches(pctx)
		cancel()
		got := 0
		fs.EachRecord(func(r *kgo.Record) {
			if end, ok := to.Lookup(r.Topic, r.Partition); ok && r.Offset < end.At {
				got++
			}
		})
		n += got
		if got == 0 {
			return n, nil
		}
	}
}

func prefixed(groups []string) []string {
	out := make([]string, len(groups))
	for i, g := range groups {
		out[i] = "memoflow-" + g
	}
	return out
}
