package bench

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/memoflow/memoflow/schemas/events"
	"github.com/memoflow/memoflow/schemas/records"
)

// RetryTopicPattern matches deliver's delay topics (memo.retry.<gap>).
const RetryTopicPattern = `^memo\.retry\..+`

// FailingRecipients is the failing-recipients scenario. The load is sent
// in two halves. The first goes to healthy systems; before the second,
// DownShare of the systems that receive traffic (the mailbox providers
// and the SMS provider of the bench registry) answer 503 to everything.
// The run then waits until every message of the second half is either at
// its recipient or on one of deliver's retry topics (memo.retry.<gap>),
// brings the systems back, and the redelivery schedule (a short
// --deliver-schedule) delivers the rest: a message lost on the way fails
// the run as in every scenario.
//
// It reports the healthy systems' delivery rate in each half and their
// ratio (second over first: what the failing systems cost the others),
// and how many messages went through the retry topics.
type FailingRecipients struct {
	// DownShare of the systems with traffic are down (default 0.1).
	DownShare float64

	a, b         *MessageSet
	prepA, prepB *Prepared
	ix           *uuidIndex
	down         map[string]bool
	downList     []string

	mu            sync.Mutex
	phaseStart    [2]time.Time
	healthy       [2]int64     // arrivals at systems that stay healthy, per half
	healthyLast   [2]time.Time // the last of them
	arrived       [2]int64     // all arrivals per half
	downArrivals  int64        // second-half arrivals at the down systems
	viaRetry      int64        // of those, seen on a retry topic first
	retried       map[[16]byte]bool
	retriedSecond int64 // second-half messages seen on a retry topic
	stopRetry     func()
	waitErr       error
}

func (f *FailingRecipients) Name() string { return "failing-recipients" }

func (f *FailingRecipients) Prepare(ctx context.Context, env *Env) (*Manifest, error) {
	o := env.Opts
	if o.Messages < 2 {
		return nil, errors.New("bench failing-recipients: needs at least 2 messages (two halves)")
	}
	if !env.Target.Delivers() {
		return nil, errors.New("bench failing-recipients: needs route and deliver with the recipient simulator (the in-process pipeline)")
	}
	if f.DownShare <= 0 {
		f.DownShare = 0.1
	}
	rc := env.Target.Recipients
	f.downList = DownSystems(rc.Mailboxes, 1, f.DownShare)
	f.down = map[string]bool{}
	for _, s := range f.downList {
		f.down[s] = true
	}
	day := time.Now().UTC().Truncate(24 * time.Hour)
	half := o.Messages / 2
	f.a = &MessageSet{Seed: o.Seed, Messages: half, BatchSize: o.BatchSize, Mix: o.Mix, SenderOrg: env.Target.SenderOrg, Day: day, Recipients: rc, Tag: 11}
	f.b = &MessageSet{Seed: o.Seed, Messages: o.Messages - half, BatchSize: o.BatchSize, Mix: o.Mix, SenderOrg: env.Target.SenderOrg, Day: day, Recipients: rc, Tag: 12, Offset: half}
	env.logf("failing-recipients: %d of %d systems with traffic down for the second half: %s", len(f.downList), len(rc.Mailboxes)+1, strings.Join(f.downList, ", "))
	ma, err := prepareSet(ctx, env, f.a, &f.prepA)
	if err != nil {
		return nil, err
	}
	mb, err := prepareSet(ctx, env, f.b, &f.prepB)
	if err != nil {
		return nil, err
	}
	man := &Manifest{}
	for _, m := range []*Manifest{ma, mb} {
		man.UUIDs = append(man.UUIDs, m.UUIDs...)
		man.Kinds = append(man.Kinds, m.Kinds...)
		man.Sizes = append(man.Sizes, m.Sizes...)
	}
	f.ix = newUUIDIndex(man.UUIDs)
	f.retried = map[[16]byte]bool{}
	return man, nil
}

// DownSystems picks round(share × (len(mailboxes)+others)) of the mailbox
// providers, spread evenly over the list (never all of them): "share of
// the systems with traffic", others being the systems that stay up.
func DownSystems(mailboxes []string, others int, share float64) []string {
	n := int(math.Round(share * float64(len(mailboxes)+others)))
	n = max(1, min(n, len(mailboxes)-1))
	var out []string
	for k := 0; k < n; k++ {
		out = append(out, mailboxes[(k+1)*len(mailboxes)/n-1])
	}
	return out
}

func (f *FailingRecipients) Load(ctx context.Context, env *Env) error {
	stop, err := f.watchRetries(ctx, env)
	if err != nil {
		return err
	}
	f.mu.Lock()
	f.stopRetry = stop
	f.phaseStart[0] = time.Now()
	f.mu.Unlock()
	if err := loadSet(ctx, env, f.a, f.prepA); err != nil {
		return err
	}
	wantA := outcomeOf(env, 0, f.a.Messages, false).Valid
	if err := f.waitFor(ctx, env, "the first half at its recipients", func() bool { return f.arrived[0] >= wantA }); err != nil {
		return err
	}
	for _, s := range f.downList {
		env.Target.Sim.SetDown(s, true)
	}
	f.mu.Lock()
	f.phaseStart[1] = time.Now()
	f.mu.Unlock()
	env.logf("failing-recipients: first half delivered; %s down, sending the second half", strings.Join(f.downList, ", "))
	if err := loadSet(ctx, env, f.b, f.prepB); err != nil {
		return err
	}
	wantB := outcomeOf(env, f.a.Messages, len(env.Manifest.UUIDs), false).Valid
	err = f.waitFor(ctx, env, "every message of the second half at its recipient or on a retry topic", func() bool {
		return f.arrived[1]+f.retriedSecond >= wantB
	})
	for _, s := range f.downList {
		env.Target.Sim.SetDown(s, false)
	}
	env.logf("failing-recipients: %d messages of the second half on the retry topics; systems back up", f.retriedSecond)
	return err
}

// waitFor polls cond (under f.mu) until it holds or nothing moved for the
// stall timeout.
func (f *FailingRecipients) waitFor(ctx context.Context, env *Env, what string, cond func() bool) error {
	last, moved := int64(-1), time.Now()
	for {
		f.mu.Lock()
		ok := cond()
		n := f.arrived[0] + f.arrived[1] + f.retriedSecond
		f.mu.Unlock()
		if ok {
			return nil
		}
		if n != last {
			last, moved = n, time.Now()
		}
		if time.Since(moved) > env.Opts.StallTimeout {
			return fmt.Errorf("failing-recipients: waiting for %s: nothing moved for %s", what, env.Opts.StallTimeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// watchRetries reads every retry topic (committed records) from its start
// and notes the messages on them.
func (f *FailingRecipients) watchRetries(ctx context.Context, env *Env) (func(), error) {
	opts, err := env.Target.Kafka.ClientOpts()
	if err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(append(opts, kgo.ConsumeRegex(), kgo.ConsumeTopics(RetryTopicPattern),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.MetadataMinAge(250*time.Millisecond), kgo.MetadataMaxAge(time.Second))...)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer cl.Close()
		var e records.Envelope
		for ctx.Err() == nil {
			fs := cl.PollFetches(ctx)
			fs.EachRecord(func(r *kgo.Record) {
				if e.Decode(r.Value) != nil {
					return
				}
				u := parseUUID(e.MessageUUID)
				i := f.ix.find(u)
				f.mu.Lock()
				if i >= 0 && !f.retried[u] {
					f.retried[u] = true
					if i >= f.a.Messages {
						f.retriedSecond++
					}
				}
				f.mu.Unlock()
			})
		}
	}()
	return func() { cancel(); <-done }, nil
}

func (f *FailingRecipients) Arrival(env *Env) ArrivalSource { return defaultArrival(env, f.observe) }

func (f *FailingRecipients) observe(a Arrival) {
	i := f.ix.find(a.UUID)
	if i < 0 {
		return
	}
	h := 0
	if i >= f.a.Messages {
		h = 1
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.arrived[h]++
	if f.down[a.System] {
		if h == 1 {
			f.downArrivals++
			if f.retried[a.UUID] {
				f.viaRetry++
			}
		}
		return
	}
	f.healthy[h]++
	f.healthyLast[h] = a.At
}

func (f *FailingRecipients) Expect(env *Env) Expectation {
	o := outcomeOf(env, 0, len(env.Manifest.UUIDs), false)
	man := env.Manifest
	ev := ExpectedEvents(env.Target.Stages, o)
	f.mu.Lock()
	// Every message that went to a retry topic failed at least once
	// (the failed attempt's event and the retry record commit together);
	// how often depends on the schedule and the circuit breaker.
	if n := int64(len(f.retried)); n > 0 {
		ev[string(events.MemoSendSentToRecipientSystemFailed)] = n
	}
	f.mu.Unlock()
	return Expectation{
		ShouldArrive: func(i int) bool { return man.Kinds[i] != KindInvalid && env.Accepted(i) },
		Arrivals:     o.Valid,
		Events:       ev,
		AtLeast:      map[string]bool{string(events.MemoSendSentToRecipientSystemFailed): true},
	}
}

// Check adds the healthy systems' rates and the retry path's verdict.
func (f *FailingRecipients) Check(r *Report) {
	if f.stopRetry != nil {
		f.stopRetry()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	r.AddDetail("systems down", float64(len(f.downList)), "", "in the second half: "+strings.Join(f.downList, ", "))
	var rate [2]float64
	for h := range 2 {
		if secs := f.healthyLast[h].Sub(f.phaseStart[h]).Seconds(); secs > 0 && f.healthy[h] > 0 {
			rate[h] = float64(f.healthy[h]) / secs
		}
	}
	r.AddDetail("healthy rate, all up", rate[0], "msgs/s", fmt.Sprintf("%d messages to the systems that stay up, first half", f.healthy[0]))
	r.AddDetail("healthy rate, some down", rate[1], "msgs/s", fmt.Sprintf("%d messages to the same systems, second half (%.0f%% of the systems down)", f.healthy[1], 100*f.DownShare))
	if rate[0] > 0 {
		r.AddDetail("healthy ratio", rate[1]/rate[0], "", "second half over first: what the down systems cost the others")
	}
	r.AddDetail("via retry topics", float64(f.retriedSecond), "messages", "second-half messages seen on memo.retry.*")
	r.AddDetail("delivered after recovery", float64(f.downArrivals), "messages", "second-half messages the down systems took once back")
	if f.downArrivals == 0 && len(f.downList) > 0 && f.b.Messages >= 100 {
		r.Failures = append(r.Failures, "failing-recipients: no message of the second half reached a down system after it came back")
	}
	if f.viaRetry < f.downArrivals {
		r.Failures = append(r.Failures, fmt.Sprintf("failing-recipients: %d messages reached a down system without passing a retry topic", f.downArrivals-f.viaRetry))
	}
	r.OK = len(r.Failures) == 0
}
