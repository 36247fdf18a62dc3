package chaos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
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

	"github.com/memoflow/memoflow/bench"
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
	// MailboxProviders are the push systems citizens' post goes to (the
	// registry generator sends 90% to the first; the recipient faults pick
	// from the others). 0: 20.
	MailboxProviders int
	// DeliverSchedule is --deliver-schedule for the run: short, so that
	// messages to systems that were down are redelivered within the run.
	// "": 5s,15s,35s,75s,155s,315s (about 5 minutes; a recipient outage
	// must be shorter than that, or its messages end in the outbox after
	// MEMO_SEND_FAILED, which the verdict counts as a failure).
	DeliverSchedule string
	// ExtraArgs are added to every stage's command line.
	ExtraArgs []string
	// SendBatchesPerSecond paces the sender (batches of 250), 0 = as fast
	// as ingest takes them: a short run on a fast machine would otherwise
	// be over before its faults land.
	SendBatchesPerSecond float64
	// Progress receives a status line every few seconds (may be nil).
	Progress io.Writer
}

func (c *Config) defaults() {
	if c.Stages == nil {
		c.Stages = map[string]int{"ingest": 1, "validate": 2, "schedule": 1, "route": 1, "deliver": 2, "eventlog": 1, "receipts": 1, "receipt-push": 1}
	}
	if c.MailboxProviders == 0 {
		c.MailboxProviders = 20
	}
	if c.DeliverSchedule == "" {
		c.DeliverSchedule = "5s,15s,35s,75s,155s,315s"
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
	if c.Plan.SlowLatency <= 0 {
		c.Plan.SlowLatency = 10 * time.Second
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
	// Pushed is what the simulator accepted (duplicates included) from
	// every system but the slow-recipient faults' targets.
	Pushed int64 `json:"pushed_others"`
}

// Recovery is how long the delivered rate took, after a fault ended, to be
// back at the rate before it.
type Recovery struct {
	Kind   string  `json:"kind"`
	Target string  `json:"target"`
	At     float64 `json:"at_s"`       // fault began, s since start
	Ended  float64 `json:"ended_s"`    // restarted / recovered, s since start
	Rate   float64 `json:"pre_rate"`   // median delivered msgs/s in the 10 s before
	Second float64 `json:"recovery_s"` // s after Ended until 80% of Rate; -1: not measured
	Within bool    `json:"within_target"`
	Note   string  `json:"note,omitempty"`
}

// RecoveryTarget is the target: the pre-fault rate within 30 s of
// each restart.
const RecoveryTarget = 30 * time.Second

// SlowReport is what a slow recipient did to the other systems: their
// accepted pushes per second in the window before it and while it was slow.
type SlowReport struct {
	System string  `json:"system"`
	At     float64 `json:"at_s"`
	For    float64 `json:"for_s"`
	Before float64 `json:"others_rate_before"`
	During float64 `json:"others_rate_during"`
	Ratio  float64 `json:"ratio"`
}

// Report is the result of a run: the JSON and HTML outputs.
type Report struct {
	Scenario     string             `json:"scenario"`
	Messages     int                `json:"messages"`
	Seconds      float64            `json:"seconds"`
	MsgsPerSec   float64            `json:"msgs_per_s"`
	Lost         int64              `json:"lost"`
	Duplicates   int                `json:"duplicates"`
	DupCauses    DupAttribution     `json:"duplicate_causes"`
	Kills        int                `json:"kills"`
	BrokerKills  int                `json:"broker_kills"`
	Exits        int                `json:"unexpected_exits"`
	Faults       []Fault            `json:"faults"`
	Timeline     []Entry            `json:"timeline"`
	Recovery     []Recovery         `json:"recovery"`
	RecoveryMiss int                `json:"recovery_over_target"`
	Slow         []SlowReport       `json:"slow_recipient"`
	Verdict      *Verdict           `json:"verdict"`
	Simulator    recipientsim.Stats `json:"simulator"`
	Keys         KeyStats           `json:"idempotency_keys"`
	Receipts     ReceiptStats       `json:"sender_receipts"`
	SenderErrors int64              `json:"sender_failed_requests"`
	// Outbox: messages whose final state is the print provider's outbox
	// (exempt citizens), not a push.
	Outbox        int       `json:"ready_for_fetch"`
	Samples       []Sample  `json:"samples"`
	Started       time.Time `json:"started"`
	OK            bool      `json:"ok"`
	SenderRetries int       `json:"sender_resumes"`
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
	dups := NewDupWatch()
	sim.OnAccept(dups.Accept)
	keys := NewKeyCheck(sim.Handler())
	simSrv := httptest.NewServer(keys)
	defer simSrv.Close()
	rsink := NewReceiptSink()
	rcptSrv := httptest.NewServer(rsink)
	defer rcptSrv.Close()

	var citizens, systems []string
	extra := append([]string{"--sink-batch-records", fmt.Sprint(c.SinkBatchRecords), "--sink-batch-wait", "200ms",
		// Redelivery within the run; an open circuit probes again soon.
		"--deliver-schedule", c.DeliverSchedule, "--deliver-breaker-cooldown", "5s"}, c.ExtraArgs...)
	topo, err := Start(ctx, Options{
		Bin: c.Bin, Dir: c.Dir, ClickHouseAddr: ch.Addr, Database: db, SenderOrg: SenderOrg, Stages: c.Stages,
		ExtraArgs: extra,
		BeforeStages: func(ctx context.Context, addr string) (err error) {
			citizens, systems, err = SeedRegistry(ctx, addr, simSrv.URL, rcptSrv.URL+ReceiptPath, c.MailboxProviders)
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

	// The recipient faults pick from the minor systems: the first mailbox
	// provider takes 90% of the post, and taking it down would be a
	// different scenario (every message on the schedule).
	if len(systems) > 1 {
		c.Plan.Systems = systems[1:]
	}
	plan := Plan(c.Plan, c.Targets)
	rep.Faults = plan
	var slowSystems []string
	for _, f := range plan {
		if f.Kind == SlowRecipient {
			slowSystems = append(slowSystems, f.Target)
		}
	}
	start := time.Now()
	faults := make(chan error, 1)
	go func() { faults <- RunFaults(ctx, topo, ch, sim, c.Plan.SlowLatency, plan, &tl) }()

	var accepted atomic.Int64
	var samples []Sample
	var smu sync.Mutex
	pushed := func() int64 {
		n := sim.Stats().Delivered
		for _, s := range slowSystems {
			n -= sim.Accepted(s)
		}
		return n
	}
	go sample(wctx, conn, db, start, &accepted, pushed, &smu, &samples, c.Progress)

	// The sender: resumable, retrying through restarts of ingest and the
	// broker, as a mass sender would. Its failed requests (a killed
	// ingest mid-batch, 503 while it starts) are counted and marked on
	// the timeline.
	tr := &countingTransport{next: http.DefaultTransport, tl: &tl}
	if c.SendBatchesPerSecond > 0 {
		pace := time.NewTicker(time.Duration(float64(time.Second) / c.SendBatchesPerSecond))
		defer pace.Stop()
		tr.pace = pace.C
	}
	journal := filepath.Join(c.Dir, "send.journal")
	gen := memo.GenConfig{Seed: uint64(c.Plan.Seed) + 99, Now: time.Now().UTC().Truncate(24 * time.Hour), SenderCVRs: []string{SenderOrg},
		CitizenCPRs: citizens, CitizenShare: 1, CompanyShare: -1, AuthorityShare: -1, NemSMSShare: -1, ValueDateShare: -1}
	var sent int64
	var uuids []string
	for round := 0; round < 50 && sent < int64(c.Messages); round++ {
		before := sent
		sum, err := sendclient.Send(ctx, sendclient.NewGenSource(c.Messages, gen), sendclient.Options{
			URL: topo.APIURL, Token: topo.SenderToken, BatchSize: 250, Concurrency: 2, Journal: journal, MaxAttempts: 30,
			HTTP:       &http.Client{Transport: tr},
			OnProgress: func(done int) { accepted.Store(before + int64(done)) },
		})
		if sum != nil {
			sent += int64(sum.Accepted)
			accepted.Store(sent)
			for _, r := range sum.Results {
				if r.Status == "RECEIVED" {
					uuids = append(uuids, r.MessageUUID)
				}
			}
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
	want := map[string]uint64{"MEMO_MASS_SEND_RECEIVED": n, "MEMO_SEND_VALIDATED": n, "MEMO_SEND_ROUTED": n, Delivered: n,
		// Every recipient outage is shorter than the schedule: no message
		// may give up.
		"MEMO_SEND_FAILED": 0}
	groups := []string{"validate", "schedule", "route", "deliver", "eventlog", "receipts", "deliver-retry", "receipt-push"}
	backlog := map[string][]string{
		"deliver-retry": {"memo.retry."},
		"receipt-push":  {pipeline.TopicReceiptPush, pipeline.TopicReceiptPush + ".retry"},
	}
	v, err := Judge(ctx, conn, db, topo.KafkaAddr, want, groups, backlog, c.JudgeTimeout)
	if err != nil {
		return nil, err
	}
	// Post for citizens exempt from digital post goes to the print
	// provider's outbox (pull, MEMO_SEND_READY_FOR_FETCH), a documented
	// final state: no push, and no business receipt until it is picked
	// up. Every other accepted message must reach the simulator and
	// have its final receipt at the sender.
	outbox, err := uuidsWithTag(ctx, conn, db, "MEMO_SEND_READY_FOR_FETCH")
	if err != nil {
		return nil, err
	}
	rep.Outbox = len(outbox)
	pushUUIDs := make([]string, 0, len(uuids))
	for _, u := range uuids {
		if _, ok := outbox[u]; !ok {
			pushUUIDs = append(pushUUIDs, u)
		}
	}
	sim.Expect(pushUUIDs...)
	// The receipts trail the event log (receipts sink, then receipt-push).
	deadline := time.Now().Add(2 * time.Minute)
	for rsink.Stats().Final < len(pushUUIDs) && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(time.Second)
	}
	rep.Seconds = time.Since(start).Seconds()
	rep.MsgsPerSec = float64(c.Messages) / rep.Seconds
	rep.Verdict = v
	rep.Simulator = sim.Stats()
	rep.Duplicates = rep.Simulator.DupCount
	rep.Keys = keys.Stats()
	rep.Receipts = rsink.Stats()
	rep.SenderErrors = tr.failed.Load()
	if got := v.EventsFound[Delivered]; got < n {
		rep.Lost = int64(n - got)
	}
	if pushed := v.EventsFound["MEMO_AVAILABLE_TO_RECIPIENT"]; uint64(rep.Simulator.Unique) != pushed {
		v.Problems = append(v.Problems, fmt.Sprintf("the simulator accepted %d distinct messages, the event log says %d were made available", rep.Simulator.Unique, pushed))
	}
	if m := rep.Simulator.MissingCount; m > 0 {
		v.Problems = append(v.Problems, fmt.Sprintf("%d accepted messages never reached their recipient system (e.g. %v)", m, first(rep.Simulator.Missing, 5)))
		rep.Lost = max(rep.Lost, int64(m))
	}
	if k := rep.Keys; k.Mismatches > 0 {
		v.Problems = append(v.Problems, fmt.Sprintf("%d of %d pushes carried an Idempotency-Key other than their messageUUID (e.g. %v)", k.Mismatches, k.Pushes, first(k.Examples, 3)))
	}
	if miss, some := rsink.Missing(pushUUIDs, 5); miss > 0 {
		v.Problems = append(v.Problems, fmt.Sprintf("%d messages without a final business receipt at the sender's receipt endpoint (e.g. %v)", miss, some))
	}
	if r := rep.Receipts; r.MoreThanOne > 0 {
		v.Problems = append(v.Problems, fmt.Sprintf("%d messages got two or more different final business receipts", r.MoreThanOne))
	}
	for _, p := range topo.all() {
		rep.Kills += p.Kills()
	}
	rep.BrokerKills = topo.Broker.Kills()
	rep.Exits = tl.Count("exit")
	rep.Timeline = tl.Entries()
	rep.DupCauses = dups.Attribute(rep.Timeline, c.Plan.SlowLatency)
	wcancel()
	smu.Lock()
	rep.Samples = samples
	smu.Unlock()
	rep.Recompute()
	rep.OK = v.OK()
	return rep, nil
}

func first(s []string, n int) []string { return s[:min(n, len(s))] }

// uuidsWithTag returns the messageUUIDs with a row of tag in the event log.
func uuidsWithTag(ctx context.Context, conn driver.Conn, db, tag string) (map[string]struct{}, error) {
	rows, err := conn.Query(ctx, fmt.Sprintf("SELECT DISTINCT message_uuid FROM %s.events WHERE tag = ?", db), tag)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]struct{}{}
	for rows.Next() {
		var u string
		if err := rows.Scan(&u); err != nil {
			return nil, err
		}
		out[u] = struct{}{}
	}
	return out, rows.Err()
}

// countingTransport counts the sender's failed requests (no answer, or a
// 5xx) and marks the first of each burst on the timeline.
type countingTransport struct {
	next   http.RoundTripper
	tl     *Timeline
	failed atomic.Int64
	last   atomic.Int64     // unix ms of the last timeline mark
	pace   <-chan time.Time // nil: unpaced
}

func (t *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if t.pace != nil && r.Method == http.MethodPost {
		select {
		case <-t.pace:
		case <-r.Context().Done():
			return nil, r.Context().Err()
		}
	}
	resp, err := t.next.RoundTrip(r)
	what := ""
	switch {
	case err != nil:
		what = err.Error()
	case resp.StatusCode >= 500:
		what = resp.Status
	}
	if what != "" {
		t.failed.Add(1)
		now := time.Now().UnixMilli()
		if prev := t.last.Load(); now-prev > 5000 && t.last.CompareAndSwap(prev, now) {
			t.tl.Add("sender", "send", "a batch failed, the sender retries it: "+what)
		}
	}
	return resp, err
}

// sample records, every second, what the sender got accepted and what the
// event log holds (while ClickHouse is down, the last value stays).
func sample(ctx context.Context, conn driver.Conn, db string, start time.Time, accepted *atomic.Int64, pushed func() int64, mu *sync.Mutex, out *[]Sample, progress io.Writer) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var last Sample
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		s := Sample{T: time.Since(start).Seconds(), Accepted: accepted.Load(), Delivered: last.Delivered, Events: last.Events, Pushed: pushed()}
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

// recovery: for each fault, seconds from its end (the restart, ClickHouse
// started, the recipients answering) until the delivered rate is back at
// 80% of the rate in the 10 s before the fault. The rate is the event
// log's delivery rows, which the event-log sink inserts in bursts, so it
// is a mean over a window, not a per-second figure: the reference is the
// mean over the 10 s before the fault, and the rate is back at the first
// second s after the fault's end from which the next 5 s reach 80% of it.
// A ClickHouse outage shows as zero while it lasts. Where the send had
// ended and everything was delivered before the rate came back, there is
// nothing left to measure.
func recovery(r *Report) []Recovery {
	if len(r.Samples) < 3 {
		return nil
	}
	// delivered at time t (the first sample at or after it).
	at := func(t float64) (uint64, bool) {
		i := sort.Search(len(r.Samples), func(i int) bool { return r.Samples[i].T >= t })
		if i == len(r.Samples) {
			return 0, false
		}
		return r.Samples[i].Delivered, true
	}
	const refWindow, window = 10.0, 5.0
	var out []Recovery
	type open struct {
		kind string
		at   time.Time
	}
	isFault := func(kind string) bool {
		switch kind {
		case KillStage, KillBroker, ClickHouse, RecipientsDown, SlowRecipient:
			return true
		}
		return false
	}
	// next returns when the next fault after t began (+Inf if none): a
	// recovery still under way then is not this fault's alone.
	next := func(t float64) float64 {
		for _, e := range r.Timeline {
			if x := e.T.Sub(r.Started).Seconds(); isFault(e.Kind) && x >= t {
				return x
			}
		}
		return math.Inf(1)
	}
	began := map[string]open{}
	for _, e := range r.Timeline {
		switch e.Kind {
		case KillStage, KillBroker, ClickHouse, RecipientsDown, SlowRecipient:
			began[e.Target] = open{e.Kind, e.T}
		case "recovered":
			o, ok := began[e.Target]
			if !ok {
				continue
			}
			delete(began, e.Target)
			rc := Recovery{Kind: o.kind, Target: e.Target, At: o.at.Sub(r.Started).Seconds(), Ended: e.T.Sub(r.Started).Seconds(), Second: -1}
			a, ok1 := at(rc.At - refWindow)
			b, ok2 := at(rc.At)
			if !ok1 || !ok2 || rc.At < refWindow {
				rc.Note = "no 10 s of samples before the fault"
				rc.Within = true
				out = append(out, rc)
				continue
			}
			rc.Rate = float64(b-a) / refWindow
			if rc.Rate == 0 {
				rc.Note = "nothing delivered in the 10 s before (an earlier fault, or ClickHouse down)"
			}
			stop := next(rc.Ended)
			for s := rc.Ended; ; s++ {
				x, ok1 := at(s)
				y, ok2 := at(s + window)
				if !ok1 || !ok2 {
					break
				}
				if float64(y-x)/window >= 0.8*rc.Rate {
					rc.Second = s - rc.Ended
					break
				}
				if x >= uint64(r.Messages) {
					rc.Note = "the send was over and everything delivered before the rate came back"
					break
				}
			}
			// A recovery over the target that the next fault overlapped is
			// not this fault's alone: reported, not counted as a miss.
			overlapped := stop < rc.Ended+RecoveryTarget.Seconds() && (rc.Second < 0 || rc.Ended+rc.Second > stop)
			switch {
			case rc.Second > RecoveryTarget.Seconds() && overlapped, rc.Second < 0 && rc.Note == "" && overlapped:
				rc.Within = true
				rc.Note = fmt.Sprintf("overlapped by the next fault, which began %.0f s after this one ended", stop-rc.Ended)
			case rc.Second >= 0:
				rc.Within = rc.Second <= RecoveryTarget.Seconds()
			case rc.Note != "":
				rc.Within = true
			default:
				rc.Note = "the rate never came back before the run ended"
			}
			out = append(out, rc)
		}
	}
	return out
}

// Recompute derives the recovery times and the slow-recipient figures from
// the samples and the timeline again (e.g. for a report read from JSON).
func (r *Report) Recompute() {
	r.Recovery = recovery(r)
	r.RecoveryMiss = 0
	for _, x := range r.Recovery {
		if !x.Within {
			r.RecoveryMiss++
		}
	}
	r.Slow = slowReports(r)
}

// slowReports compares the other systems' accepted pushes per second while
// a recipient was slow with the same length of time just before.
func slowReports(r *Report) []SlowReport {
	at := func(t float64) (int64, bool) {
		for _, s := range r.Samples {
			if s.T >= t {
				return s.Pushed, true
			}
		}
		return 0, false
	}
	var out []SlowReport
	var cur *Entry
	for _, e := range r.Timeline {
		switch {
		case e.Kind == SlowRecipient:
			e := e
			cur = &e
		case e.Kind == "recovered" && cur != nil && e.Target == cur.Target:
			t0, t1 := cur.T.Sub(r.Started).Seconds(), e.T.Sub(r.Started).Seconds()
			w := t1 - t0
			a, ok1 := at(t0 - w)
			b, ok2 := at(t0)
			c, ok3 := at(t1)
			sr := SlowReport{System: cur.Target, At: t0, For: w}
			if ok1 && ok2 && ok3 && w > 0 {
				sr.Before, sr.During = float64(b-a)/w, float64(c-b)/w
				if sr.Before > 0 {
					sr.Ratio = sr.During / sr.Before
				}
			}
			out = append(out, sr)
			cur = nil
		}
	}
	return out
}

// SeedRegistry writes a small synthetic registry whose push systems point
// at the recipient simulator, with the scenario's sender system taking its
// receipts at receiptURL, and returns its citizens and the mailbox
// providers (the push systems citizens' post goes to, the busiest first).
func SeedRegistry(ctx context.Context, addr, simURL, receiptURL string, mailboxes int) (citizens, mailboxSystems []string, err error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.AllowAutoTopicCreation())
	if err != nil {
		return nil, nil, err
	}
	defer cl.Close()
	changes, rc, err := bench.BuildRegistry(bench.RegistryConfig{
		Gen:    registry.GenConfig{Seed: 1, Citizens: 2000, Companies: 20, Authorities: 1, MailboxProviders: mailboxes, NemSMSShare: -1},
		SimURL: simURL,
	})
	if err != nil {
		return nil, nil, err
	}
	recs := make([]*kgo.Record, 0, len(changes)+1)
	for _, c := range changes {
		recs = append(recs, c.Record(pipeline.TopicRegistry))
	}
	// Every citizen, exempt ones too: their letters end in the print
	// outbox, a documented final state the verdict checks.
	citizens, mailboxSystems = rc.AllCitizens, rc.Mailboxes
	// The sender system the sender's token belongs to (SenderID in
	// Topology), with its receipt endpoint: receipt-push POSTs there.
	snd := &registry.SenderSystem{ID: SenderSystemID, Org: SenderOrg, Name: "chaos sender", ReceiptEndpoint: receiptURL, Active: true}
	if err := snd.Validate(); err != nil {
		return nil, nil, err
	}
	recs = append(recs, registry.NewChange(snd, "chaos", time.Now().UTC()).Record(pipeline.TopicRegistry))
	return citizens, mailboxSystems, cl.ProduceSync(ctx, recs...).FirstErr()
}

// SenderSystemID is the id of the scenario's sender system (its token's
// principal, so its receipts are keyed by it).
const SenderSystemID = "chaos-sender"

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
