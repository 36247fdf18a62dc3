package chaos

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"time"
)

// Fault kinds.
const (
	KillStage  = "kill-stage"  // SIGKILL one stage replica, restart after Pause
	KillBroker = "kill-broker" // SIGKILL the broker, restart from its data dir after Pause
	ClickHouse = "clickhouse"  // stop ClickHouse for Pause, then start it
	// RecipientsDown: a share of the recipient systems (Target, comma
	// separated) answer 503 for Pause, then recover; their messages must
	// arrive through the redelivery schedule.
	RecipientsDown = "recipients-down"
	// SlowRecipient: one recipient system (Target) answers after
	// PlanConfig.SlowLatency for Pause; the others must not be held up.
	SlowRecipient = "slow-recipient"
)

// Fault is one scheduled fault.
type Fault struct {
	At     time.Duration `json:"at_s"`
	Kind   string        `json:"kind"`
	Target string        `json:"target"`
	Pause  time.Duration `json:"pause_s"`
}

func (f Fault) String() string {
	return fmt.Sprintf("%6.1fs %s %s (down %v)", f.At.Seconds(), f.Kind, f.Target, f.Pause)
}

// PlanConfig says how many faults of each kind fall in the run.
type PlanConfig struct {
	Seed int64
	// Duration over which faults are spread (they start after 10% of it
	// and end before 80%, so the run sees steady state and recovery).
	Duration    time.Duration
	StageKills  int
	BrokerKills int
	// ClickHouseOutages of ClickHouseDown each.
	ClickHouseOutages int
	ClickHouseDown    time.Duration
	// MaxPause bounds the pause before a killed process restarts
	// (uniform in [MaxPause/10, MaxPause]).
	MaxPause time.Duration
	// IngestKills are kills of the ingest API ("ingest-1") on top of
	// StageKills, so a run always has the sender resume through one.
	IngestKills int
	// RecipientOutages take RecipientShare (default 0.1) of Systems down
	// for RecipientDown each.
	RecipientOutages int
	RecipientShare   float64
	RecipientDown    time.Duration
	// SlowRecipients make one of Systems answer after SlowLatency (10 s)
	// for SlowFor each.
	SlowRecipients int
	SlowLatency    time.Duration
	SlowFor        time.Duration
	// Systems are the recipient systems the recipient faults pick from.
	Systems []string
}

// Plan draws a fault schedule: the same seed and inputs give the same
// schedule, so a failing run can be repeated. Targets are drawn from the
// stage replicas given (names as Topology.Proc knows them).
func Plan(c PlanConfig, replicas []string) []Fault {
	r := rand.New(rand.NewPCG(uint64(c.Seed), 0x6d656d6f666c6f77))
	if c.MaxPause <= 0 {
		c.MaxPause = 3 * time.Second
	}
	at := func() time.Duration {
		lo, hi := c.Duration/10, c.Duration*8/10
		return lo + time.Duration(r.Int64N(int64(hi-lo)+1))
	}
	pause := func() time.Duration {
		return c.MaxPause/10 + time.Duration(r.Int64N(int64(c.MaxPause-c.MaxPause/10)+1))
	}
	var out []Fault
	for range c.StageKills {
		if len(replicas) == 0 {
			break
		}
		out = append(out, Fault{At: at(), Kind: KillStage, Target: replicas[r.IntN(len(replicas))], Pause: pause()})
	}
	for range c.BrokerKills {
		out = append(out, Fault{At: at(), Kind: KillBroker, Target: "broker", Pause: pause()})
	}
	for range c.ClickHouseOutages {
		out = append(out, Fault{At: at(), Kind: ClickHouse, Target: "clickhouse", Pause: c.ClickHouseDown})
	}
	// Drawn after the older kinds, so a seed's stage, broker and
	// ClickHouse faults stay where they were.
	for range c.IngestKills {
		out = append(out, Fault{At: at(), Kind: KillStage, Target: "ingest-1", Pause: pause()})
	}
	if len(c.Systems) > 0 {
		share := c.RecipientShare
		if share <= 0 {
			share = 0.1
		}
		k := max(1, int(math.Ceil(share*float64(len(c.Systems)))))
		for range c.RecipientOutages {
			pick := r.Perm(len(c.Systems))[:min(k, len(c.Systems))]
			names := make([]string, len(pick))
			for i, j := range pick {
				names[i] = c.Systems[j]
			}
			sort.Strings(names)
			out = append(out, Fault{At: at(), Kind: RecipientsDown, Target: strings.Join(names, ","), Pause: c.RecipientDown})
		}
		for range c.SlowRecipients {
			out = append(out, Fault{At: at(), Kind: SlowRecipient, Target: c.Systems[r.IntN(len(c.Systems))], Pause: c.SlowFor})
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].At < out[j].At })
	return out
}

// Entry is one line of the timeline.
type Entry struct {
	T      time.Time `json:"t"`
	Kind   string    `json:"kind"`
	Target string    `json:"target"`
	Note   string    `json:"note,omitempty"`
}

// Timeline records what happened when, for the report.
type Timeline struct {
	mu      sync.Mutex
	entries []Entry
}

// Add records an entry now.
func (t *Timeline) Add(kind, target, note string) {
	t.mu.Lock()
	t.entries = append(t.entries, Entry{T: time.Now(), Kind: kind, Target: target, Note: note})
	t.mu.Unlock()
}

// Entries returns a copy, in order.
func (t *Timeline) Entries() []Entry {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]Entry(nil), t.entries...)
}

// Count returns the entries of a kind.
func (t *Timeline) Count(kind string) int {
	n := 0
	for _, e := range t.Entries() {
		if e.Kind == kind {
			n++
		}
	}
	return n
}

// ClickHouseControl stops and starts the event log's server (a private
// one: a shared server must not be stopped under other users).
type ClickHouseControl interface {
	Stop(ctx context.Context) error
	Start(ctx context.Context) error
}

// RunFaults injects the faults at their times (relative to now) until the
// schedule is done or ctx ends. Faults run one after another: a fault
// falling due while the previous one still recovers waits for it.
func RunFaults(ctx context.Context, topo *Topology, ch ClickHouseControl, rc RecipientControl, slow time.Duration, plan []Fault, tl *Timeline) error {
	if slow <= 0 {
		slow = 10 * time.Second
	}
	wait := func(d time.Duration) {
		select {
		case <-ctx.Done():
		case <-time.After(d):
		}
	}
	start := time.Now()
	for _, f := range plan {
		if d := time.Until(start.Add(f.At)); d > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(d):
			}
		}
		tl.Add(f.Kind, f.Target, fmt.Sprintf("down for %v", f.Pause.Round(time.Millisecond)))
		var err error
		switch f.Kind {
		case KillStage, KillBroker:
			err = topo.Kill(ctx, f.Target, f.Pause)
		case ClickHouse:
			if ch == nil {
				err = fmt.Errorf("chaos: no ClickHouse control for a %s fault", f.Kind)
				break
			}
			if err = ch.Stop(ctx); err == nil {
				wait(f.Pause)
				err = ch.Start(ctx)
			}
		case RecipientsDown, SlowRecipient:
			if rc == nil {
				err = fmt.Errorf("chaos: no recipient control for a %s fault", f.Kind)
				break
			}
			systems := strings.Split(f.Target, ",")
			for _, s := range systems {
				if f.Kind == RecipientsDown {
					rc.SetDown(s, true)
				} else {
					rc.SetLatency(s, slow)
				}
			}
			wait(f.Pause)
			// Recover even when ctx ended: the simulator outlives the
			// schedule (the verdict reads it).
			for _, s := range systems {
				if f.Kind == RecipientsDown {
					rc.SetDown(s, false)
				} else {
					rc.SetLatency(s, 0)
				}
			}
		default:
			err = fmt.Errorf("chaos: unknown fault kind %q", f.Kind)
		}
		if err != nil {
			tl.Add("error", f.Target, err.Error())
			return err
		}
		tl.Add("recovered", f.Target, "")
	}
	return nil
}
