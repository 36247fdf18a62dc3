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
		from              string
		window, maxPause  time.Duration
		stageKills        int
		brokerKills       int
		chOutages         int
		chDown            time.Duration
		seed              int64
		validate, deliver int
		ingestKills       int
		rcptOutages       int
		rcptShare         float64
		rcptDown          time.Duration
		slowN             int
		slowFor, slowLat  time.Duration
	)
	cmd := &cobra.Command{
		Use:   "chaos",
		Short: "Kill and restart every moving part during a send and prove nothing is lost (docs/reliability.md)",
		Long: `chaos runs memoflow as separate processes on 127.0.0.1 — the embedded broker, every
stage as "memoflow stage NAME" (two replicas of validate and deliver), a ClickHouse
server of its own (scripts/clickhouse.sh, so run it from the repository), and a
recipient simulator for the push systems — sends --messages through the ingest API
with the resumable sender, and meanwhile SIGKILLs random stage replicas and the
broker and restarts them after a random pause, kills the ingest API mid-batch (the
sender resumes), stops ClickHouse for a while, takes 10% of the recipient systems
down for a while and makes one answer after 10 s, on a schedule drawn from --seed.
Redelivery runs on a short --deliver-schedule so that the down systems' messages
arrive within the run.

The verdict comes from outside the pipeline: the event log holds exactly one row
per expected event and no MEMO_SEND_FAILED, every accepted message reached its
recipient system (the simulator; duplicates are counted, and every push's
Idempotency-Key must be its messageUUID), every message's final business receipt
reached the sender's receipt endpoint, no consumer group (the delay topics' and
receipt push's included) has records left, the DLQ is empty. Exit status 1 when
anything was lost or counted twice. Recovery to the rate before each fault is
measured against the 30 s target and reported (it does not fail the run).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if from != "" {
				// No run: the report of an earlier one, its recovery
				// figures derived again, written as --json and --html.
				rep, err := chaos.ReadReport(from)
				if err != nil {
					return usageErr(fmt.Errorf("--from %s: %w", from, err))
				}
				rep.Recompute()
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
				printChaos(cmd, rep)
				return nil
			}
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
			c.Stages["receipt-push"] = 1
			c.Plan = chaos.PlanConfig{Seed: seed, Duration: window, StageKills: stageKills, BrokerKills: brokerKills,
				ClickHouseOutages: chOutages, ClickHouseDown: chDown, MaxPause: maxPause, IngestKills: ingestKills,
				RecipientOutages: rcptOutages, RecipientShare: rcptShare, RecipientDown: rcptDown,
				SlowRecipients: slowN, SlowFor: slowFor, SlowLatency: slowLat}
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
			printChaos(cmd, rep)
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
	f.IntVar(&ingestKills, "ingest-kills", 1, "SIGKILLs of the ingest API on top of --stage-kills (the sender resumes)")
	f.IntVar(&rcptOutages, "recipient-outages", 1, "periods in which --recipient-share of the recipient systems answer 503")
	f.Float64Var(&rcptShare, "recipient-share", 0.1, "share of the recipient systems down in each recipient outage")
	f.DurationVar(&rcptDown, "recipient-down", 60*time.Second, "length of each recipient outage (keep it below the --deliver-schedule's span)")
	f.IntVar(&slowN, "slow-recipients", 1, "periods in which one recipient system answers after --slow-latency")
	f.DurationVar(&slowFor, "slow-for", 30*time.Second, "length of each slow-recipient period")
	f.DurationVar(&slowLat, "slow-latency", 10*time.Second, "answer time of the slow recipient")
	f.StringVar(&c.DeliverSchedule, "deliver-schedule", "", "the run's redelivery schedule (default 5s,15s,35s,75s,155s,315s: redelivery within the run)")
	f.IntVar(&c.MailboxProviders, "mailbox-providers", 20, "push systems the citizens' post goes to (90% to the first)")
	f.IntVar(&c.SinkBatchRecords, "sink-batch-records", 2000, "batch size of the ClickHouse sinks")
	f.StringArrayVar(&c.ExtraArgs, "stage-arg", nil, "extra flag for every stage, e.g. --stage-arg=--deliver-batch-records=200 (repeatable)")
	f.IntVar(&validate, "validate-replicas", 2, "validate replicas")
	f.IntVar(&deliver, "deliver-replicas", 2, "deliver replicas")
	f.StringVar(&c.Dir, "dir", "", "state and logs of the run (default var/chaos/<time>)")
	f.StringVar(&c.Root, "repo", ".", "the repository (for scripts/clickhouse.sh)")
	f.StringVar(&jsonOut, "json", "", "write the report as JSON")
	f.StringVar(&from, "from", "", "do not run: read an earlier run's JSON report, derive its recovery figures again and write --json/--html")
	f.StringVar(&htmlOut, "html", "", "write the report as a self-contained HTML page (throughput with the faults drawn over it)")
	f.DurationVar(&c.JudgeTimeout, "judge-timeout", 10*time.Minute, "how long to wait for the event log to complete after the send")
	return cmd
}

// printChaos writes the summary of a chaos report.
func printChaos(cmd *cobra.Command, rep *chaos.Report) {
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
	fmt.Fprintf(out, "  outbox       %d messages for exempt citizens in the print provider's outbox (READY_FOR_FETCH)\n", rep.Outbox)
	fmt.Fprintf(out, "  keys         %d pushes, %d with an Idempotency-Key other than their messageUUID\n", rep.Keys.Pushes, rep.Keys.Mismatches)
	fmt.Fprintf(out, "  receipts     %d messages with a final business receipt at the sender, %d receipt POSTs repeated (same id), %d with two final receipts\n",
		rep.Receipts.Final, rep.Receipts.Repeats, rep.Receipts.MoreThanOne)
	fmt.Fprintf(out, "  sender       %d failed requests retried, %d resumes from the journal\n", rep.SenderErrors, rep.SenderRetries)
	fmt.Fprintf(out, "  recovery     %d of %d faults over the 30 s target\n", rep.RecoveryMiss, len(rep.Recovery))
	for _, r := range rep.Recovery {
		within := "within 30 s"
		switch {
		case !r.Within:
			within = "OVER 30 s"
		case r.Second > chaos.RecoveryTarget.Seconds():
			within = "not counted"
		}
		fmt.Fprintf(out, "  recovery     %-14s %-22s at %5.0fs: %5.1f s to 80%% of %.0f msgs/s (%s) %s\n", r.Kind, r.Target, r.At, r.Second, r.Rate, within, r.Note)
	}
	for _, sr := range rep.Slow {
		fmt.Fprintf(out, "  slow         %s slow for %.0f s: other systems %.0f msgs/s before, %.0f while slow (ratio %.2f)\n", sr.System, sr.For, sr.Before, sr.During, sr.Ratio)
	}
	for _, p := range rep.Problems() {
		fmt.Fprintf(out, "  FAILED: %s\n", p)
	}
}
