// Package schedule is the value-date stage: it reads memo.valid and passes
// every message on to memo.ready, except one whose doNotDeliverUntilDate is
// in the future, which it holds durably (DELAYED_MEMO_SEND_VALIDATED_
// AWAITING_DELAY) and releases from 00:00 Europe/Copenhagen on that date, in
// submission order and at a bounded rate (DELAYED_MEMO_SEND_SENT), unless
// its sender recalls it first (DELAYED_MEMO_MESSAGE_RECALLED). See
// DESIGN.md.
package schedule

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/memoflow/memoflow/pipeline"
	"github.com/memoflow/memoflow/schemas/events"
	"github.com/memoflow/memoflow/schemas/records"
)

// Clock tells the stage what time it is (value dates, markers, events).
// Tests inject a fake one; the release rate is paced by the real monotonic
// clock either way.
type Clock interface{ Now() time.Time }

// ClockFunc adapts a function to Clock.
type ClockFunc func() time.Time

func (f ClockFunc) Now() time.Time { return f() }

// Config configures the stage.
type Config struct {
	// Dir holds the on-disk index (a cache rebuilt from memo.held), one
	// per replica. Empty: <var-dir>/schedule/<replica-id>.
	Dir string `yaml:"dir"`
	// ReleaseRate is how many held messages per second each partition
	// releases at most once they are due: a release of millions then
	// takes its time instead of flooding routing and delivery.
	ReleaseRate float64 `yaml:"release_rate"`
	// TickInterval is how often release ticks are written to
	// memo.schedule; each tick releases what the rate allows since the
	// last one.
	TickInterval time.Duration `yaml:"tick_interval"`
	// MaxReleasePerTick bounds one release transaction, so live traffic
	// in the same partition waits for at most that many records.
	MaxReleasePerTick int `yaml:"max_release_per_tick"`
	// MarkerRetention is how long the stage remembers a released or
	// recalled message (a recall then answers 409 or 200, after it 404).
	MarkerRetention time.Duration `yaml:"marker_retention"`
	// SyncTimeout bounds the wait for the index to catch up with
	// memo.held before a batch (then the batch is retried).
	SyncTimeout time.Duration `yaml:"sync_timeout"`
	// RecallWait is how long the recall API waits for the stage's
	// decision before it answers 202 with a status URL.
	RecallWait time.Duration `yaml:"recall_wait"`
}

// DefaultConfig returns the defaults of RegisterFlags.
func DefaultConfig() Config {
	return Config{
		ReleaseRate: 2000, TickInterval: time.Second,
		MaxReleasePerTick: 5000, MarkerRetention: 30 * 24 * time.Hour, SyncTimeout: 30 * time.Second,
		RecallWait: 5 * time.Second,
	}
}

// RegisterFlags adds the stage's flags.
func (c *Config) RegisterFlags(fs *pflag.FlagSet) {
	d := DefaultConfig()
	fs.StringVar(&c.Dir, "schedule-dir", d.Dir, "directory of the value-date stage's on-disk index of held messages (a cache, rebuilt from memo.held; one per replica; default <var-dir>/schedule/<replica-id>)")
	fs.Float64Var(&c.ReleaseRate, "schedule-release-rate", d.ReleaseRate, "held messages released per second per partition once their value date has come")
	fs.DurationVar(&c.TickInterval, "schedule-tick-interval", d.TickInterval, "how often the value-date stage checks for due messages")
	fs.IntVar(&c.MaxReleasePerTick, "schedule-max-release-per-tick", d.MaxReleasePerTick, "most held messages released in one transaction")
	fs.DurationVar(&c.MarkerRetention, "schedule-marker-retention", d.MarkerRetention, "how long a released or recalled message is remembered for recall answers")
	fs.DurationVar(&c.SyncTimeout, "schedule-sync-timeout", d.SyncTimeout, "longest wait for the index to read memo.held before a batch is retried")
	fs.DurationVar(&c.RecallWait, "recall-wait", d.RecallWait, "how long DELETE /apis/v1/memos/{uuid} waits for the decision before answering 202 with a status URL")
}

// Validate names the field and the fix of the first bad setting.
func (c Config) Validate() error {
	switch {
	case c.ReleaseRate <= 0:
		return fmt.Errorf("schedule.release_rate: %v; give a positive number of messages per second per partition, e.g. 2000", c.ReleaseRate)
	case c.TickInterval < time.Millisecond || c.TickInterval > time.Minute:
		return fmt.Errorf("schedule.tick_interval: %s is out of range; use 1ms..1m (1s is the default)", c.TickInterval)
	case c.MaxReleasePerTick < 1:
		return fmt.Errorf("schedule.max_release_per_tick: %d; give a positive number, e.g. 5000", c.MaxReleasePerTick)
	case c.MarkerRetention < time.Hour:
		return fmt.Errorf("schedule.marker_retention: %s is too short; use at least 1h (30 days is the default)", c.MarkerRetention)
	case c.SyncTimeout < time.Second:
		return fmt.Errorf("schedule.sync_timeout: %s is too short; use at least 1s", c.SyncTimeout)
	case c.RecallWait <= 0 || c.RecallWait > time.Minute:
		return fmt.Errorf("schedule.recall_wait: %s is out of range; use 1ms..1m (5s is the default)", c.RecallWait)
	}
	return nil
}

// Stage is the value-date Transformer. It consumes memo.valid and
// memo.schedule (co-partitioned: partition p of both is handled by one
// replica, which also owns memo.held partition p).
type Stage struct {
	cfg    Config
	clock  Clock
	pseudo *events.Pseudonymizer
	log    *slog.Logger
	ix     *index
	adm    *kadm.Client
	admCl  *kgo.Client
	base   []kgo.Opt
	reg    prometheus.Registerer
	m      *metrics

	// Per partition: the memo.held records emitted by the last Transform
	// (their offsets are filled in once produced: the index must have
	// read past them before the next decision) and the release budget.
	mu      sync.Mutex
	pending map[int32][]*kgo.Record
	target  map[int32]int64 // offset the index must reach before p's next decision
	budget  map[int32]*bucket

	tickMu     sync.Mutex
	tickCancel context.CancelFunc
	tickDone   chan struct{}
}

// bucket is a token bucket pacing one partition's releases.
type bucket struct {
	tokens float64
	last   time.Time // monotonic
}

// Option configures a Stage.
type Option func(*Stage)

// WithClock sets the clock (default the system clock).
func WithClock(c Clock) Option { return func(s *Stage) { s.clock = c } }

// WithRegisterer registers the stage's metrics on reg (default: none).
func WithRegisterer(reg prometheus.Registerer) Option { return func(s *Stage) { s.reg = reg } }

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(s *Stage) { s.log = l } }

// New opens the index and returns the stage. opts are the Kafka client
// options (brokers, TLS, SASL) of the index tail and the ticker. Close
// releases both.
func New(cfg Config, kafka []kgo.Opt, pseudo *events.Pseudonymizer, opts ...Option) (*Stage, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Dir == "" {
		return nil, errors.New("schedule.dir: empty; give a directory for the index, e.g. ./var/schedule/r0")
	}
	if pseudo == nil {
		return nil, errors.New("schedule: a Pseudonymizer is required (events carry recipients)")
	}
	s := &Stage{cfg: cfg, clock: ClockFunc(time.Now), pseudo: pseudo, log: slog.Default(), base: kafka,
		pending: map[int32][]*kgo.Record{}, target: map[int32]int64{}, budget: map[int32]*bucket{}}
	for _, o := range opts {
		o(s)
	}
	m, err := newMetrics(s.reg)
	if err != nil {
		return nil, err
	}
	s.m = m
	cl, err := kgo.NewClient(kafka...)
	if err != nil {
		return nil, fmt.Errorf("schedule: kafka client: %w", err)
	}
	s.admCl, s.adm = cl, kadm.NewClient(cl)
	if s.ix, err = openIndex(cfg.Dir, kafka, pipeline.TopicHeld, s.log); err != nil {
		cl.Close()
		return nil, err
	}
	if s.reg != nil {
		g := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "memoflow_schedule_held_messages",
			Help: "Messages held for their value date in the partitions this replica owns (as far as its index has read memo.held).",
		}, func() float64 { return float64(s.ix.heldCount()) })
		if err := s.reg.Register(g); err != nil {
			s.ix.close()
			cl.Close()
			return nil, err
		}
	}
	return s, nil
}

func (s *Stage) Name() string { return "schedule" }

// CoPartitioned: memo.valid and memo.schedule partition p go to one member.
func (s *Stage) CoPartitioned() {}

// Close stops the ticker and the index.
func (s *Stage) Close() {
	s.StopTicker()
	s.ix.close()
	s.admCl.Close()
}

// PartitionsRevoked forgets what the stage knew of partitions it no longer
// owns; they are rebuilt from memo.held if they come back.
func (s *Stage) PartitionsRevoked(m map[string][]int32) {
	var ps []int32
	seen := map[int32]bool{}
	for _, t := range []string{pipeline.TopicValid, pipeline.TopicSchedule} {
		for _, p := range m[t] {
			if !seen[p] {
				seen[p] = true
				ps = append(ps, p)
			}
		}
	}
	if len(ps) == 0 {
		return
	}
	s.mu.Lock()
	for _, p := range ps {
		delete(s.pending, p)
		delete(s.target, p)
		delete(s.budget, p)
	}
	s.mu.Unlock()
	s.ix.closePartitions(ps)
	s.log.Info("schedule: partitions revoked; their index is dropped", "partitions", ps)
}

// Transform decides every record of the batch in order, per partition:
// memo.valid messages pass or are held, memo.schedule recalls and ticks
// recall or release. All decisions read the index after it has caught up
// with memo.held, plus what this batch itself decided (the overlay).
func (s *Stage) Transform(ctx context.Context, b *pipeline.Batch) error {
	// Recalls and future-dated messages wait until the index has read
	// everything this stage wrote to memo.held before (they must decide on
	// complete state). Ticks never wait: while the index is behind (a
	// rebuild, or the previous release still being read back) they are
	// skipped, and the next tick releases. Live (undated or due) messages
	// never read the index, so nothing holds them up.
	now := s.clock.Now()
	parts, needs := map[int32]bool{}, map[int32]bool{}
	var env records.Envelope
	for _, r := range b.Records {
		switch r.Topic {
		case pipeline.TopicValid:
			if env.Decode(r.Value) == nil {
				if at, ok := ReleaseTime(env.ValueDate, Copenhagen); ok && at.After(now) {
					needs[r.Partition] = true
				}
			}
		case pipeline.TopicSchedule:
			if c, err := decodeCommand(r.Value); err == nil && c.Kind == cmdTick {
				parts[r.Partition] = true
			} else {
				needs[r.Partition] = true
			}
		}
	}
	for p := range needs {
		parts[p] = true
	}
	if err := s.prepare(ctx, parts); err != nil {
		if pipeline.ClassOf(err) == pipeline.ClassFatal {
			return err
		}
		return pipeline.Transient(err)
	}
	if err := s.ix.syncTo(ctx, s.targets(needs), s.cfg.SyncTimeout); errors.Is(err, errRevoked) {
		// The transactional session saw the revoke too and aborts this
		// batch whatever it emits; retrying it here would wait forever
		// for a partition this replica no longer reads.
		s.log.Info("schedule: a partition of the batch was revoked; the batch is abandoned", "err", err)
		return nil
	} else if err != nil {
		return pipeline.Transient(err)
	}
	t := &txn{s: s, b: b, now: now, overlay: map[string]heldRec{}}
	for _, r := range b.Records {
		var err error
		switch r.Topic {
		case pipeline.TopicValid:
			err = t.message(r)
		case pipeline.TopicSchedule:
			var c command
			if c, err = decodeCommand(r.Value); err != nil {
				b.Reject(r, pipeline.Poison(CodeBadCommand, err))
				continue
			}
			if c.Kind == cmdTick {
				if s.ix.reached(r.Partition, s.targets(map[int32]bool{r.Partition: true})[r.Partition]) {
					err = t.tick(r.Partition)
				} else {
					s.m.ticksSkipped.Inc()
				}
			} else {
				err = t.recall(r, c)
			}
		default:
			b.Reject(r, pipeline.Poison(CodeBadCommand, fmt.Errorf("schedule reads %s and %s, not %s", pipeline.TopicValid, pipeline.TopicSchedule, r.Topic)))
			continue
		}
		if err != nil {
			return err
		}
	}
	s.mu.Lock()
	for p, rs := range t.held {
		s.pending[p] = append(s.pending[p], rs...)
	}
	s.mu.Unlock()
	return nil
}

// prepare folds what the previous batches wrote to memo.held into the
// per-partition targets the index must reach, and opens (starts
// rebuilding) the partitions of parts seen for the first time.
func (s *Stage) prepare(ctx context.Context, parts map[int32]bool) error {
	s.mu.Lock()
	for p, rs := range s.pending {
		for _, r := range rs {
			// -1: never produced (a discarded attempt or a failed
			// produce); nothing of it can be in memo.held. The previous
			// batch has ended, so the offsets are final.
			if r.Offset >= 0 && r.Offset+1 > s.target[p] {
				s.target[p] = r.Offset + 1
			}
		}
		delete(s.pending, p)
	}
	s.mu.Unlock()
	var fresh []int32
	for p := range parts {
		if !s.ix.isOpen(p) {
			fresh = append(fresh, p)
		}
	}
	if len(fresh) == 0 {
		return nil
	}
	if err := s.checkPartitions(ctx); err != nil {
		return err
	}
	ends, err := stableEnds(ctx, s.adm, pipeline.TopicHeld, fresh, s.cfg.SyncTimeout)
	if err != nil {
		return err
	}
	s.mu.Lock()
	for _, p := range fresh {
		delete(s.budget, p)
		s.target[p] = max(s.target[p], ends[p])
	}
	s.mu.Unlock()
	s.log.Info("schedule: rebuilding the index of partitions from memo.held", "partitions", fresh)
	return s.ix.openPartitions(fresh, ends)
}

func (s *Stage) targets(ps map[int32]bool) map[int32]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[int32]int64, len(ps))
	for p := range ps {
		out[p] = s.target[p]
	}
	return out
}

// Held is the number of messages held in the partitions this replica owns,
// as far as its index has read memo.held.
func (s *Stage) Held() int64 { return s.ix.heldCount() }

// Rebuilt is the number of partition (re)builds of the index completed.
func (s *Stage) Rebuilt() int64 { return s.ix.rebuiltCount() }

// checkPartitions refuses to run when the three co-partitioned topics
// differ in partition count: the same key would land in different
// partition numbers and recalls would miss their messages.
func (s *Stage) checkPartitions(ctx context.Context) error {
	td, err := s.adm.ListTopics(ctx, pipeline.TopicValid, pipeline.TopicSchedule, pipeline.TopicHeld)
	if err != nil {
		return err
	}
	n := -1
	for _, t := range []string{pipeline.TopicValid, pipeline.TopicSchedule, pipeline.TopicHeld} {
		d, ok := td[t]
		if !ok || d.Err != nil {
			return fmt.Errorf("topic %s is missing (memoflow topics create)", t)
		}
		if n >= 0 && len(d.Partitions) != n {
			return pipeline.Fatal(fmt.Errorf("schedule: %s, %s and %s must have the same number of partitions (co-partitioned by messageUUID); %s has %d, not %d",
				pipeline.TopicValid, pipeline.TopicSchedule, pipeline.TopicHeld, t, len(d.Partitions), n))
		}
		n = len(d.Partitions)
	}
	return nil
}

// txn is one Transform call's decisions.
type txn struct {
	s       *Stage
	b       *pipeline.Batch
	now     time.Time
	overlay map[string]heldRec // what this call decided, by messageUUID
	held    map[int32][]*kgo.Record
	env     records.Envelope
}

func (t *txn) emitHeld(p int32, key []byte, h *heldRec) {
	var v []byte
	if h != nil {
		v = h.appendTo(make([]byte, 0, 64+len(h.envelope)))
		t.overlay[string(key)] = *h
	} else {
		t.overlay[string(key)] = heldRec{} // kind 0: gone
	}
	r := &kgo.Record{Topic: pipeline.TopicHeld, Key: key, Value: v, Offset: -1}
	t.b.Emit(r)
	if t.held == nil {
		t.held = map[int32][]*kgo.Record{}
	}
	t.held[p] = append(t.held[p], r)
}

// state returns what is known of uuid in partition p: this call's
// decisions first, then the index.
func (t *txn) state(p int32, key []byte) (heldRec, bool, error) {
	if h, ok := t.overlay[string(key)]; ok {
		return h, h.kind != 0, nil
	}
	v, err := t.s.ix.lookup(p, key)
	if err != nil || v == nil {
		return heldRec{}, false, err
	}
	h, err := decodeHeld(v)
	if err != nil {
		return heldRec{}, false, err
	}
	return h, true, nil
}

// message passes a memo.valid record on, or holds it.
func (t *txn) message(r *kgo.Record) error {
	if err := t.env.Decode(r.Value); err != nil {
		t.b.Reject(r, pipeline.Poison(CodeBadEnvelope, err))
		return nil
	}
	at, ok := ReleaseTime(t.env.ValueDate, Copenhagen)
	if !ok || !at.After(t.now) {
		t.b.Emit(&kgo.Record{Topic: pipeline.TopicReady, Key: r.Key, Value: r.Value, Headers: r.Headers})
		t.s.m.decisions.WithLabelValues("pass").Inc()
		return nil
	}
	if h, found, err := t.state(r.Partition, r.Key); err != nil {
		return pipeline.Transient(err)
	} else if found && h.kind != kindHeld {
		// Resent after it was released or recalled: validate keeps the
		// idempotency window; here it must not come back to life.
		return nil
	}
	h := heldRec{kind: kindHeld, releaseAt: at.UnixMilli(), seq: r.Offset, at: t.now.UnixMilli(),
		org: t.env.SenderOrg, system: t.env.SenderSystem, envelope: r.Value}
	t.emitHeld(r.Partition, r.Key, &h)
	t.event(&t.env, events.DelayedMemoSendValidatedAwaitingDelay, "")
	t.s.m.decisions.WithLabelValues("held").Inc()
	return nil
}

// recall decides one recall command.
func (t *txn) recall(r *kgo.Record, c command) error {
	h, found, err := t.state(r.Partition, r.Key)
	if err != nil {
		return pipeline.Transient(err)
	}
	res := Result{RequestID: c.RequestID, MessageUUID: string(r.Key), Org: c.Org, DecidedAt: t.now.UTC().Format(time.RFC3339Nano)}
	switch {
	case !found || h.org != c.Org:
		// Another organisation's message is not found either: its
		// existence is not the caller's business.
		res.Outcome = OutcomeNotFound
	case h.kind == kindReleased:
		res.Outcome = OutcomeTooLate
		res.ReleasedAt = time.UnixMilli(h.at).UTC().Format(time.RFC3339Nano)
	case h.kind == kindRecalled:
		res.Outcome = OutcomeAlreadyRecalled
	default:
		if err := t.env.Decode(h.envelope); err != nil {
			return pipeline.Transient(fmt.Errorf("held message %s: %w", r.Key, err))
		}
		t.emitHeld(r.Partition, r.Key, &heldRec{kind: kindRecalled, releaseAt: h.releaseAt, seq: h.seq, at: t.now.UnixMilli(), org: h.org, system: h.system})
		t.event(&t.env, events.DelayedMemoMessageRecalled, c.System)
		res.Outcome = OutcomeRecalled
	}
	t.s.m.decisions.WithLabelValues(strings.ToLower(string(res.Outcome))).Inc()
	v, _ := json.Marshal(res)
	t.b.Emit(&kgo.Record{Topic: pipeline.TopicRecalls, Key: []byte(c.RequestID), Value: v})
	return nil
}

// tick releases what is due in partition p, as far as the rate allows, and
// forgets markers past their retention.
func (t *txn) tick(p int32) error {
	n := t.s.allowance(p)
	released := 0
	var err error
	if n > 0 {
		var ierr error
		err = t.s.ix.due(p, t.now.UnixMilli(), func(uuid, v []byte) bool {
			if _, decided := t.overlay[string(uuid)]; decided {
				return true // recalled (or released) earlier in this batch
			}
			h, derr := decodeHeld(v)
			if derr != nil || h.kind != kindHeld {
				return true
			}
			if ierr = t.env.Decode(h.envelope); ierr != nil {
				ierr = fmt.Errorf("held message %s: %w", uuid, ierr)
				return false
			}
			key := append([]byte(nil), uuid...)
			env := append([]byte(nil), h.envelope...)
			t.b.Emit(&kgo.Record{Topic: pipeline.TopicReady, Key: key, Value: env})
			t.emitHeld(p, key, &heldRec{kind: kindReleased, releaseAt: h.releaseAt, seq: h.seq, at: t.now.UnixMilli(), org: h.org, system: h.system})
			t.event(&t.env, events.DelayedMemoSendSent, "")
			released++
			return released < n
		})
		if err == nil {
			err = ierr
		}
	}
	t.s.spend(p, released)
	t.s.m.decisions.WithLabelValues("released").Add(float64(released))
	if err != nil {
		return pipeline.Transient(err)
	}
	swept := 0
	err = t.s.ix.expiredMarkers(p, t.now.Add(-t.s.cfg.MarkerRetention).UnixMilli(), func(uuid []byte) bool {
		key := append([]byte(nil), uuid...)
		if _, decided := t.overlay[string(key)]; !decided {
			t.emitHeld(p, key, nil)
		}
		swept++
		return swept < t.s.cfg.MaxReleasePerTick
	})
	if err != nil {
		return pipeline.Transient(err)
	}
	return nil
}

// allowance is how many messages partition p may release now: the token
// bucket refills at ReleaseRate per second of real time, up to one tick's
// worth (twice the interval) and MaxReleasePerTick. Duplicate ticks (one
// per replica) therefore do not raise the rate.
func (s *Stage) allowance(p int32) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	bk := s.budget[p]
	if bk == nil {
		bk = &bucket{tokens: s.cfg.ReleaseRate * s.cfg.TickInterval.Seconds(), last: now}
		s.budget[p] = bk
	}
	capacity := min(max(2*s.cfg.ReleaseRate*s.cfg.TickInterval.Seconds(), 1), float64(s.cfg.MaxReleasePerTick))
	bk.tokens = min(capacity, bk.tokens+s.cfg.ReleaseRate*now.Sub(bk.last).Seconds())
	bk.last = now
	return int(bk.tokens)
}

func (s *Stage) spend(p int32, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if bk := s.budget[p]; bk != nil {
		bk.tokens -= float64(n)
	}
}

// event emits one lifecycle event of a held message.
func (t *txn) event(e *records.Envelope, tag events.Tag, actor string) {
	ev := events.Event{
		Time: t.now, Tag: tag, MessageUUID: e.MessageUUID, TransmissionID: e.TransmissionID,
		SenderOrg: e.SenderOrg, SenderSystem: e.SenderSystem, ContactPoint: e.ContactPointID,
		PostType: e.PostType, Size: e.Size, Attachments: e.Attachments, Actor: actor,
	}
	switch e.RecipientType {
	case records.IDCPR:
		ev.Recipient = t.s.pseudo.Recipient(events.CPR, e.RecipientID)
	case records.IDCVR:
		ev.Recipient = t.s.pseudo.Recipient(events.CVR, e.RecipientID)
	}
	if e.MessageType == records.TypeNemSMS {
		ev.MessageType = "NEMSMS"
	} else {
		ev.MessageType = "DIGITALPOST"
	}
	if e.ValueDate > 0 {
		ev.ValueDate = time.Unix(int64(e.ValueDate-1)*86400, 0).UTC()
	}
	t.b.Emit(events.NewRecord(pipeline.TopicEvents, ev))
}
