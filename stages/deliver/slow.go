package deliver

import (
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// The slow lane.
//
// A delivery batch commits when its slowest push has answered, so one
// recipient system that answers in 10 s would make every batch that holds
// one of its messages take 10 s, and every other system in those batches
// would wait with it (the chaos scenario measured it). A system whose
// recent pushes are slow (an exponentially weighted mean above
// --deliver-slow-threshold) therefore gets its fresh messages moved, in
// the batch's transaction and without a call, to the delay topic
// memo.retry.slow, due at once. The retry consumer pushes them there in
// its own batches, so slow systems hold up only each other, and their
// pushes keep the mean current: when a system is fast again its messages
// stay in the main lane. A system nothing was pushed to for slowProbeAfter
// is tried in the main lane again (one batch pays for it), so a replica
// whose slow lane runs elsewhere does not divert forever on an old mean.
// Diverting is not an attempt: no event, the attempt count is unchanged.

// SlowTopic is the slow lane: messages of slow systems, due at once.
const SlowTopic = RetryTopicPrefix + "slow"

const (
	slowMinSamples = 3   // pushes before a mean counts
	slowAlpha      = 0.3 // weight of the newest push in the mean
	slowProbeAfter = 30 * time.Second
)

// observe folds one push's duration into the system's mean.
func (x *gate) observe(d time.Duration, now time.Time) {
	x.mu.Lock()
	defer x.mu.Unlock()
	ms := float64(d) / float64(time.Millisecond)
	if x.samples == 0 {
		x.meanMs = ms
	} else {
		x.meanMs = slowAlpha*ms + (1-slowAlpha)*x.meanMs
	}
	x.samples++
	x.lastObserved = now
}

// slow reports whether the system's fresh messages go to the slow lane.
func (x *gate) slow(threshold time.Duration, now time.Time) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.samples >= slowMinSamples && x.meanMs > float64(threshold)/float64(time.Millisecond) &&
		now.Sub(x.lastObserved) < slowProbeAfter
}

// divert moves a fresh message to the slow lane.
func (d *Deliverer) divert(it *item, now time.Time) {
	next := it.env
	next.NextAttemptMs = now.UnixMilli()
	it.out = append(it.out, &kgo.Record{
		Topic: SlowTopic, Key: []byte(next.Destination),
		Value: next.Append(make([]byte, 0, next.EncodedLen())),
	})
	d.metrics.outcomes.WithLabelValues("diverted").Inc()
}
