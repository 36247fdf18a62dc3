package bench

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/memoflow/memoflow/internal/recipientsim"
)

// SimArrival counts a message as arrived when the recipient simulator
// accepts its push: "available to recipient", the end of the whole
// pipeline. The first acceptance of a messageUUID is its arrival; later
// ones are duplicates (the tracker counts them).
type SimArrival struct {
	Sim *recipientsim.Sim
	// Observe, when set, also sees every arrival (a scenario's own
	// measures: per system, per phase).
	Observe func(Arrival)
	// Others are more receivers whose accepted messages are arrivals: the
	// in-process SFTP and SMTP recipients of a --protocol-mix run.
	Others []interface {
		OnAccept(func(system, uuid string))
	} // OnStop, when set, runs once the source is stopped.
	OnStop func()

	mu      sync.Mutex
	stopped bool
}

func (a *SimArrival) Name() string {
	return "recipient simulator: accepted pushes (available to recipient)"
}

func (a *SimArrival) Start(_ context.Context, arrive func(Arrival)) (func() error, error) {
	accept := func(system, uuid string) {
		ar := Arrival{UUID: parseUUID(uuid), At: time.Now(), System: system}
		// One caller at a time: the tracker and observers see arrivals
		// serially, as from the topic source.
		a.mu.Lock()
		defer a.mu.Unlock()
		if a.stopped {
			return
		}
		arrive(ar)
		if a.Observe != nil {
			a.Observe(ar)
		}
	}
	a.Sim.OnAccept(accept)
	for _, o := range a.Others {
		o.OnAccept(accept)
	}
	return func() error {
		a.Sim.OnAccept(nil)
		for _, o := range a.Others {
			o.OnAccept(nil)
		}
		a.mu.Lock()
		a.stopped = true
		a.mu.Unlock()
		if a.OnStop != nil {
			a.OnStop()
		}
		return nil
	}, nil
}

// OffsetClock is the schedule stage's clock in a bench run: real time
// plus an offset that the value-date scenario moves forward to the value
// date's midnight, so held messages fall due ("the date came") without
// waiting for it. Releases are still paced by the stage's own rate and
// ticks; only the stage's idea of the date changes.
type OffsetClock struct{ off atomic.Int64 }

// Now is the real time plus the offset.
func (c *OffsetClock) Now() time.Time { return time.Now().Add(time.Duration(c.off.Load())) }

// AdvanceTo moves the clock to at least t (never back).
func (c *OffsetClock) AdvanceTo(t time.Time) {
	for {
		cur := c.off.Load()
		want := int64(time.Until(t))
		if want <= cur || c.off.CompareAndSwap(cur, want) {
			return
		}
	}
}
