package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/memoflow/memoflow/schemas/registry"
)

// TestGenRegistryCommand: the same flags give the same change file; the
// file replays into Kafka, and a View of the topic holds the registry.
func TestGenRegistryCommand(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.reg"), filepath.Join(dir, "b.reg")
	args := []string{"gen", "registry", "--citizens", "5000", "--companies", "800", "--authorities", "3", "--points-per-authority", "20", "--seed", "9"}
	for _, out := range []string{a, b} {
		if code, _, errs := runCLI(t, append(args, "--out", out)...); code != 0 {
			t.Fatalf("gen registry: exit %d %s", code, errs)
		}
	}
	ba, _ := os.ReadFile(a)
	bb, _ := os.ReadFile(b)
	if len(ba) < 1000 || string(ba) != string(bb) {
		t.Fatalf("not deterministic (%d and %d bytes)", len(ba), len(bb))
	}
	if code, _, _ := runCLI(t, "gen", "registry", "--out", a, "--brokers", "x:1"); code != 2 {
		t.Errorf("--out with --brokers: exit %d, want 2 (usage)", code)
	}

	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	broker := c.ListenAddrs()[0]
	if code, _, errs := runCLI(t, "gen", "registry", "--brokers", broker, "--replay", a, "--partitions", "3"); code != 0 {
		t.Fatalf("replay: exit %d %s", code, errs)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	v, err := registry.NewView(ctx, []kgo.Opt{kgo.SeedBrokers(broker)})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if err := v.WaitCaughtUp(ctx); err != nil {
		t.Fatal(err)
	}
	if st := v.Stats(); st.Citizens != 5000 || st.Companies != 800 || st.ContactPoints != 60 || v.SMSProvider() == nil {
		t.Fatalf("view of the replayed registry: %+v", st)
	}
}
