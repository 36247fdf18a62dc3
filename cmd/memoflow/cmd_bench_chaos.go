package main

import (
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/memoflow/memoflow/bench/chaos"
)

func newBenchChaosCmd() *cobra.Command {
	var (
		c                 chaos.Config
		jsonOut, htmlOut  string
		window, maxPause  time.Duration
		stageKills        int
		brokerKills       int
		chOutages         int
		chDown            time.Duration
		seed              int64
		validate, deliver int
	)
	cmd := &cobra.Command{
		Use:   "chaos",
		Short: "Kill and restart every moving part during a send and prove nothing is lost (docs/reliability.md)",
		Long: `chaos runs memoflow as separate processes on 127.0.0.1 — the embedded broker, every
stage as "memoflow stage NAME" (two replicas of validate and deliver), a ClickHouse
server of its own (scripts/clickhouse.sh, so run it from the repository), and a
recipient simulator for the push systems — sends --messages through the ingest API
with the resumable sender, and meanwhile SIGKILLs random stage replicas and the
broker and restarts them after a random pause, and stops ClickHouse for a while, on
a schedule drawn from --seed.

The verdict comes from outside the pipeline: the event log holds exactly one row
per expected event, every pushed message reached the simulator (duplicates are
counted), no consumer group has records left, the DLQ is empty. Exit status 1 when
anything was lost or counted twice.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if c.Messages < 1 {
				return usageErr(fmt.Errorf("--messages must be at least 1, got %d", c.Messages))
			}
			bin, err := os.Executable()
			if err != nil {
				return err
			}
			if _, err := os.Stat(filepath.Join(c.Root, "scripts", "clickhouse.sh")); err != nil {
				return usageErr(fmt.Errorf("--repo %s: no scripts/clickhouse.sh there; run from the repository or give --repo", c.Root))
			}
			if c.Dir == "" {
				c.Dir = filepath.Join("var", "chaos", time.Now().UTC().Format("20060102-150405"))
			}
			if c.Dir, err = filepath.Abs(c.Dir); err != nil {
				return err
			}
			if window == 0 {
				// Spread the faults over about the time the send takes here.
				window = max(60*time.Second, time.Duration(c.Messages/2000)*time.Second)
			}
			c.Bin = bin
			c.Stages = map[string]int{"ingest": 1, "validate": validate, "schedule": 1, "route": 1, "deliver": deliver, "eventlog": 1, "receipts": 1}
			c.Plan = chaos.PlanConfig{Seed: seed, Duration: window, StageKills: stageKills, BrokerKills: brokerKills,
				ClickHouseOutages: chOutages, ClickHouseDown: chDown, MaxPause: maxPause}
			c.Progress = cmd.ErrOrStderr()
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			fmt.Fprintf(cmd.ErrOrStderr(), "chaos: %d messages, state and logs in %s\n", c.Messages, c.Dir)
			rep, err := chaos.Run(ctx, c)
			if err != nil {
				fmt.Fprint(cmd.ErrOrStderr(), chaos.LogTails(c.Dir, 2000))
				return &exitError{code: 1, err: err}
			}
			if jsonOut != "" {
				if err := rep.WriteJSON(jsonOut); err != nil {
					return err
				}
			}
			if htmlOut != "" {
				if err := rep.WriteHTML(htmlOut); err != nil {
					return err
				}
			}
			out := cmd.OutOrStdout()
			verdict := "OK"
			if !rep.OK {
				verdict = "FAILED"
			}
			fmt.Fprintf(out, "memoflow bench chaos: %s\n", verdict)
			fmt.Fprintf(out, "  messages     %d in %.1f s (%.0f msgs/s with the faults)\n", rep.Messages, rep.Seconds, rep.MsgsPerSec)
			fmt.Fprintf(out, "  faults       %d kills (%d broker), %d unexpected exits restarted, %d sender resumes\n", rep.Kills, rep.BrokerKills, rep.Exits, rep.SenderRetries)
			fmt.Fprintf(out, "  lost         %d\n  duplicates   %d pushes (same idempotency key)\n", rep.Lost, rep.Duplicates)
			fmt.Fprintf(out, "  simulator    %s\n", rep.Simulator.Summary())
			for k, v := range rep.Recovery {
				fmt.Fprintf(out, "  recovery     %-24s %.1f s\n", k, v)
			}
			for _, p := range rep.Problems() {
				fmt.Fprintf(out, "  FAILED: %s\n", p)
			}
			if !rep.OK || rep.Lost > 0 {
				return &exitError{code: 1, err: chaos.ErrFailed}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&c.Messages, "messages", 1_000_000, "messages to send")
	f.Int64Var(&seed, "seed", 1, "seed of the fault schedule (the same seed gives the same schedule)")
	f.IntVar(&stageKills, "stage-kills", 10, "SIGKILLs of random stage replicas")
	f.IntVar(&brokerKills, "broker-kills", 1, "SIGKILLs of the broker")
	f.IntVar(&chOutages, "clickhouse-outages", 1, "ClickHouse outages")
	f.DurationVar(&chDown, "clickhouse-down", 60*time.Second, "length of each ClickHouse outage")
	f.DurationVar(&maxPause, "max-pause", 10*time.Second, "longest pause before a killed process restarts")
	f.DurationVar(&window, "fault-window", 0, "faults fall between 10% and 80% of this (default: about the send's length)")
	f.IntVar(&validate, "validate-replicas", 2, "validate replicas")
	f.IntVar(&deliver, "deliver-replicas", 2, "deliver replicas")
	f.StringVar(&c.Dir, "dir", "", "state and logs of the run (default var/chaos/<time>)")
	f.StringVar(&c.Root, "repo", ".", "the repository (for scripts/clickhouse.sh)")
	f.StringVar(&jsonOut, "json", "", "write the report as JSON")
	f.StringVar(&htmlOut, "html", "", "write the report as a self-contained HTML page (throughput with the faults drawn over it)")
	f.DurationVar(&c.JudgeTimeout, "judge-timeout", 10*time.Minute, "how long to wait for the event log to complete after the send")
	return cmd
}
