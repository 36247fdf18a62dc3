package main

import (
	"errors"
	"time"

	"github.com/spf13/cobra"

	"github.com/memoflow/memoflow/bench"
)

func newBenchValueDateCmd() *cobra.Command {
	var b benchRunOpts
	sc := &bench.ValueDateRelease{}
	cmd := &cobra.Command{
		Use:   "value-date-release",
		Short: "Held messages released while live traffic runs: release rate, live latency before and during the release",
		Long: `value-date-release sends --messages messages dated tomorrow
(doNotDeliverUntilDate), waits until the schedule stage holds them all, starts
live traffic (--live-messages at --live-rate per second, no value date), and
after --lead lets the date come: the schedule stage's clock moves to 00:00
Europe/Copenhagen of the value date (a clock only the in-process bench can
move; no API releases early). The stage releases at --schedule-release-rate
per partition while the live messages flow. Reported: the release rate as the
recipients see it, live latency p50/p99 before, during and after the release;
a held message that reaches a recipient before the date came fails the run,
as does any loss.

Exit status: 0 correct, 1 otherwise, 2 usage.`,
		Args: cobra.NoArgs,
	}
	cfg := bindConfig(cmd)
	b.register(cmd, 100000)
	cmd.Flags().IntVar(&sc.Live, "live-messages", 0, "live messages sent around the release (default: --messages/10, at least 200)")
	cmd.Flags().Float64Var(&sc.LiveRate, "live-rate", 200, "live messages per second")
	cmd.Flags().DurationVar(&sc.Lead, "lead", 2*time.Second, "live traffic before the date comes")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if b.url != "" {
			return usageErr(errors.New("value-date-release moves the in-process schedule stage's clock; it cannot run against --url"))
		}
		if sc.LiveRate <= 0 {
			return usageErr(errors.New("--live-rate must be positive"))
		}
		return runBench(cmd, cfg, &b, sc)
	}
	return cmd
}

func newBenchFailingCmd() *cobra.Command {
	var b benchRunOpts
	sc := &bench.FailingRecipients{}
	cmd := &cobra.Command{
		Use:   "failing-recipients",
		Short: "10% of the recipient systems down for half the load: the healthy systems' rate, nothing lost via the retry topics",
		Long: `failing-recipients sends --messages in two halves. The first goes to healthy
systems; for the second, --down-share of the systems that get traffic (mailbox
providers of the bench registry) answer 503. The run waits until every message
of the second half is at its recipient or on a retry topic (memo.retry.<gap>),
brings the systems back, and the redelivery schedule delivers the rest.
Reported: the healthy systems' rate in each half and their ratio, the messages
that went through the retry topics. Defaults for this scenario (flags win):
--deliver-schedule 2s,4s,8s,16s,32s,64s,128s,256s and --deliver-breaker-cooldown 1s,
so a run ends in minutes instead of the seeds' hours.

Exit status: 0 correct, 1 otherwise, 2 usage.`,
		Args: cobra.NoArgs,
	}
	cfg := bindConfig(cmd)
	b.register(cmd, 100000)
	cmd.Flags().Float64Var(&sc.DownShare, "down-share", 0.1, "share of the systems with traffic that are down in the second half")
	b.tune = func(c *Config, changed func(string) bool) {
		if !changed("deliver-schedule") {
			c.Deliver.Schedule = []time.Duration{2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second,
				32 * time.Second, 64 * time.Second, 128 * time.Second, 256 * time.Second}
		}
		if !changed("deliver-breaker-cooldown") {
			c.Deliver.BreakerCooldown = time.Second
		}
	}
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if b.url != "" {
			return usageErr(errors.New("failing-recipients drives the in-process recipient simulator; it cannot run against --url"))
		}
		if sc.DownShare <= 0 || sc.DownShare >= 1 {
			return usageErr(errors.New("--down-share must be between 0 and 1"))
		}
		return runBench(cmd, cfg, &b, sc)
	}
	return cmd
}

func newBenchLargeCmd() *cobra.Command {
	var b benchRunOpts
	sc := &bench.Large{}
	var attachment int
	cmd := &cobra.Command{
		Use:   "large",
		Short: "Messages with 10 MB attachments through the claim check (blob store), one by one",
		Long: `large sends --messages MeMo messages, each with an --attachment-bytes main
document (10 MiB by default: a 13.3 MiB MeMo after base64), one by one as
application/xml. Ingest writes each to the claim-check blob store and Kafka
carries references; validate and deliver read the blob and the recipient
simulator receives the whole message. The null pipeline carries 1 KB records
(the references). Needs disk for the blobs: about 14 MB per message in the
run's --var-dir.

Exit status: 0 correct, 1 otherwise, 2 usage.`,
		Args: cobra.NoArgs,
	}
	cfg := bindConfig(cmd)
	b.register(cmd, 1000)
	cmd.Flags().IntVar(&attachment, "attachment-bytes", 10<<20, "size of each message's main document before base64")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if attachment <= 0 {
			return usageErr(errors.New("--attachment-bytes must be positive"))
		}
		sc.AttachmentBytes = attachment
		return runBench(cmd, cfg, &b, sc)
	}
	return cmd
}
