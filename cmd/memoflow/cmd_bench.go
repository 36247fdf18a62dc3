package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/segmentio/encoding/json"
	"github.com/spf13/cobra"

	"github.com/memoflow/memoflow/bench"
	"github.com/memoflow/memoflow/internal/embedded"
)

func init() { extraCommands = append(extraCommands, newBenchCmd) }

func newBenchCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench SCENARIO",
		Short: "Benchmarks for SREs; every figure comes with a baseline measured in the same run",
	}
	cmd.AddCommand(newBenchCopyCmd(), newBenchIngestCmd(), newBenchMassSendCmd(), newBenchSoakCmd(), newBenchChaosCmd(),
		newBenchValueDateCmd(), newBenchFailingCmd(), newBenchLargeCmd())
	return cmd
}

// benchBroker returns brokers, starting an embedded broker in a temporary
// directory when none are given; the returned func stops it.
func benchBroker(brokers string) (string, func(), error) {
	if brokers != "" {
		return brokers, func() {}, nil
	}
	d, err := os.MkdirTemp("", "memoflow-bench-")
	if err != nil {
		return "", nil, err
	}
	b, err := embedded.Start(embedded.Config{Port: 0, DataDir: d, CleanerBackoffMs: 60000})
	if err != nil {
		os.RemoveAll(d)
		return "", nil, err
	}
	return b.Addrs()[0], func() { b.Close(); os.RemoveAll(d) }, nil
}

func newBenchIngestCmd() *cobra.Command {
	var o bench.IngestOptions
	var jsonOut string
	cmd := &cobra.Command{
		Use:   "ingest",
		Short: "Ingest API: tar+LZMA batches over HTTP into Kafka vs raw franz-go produce of the same records",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			brokers, closeBroker, err := benchBroker(o.Brokers)
			if err != nil {
				return err
			}
			defer closeBroker()
			o.Brokers = brokers
			o.Log = cmd.ErrOrStderr()
			rep, err := bench.RunIngest(ctx, o)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "\ningest benchmark: %d messages (%d B mean) in tar+LZMA batches of %d (%.2f MB each), %d partitions\n",
				rep.Messages, rep.MeanMessageB, rep.BatchSize, float64(rep.BatchLZMABytes)/1e6, o.Partitions)
			fmt.Fprintf(w, "through the API  %10.0f msgs/s %8.1f MB/s\n", rep.APIMsgsPerSec, rep.APIMBPerSec)
			fmt.Fprintf(w, "raw produce      %10.0f msgs/s %8.1f MB/s\n", rep.RawMsgsPerSec, rep.RawMBPerSec)
			fmt.Fprintf(w, "ratio API/raw    %10.2f (target >= 0.5)\n", rep.Ratio)
			fmt.Fprintf(w, "LZMA decode alone %9.1f MB/s; max RSS %.0f MB\n", rep.LZMADecodeMBps, rep.MaxRSSMB)
			if jsonOut != "" {
				b, _ := json.MarshalIndent(rep, "", "  ")
				return os.WriteFile(jsonOut, b, 0o644)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&o.Brokers, "kafka-brokers", "", "brokers (default: an embedded broker in a temp dir)")
	cmd.Flags().IntVar(&o.Messages, "messages", 1000000, "messages in all")
	cmd.Flags().IntVar(&o.BatchSize, "batch-size", 10000, "messages per tar+LZMA batch")
	cmd.Flags().IntVar(&o.Concurrency, "concurrency", 2, "batches in flight")
	cmd.Flags().IntVar(&o.Partitions, "partitions", 12, "partitions of the bench topics")
	cmd.Flags().StringVar(&jsonOut, "json", "", "also write the report as JSON to this file")
	return cmd
}

func newBenchCopyCmd() *cobra.Command {
	var o bench.CopyOptions
	var jsonOut, dataDir string
	cmd := &cobra.Command{
		Use:   "copy",
		Short: "Runtime overhead: a copy stage through the runtime vs raw franz-go, at-least-once and exactly-once",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			if o.Brokers == "" {
				dir := dataDir
				if dir == "" {
					d, err := os.MkdirTemp("", "memoflow-bench-")
					if err != nil {
						return err
					}
					defer os.RemoveAll(d)
					dir = d
				}
				b, err := embedded.Start(embedded.Config{Port: 0, DataDir: dir, CleanerBackoffMs: 60000})
				if err != nil {
					return err
				}
				defer b.Close()
				o.Brokers = b.Addrs()[0]
			}
			o.Log = cmd.ErrOrStderr()
			rep, err := bench.RunCopy(ctx, o)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "\ncopy benchmark: %d records x %d B, %d partitions, broker %s\n", o.Records, o.ValueBytes, o.Partitions, o.Brokers)
			fmt.Fprintf(w, "%-12s %12s %9s %8s\n", "variant", "records/s", "MB/s", "seconds")
			for _, r := range rep.Results {
				fmt.Fprintf(w, "%-12s %12.0f %9.1f %8.2f\n", r.Name, r.RecPerSec, r.MBPerSec, r.Seconds)
			}
			fmt.Fprintf(w, "ratio runtime/raw: at-least-once %.2f, exactly-once %.2f (target >= 0.80)\n", rep.RatioALO, rep.RatioEOS)
			fmt.Fprintf(w, "runtime exactly-once / at-least-once: %.2f\n", rep.EOSvsALO)
			if jsonOut != "" {
				b, _ := json.MarshalIndent(rep, "", "  ")
				if err := os.WriteFile(jsonOut, b, 0o644); err != nil {
					return err
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&o.Brokers, "kafka-brokers", "", "brokers to benchmark against (default: an embedded broker in a temp dir)")
	cmd.Flags().StringVar(&dataDir, "broker-data-dir", "", "data dir of the embedded broker (default: a temp dir removed afterwards)")
	cmd.Flags().IntVar(&o.Records, "records", 300000, "records to copy per variant")
	cmd.Flags().IntVar(&o.ValueBytes, "value-bytes", 1024, "record value size")
	cmd.Flags().IntVar(&o.Partitions, "partitions", 12, "partitions of the bench topics")
	cmd.Flags().IntVar(&o.PollRecords, "poll-records", 5000, "records per poll (and per transaction)")
	cmd.Flags().IntVar(&o.Rounds, "rounds", 2, "rounds of the four variants (order alternates; best time kept)")
	cmd.Flags().StringVar(&jsonOut, "json", "", "also write the report as JSON to this file")
	return cmd
}
