// Package blobgc removes claim-check blobs: at once when their message has
// reached a final state (a stage emits Done), and by age as a safety net
// (Sweeper). See DESIGN.md.
package blobgc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/encoding/json"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"

	"github.com/memoflow/memoflow/internal/blob"
	"github.com/memoflow/memoflow/pipeline"
)

// Name is the stage's name (consumer group memoflow-blobgc).
const Name = "blobgc"

// Codes of records the sink cannot act on (they go to the DLQ).
const (
	CodeDecode     = "BLOBGC_DECODE"      // the value is not a blob reference
	CodeInvalidKey = "BLOBGC_INVALID_KEY" // the reference's key is not a valid blob key
)

// Done is the record a stage emits, in the same transaction as the outcome
// that made the blob unnecessary (delivered, picked up, given up), so the
// blob is deleted only once that outcome is committed: a crash before the
// commit leaves the blob for the retry that still needs it.
func Done(ref blob.Ref) *kgo.Record {
	v, _ := json.Marshal(ref) // a struct of strings and an int: cannot fail
	return &kgo.Record{Topic: pipeline.TopicBlobsDone, Key: []byte(ref.Key), Value: v}
}

// Sink deletes the blobs named on memo.blobs.done. Deleting is idempotent
// (a missing blob is no error), so a batch written again after a crash or
// a retry does no harm, and the offsets move only after every delete of the
// batch returned.
type Sink struct {
	store       blob.Store
	concurrency int
	m           metrics
}

// Option configures a Sink.
type Option func(*Sink)

// WithConcurrency bounds the deletes in flight per batch (default 16:
// S3 deletes are one round trip each).
func WithConcurrency(n int) Option { return func(s *Sink) { s.concurrency = n } }

// WithRegisterer registers the metrics with reg instead of the default.
func WithRegisterer(reg prometheus.Registerer) Option {
	return func(s *Sink) { s.m.reg = reg }
}

// New returns the sink over store.
func New(store blob.Store, opts ...Option) (*Sink, error) {
	if store == nil {
		return nil, errors.New("blobgc: no blob store")
	}
	s := &Sink{store: store, concurrency: 16, m: metrics{reg: prometheus.DefaultRegisterer}}
	for _, o := range opts {
		o(s)
	}
	if s.concurrency < 1 {
		return nil, fmt.Errorf("blobgc: concurrency must be at least 1, got %d", s.concurrency)
	}
	if err := s.m.register(); err != nil {
		return nil, err
	}
	return s, nil
}

// Name implements pipeline.Stage.
func (s *Sink) Name() string { return Name }

// Write deletes every blob of the batch. A failed delete fails the batch
// as transient: nothing is committed and the runtime writes it again.
func (s *Sink) Write(ctx context.Context, b *pipeline.Batch) error {
	seen := make(map[string]struct{}, len(b.Records))
	refs := make([]blob.Ref, 0, len(b.Records))
	for _, r := range b.Records {
		var ref blob.Ref
		if err := json.Unmarshal(r.Value, &ref); err != nil {
			s.m.rejected.WithLabelValues(CodeDecode).Inc()
			b.Reject(r, pipeline.Poison(CodeDecode, fmt.Errorf("blobgc: value is not a blob reference: %v", err)))
			continue
		}
		if err := blob.CheckKey(ref.Key); err != nil {
			s.m.rejected.WithLabelValues(CodeInvalidKey).Inc()
			b.Reject(r, pipeline.Poison(CodeInvalidKey, err))
			continue
		}
		if _, dup := seen[ref.Key]; dup {
			continue
		}
		seen[ref.Key] = struct{}{}
		refs = append(refs, ref)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(s.concurrency)
	for _, ref := range refs {
		g.Go(func() error {
			if err := s.store.Delete(gctx, ref); err != nil {
				return fmt.Errorf("blobgc: delete %s: %w", ref.Key, err)
			}
			s.m.deleted.Inc()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		s.m.errors.Inc()
		return pipeline.Transient(err)
	}
	return nil
}

// SweepConfig configures the age sweep.
type SweepConfig struct {
	// Retention: blobs older than this are deleted whatever their
	// message's state. 0 turns the sweep off.
	Retention time.Duration
	// Interval between sweeps (default 1h).
	Interval time.Duration
}

// Sweeper deletes blobs older than the retention: those of messages that
// never reached a final state the stages report (a resend dropped as a
// duplicate after ingest had stored its blob, a message rejected after the
// claim check, a record lost to the DLQ).
type Sweeper struct {
	store blob.Store
	cfg   SweepConfig
	log   *slog.Logger
	m     *metrics
}

// NewSweeper returns a sweeper; Run starts it.
func NewSweeper(store blob.Store, cfg SweepConfig, log *slog.Logger, s *Sink) *Sweeper {
	if cfg.Interval <= 0 {
		cfg.Interval = time.Hour
	}
	return &Sweeper{store: store, cfg: cfg, log: log, m: &s.m}
}

// SweepOnce runs one sweep and returns how many blobs it deleted.
func (w *Sweeper) SweepOnce(ctx context.Context) (int, error) {
	start := time.Now()
	n, err := blob.DeleteOlderThan(ctx, w.store, w.cfg.Retention)
	w.m.swept.Add(float64(n))
	w.m.sweepSeconds.Observe(time.Since(start).Seconds())
	if err != nil {
		w.m.errors.Inc()
	}
	return n, err
}

// Run sweeps at start and then every Interval until ctx ends. Errors are
// logged and counted; the next sweep tries again.
func (w *Sweeper) Run(ctx context.Context) {
	if w.cfg.Retention <= 0 {
		return
	}
	t := time.NewTicker(w.cfg.Interval)
	defer t.Stop()
	for {
		n, err := w.SweepOnce(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			w.log.Warn("blob sweep failed; next sweep retries", "err", err, "deleted", n)
		case n > 0:
			w.log.Info("blob sweep", "deleted", n, "older_than", w.cfg.Retention)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

type metrics struct {
	reg          prometheus.Registerer
	deleted      prometheus.Counter
	swept        prometheus.Counter
	errors       prometheus.Counter
	rejected     *prometheus.CounterVec
	sweepSeconds prometheus.Histogram
}

func (m *metrics) register() error {
	m.deleted = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "memoflow_blobgc_deleted_total",
		Help: "Blobs deleted because their message reached a final state.",
	})
	m.swept = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "memoflow_blobgc_swept_total",
		Help: "Blobs deleted by the age sweep (older than --blob-retention).",
	})
	m.errors = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "memoflow_blobgc_errors_total",
		Help: "Failed batches of deletes and failed sweeps (retried).",
	})
	m.rejected = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "memoflow_blobgc_records_rejected_total",
		Help: "memo.blobs.done records sent to the DLQ, by code.",
	}, []string{"code"})
	m.sweepSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "memoflow_blobgc_sweep_seconds",
		Help:    "Duration of one age sweep.",
		Buckets: prometheus.ExponentialBuckets(0.01, 4, 10), // 10 ms .. 43 min
	})
	for _, c := range []prometheus.Collector{m.deleted, m.swept, m.errors, m.rejected, m.sweepSeconds} {
		if err := m.reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}
