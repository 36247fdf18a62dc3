package forward

import (
	"context"
	"strconv"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/memoflow/memoflow/pipeline"
	"github.com/memoflow/memoflow/stages/deliver"
	"github.com/memoflow/memoflow/stages/route"
)

// Timer moves failed forwards from memo.forward.retry back to
// memo.forward when their gap has passed. It is delivery's delay consumer
// (pause a partition until its head is due; records of the one topic wait
// the same gap, so each partition falls due in order), with a handler that
// only moves records: every effect and event stays in the transactional
// Sink. The move is produce-then-commit, so a crash in between moves a
// record twice; the Sink drops the second (Stage.duplicate) while it runs,
// and after its own restart a duplicate costs one POST with the same
// Idempotency-Key.
type Timer struct {
	rc *deliver.RetryConsumer
}

type mover struct{ m *metrics }

func (mover) DueAt(r *kgo.Record) int64 {
	for _, h := range r.Headers {
		if h.Key == route.HeaderForwardDue {
			n, _ := strconv.ParseInt(string(h.Value), 10, 64)
			return n
		}
	}
	return 0 // no due time: at once
}

func (m mover) Handle(_ context.Context, recs []*kgo.Record) ([]*kgo.Record, error) {
	out := make([]*kgo.Record, 0, len(recs))
	for _, r := range recs {
		h := make([]kgo.RecordHeader, 0, len(r.Headers))
		for _, x := range r.Headers {
			if x.Key != route.HeaderForwardDue {
				h = append(h, x)
			}
		}
		out = append(out, &kgo.Record{Topic: pipeline.TopicForward, Key: r.Key, Value: r.Value, Headers: h})
	}
	m.m.moved.Add(float64(len(out)))
	return out, nil
}

// NewTimer returns the timer over memo.forward.retry in group (opts: the
// brokers and security settings).
// dopts: deliver.TransactionalID makes the moves exactly-once.
func NewTimer(s *Stage, opts []kgo.Opt, group string, dopts ...deliver.DelayOption) (*Timer, error) {
	log := s.log.With("component", "forward-timer")
	rc, err := deliver.NewDelayConsumer(mover{s.metrics}, []string{pipeline.TopicForwardRetry}, opts, group, s.now, s.cfg.MaxIdle, s.cfg.RetryPollRecords, log, dopts...)
	if err != nil {
		return nil, err
	}
	return &Timer{rc: rc}, nil
}

// Run moves due records until ctx ends.
func (t *Timer) Run(ctx context.Context) error { return t.rc.Run(ctx) }

// Close leaves the group.
func (t *Timer) Close() { t.rc.Close() }
