package route

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/memoflow/memoflow/pipeline"
	"github.com/memoflow/memoflow/schemas/records"
	"github.com/memoflow/memoflow/schemas/registry"
)

// TestRegistryChangeReachesRouting: a change written to memo.registry by
// another process (its own Writer, no shared memory) changes the routing
// of the next message within seconds.
func TestRegistryChangeReachesRouting(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, pipeline.TopicRegistry, pipeline.TopicEvents))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	opts := []kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...)}
	prod, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	ctx := context.Background()
	admin := registry.NewWriter(prod, nil)
	if err := admin.Put(ctx, "admin-1", testRegistry()...); err != nil {
		t.Fatal(err)
	}
	view, err := registry.NewView(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer view.Close()
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := view.WaitCaughtUp(wctx); err != nil {
		t.Fatal(err)
	}
	s := newStage(t, view, noon)
	dest := func(e *records.Envelope) string {
		if d := s.Decide(e, noon); d.System != nil {
			return d.System.ID
		}
		return ""
	}
	cit := env(records.IDCPR, citizen, "", "", records.TypeDigitalPost)
	cp := env(records.IDCVR, auth, PostMyndighed, "cp-nosys", records.TypeDigitalPost)
	if dest(cit) != "mbox" || dest(cp) != "dflt" {
		t.Fatalf("before: %s, %s", dest(cit), dest(cp))
	}

	// The citizen becomes exempt; the contact point gets a system.
	start := time.Now()
	if err := admin.Put(ctx, "admin-1",
		&registry.Citizen{CPR: citizen, Status: registry.Exempt},
		&registry.ContactPoint{ID: "cp-nosys", Org: auth, Name: "Kørekort", System: "cvrpost"}); err != nil {
		t.Fatal(err)
	}
	for dest(cit) != "print" || dest(cp) != "cvrpost" {
		if time.Since(start) > 5*time.Second {
			t.Fatalf("after 5s routing still gives %s, %s", dest(cit), dest(cp))
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("registry change reached routing after %v", time.Since(start))

	// A deleted contact point: the address becomes invalid.
	if err := admin.Delete(ctx, "admin-1", "cp/cp-nosys"); err != nil {
		t.Fatal(err)
	}
	for s.Decide(cp, noon).Invalid != CodeContactPointUnknown {
		if time.Since(start) > 10*time.Second {
			t.Fatal("delete not seen by routing")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
