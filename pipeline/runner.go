package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Runner runs one stage as a member of its consumer group. It owns the
// Kafka clients; the stage only sees Batches.
type Runner struct {
	stage   Stage
	inputs  []string
	kafka   KafkaConfig
	cfg     RunnerConfig
	group   string
	log     *slog.Logger
	metrics *Metrics
	hooks   []kgo.Hook
	now     func() time.Time
	extra   []kgo.Opt
}

// Option configures a Runner.
type Option func(*Runner)

// WithLogger sets the runner's logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(r *Runner) { r.log = l } }

// WithMetrics sets the metrics the runner updates (default DefaultMetrics()).
func WithMetrics(m *Metrics) Option { return func(r *Runner) { r.metrics = m } }

// WithHooks adds franz-go hooks (e.g. kprom) to the runner's client.
func WithHooks(h ...kgo.Hook) Option { return func(r *Runner) { r.hooks = append(r.hooks, h...) } }

// WithGroup overrides the consumer group (default "memoflow-<stage>").
func WithGroup(g string) Option { return func(r *Runner) { r.group = g } }

// WithClock injects time for DLQ headers and tests.
func WithClock(now func() time.Time) Option { return func(r *Runner) { r.now = now } }

// WithClientOpts appends raw kgo options (tests, benchmarks).
func WithClientOpts(o ...kgo.Opt) Option { return func(r *Runner) { r.extra = append(r.extra, o...) } }

// NewRunner checks the configuration and returns a runner for stage reading
// inputs. stage must be a Transformer or a Sink.
func NewRunner(stage Stage, inputs []string, kafka KafkaConfig, cfg RunnerConfig, opts ...Option) (*Runner, error) {
	switch stage.(type) {
	case Transformer, Sink:
	default:
		return nil, fmt.Errorf("stage %s is neither a Transformer nor a Sink", stage.Name())
	}
	if len(inputs) == 0 {
		return nil, fmt.Errorf("stage %s: no input topics", stage.Name())
	}
	if err := kafka.Validate(); err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r := &Runner{
		stage: stage, inputs: inputs, kafka: kafka, cfg: cfg,
		group: "memoflow-" + stage.Name(),
		log:   slog.Default(),
		now:   time.Now,
	}
	for _, o := range opts {
		o(r)
	}
	if r.metrics == nil {
		r.metrics = DefaultMetrics()
	}
	r.log = r.log.With("stage", stage.Name())
	return r, nil
}

// Group is the runner's consumer group.
func (r *Runner) Group() string { return r.group }

// consumer is what the loop needs of a Kafka client: the transactional and
// the plain variants differ only in how a batch ends.
type consumer interface {
	poll(ctx context.Context, n int) kgo.Fetches
	begin() error
	produce(ctx context.Context, rs []*kgo.Record) error
	// end commits (or aborts) the batch: outputs and consumed offsets.
	// committed=false means the work was abandoned and will be redone.
	end(ctx context.Context, batch []*kgo.Record, commit bool) (committed bool, err error)
	client() *kgo.Client
	close()
}

func (r *Runner) clientOpts() ([]kgo.Opt, error) {
	base, err := r.kafka.ClientOpts()
	if err != nil {
		return nil, err
	}
	opts := append(base,
		kgo.ConsumerGroup(r.group),
		kgo.ConsumeTopics(r.inputs...),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.SessionTimeout(r.cfg.SessionTimeout),
		kgo.FetchMaxBytes(int32(r.cfg.FetchMaxBytes)),
		kgo.FetchMaxPartitionBytes(int32(min(r.cfg.FetchMaxBytes, 8<<20))),
		kgo.MaxBufferedBytes(r.cfg.MaxBufferedBytes),
		kgo.MaxBufferedRecords(max(10000, 4*r.cfg.PollRecords)),
		kgo.WithLogger(slogAdapter{r.log}),
		kgo.ClientID(r.kafka.ClientID+"-"+r.stage.Name()),
	)
	if len(r.hooks) > 0 {
		opts = append(opts, kgo.WithHooks(r.hooks...))
	}
	if _, ok := r.stage.(CoPartitioned); ok {
		opts = append(opts, kgo.Balancers(kgo.RangeBalancer()))
	}
	if rl, ok := r.stage.(RevokeListener); ok {
		fn := func(_ context.Context, _ *kgo.Client, m map[string][]int32) { rl.PartitionsRevoked(m) }
		opts = append(opts, kgo.OnPartitionsRevoked(fn), kgo.OnPartitionsLost(fn))
	}
	return append(opts, r.extra...), nil
}

// errSessionFailed marks a failure of the Kafka client's session itself
// (a transaction could not be begun or ended, e.g. the brokers were gone
// longer than the client's retries): franz-go's advice is not to go on
// with that client, and nothing of the batch in hand is committed.
var errSessionFailed = errors.New("kafka session failed")

// maxSessionRestarts bounds consecutive session restarts before Run gives
// up (with backoff up to RetryMaxBackoff, minutes of broker outage).
const maxSessionRestarts = 20

// Run consumes until ctx is cancelled (returns nil) or a fatal error. On
// cancel it finishes or aborts the batch in hand, then leaves the group.
//
// A failed session (errSessionFailed) does not end the stage: Run closes
// the client and starts a new one with the same transactional id, which
// fences the old producer epoch and aborts its open transaction, so the
// batch in hand is consumed again from the committed offsets. A broker
// outage thus costs a reconnect, not a process restart.
func (r *Runner) Run(ctx context.Context) error {
	backoff := r.cfg.RetryMinBackoff
	for restarts := 0; ; restarts++ {
		start := time.Now()
		err := r.runSession(ctx)
		if !errors.Is(err, errSessionFailed) || ctx.Err() != nil {
			return err
		}
		if time.Since(start) > time.Minute {
			restarts, backoff = 0, r.cfg.RetryMinBackoff
		}
		if restarts >= maxSessionRestarts {
			return fmt.Errorf("%w (gave up after %d restarts)", err, restarts)
		}
		r.metrics.Errors.WithLabelValues(r.stage.Name(), ClassTransient.String()).Inc()
		r.log.Warn("kafka session failed; starting a new client (the open transaction is aborted, the batch comes again)", "err", err, "backoff", backoff, "restart", restarts+1)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, r.cfg.RetryMaxBackoff)
	}
}

// runSession is one Kafka client's life: Run starts another when it
// fails with errSessionFailed.
func (r *Runner) runSession(ctx context.Context) error {
	opts, err := r.clientOpts()
	if err != nil {
		return Fatal(err)
	}
	var c consumer
	if r.cfg.Transactions {
		opts = append(opts,
			kgo.TransactionalID(r.group+"-"+r.cfg.ReplicaID),
			kgo.TransactionTimeout(r.cfg.TxnTimeout),
			kgo.RequireStableFetchOffsets(),
		)
		s, err := kgo.NewGroupTransactSession(opts...)
		if err != nil {
			return Fatal(fmt.Errorf("stage %s: kafka client: %w", r.stage.Name(), err))
		}
		c = &txnConsumer{s: s}
	} else {
		opts = append(opts, kgo.DisableAutoCommit(), kgo.BlockRebalanceOnPoll())
		cl, err := kgo.NewClient(opts...)
		if err != nil {
			return Fatal(fmt.Errorf("stage %s: kafka client: %w", r.stage.Name(), err))
		}
		c = &plainConsumer{cl: cl}
	}
	defer c.close()

	lagCtx, stopLag := context.WithCancel(ctx)
	defer stopLag()
	go r.lagLoop(lagCtx, kadm.NewClient(c.client()))

	r.log.Info("stage started", "inputs", r.inputs, "group", r.group, "transactions", r.cfg.Transactions)
	b := &Batch{}
	for ctx.Err() == nil {
		recs, err := r.collect(ctx, c, b.Records[:0])
		b.Records = recs
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			return err
		}
		if len(recs) == 0 {
			continue
		}
		if err := r.handle(ctx, c, b); err != nil {
			if ctx.Err() != nil && errors.Is(err, context.Canceled) {
				break
			}
			if errors.Is(err, errSessionFailed) {
				return err // Run starts a new session
			}
			r.metrics.Errors.WithLabelValues(r.stage.Name(), ClassFatal.String()).Inc()
			r.log.Error("stage stopped", "err", err)
			return err
		}
	}
	r.log.Info("stage stopping")
	return nil
}

// collect polls one batch. Sinks keep polling until SinkBatchRecords or
// SinkBatchWait is reached, so external systems see few large writes.
func (r *Runner) collect(ctx context.Context, c consumer, dst []*kgo.Record) ([]*kgo.Record, error) {
	_, isSink := r.stage.(Sink)
	limit := r.cfg.PollRecords
	if isSink {
		limit = r.cfg.SinkBatchRecords
	}
	if bl, ok := r.stage.(BatchLimiter); ok {
		if m := bl.MaxBatchRecords(); m > 0 && m < limit {
			limit = m
		}
	}
	var deadline time.Time
	for len(dst) < limit {
		pctx := ctx
		var cancel context.CancelFunc = func() {}
		if !deadline.IsZero() {
			pctx, cancel = context.WithDeadline(ctx, deadline)
		}
		fetches := c.poll(pctx, limit-len(dst))
		cancel()
		if fetches.IsClientClosed() {
			return dst, context.Canceled
		}
		fetches.EachError(func(t string, p int32, err error) {
			if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
				return
			}
			r.metrics.Errors.WithLabelValues(r.stage.Name(), ClassTransient.String()).Inc()
			r.log.Warn("fetch error", "topic", t, "partition", p, "err", err)
		})
		if ctx.Err() != nil {
			return dst, ctx.Err()
		}
		fetches.EachRecord(func(rec *kgo.Record) { dst = append(dst, rec) })
		if !isSink {
			return dst, nil
		}
		if len(dst) > 0 && deadline.IsZero() {
			deadline = time.Now().Add(r.cfg.SinkBatchWait)
		}
		if !deadline.IsZero() && !time.Now().Before(deadline) {
			break
		}
	}
	return dst, nil
}

// handle processes one batch and ends it: commit on success, abort (the
// records come again) when the outputs could not be produced.
func (r *Runner) handle(ctx context.Context, c consumer, b *Batch) error {
	start := time.Now()
	name := r.stage.Name()
	if err := c.begin(); err != nil {
		return Fatal(fmt.Errorf("begin transaction: %w: %w", errSessionFailed, err))
	}
	// The work itself must not be cut by shutdown halfway; only the waits
	// between retries watch ctx.
	work := context.WithoutCancel(ctx)
	if err := r.process(ctx, work, b); err != nil {
		_, _ = c.end(work, b.Records, false)
		return err
	}
	outs := b.out
	if len(b.rejected) > 0 {
		now := r.now()
		for _, rj := range b.rejected {
			outs = append(outs, dlqRecord(name, rj.rec, rj.err, now))
			r.metrics.RecordsDLQ.WithLabelValues(name, CodeOf(rj.err)).Inc()
			r.log.Warn("record to DLQ", "topic", rj.rec.Topic, "partition", rj.rec.Partition, "offset", rj.rec.Offset, "code", CodeOf(rj.err), "err", rj.err)
		}
	}
	perr := c.produce(work, outs)
	if perr != nil {
		r.log.Warn("producing outputs failed; aborting the batch", "err", perr)
	}
	committed, err := c.end(work, b.Records, perr == nil)
	if errors.Is(err, errCommitFailed) {
		r.log.Warn("offset commit failed; the records will be processed again by their next owner", "err", err)
		err = nil
	}
	if err != nil {
		return Fatal(fmt.Errorf("end batch: %w: %w", errSessionFailed, err))
	}
	if !committed {
		r.metrics.TxnAborts.WithLabelValues(name).Inc()
		r.log.Info("batch abandoned (rebalance or produce failure); it will be processed again", "records", len(b.Records))
		return nil
	}
	r.metrics.RecordsIn.WithLabelValues(name).Add(float64(len(b.Records)))
	r.countOut(outs)
	r.metrics.BatchSize.WithLabelValues(name).Observe(float64(len(b.Records)))
	r.metrics.Batches.WithLabelValues(name).Observe(time.Since(start).Seconds())
	return nil
}

func (r *Runner) countOut(outs []*kgo.Record) {
	if len(outs) == 0 {
		return
	}
	counts := make(map[string]int, 4)
	for _, o := range outs {
		counts[o.Topic]++
	}
	for t, n := range counts {
		r.metrics.RecordsOut.WithLabelValues(r.stage.Name(), t).Add(float64(n))
	}
}

// process runs the stage on b, retrying transient errors with capped
// exponential backoff. A batch-level Poison error is isolated by running the
// records one at a time, so one bad record cannot hold up the others.
func (r *Runner) process(ctx, work context.Context, b *Batch) error {
	backoff := r.cfg.RetryMinBackoff
	for attempt := 1; ; attempt++ {
		b.reset()
		err := r.call(work, b)
		if err == nil {
			return nil
		}
		class := ClassOf(err)
		r.metrics.Errors.WithLabelValues(r.stage.Name(), class.String()).Inc()
		switch class {
		case ClassFatal:
			return err
		case ClassPoison:
			return r.isolate(ctx, work, b)
		}
		r.log.Warn("transient error; retrying the batch", "attempt", attempt, "backoff", backoff, "err", err)
		if err := sleepCtx(ctx, backoff); err != nil {
			return err
		}
		backoff = min(2*backoff, r.cfg.RetryMaxBackoff)
	}
}

func (r *Runner) call(ctx context.Context, b *Batch) error {
	switch s := r.stage.(type) {
	case Transformer:
		return s.Transform(ctx, b)
	case Sink:
		return s.Write(ctx, b)
	}
	return Fatal(errors.New("unreachable: stage kind"))
}

func (r *Runner) isolate(ctx, work context.Context, b *Batch) error {
	all := b.Records
	defer func() { b.Records = all }()
	var out []*kgo.Record
	var rej []rejection
	for _, rec := range all {
		one := &Batch{Records: []*kgo.Record{rec}}
		backoff := r.cfg.RetryMinBackoff
		for {
			one.reset()
			err := r.call(work, one)
			if err == nil {
				out = append(out, one.out...)
				rej = append(rej, one.rejected...)
				break
			}
			switch ClassOf(err) {
			case ClassPoison:
				rej = append(rej, rejection{rec, err})
			case ClassFatal:
				return err
			default:
				if err := sleepCtx(ctx, backoff); err != nil {
					return err
				}
				backoff = min(2*backoff, r.cfg.RetryMaxBackoff)
				continue
			}
			break
		}
	}
	b.out, b.rejected = out, rej
	return nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// lagLoop exports the group's lag per partition every 10 s.
func (r *Runner) lagLoop(ctx context.Context, adm *kadm.Client) {
	t := time.NewTicker(10 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		lags, err := adm.Lag(ctx, r.group)
		if err != nil {
			continue
		}
		for _, gl := range lags {
			for topic, ps := range gl.Lag {
				for p, l := range ps {
					if l.Lag >= 0 {
						r.metrics.ConsumerLag.WithLabelValues(r.stage.Name(), topic, fmt.Sprint(p)).Set(float64(l.Lag))
					}
				}
			}
		}
	}
}

// txnConsumer: exactly-once. Outputs and consumed offsets commit in one
// Kafka transaction; a rebalance mid-batch aborts it and the records are
// fetched again from the last committed offsets.
type txnConsumer struct{ s *kgo.GroupTransactSession }

func (t *txnConsumer) poll(ctx context.Context, n int) kgo.Fetches { return t.s.PollRecords(ctx, n) }
func (t *txnConsumer) begin() error                                { return t.s.Begin() }
func (t *txnConsumer) client() *kgo.Client                         { return t.s.Client() }
func (t *txnConsumer) close()                                      { t.s.Close() }

func (t *txnConsumer) produce(ctx context.Context, rs []*kgo.Record) error {
	if len(rs) == 0 {
		return nil
	}
	p := kgo.AbortingFirstErrPromise(t.s.Client())
	for _, rec := range rs {
		t.s.Produce(ctx, rec, p.Promise())
	}
	return p.Err()
}

func (t *txnConsumer) end(ctx context.Context, _ []*kgo.Record, commit bool) (bool, error) {
	return t.s.End(ctx, kgo.TransactionEndTry(commit))
}

var errCommitFailed = errors.New("offset commit failed")

// plainConsumer: at-least-once. Outputs are flushed before the offsets are
// committed, so a crash re-runs the batch (duplicates possible downstream).
type plainConsumer struct{ cl *kgo.Client }

func (p *plainConsumer) poll(ctx context.Context, n int) kgo.Fetches { return p.cl.PollRecords(ctx, n) }
func (p *plainConsumer) begin() error                                { return nil }
func (p *plainConsumer) client() *kgo.Client                         { return p.cl }

func (p *plainConsumer) close() {
	p.cl.AllowRebalance()
	p.cl.Close()
}

func (p *plainConsumer) produce(ctx context.Context, rs []*kgo.Record) error {
	if len(rs) == 0 {
		return nil
	}
	fp := kgo.FirstErrPromise{}
	for _, rec := range rs {
		p.cl.Produce(ctx, rec, fp.Promise())
	}
	return fp.Err()
}

func (p *plainConsumer) end(ctx context.Context, batch []*kgo.Record, commit bool) (bool, error) {
	defer p.cl.AllowRebalance()
	if !commit {
		// Rewind to the first record of the batch per partition so the
		// batch is fetched again.
		rewind := map[string]map[int32]kgo.EpochOffset{}
		for _, rec := range batch {
			ps := rewind[rec.Topic]
			if ps == nil {
				ps = map[int32]kgo.EpochOffset{}
				rewind[rec.Topic] = ps
			}
			if eo, ok := ps[rec.Partition]; !ok || rec.Offset < eo.Offset {
				ps[rec.Partition] = kgo.EpochOffset{Epoch: rec.LeaderEpoch, Offset: rec.Offset}
			}
		}
		p.cl.SetOffsets(rewind)
		return false, nil
	}
	if err := p.cl.CommitRecords(ctx, batch...); err != nil {
		// A failed commit (e.g. partitions moved) loses nothing: the new
		// owner re-reads from the last commit, and at-least-once allows that.
		return true, fmt.Errorf("%w: %v", errCommitFailed, err)
	}
	return true, nil
}

// slogAdapter lets kgo log through slog.
type slogAdapter struct{ l *slog.Logger }

func (a slogAdapter) Level() kgo.LogLevel {
	switch {
	case a.l.Enabled(context.Background(), slog.LevelDebug):
		return kgo.LogLevelDebug
	case a.l.Enabled(context.Background(), slog.LevelInfo):
		return kgo.LogLevelWarn // kgo's info level is chatty per connection
	default:
		return kgo.LogLevelWarn
	}
}

func (a slogAdapter) Log(level kgo.LogLevel, msg string, kv ...any) {
	var l slog.Level
	switch level {
	case kgo.LogLevelError:
		l = slog.LevelError
	case kgo.LogLevelWarn:
		l = slog.LevelWarn
	case kgo.LogLevelInfo:
		l = slog.LevelInfo
	default:
		l = slog.LevelDebug
	}
	a.l.Log(context.Background(), l, "kafka: "+msg, kv...)
}
