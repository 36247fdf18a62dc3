package chaos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/memoflow/memoflow/internal/chconn"
	"github.com/memoflow/memoflow/internal/recipientsim"
	"github.com/memoflow/memoflow/internal/sendclient"
	"github.com/memoflow/memoflow/pipeline"
	"github.com/memoflow/memoflow/schemas/memo"
	"github.com/memoflow/memoflow/schemas/registry"
)

// Delivered is the set of tags that end a message's delivery.
const Delivered = "MEMO_AVAILABLE_TO_RECIPIENT|MEMO_SEND_READY_FOR_FETCH|MEMO_SEND_SENT_TO_RECIPIENT_SYSTEM|PHYSICAL_LETTER_SENT"

// SenderOrg is the CVR the scenario's sender sends as.
const SenderOrg = "12345678"

// Config configures a scenario run.
type Config struct {
	// Bin is the memoflow binary the processes run.
	Bin string
	// Dir holds the run's state and logs (kept for a post-mortem).
	Dir string
	// Root is the repository (scripts/clickhouse.sh runs the run's own
	// ClickHouse server).
	Root string
	// Messages sent (digital post to registered citizens, no value date).
	Messages int
	// Stages and their replica counts (default: the whole pipeline, two
	// replicas of validate and deliver).
	Stages map[string]int
	// Plan says which faults to draw; its Seed, Duration and counts.
	Plan PlanConfig
	// Targets are the replicas kill-stage faults pick from (default: every
	// consuming replica and ingest).
	Targets []string
	// SinkBatchRecords for the ClickHouse sinks (small: kills land in and
	// between inserts). 0: 2000.
	SinkBatchRecords int
	// JudgeTimeout bounds the wait for the event log at the end.
	JudgeTimeout time.Duration
	// Progress receives a status line every few seconds (may be nil).
	Progress io.Writer
}

func (c *Config) defaults() {
	if c.Stages == nil {
		c.Stages = map[string]int{"ingest": 1, "validate": 2, "schedule": 1, "route": 1, "deliver": 2, "eventlog": 1, "receipts": 1}
	}
	if c.Targets == nil {
		for name, n := range c.Stages {
			if name == "receipts" {
				continue // kept whole: receipts are not part of the verdict's counts
			}
			for i := range n {
				c.Targets = append(c.Targets, fmt.Sprintf("%s-%d", name, i+1))
			}
		}
		sort.Strings(c.Targets)
	}
	if c.SinkBatchRecords == 0 {
		c.SinkBatchRecords = 2000
	}
	if c.JudgeTimeout == 0 {
		c.JudgeTimeout = 5 * time.Minute
	}
}

// Sample is the state of the run at T seconds.
type Sample struct {
	T         float64 `json:"t"`
	Accepted  int64   `json:"accepted"`
	Delivered uint64  `json:"delivered"`
	Events    uint64  `json:"events"`
}

// Report is the result of a run: the JSON and HTML outputs.
type Report struct {
	Scenario      string             `json:"scenario"`
	Messages      int                `json:"messages"`
	Seconds       float64            `json:"seconds"`
	MsgsPerSec    float64            `json:"msgs_per_s"`
	Lost          int64              `json:"lost"`
	Duplicates    int                `json:"duplicates"`
	Kills         int                `json:"kills"`
	BrokerKills   int                `json:"broker_kills"`
	Exits         int                `json:"unexpected_exits"`
	Faults        []Fault            `json:"faults"`
	Timeline      []Entry            `json:"timeline"`
	Recovery      map[string]float64 `json:"recovery_s,omitempty"`
	Verdict       *Verdict           `json:"verdict"`
	Simulator     recipientsim.Stats `json:"simulator"`
	Samples       []Sample           `json:"samples"`
	Started       time.Time          `json:"started"`
	OK            bool               `json:"ok"`
	SenderRetries int                `json:"sender_resumes"`
}

// Run runs the scenario: the topology, the registry, the simulator, the
// load and the faults, then the verdict.
func Run(ctx context.Context, c Config) (*Report, error) {
	c.defaults()
	rep := &Report{Scenario: "chaos", Messages: c.Messages, Faults: nil, Started: time.Now().UTC()}
	ch, err := NewScriptClickHouse(c.Root, filepath.Join(c.Dir, "clickhouse"))
	if err != nil {
		return nil, err
	}
	if err := ch.Start(ctx); err != nil {
		return nil, err
	}
	defer ch.Stop(context.WithoutCancel(ctx))
	ccfg := chconn.DefaultConfig()
	ccfg.Addr = ch.Addr
	conn, err := chconn.Open(ctx, ccfg)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	const db = "memoflow_chaos"

	sim, err := recipientsim.New(recipientsim.Config{})
	if err != nil {
		return nil, err
	}
	simSrv := httptest.NewServer(sim.Handler())
	defer simSrv.Close()

	var citizens []string
	topo, err := Start(ctx, Options{
		Bin: c.Bin, Dir: c.Dir, ClickHouseAddr: ch.Addr, Database: db, SenderOrg: SenderOrg, Stages: c.Stages,
		ExtraArgs: []string{"--sink-batch-records", fmt.Sprint(c.SinkBatchRecords), "--sink-batch-wait", "200ms"},
		BeforeStages: func(ctx context.Context, addr string) (err error) {
			citizens, err = SeedRegistry(ctx, addr, simSrv.URL)
			return err
		},
	})
	if err != nil {
		return nil, err
	}
	defer topo.Close()
	var tl Timeline
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	go topo.Watch(wctx, &tl)

	plan := Plan(c.Plan, c.Targets)
	rep.Faults = plan
	start := time.Now()
	faults := make(chan error, 1)
	go func() { faults <- RunFaults(ctx, topo, ch, plan, &tl) }()

	var accepted atomic.Int64
	var samples []Sample
	var smu sync.Mutex
	go sample(wctx, conn, db, start, &accepted, &smu, &samples, c.Progress)

	// The sender: resumable, retrying through restarts of ingest and the
	// broker, as a mass sender would.
	journal := filepath.Join(c.Dir, "send.journal")
	gen := memo.GenConfig{Seed: uint64(c.Plan.Seed) + 99, Now: time.Now().UTC().Truncate(24 * time.Hour), SenderCVRs: []string{SenderOrg},
		CitizenCPRs: citizens, CitizenShare: 1, CompanyShare: -1, AuthorityShare: -1, NemSMSShare: -1, ValueDateShare: -1}
	var sent int64
	for round := 0; round < 50 && sent < int64(c.Messages); round++ {
		before := sent
		sum, err := sendclient.Send(ctx, sendclient.NewGenSource(c.Messages, gen), sendclient.Options{
			URL: topo.APIURL, Token: topo.SenderToken, BatchSize: 250, Concurrency: 2, Journal: journal, MaxAttempts: 30,
			OnProgress: func(done int) { accepted.Store(before + int64(done)) },
		})
		if sum != nil {
			sent += int64(sum.Accepted)
			accepted.Store(sent)
			if sum.Rejected > 0 {
				return nil, fmt.Errorf("chaos: %d messages rejected: %v", sum.Rejected, sum.RejectedByCode)
			}
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			rep.SenderRetries++
			tl.Add("sender", "send", "stopped, resuming from the journal: "+err.Error())
			time.Sleep(time.Second)
		}
	}
	if sent != int64(c.Messages) {
		return nil, fmt.Errorf("chaos: the sender got %d of %d messages accepted", sent, c.Messages)
	}
	if err := <-faults; err != nil {
		return nil, fmt.Errorf("chaos: fault schedule: %w", err)
	}

	n := uint64(c.Messages)
	want := map[string]uint64{"MEMO_MASS_SEND_RECEIVED": n, "MEMO_SEND_VALIDATED": n, "MEMO_SEND_ROUTED": n, Delivered: n}
	groups := []string{"validate", "schedule", "route", "deliver", "eventlog", "receipts"}
	v, err := Judge(ctx, conn, db, topo.KafkaAddr, want, groups, c.JudgeTimeout)
	if err != nil {
		return nil, err
	}
	rep.Seconds = time.Since(start).Seconds()
	rep.MsgsPerSec = float64(c.Messages) / rep.Seconds
	rep.Verdict = v
	rep.Simulator = sim.Stats()
	rep.Duplicates = rep.Simulator.DupCount
	if got := v.EventsFound[Delivered]; got < n {
		rep.Lost = int64(n - got)
	}
	if pushed := v.EventsFound["MEMO_AVAILABLE_TO_RECIPIENT"]; uint64(rep.Simulator.Unique) != pushed {
		v.Problems = append(v.Problems, fmt.Sprintf("the simulator accepted %d distinct messages, the event log says %d were made available", rep.Simulator.Unique, pushed))
	}
	for _, p := range topo.all() {
		rep.Kills += p.Kills()
	}
	rep.BrokerKills = topo.Broker.Kills()
	rep.Exits = tl.Count("exit")
	rep.Timeline = tl.Entries()
	wcancel()
	smu.Lock()
	rep.Samples = samples
	smu.Unlock()
	rep.Recovery = recovery(rep)
	rep.OK = v.OK()
	return rep, nil
}

// sample records, every second, what the sender got accepted and what the
// event log holds (while ClickHouse is down, the last value stays).
func sample(ctx context.Context, conn driver.Conn, db string, start time.Time, accepted *atomic.Int64, mu *sync.Mutex, out *[]Sample, progress io.Writer) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var last Sample
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		s := Sample{T: time.Since(start).Seconds(), Accepted: accepted.Load(), Delivered: last.Delivered, Events: last.Events}
		qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		var d, e uint64
		err := conn.QueryRow(qctx, fmt.Sprintf("SELECT countIf(tag IN ('%s')), count() FROM %s.events",
			strings.ReplaceAll(Delivered, "|", "','"), db)).Scan(&d, &e)
		cancel()
		if err == nil {
			s.Delivered, s.Events = d, e
		}
		last = s
		mu.Lock()
		*out = append(*out, s)
		mu.Unlock()
		if progress != nil && i%5 == 0 {
			fmt.Fprintf(progress, "%6.0fs accepted %d delivered %d events %d\n", s.T, s.Accepted, s.Delivered, s.Events)
		}
	}
}

// recovery: for each fault, seconds from its recovery until the delivered
// rate is back to the median rate before it (0 when it never dropped).
func recovery(r *Report) map[string]float64 {
	if len(r.Samples) < 3 {
		return nil
	}
	rate := func(i int) float64 {
		dt := r.Samples[i].T - r.Samples[i-1].T
		if dt <= 0 {
			return 0
		}
		return float64(r.Samples[i].Delivered-r.Samples[i-1].Delivered) / dt
	}
	out := map[string]float64{}
	var faultAt time.Time
	for _, e := range r.Timeline {
		switch e.Kind {
		case KillStage, KillBroker, ClickHouse:
			faultAt = e.T
		case "recovered":
			t0 := faultAt.Sub(r.Started).Seconds()
			t1 := e.T.Sub(r.Started).Seconds()
			var before []float64
			for i := 1; i < len(r.Samples); i++ {
				if r.Samples[i].T <= t0 && r.Samples[i].T > t0-10 {
					before = append(before, rate(i))
				}
			}
			if len(before) == 0 {
				continue
			}
			sort.Float64s(before)
			ref := before[len(before)/2]
			for i := 1; i < len(r.Samples); i++ {
				if r.Samples[i].T >= t1 && rate(i) >= 0.8*ref {
					out[fmt.Sprintf("%s@%.0fs", e.Target, t0)] = max(0, r.Samples[i].T-t1)
					break
				}
			}
		}
	}
	return out
}

// SeedRegistry writes a small synthetic registry whose push systems point
// at the recipient simulator, and returns its citizens.
func SeedRegistry(ctx context.Context, addr, simURL string) ([]string, error) {
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

// ErrFailed is returned by callers that turn a failed verdict into an
// error (memoflow bench chaos exits 1).
var ErrFailed = errors.New("chaos: the verdict failed")

// Problems lists the verdict's failures, or nil.
func (r *Report) Problems() []string {
	if r.Verdict == nil {
		return []string{"no verdict"}
	}
	return r.Verdict.Problems
}

// LogTails returns the last bytes of each process log, for a failed run.
func LogTails(dir string, n int) string {
	var b strings.Builder
	logs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	for _, l := range logs {
		data, _ := os.ReadFile(l)
		if len(data) > n {
			data = data[len(data)-n:]
		}
		fmt.Fprintf(&b, "--- %s (tail)\n%s\n", filepath.Base(l), data)
	}
	return b.String()
}
