package bench

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/memoflow/memoflow/internal/recipientsim"
	"github.com/memoflow/memoflow/pipeline"
	"github.com/memoflow/memoflow/schemas/registry"
)

// RegistryConfig describes the synthetic registry a whole-pipeline run
// routes by: registry.Generate's entities, with push systems pointed at the
// recipient simulator.
type RegistryConfig struct {
	Gen registry.GenConfig
	// SimURL is the recipient simulator's base URL; every REST_PUSH
	// system's endpoint becomes SimURL/push/<id> (credentials dropped: the
	// simulator takes no secret).
	SimURL string
	// SimURLs, when set, are several base URLs of the same simulator
	// (one listener each): push systems take them in turn, so each system
	// of a small registry has its own host:port, as real systems do. HTTP
	// clients keep idle connections per host:port (deliver: as many as a
	// system's pushes in flight), so systems sharing one would redial.
	SimURLs []string
	// AllPush makes every system a push system on the simulator (the
	// generator's pull systems too), so every routable message is seen by
	// the simulator: the bench's arrival point.
	AllPush bool
	// SpreadMailboxes assigns citizens and companies to the mailbox
	// providers round-robin instead of the generator's 90% to the first,
	// so "10% of systems down" is about 10% of the traffic.
	SpreadMailboxes bool
	// Adjust, when set, may change each push system on the simulator
	// after its endpoint is set (--protocol-mix moves some to SFTP/SMTP).
	Adjust func(*registry.System) error
}

// Recipients are the registry's addressable recipients, as the bench's
// message generator needs them: every message to one of them routes to a
// push system on the simulator without a rejection.
type Recipients struct {
	// Citizens are registered citizens (mailbox provider); NemSMS those
	// of them who receive NemSMS.
	Citizens []string
	NemSMS   []string
	// Companies are registered companies without an own recipient system
	// (their post goes to their mailbox provider).
	Companies []string
	// AllCitizens is every generated citizen, exempt ones included, in
	// generation order.
	AllCitizens []string
	// Systems are the push systems on the simulator, sorted; Mailboxes the
	// mailbox providers among them.
	Systems   []string
	Mailboxes []string
}

// Key identifies the recipient lists (for the prepared-batch cache: other
// recipients are other messages).
func (r *Recipients) Key() string {
	if r == nil {
		return "none"
	}
	h := sha256.New()
	for _, l := range [][]string{r.Citizens, r.NemSMS, r.Companies} {
		for _, s := range l {
			h.Write([]byte(s))
			h.Write([]byte{0})
		}
		h.Write([]byte{1})
	}
	return hex.EncodeToString(h.Sum(nil)[:6])
}

// BuildRegistry generates the registry's changes (endpoints rewritten as
// c says) and its recipients, without writing them anywhere.
func BuildRegistry(c RegistryConfig) ([]registry.Change, *Recipients, error) {
	sims := c.SimURLs
	if len(sims) == 0 && c.SimURL != "" {
		sims = []string{c.SimURL}
	}
	if len(sims) == 0 {
		return nil, nil, errors.New("bench registry: SimURL is empty; give the recipient simulator's base URL")
	}
	var changes []registry.Change
	rc := &Recipients{}
	var mailboxes []string
	nextMailbox := 0
	spread := func(cur string) string {
		if !c.SpreadMailboxes || cur == "" || len(mailboxes) == 0 {
			return cur
		}
		m := mailboxes[nextMailbox%len(mailboxes)]
		nextMailbox++
		return m
	}
	err := registry.Generate(c.Gen, func(ch registry.Change) error {
		switch e := ch.Entity.(type) {
		case *registry.System:
			if c.AllPush && e.Protocol != registry.RestPush {
				e.Protocol = registry.RestPush
			}
			if e.Protocol == registry.RestPush {
				sim := strings.TrimRight(sims[len(rc.Systems)%len(sims)], "/")
				e.Endpoint, e.Credentials = sim+recipientsim.PushPath(e.ID), ""
				rc.Systems = append(rc.Systems, e.ID)
				if c.Adjust != nil {
					if err := c.Adjust(e); err != nil {
						return err
					}
				}
			}
			if e.SysKind == registry.SystemMailbox {
				mailboxes = append(mailboxes, e.ID)
			}
		case *registry.Citizen:
			rc.AllCitizens = append(rc.AllCitizens, e.CPR)
			if e.Status == registry.Registered {
				e.Mailbox = spread(e.Mailbox)
				rc.Citizens = append(rc.Citizens, e.CPR)
				if e.NemSMS {
					rc.NemSMS = append(rc.NemSMS, e.CPR)
				}
			}
		case *registry.Company:
			if e.Status == registry.Registered {
				e.Mailbox = spread(e.Mailbox)
				if e.System == "" {
					rc.Companies = append(rc.Companies, e.CVR)
				}
			}
		}
		changes = append(changes, ch)
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("bench registry: %w", err)
	}
	sort.Strings(rc.Systems)
	rc.Mailboxes = mailboxes
	return changes, rc, nil
}

// SeedRegistry writes the synthetic registry to memo.registry (before the
// routing stage starts: it waits for the registry View to catch up) and
// returns its recipients. opts are the Kafka client options.
func SeedRegistry(ctx context.Context, opts []kgo.Opt, c RegistryConfig) (*Recipients, error) {
	changes, rc, err := BuildRegistry(c)
	if err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(append(opts, kgo.AllowAutoTopicCreation(), kgo.MaxBufferedRecords(1<<20))...)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	recs := make([]*kgo.Record, len(changes))
	for i, ch := range changes {
		recs[i] = ch.Record(pipeline.TopicRegistry)
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return nil, fmt.Errorf("bench registry: produce: %w", err)
	}
	return rc, nil
}

// DefaultBenchRegistry is the registry of `memoflow bench`'s whole-pipeline
// runs: 20,000 citizens, 2,000 companies, 20 mailbox providers with the
// recipients spread evenly, the SMS and print providers, every system a
// push system on the simulator (22 systems plus the companies' own).
func DefaultBenchRegistry(simURLs ...string) RegistryConfig {
	return RegistryConfig{
		Gen:     registry.GenConfig{Seed: 1, Citizens: 20000, Companies: 2000, MailboxProviders: 20},
		SimURLs: simURLs, AllPush: true, SpreadMailboxes: true,
	}
}
