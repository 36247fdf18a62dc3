package bench

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/memoflow/memoflow/internal/chconn"
	"github.com/memoflow/memoflow/schemas/events"
	"github.com/memoflow/memoflow/schemas/memo"
)

// ValueDateRelease is the value-date scenario: Options.Messages messages
// with tomorrow's doNotDeliverUntilDate are sent and held by the schedule
// stage; then live traffic (no value date) starts at LiveRate, and the
// value date "comes": the schedule stage's clock (Target.ScheduleClock)
// moves to 00:00 Europe/Copenhagen of that date, and the stage releases
// the held messages at its configured rate while the live ones flow.
//
// It measures the release rate at the recipients (held arrivals per
// second from the moment the date came), the live messages' latency
// before and during the release, and fails when a held message arrives
// before its date came. Held messages' latency counts from that moment.
type ValueDateRelease struct {
	// Live messages are sent at LiveRate per second, from Lead before
	// the release until they are all sent (default: Messages/10, at
	// least 200; 200/s; 2 s).
	Live     int
	LiveRate float64
	Lead     time.Duration

	held, live         *MessageSet
	heldPrep, livePrep *Prepared
	releaseAt          time.Time // 00:00 Copenhagen on the value date

	mu                   sync.Mutex
	ix                   *uuidIndex
	triggerAt, heldReady time.Time
	heldFirst, heldLast  time.Time
	heldArrived, early   int64
	liveBefore, liveDur  []float64 // live latency (ms) before / during the release
	liveAfter            []float64
	env                  *Env
}

func (v *ValueDateRelease) Name() string { return "value-date-release" }

func (v *ValueDateRelease) defaults(o Options) {
	if v.Live <= 0 {
		v.Live = max(200, o.Messages/10)
	}
	if v.LiveRate <= 0 {
		v.LiveRate = 200
	}
	if v.Lead <= 0 {
		v.Lead = 2 * time.Second
	}
}

// ValueDate returns tomorrow in Europe/Copenhagen (YYYY-MM-DD) and its
// midnight, when a message dated so is released.
func ValueDate(now time.Time) (string, time.Time) {
	loc := memo.Copenhagen()
	l := now.In(loc)
	d := time.Date(l.Year(), l.Month(), l.Day()+1, 0, 0, 0, 0, loc)
	return d.Format("2006-01-02"), d
}

func (v *ValueDateRelease) Prepare(ctx context.Context, env *Env) (*Manifest, error) {
	o := env.Opts
	if o.Messages <= 0 {
		return nil, errNoLoad
	}
	if env.Target.ScheduleClock == nil || !hasStage(env.Target.Stages, "schedule") {
		return nil, errors.New("bench value-date-release: needs the schedule stage in this process (its clock is moved to the value date); run it without --url")
	}
	v.defaults(o)
	v.env = env
	date, at := ValueDate(time.Now())
	v.releaseAt = at
	day := time.Now().UTC().Truncate(24 * time.Hour)
	var rc *Recipients
	if env.Target.Delivers() {
		rc = env.Target.Recipients
	}
	v.held = &MessageSet{Seed: o.Seed, Messages: o.Messages, BatchSize: o.BatchSize, Mix: o.Mix, SenderOrg: env.Target.SenderOrg,
		Day: day, Recipients: rc, ValueDate: date, Tag: 1}
	liveBatch := max(1, int(v.LiveRate/5)) // five batches a second
	v.live = &MessageSet{Seed: o.Seed, Messages: v.Live, BatchSize: liveBatch, Mix: o.Mix, SenderOrg: env.Target.SenderOrg,
		Day: day, Recipients: rc, Tag: 2, Offset: o.Messages}
	env.logf("value date %s (released at %s): %d held messages, %d live at %.0f/s", date, at.Format(time.RFC3339), o.Messages, v.Live, v.LiveRate)
	hm, err := prepareSet(ctx, env, v.held, &v.heldPrep)
	if err != nil {
		return nil, err
	}
	lm, err := prepareSet(ctx, env, v.live, &v.livePrep)
	if err != nil {
		return nil, err
	}
	man := &Manifest{}
	for _, m := range []*Manifest{hm, lm} {
		man.UUIDs = append(man.UUIDs, m.UUIDs...)
		man.Kinds = append(man.Kinds, m.Kinds...)
		man.Sizes = append(man.Sizes, m.Sizes...)
	}
	v.ix = newUUIDIndex(man.UUIDs)
	return man, nil
}

func (v *ValueDateRelease) isHeld(i int) bool { return i < v.held.Messages }

func (v *ValueDateRelease) Load(ctx context.Context, env *Env) error {
	if err := loadSet(ctx, env, v.held, v.heldPrep); err != nil {
		return err
	}
	want := outcomeOf(env, 0, v.held.Messages, true).Held
	env.logf("value-date-release: %d held messages sent; waiting until the schedule stage holds them...", want)
	if err := v.waitHeld(ctx, env, want); err != nil {
		return err
	}
	v.mu.Lock()
	v.heldReady = time.Now()
	v.mu.Unlock()
	live := make(chan error, 1)
	go func() {
		_, err := loadPaced(ctx, env, v.live, v.livePrep, v.LiveRate)
		live <- err
	}()
	select {
	case err := <-live:
		if err != nil {
			return err
		}
		live <- nil
	case <-time.After(v.Lead):
	}
	v.mu.Lock()
	v.triggerAt = time.Now()
	v.mu.Unlock()
	env.Target.ScheduleClock.AdvanceTo(v.releaseAt.Add(time.Second))
	env.logf("value-date-release: the value date came (schedule clock at %s); releasing", v.releaseAt.Add(time.Second).Format(time.RFC3339))
	return <-live
}

// waitHeld waits until the event log says the schedule stage held want
// messages (AWAITING_DELAY is written in the transaction that holds).
func (v *ValueDateRelease) waitHeld(ctx context.Context, env *Env, want int64) error {
	ch, err := chconn.Open(ctx, env.Target.ClickHouse)
	if err != nil {
		return err
	}
	defer ch.Close()
	q := fmt.Sprintf("SELECT count() FROM %s.events WHERE tag = '%s'", env.Target.ClickHouse.Database, events.DelayedMemoSendValidatedAwaitingDelay)
	last, moved := uint64(0), time.Now()
	for {
		var n uint64
		if err := ch.QueryRow(ctx, q).Scan(&n); err == nil {
			if int64(n) >= want {
				return nil
			}
			if n != last {
				last, moved = n, time.Now()
			}
		}
		if time.Since(moved) > env.Opts.StallTimeout {
			return fmt.Errorf("value-date-release: only %d of %d messages held after %s without progress", last, want, env.Opts.StallTimeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (v *ValueDateRelease) Arrival(env *Env) ArrivalSource { return defaultArrival(env, v.observe) }

// observe sorts arrivals into held (release rate, early releases) and live
// (latency before, during and after the release).
func (v *ValueDateRelease) observe(a Arrival) {
	i := v.ix.find(a.UUID)
	if i < 0 {
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.isHeld(i) {
		if v.triggerAt.IsZero() || a.At.Before(v.triggerAt) {
			v.early++
			return
		}
		if v.heldFirst.IsZero() {
			v.heldFirst = a.At
		}
		v.heldLast = a.At
		v.heldArrived++
		return
	}
	v.liveSample(i, a.At)
}

// liveSample files a live arrival's latency (from submission) under the
// phase of the release it arrived in.
func (v *ValueDateRelease) liveSample(i int, at time.Time) {
	from := v.env.SentAtMs(i)
	if from == 0 {
		return
	}
	ms := float64(at.UnixMilli() - from)
	switch {
	case v.triggerAt.IsZero():
		v.liveBefore = append(v.liveBefore, ms)
	case v.heldLast.IsZero() || v.heldArrived < int64(v.held.Messages):
		v.liveDur = append(v.liveDur, ms)
	default:
		v.liveAfter = append(v.liveAfter, ms)
	}
}

// LatencyFrom: a held message's latency starts when its date came.
func (v *ValueDateRelease) LatencyFrom(env *Env, i int) int64 {
	if v.isHeld(i) {
		v.mu.Lock()
		defer v.mu.Unlock()
		if v.triggerAt.IsZero() {
			return 0
		}
		return v.triggerAt.UnixMilli()
	}
	return env.SentAtMs(i)
}

func (v *ValueDateRelease) Expect(env *Env) Expectation {
	o := outcomeOf(env, 0, v.held.Messages, true).Add(outcomeOf(env, v.held.Messages, len(env.Manifest.UUIDs), false))
	man := env.Manifest
	return Expectation{
		ShouldArrive: func(i int) bool { return man.Kinds[i] != KindInvalid && env.Accepted(i) },
		Arrivals:     o.Valid,
		Events:       ExpectedEvents(env.Target.Stages, o),
	}
}

// Check adds the release measures and fails on an early release.
func (v *ValueDateRelease) Check(r *Report) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.early > 0 {
		r.Failures = append(r.Failures, fmt.Sprintf("value-date-release: %d held messages reached a recipient before their value date came", v.early))
	}
	r.AddDetail("held", float64(v.held.Messages), "messages", "with doNotDeliverUntilDate "+v.held.ValueDate)
	if !v.heldReady.IsZero() && !v.triggerAt.IsZero() {
		r.AddDetail("live lead", v.triggerAt.Sub(v.heldReady).Seconds(), "s", fmt.Sprintf("live traffic at %.0f/s before the date came", v.LiveRate))
	}
	if v.heldArrived > 0 {
		secs := v.heldLast.Sub(v.triggerAt).Seconds()
		r.AddDetail("release seconds", secs, "s", "from the date coming to the last held message at its recipient")
		if secs > 0 {
			r.AddDetail("release rate", float64(v.heldArrived)/secs, "msgs/s", "held messages delivered per second during the release (end to end)")
		}
	}
	q := func(name string, l []float64, note string) {
		if len(l) == 0 {
			return
		}
		sort.Float64s(l)
		r.AddDetail(name+" p50", Quantile(l, 0.5), "ms", fmt.Sprintf("%d live messages %s", len(l), note))
		r.AddDetail(name+" p99", Quantile(l, 0.99), "ms", "")
	}
	q("live before", v.liveBefore, "before the release")
	q("live during", v.liveDur, "during the release")
	q("live after", v.liveAfter, "after the release")
	r.OK = len(r.Failures) == 0
}
