package chaos

import (
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"time"
)

// DupWatch tells, for every push the simulator accepted a second time,
// whether a fault that can interrupt delivery fell between the first
// acceptance and the repeat: a deliver replica or the broker killed,
// restarted or exited (the batch in hand was aborted or its partitions
// moved, so its pushes are redone), or the system answering slowly (a push
// that outlived the deliver timeout is retried). That is the issue's
// "duplicates only for a push in flight at a kill", made checkable from
// outside: an unexplained duplicate is one the pipeline repeated for no
// fault of the run (e.g. a rebalance after a session timeout under load),
// reported with examples.
type DupWatch struct {
	start time.Time
	mu    sync.Mutex
	first map[[16]byte]int32 // messageUUID → first acceptance, ms since start
	dups  []dupPush
}

type dupPush struct {
	uuid   string
	system string
	first  time.Duration
	again  time.Duration
}

// NewDupWatch returns a watch whose clock starts now.
func NewDupWatch() *DupWatch {
	return &DupWatch{start: time.Now(), first: make(map[[16]byte]int32, 1<<16)}
}

// Accept is the simulator's OnAccept hook.
func (d *DupWatch) Accept(system, uuid string) {
	key, ok := uuidKey(uuid)
	if !ok {
		return // the key check reports malformed keys
	}
	now := time.Since(d.start)
	d.mu.Lock()
	defer d.mu.Unlock()
	if at, seen := d.first[key]; seen {
		d.dups = append(d.dups, dupPush{uuid: uuid, system: system, first: time.Duration(at) * time.Millisecond, again: now})
		return
	}
	d.first[key] = int32(now.Milliseconds())
}

// uuidKey packs a canonical UUID into 16 bytes (a million of them then
// take tens of MB, not a hundred).
func uuidKey(s string) (k [16]byte, ok bool) {
	if len(s) != 36 {
		return k, false
	}
	var b [32]byte
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '-' {
			continue
		}
		if n == 32 {
			return k, false
		}
		b[n] = s[i]
		n++
	}
	if n != 32 {
		return k, false
	}
	if _, err := hex.Decode(k[:], b[:]); err != nil {
		return k, false
	}
	return k, true
}

// DupAttribution is the classification of the duplicate pushes.
type DupAttribution struct {
	Total       int            `json:"total"`
	Explained   int            `json:"explained"`
	ByCause     map[string]int `json:"by_cause"`
	Unexplained int            `json:"unexplained"`
	// Examples of unexplained duplicates: uuid, system, seconds of both
	// acceptances since the run's start.
	Examples []string `json:"unexplained_examples,omitempty"`
}

// dupSlack widens each duplicate's window: the timeline entry of a kill is
// written just before the signal, and a push accepted in the same instant
// the replica died is still in flight at the kill.
const dupSlack = 2 * time.Second

// Attribute classifies the duplicates against the timeline. slow is the
// slow recipient's answer time: a push to it can still be answering that
// long after its slow period ended.
func (d *DupWatch) Attribute(tl []Entry, slow time.Duration) DupAttribution {
	d.mu.Lock()
	dups := append([]dupPush(nil), d.dups...)
	d.mu.Unlock()
	// A cause is an interval of the run: a kill, restart or exit is an
	// instant; a slow period lasts until its recovery plus one slow answer.
	type cause struct {
		from, to time.Duration
		name     string
		system   string // slow recipient: only that system's pushes
	}
	var causes []cause
	for i, e := range tl {
		at := e.T.Sub(d.start)
		switch {
		case e.Target == "broker" && (e.Kind == KillBroker || e.Kind == "recovered" || e.Kind == "exit"):
			causes = append(causes, cause{from: at, to: at, name: "broker killed or restarted"})
		case strings.HasPrefix(e.Target, "deliver-") && (e.Kind == KillStage || e.Kind == "recovered" || e.Kind == "exit"):
			causes = append(causes, cause{from: at, to: at, name: "deliver replica killed or restarted"})
		case e.Kind == SlowRecipient:
			end := time.Duration(1<<62 - 1)
			for _, r := range tl[i+1:] {
				if r.Kind == "recovered" && r.Target == e.Target {
					end = r.T.Sub(d.start) + slow + dupSlack
					break
				}
			}
			causes = append(causes, cause{from: at, to: end, name: "slow recipient", system: e.Target})
		}
	}
	a := DupAttribution{Total: len(dups), ByCause: map[string]int{}}
	for _, p := range dups {
		found := ""
		for _, c := range causes {
			if c.to < p.first-dupSlack || c.from > p.again+dupSlack {
				continue
			}
			if c.system != "" && c.system != p.system {
				continue
			}
			found = c.name
			break
		}
		if found == "" {
			a.Unexplained++
			if len(a.Examples) < 10 {
				a.Examples = append(a.Examples, fmt.Sprintf("%s to %s accepted at %.1fs and again at %.1fs", p.uuid, p.system, p.first.Seconds(), p.again.Seconds()))
			}
			continue
		}
		a.Explained++
		a.ByCause[found]++
	}
	return a
}
