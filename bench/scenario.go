package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/memoflow/memoflow/internal/chconn"
	"github.com/memoflow/memoflow/internal/recipientsim"
	"github.com/memoflow/memoflow/pipeline"
	"github.com/memoflow/memoflow/schemas/records"
)

// Target is the pipeline under test: started in this process by `memoflow
// bench` (InProcess) or a running setup given by flags.
type Target struct {
	URL       string // ingest API base URL
	Token     string // a sender token
	SenderOrg string // the token's organisation (the generated senders)
	Kafka     pipeline.KafkaConfig
	// ClickHouse with Database set to the event log's database.
	ClickHouse chconn.Config
	// Stages that run: the expected event log and the null pipeline's hops
	// follow from them.
	Stages []string
	Runner pipeline.RunnerConfig
	// InProcess: CPU and RSS are read from this process (pipeline, broker
	// and the bench's own senders together).
	InProcess bool
	Gatherer  prometheus.Gatherer // the in-process stages' registry
	// MetricsURLs are /metrics endpoints of a running setup's processes:
	// their CPU and RSS are summed, their stage counters sampled.
	MetricsURLs []string
	// Sim is the recipient simulator every push system of the registry
	// points at, and Recipients whom the registry lets messages address;
	// both nil when the run ends before routing (the arrival point is
	// then memo.valid).
	Sim *recipientsim.Sim
	// Transports, when set, are the in-process SFTP and SMTP recipients
	// of a --protocol-mix run: their accepted messages are arrivals too.
	Transports *recipientsim.MixServers
	Recipients *Recipients
	// ScheduleClock is the in-process schedule stage's clock (the
	// value-date scenario moves it to the value date); nil when the
	// stage runs elsewhere.
	ScheduleClock *OffsetClock
}

// Delivers reports whether the run goes through routing and delivery to
// the recipient simulator.
func (t *Target) Delivers() bool {
	return t.Sim != nil && t.Recipients != nil && hasStage(t.Stages, "route") && hasStage(t.Stages, "deliver")
}

func hasStage(stages []string, name string) bool {
	for _, s := range stages {
		if s == name {
			return true
		}
	}
	return false
}

// Options of a run, shared by every scenario.
type Options struct {
	Messages    int
	BatchSize   int
	Concurrency int
	Seed        uint64
	Mix         Mix
	// Direct produces straight into memo.ingest instead of the HTTP API.
	Direct bool
	// Live compresses batches while sending, with internal/sendclient (as
	// `memoflow send` does); by default batches are prepared beforehand.
	Live     bool
	CacheDir string
	// NullRecords is the null pipeline's record count (0: Messages, at
	// most 500,000); negative skips it.
	NullRecords int
	// Timeout bounds the wait for arrivals and the event log after the
	// load; StallTimeout ends it early when nothing moved for that long.
	Timeout      time.Duration
	StallTimeout time.Duration
	SampleEvery  time.Duration
	// Progress receives a status line every second; nil for none.
	Progress io.Writer
	// Log receives phase lines (preparation, null pipeline); nil for none.
	Log io.Writer
	// AroundLoad, when set, is called as the load starts; the function it
	// returns is called once arrivals and events are complete. A CPU
	// profile taken between them shows the pipeline, not the preparation.
	AroundLoad func() (end func())
}

func (o *Options) defaults() {
	if o.BatchSize <= 0 {
		o.BatchSize = 10000
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 2
	}
	if o.CacheDir == "" {
		o.CacheDir = os.TempDir()
	}
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Minute
	}
	if o.StallTimeout <= 0 {
		o.StallTimeout = 60 * time.Second
	}
	if o.SampleEvery <= 0 {
		o.SampleEvery = time.Second
	}
}

// Env is what a scenario works with: the target, the options and the
// run's bookkeeping of accepted messages.
type Env struct {
	Target   Target
	Opts     Options
	Manifest *Manifest
	// Report is the run's report, for scenarios to add details to.
	Report *Report

	accepted    atomic.Int64
	mu          sync.Mutex
	acceptedIdx []bool
	sentAt      []int64          // Unix ms the message was handed to ingest
	ingestCodes map[string]int64 // rejections at ingest by code
}

// Sent records that messages first..first+n-1 were handed to ingest at at
// (a batch POST began, a record was produced): the start of their
// end-to-end latency when the arrival point cannot tell when ingest
// accepted them (the recipient simulator sees the MeMo, not the
// envelope). It includes ingest's own time for the batch.
func (e *Env) Sent(first, n int, at time.Time) {
	ms := at.UnixMilli()
	e.mu.Lock()
	for i := first; i < first+n && i < len(e.sentAt); i++ {
		if e.sentAt[i] == 0 {
			e.sentAt[i] = ms
		}
	}
	e.mu.Unlock()
}

// SentAtMs is when message i was handed to ingest (Unix ms; 0 unknown).
func (e *Env) SentAtMs(i int) int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.sentAt[i]
}

// Accept marks manifest message i as accepted by ingest.
func (e *Env) Accept(i int) {
	now := time.Now().UnixMilli()
	e.mu.Lock()
	if !e.acceptedIdx[i] {
		e.acceptedIdx[i] = true
		e.accepted.Add(1)
	}
	if e.sentAt[i] == 0 {
		e.sentAt[i] = now
	}
	e.mu.Unlock()
}

// Reject counts a message refused at ingest.
func (e *Env) Reject(code string) {
	e.mu.Lock()
	e.ingestCodes[code]++
	e.mu.Unlock()
}

// Accepted reports whether message i was accepted.
func (e *Env) Accepted(i int) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.acceptedIdx[i]
}

func (e *Env) logf(format string, a ...any) {
	if e.Opts.Log != nil {
		fmt.Fprintf(e.Opts.Log, format+"\n", a...)
	}
}

// Scenario is one benchmark: what it sends, where a message counts as
// arrived and what the event log must hold afterwards. The runner does
// the rest (null pipeline, sampling, waiting, checking, the report), so a
// new scenario is its load and its expectations.
type Scenario interface {
	Name() string
	// Prepare builds the load before the clock starts and returns the
	// manifest of every message it may send.
	Prepare(ctx context.Context, env *Env) (*Manifest, error)
	// Load sends; it returns when ingest has answered for every message,
	// having called env.Accept or env.Reject for each.
	Load(ctx context.Context, env *Env) error
	// Arrival is the measuring point at the end of the pipeline.
	Arrival(env *Env) ArrivalSource
	// Expect says, after the load, which messages must arrive and what
	// the event log must hold.
	Expect(env *Env) Expectation
}

// Expectation is what a correct run ends with.
type Expectation struct {
	ShouldArrive func(i int) bool
	Arrivals     int64
	Events       map[string]int64
	// AtLeast marks tags whose count depends on timing (failed delivery
	// attempts while a system is down): the log must hold at least
	// Events[tag] of them.
	AtLeast map[string]bool
}

// NullSizer is implemented by scenarios whose Kafka records are not the
// size of their messages (claim-checked messages carry a reference): the
// null pipeline then carries records of these sizes.
type NullSizer interface {
	NullSizes(m *Manifest) []uint32
}

// LatencyBase is implemented by scenarios whose messages' latency does not
// start at submission (held messages: at their release).
type LatencyBase interface {
	LatencyFrom(env *Env, i int) int64
}

// Run runs a scenario against a target: prepare, load with sampling, wait
// for arrivals and the event log, check, the null pipeline, report. A run that
// lost messages or events returns the report and an error wrapping ErrLoss.
func Run(ctx context.Context, sc Scenario, t Target, o Options) (*Report, error) {
	o.defaults()
	rep := newReport(sc.Name(), t, o)
	env := &Env{Target: t, Opts: o, Report: rep, ingestCodes: map[string]int64{}}

	env.logf("preparing %d messages (seed %d, batches of %d)...", o.Messages, o.Seed, o.BatchSize)
	man, err := sc.Prepare(ctx, env)
	if err != nil {
		return nil, fmt.Errorf("prepare: %w", err)
	}
	env.Manifest = man
	env.acceptedIdx = make([]bool, len(man.UUIDs))
	env.sentAt = make([]int64, len(man.UUIDs))
	rep.setMix(man)

	kopts, err := t.Kafka.ClientOpts()
	if err != nil {
		return nil, err
	}
	kcl, err := kgo.NewClient(kopts...)
	if err != nil {
		return nil, err
	}
	defer kcl.Close()
	adm := kadm.NewClient(kcl)
	ch, err := chconn.Open(ctx, t.ClickHouse)
	if err != nil {
		return nil, fmt.Errorf("clickhouse: %w", err)
	}
	defer ch.Close()
	eventsTable := t.ClickHouse.Database + ".events"
	baseEvents, err := countByTag(ctx, ch, eventsTable)
	if err != nil {
		return nil, fmt.Errorf("clickhouse: the event log %s is not readable: %w", eventsTable, err)
	}

	tr := newTracker(man)
	tr.from = env.SentAtMs
	if lb, ok := sc.(LatencyBase); ok {
		tr.from = func(i int) int64 { return lb.LatencyFrom(env, i) }
	}
	arr := sc.Arrival(env)
	rep.ArrivalPoint = arr.Name()
	stopArr, err := arr.Start(ctx, tr.arrive)
	if err != nil {
		return nil, err
	}
	codes := &codeCounter{m: map[string]int64{}}
	stopRc, err := watchTopic(ctx, t.Kafka, pipeline.TopicReceipts, codes.receipt)
	if err != nil {
		_ = stopArr()
		return nil, err
	}

	var proc ProcStats = SelfStats{}
	if !t.InProcess {
		proc = nil
		if len(t.MetricsURLs) > 0 {
			proc = &MetricsStats{URLs: t.MetricsURLs}
		}
	}
	prog := newProgress(o.Progress, int64(len(man.UUIDs)))
	smp := &sampler{adm: adm, groupPfx: "memoflow-", ch: ch, eventsTb: eventsTable, proc: proc,
		gatherer: t.Gatherer, metrics: t.MetricsURLs, tracker: tr, accepted: env.accepted.Load, onSample: prog.line}
	cpu0, _, _ := readProc(ctx, proc)
	sctx, stopSampling := context.WithCancel(ctx)
	endLoad := func() {}
	if o.AroundLoad != nil {
		endLoad = o.AroundLoad()
	}
	start := time.Now()
	var swg sync.WaitGroup
	swg.Add(1)
	go func() { defer swg.Done(); smp.run(sctx, start, o.SampleEvery) }()

	loadErr := sc.Load(ctx, env)
	rep.LoadSeconds = time.Since(start).Seconds()
	exp := sc.Expect(env)
	rep.EventsExpected = sumValues(exp.Events)
	for k, v := range baseEvents {
		// A running setup's log may hold earlier runs: count ours only.
		exp.Events[k] += int64(v)
	}

	// Wait for every arrival and the complete event log.
	var arrivedAt, eventsAt time.Duration
	lastMove, lastArr, lastEv := time.Now(), int64(-1), uint64(0)
	deadline := time.Now().Add(o.Timeout)
	wantEvents := uint64(sumValues(exp.Events))
	for loadErr == nil && ctx.Err() == nil {
		a, _, _ := tr.snapshotCount()
		var ev uint64
		_ = ch.QueryRow(ctx, "SELECT count() FROM "+eventsTable).Scan(&ev)
		if a >= exp.Arrivals && arrivedAt == 0 {
			arrivedAt = tr.lastArrival().Sub(start)
			if exp.Arrivals == 0 {
				arrivedAt = time.Since(start)
			}
		}
		if ev >= wantEvents && eventsAt == 0 {
			eventsAt = time.Since(start)
		}
		if arrivedAt > 0 && eventsAt > 0 {
			break
		}
		if a != lastArr || ev != lastEv {
			lastMove, lastArr, lastEv = time.Now(), a, ev
		}
		if time.Since(lastMove) > o.StallTimeout || time.Now().After(deadline) {
			rep.Notes = append(rep.Notes, fmt.Sprintf("gave up waiting: %d of %d arrived, %d of %d event rows, nothing moved for %s",
				a, exp.Arrivals, ev, wantEvents, time.Since(lastMove).Round(time.Second)))
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Late duplicates would show in the next moments: keep watching a bit.
	if loadErr == nil && ctx.Err() == nil {
		time.Sleep(min(2*time.Second, o.StallTimeout))
	}
	endLoad()
	smp.take(ctx, start)
	stopSampling()
	swg.Wait()
	arrErr, rcErr := stopArr(), stopRc()
	if loadErr != nil {
		return nil, fmt.Errorf("load: %w", loadErr)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if arrErr != nil {
		return nil, arrErr
	}
	if rcErr != nil {
		return nil, rcErr
	}

	// Correctness.
	lost, dups, unexpected, sample := tr.verdict(exp.ShouldArrive)
	got, err := countByTag(ctx, ch, eventsTable)
	if err != nil {
		return nil, fmt.Errorf("clickhouse: counting events: %w", err)
	}
	for k, v := range baseEvents {
		got[k] -= v
		if got[k] == 0 {
			delete(got, k)
		}
		exp.Events[k] -= int64(v)
		if exp.Events[k] == 0 {
			delete(exp.Events, k)
		}
	}
	samples, srcErrs := smp.result()
	cpu1, _, _ := readProc(ctx, proc)
	// The peak RSS so far is the run's: the null pipeline below fills the
	// broker again, and in process that would count against the stages.
	maxRSS := MaxRSSMB()

	// The ceiling, after the run so its records and groups do not share
	// the broker with the load (the same broker, partitions and sizes).
	if o.NullRecords >= 0 {
		n := o.NullRecords
		if n == 0 {
			n = min(len(man.UUIDs), 500000)
		}
		no := NullShape(t.Stages)
		no.Kafka, no.Records, no.Partitions, no.Sizes = t.Kafka, n, t.Kafka.TopicPartitions, man.Sizes
		if ns, ok := sc.(NullSizer); ok {
			no.Sizes = ns.NullSizes(man)
		}
		no.PollRecords, no.Transactions = t.Runner.PollRecords, t.Runner.Transactions
		env.logf("null pipeline: %d records, %d exactly-once hop(s) (sink %v, %d B event records), %d partitions...",
			n, no.Hops, no.Sink, no.EventBytes, t.Kafka.TopicPartitions)
		nr, err := RunNull(ctx, no)
		if err != nil {
			return nil, fmt.Errorf("null pipeline: %w", err)
		}
		rep.Null = nr
		rep.NullMsgsPerSec = nr.MsgsPerSec
		env.logf("null pipeline: %.0f msgs/s (%.1f MB/s, %.2fs)", nr.MsgsPerSec, nr.MBPerSec, nr.Seconds)
	}

	rep.finish(finishInput{
		start: start, accepted: env.accepted.Load(), expArrivals: exp.Arrivals, arrivedAt: arrivedAt, eventsAt: eventsAt,
		lost: lost, dups: dups, unexpected: unexpected, lostSample: sample,
		eventsGot: got, eventsWant: exp.Events, lat: tr.latencies(), samples: samples, srcErrs: srcErrs,
		ingestCodes: env.ingestCodes, stageCodes: codes.snapshot(), cpu: cpu1 - cpu0, inProcess: t.InProcess, atLeast: exp.AtLeast,
		unmodelled: unmodelled(t.Stages), maxRSS: maxRSS,
	})
	if c, ok := sc.(ReportChecker); ok {
		c.Check(rep)
	}
	if !rep.OK {
		return rep, fmt.Errorf("%w: %s", ErrLoss, strings.Join(rep.Failures, "; "))
	}
	return rep, nil
}

func readProc(ctx context.Context, p ProcStats) (float64, float64, error) {
	if p == nil {
		return 0, 0, nil
	}
	return p.Read(ctx)
}

// NullShape is the null pipeline of a run of stages: one exactly-once
// copy hop per Kafka-to-Kafka stage on the message path (validate,
// schedule, route: memo.ingest → valid → ready → routed), a last
// consuming hop for deliver, and an event record per message and hop for
// the stages' memo.events writes (about the size of one encoded event).
func NullShape(stages []string) NullOptions {
	var o NullOptions
	for _, s := range stages {
		switch s {
		case "validate", "schedule", "route":
			o.Hops++
		case "deliver":
			o.Sink = true
		}
	}
	o.Hops = max(o.Hops, 1)
	if hasStage(stages, "eventlog") {
		o.EventBytes = nullEventBytes
	}
	return o
}

// nullEventBytes is about one memo.events record per message and stage
// (one or two encoded events with their pseudonymised recipient).
const nullEventBytes = 256

func countByTag(ctx context.Context, ch driver.Conn, table string) (map[string]uint64, error) {
	rows, err := ch.Query(ctx, "SELECT tag, count() FROM "+table+" GROUP BY tag")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]uint64{}
	for rows.Next() {
		var tag string
		var n uint64
		if err := rows.Scan(&tag, &n); err != nil {
			return nil, err
		}
		out[tag] = n
	}
	return out, rows.Err()
}

// codeCounter counts receipts with an error code (INVALID technical
// receipts from validate, later failed deliveries).
type codeCounter struct {
	mu sync.Mutex
	m  map[string]int64
}

func (c *codeCounter) receipt(r *kgo.Record) {
	var rc records.Receipt
	if records.DecodeReceipt(r.Value, &rc) != nil || rc.ErrorCode == "" {
		return
	}
	c.mu.Lock()
	c.m[rc.ErrorCode]++
	c.mu.Unlock()
}

func (c *codeCounter) snapshot() map[string]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int64, len(c.m))
	for k, v := range c.m {
		out[k] = v
	}
	return out
}

// watchTopic calls fn for every committed record of topic produced after
// it returns.
func watchTopic(ctx context.Context, kc pipeline.KafkaConfig, topic string, fn func(*kgo.Record)) (func() error, error) {
	opts, err := kc.ClientOpts()
	if err != nil {
		return nil, err
	}
	ta := &TopicArrival{Brokers: kc.Brokers, Topic: topic, Opts: opts}
	return ta.startRaw(ctx, fn)
}

// progress prints the one-line status every sample.
type progress struct {
	w     io.Writer
	total int64
	prev  *Sample
	tty   bool
}

func newProgress(w io.Writer, total int64) *progress {
	p := &progress{w: w, total: total}
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			p.tty = true
		}
	}
	return p
}

func (p *progress) line(s Sample) {
	if p.w == nil {
		return
	}
	rate := func(cur, prev int64) float64 {
		if p.prev == nil || s.T <= p.prev.T {
			return 0
		}
		return float64(cur-prev) / (s.T - p.prev.T)
	}
	var pa, pr int64
	if p.prev != nil {
		pa, pr = p.prev.Accepted, p.prev.Arrived
	}
	groups := make([]string, 0, len(s.Lag))
	for g := range s.Lag {
		groups = append(groups, g)
	}
	sort.Strings(groups)
	var lag strings.Builder
	for _, g := range groups {
		fmt.Fprintf(&lag, " %s=%d", g, s.Lag[g])
	}
	line := fmt.Sprintf("%5.0fs accepted %d/%d (%.0f/s) arrived %d (%.0f/s, p99 %.0f ms) events %d | lag%s | rss %.0f MB",
		s.T, s.Accepted, p.total, rate(s.Accepted, pa), s.Arrived, rate(s.Arrived, pr), s.LatP99, s.Events, lag.String(), s.RSSMB)
	if p.tty {
		fmt.Fprintf(p.w, "\r\033[K%s", line)
	} else {
		fmt.Fprintln(p.w, line)
	}
	p.prev = &s
}

// machine describes where the run happened.
func machine() string {
	model := ""
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "model name") {
				_, model, _ = strings.Cut(l, ":")
				model = strings.TrimSpace(model)
				break
			}
		}
	}
	mem := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		if _, err := fmt.Sscanf(string(b), "MemTotal: %d kB", &kb); err == nil {
			mem = fmt.Sprintf(", %.0f GiB RAM", float64(kb)/(1<<20))
		}
	}
	return fmt.Sprintf("%d CPUs (%s)%s, %s %s/%s", runtime.NumCPU(), model, mem, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

var errNoLoad = errors.New("bench: nothing to send")
