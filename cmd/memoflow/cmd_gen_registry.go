package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/memoflow/memoflow/pipeline"
	"github.com/memoflow/memoflow/schemas/registry"
)

func newGenRegistryCmd() *cobra.Command {
	var (
		cfg        registry.GenConfig
		brokers    string
		topic      string
		out        string
		replay     string
		partitions int
	)
	cmd := &cobra.Command{
		Use:   "registry (--brokers HOST:PORT | --out FILE) [--citizens N --companies N --authorities N ...]",
		Short: "Generate a synthetic registry of any size (deterministic by --seed) into memo.registry or a change file",
		Long: `gen registry writes a synthetic registry: mailbox providers (the first takes about
90% of recipients), an SMS and a print provider, authorities with a default, a
CVR-post and two regular recipient systems and a contact structure, companies
(some with their own recipient system), citizens (some exempt, some with
NemSMS). CPRs are distinct and DDMMYY-shaped, CVRs distinct and modulus-11
valid. The same flags give the same registry.

--brokers writes straight to the compacted topic (creating it if missing);
--out writes a change file that --replay FILE --brokers loads later.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if (brokers == "") == (out == "") {
				return usageErr(errors.New("give exactly one of --brokers (write to Kafka) and --out FILE (write a change file)"))
			}
			if replay != "" && brokers == "" {
				return usageErr(errors.New("--replay FILE needs --brokers"))
			}
			if err := cfg.Validate(); err != nil && replay == "" {
				return usageErr(err)
			}
			ctx := cmd.Context()
			start := time.Now()
			var n int
			var err error
			switch {
			case out != "":
				n, err = genRegistryFile(cfg, out)
			default:
				n, err = genRegistryKafka(ctx, cfg, brokers, topic, partitions, replay)
			}
			if err != nil {
				return err
			}
			el := time.Since(start)
			fmt.Fprintf(cmd.ErrOrStderr(), "memoflow gen registry: %d changes in %v (%.0f/s)\n", n, el.Round(time.Millisecond), float64(n)/max(el.Seconds(), 1e-9))
			return nil
		},
	}
	f := cmd.Flags()
	f.Uint64Var(&cfg.Seed, "seed", 1, "random seed: the same seed and sizes give the same registry")
	f.IntVar(&cfg.Citizens, "citizens", 10_000, "citizens (5,000,000 for the national scale)")
	f.IntVar(&cfg.Companies, "companies", 2_000, "companies (800,000 for the national scale)")
	f.IntVar(&cfg.Authorities, "authorities", 10, "authorities, each with 4 recipient systems")
	f.IntVar(&cfg.PointsPerAuthority, "points-per-authority", 100, "contact points per authority (10,000 in all for the national scale with 100 authorities)")
	f.IntVar(&cfg.MailboxProviders, "mailbox-providers", 3, "mailbox provider systems")
	f.Float64Var(&cfg.ExemptShare, "exempt-share", 0, "share of exempt citizens and companies (default 0.03)")
	f.Float64Var(&cfg.NemSMSShare, "nemsms-share", 0, "share of registered citizens with NemSMS (default 0.4)")
	f.StringVar(&brokers, "brokers", "", "Kafka bootstrap brokers (host:port,...) to write to")
	f.StringVar(&topic, "topic", pipeline.TopicRegistry, "registry topic")
	f.IntVar(&partitions, "partitions", 12, "partitions when the topic is created")
	f.StringVar(&out, "out", "", "write a change file instead of producing")
	f.StringVar(&replay, "replay", "", "produce the changes of this change file instead of generating")
	return cmd
}

func genRegistryFile(cfg registry.GenConfig, path string) (int, error) {
	fh, err := os.Create(path)
	if err != nil {
		return 0, &exitError{code: 2, err: err}
	}
	defer fh.Close()
	cw, err := registry.NewChangeWriter(fh)
	if err != nil {
		return 0, err
	}
	if err := registry.Generate(cfg, cw.Write); err != nil {
		return cw.Count(), err
	}
	if err := cw.Flush(); err != nil {
		return cw.Count(), err
	}
	return cw.Count(), fh.Close()
}

func genRegistryKafka(ctx context.Context, cfg registry.GenConfig, brokers, topic string, partitions int, replay string) (int, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(brokers, ",")...), kgo.ClientID("memoflow-gen-registry"),
		kgo.ProducerLinger(5*time.Millisecond), kgo.MaxBufferedRecords(1<<20), kgo.ProducerBatchMaxBytes(1<<20))
	if err != nil {
		return 0, usageErr(err)
	}
	defer cl.Close()
	spec := pipeline.TopicSpec{Name: topic, Compacted: true}
	if err := pipeline.EnsureTopics(ctx, kadm.NewClient(cl), pipeline.TopicOptions{Partitions: partitions, Replication: 1}, spec); err != nil {
		return 0, err
	}
	var mu sync.Mutex
	var first error
	done := func(_ *kgo.Record, err error) {
		if err != nil {
			mu.Lock()
			if first == nil {
				first = err
			}
			mu.Unlock()
		}
	}
	n := 0
	produce := func(key, value []byte) error {
		mu.Lock()
		err := first
		mu.Unlock()
		if err != nil {
			return err
		}
		n++
		cl.Produce(ctx, &kgo.Record{Topic: topic, Key: key, Value: value}, done)
		return nil
	}
	if replay != "" {
		fh, err := os.Open(replay)
		if err != nil {
			return 0, &exitError{code: 2, err: err}
		}
		defer fh.Close()
		err = registry.ReadChangeFile(fh, func(k, v []byte) error {
			var val []byte
			if v != nil {
				val = append([]byte{}, v...)
			}
			return produce(append([]byte{}, k...), val)
		})
		if err != nil {
			return n, err
		}
	} else if err := registry.Generate(cfg, func(c registry.Change) error {
		r := c.Record(topic)
		return produce(r.Key, r.Value)
	}); err != nil {
		return n, err
	}
	if err := cl.Flush(ctx); err != nil {
		return n, err
	}
	return n, first
}
