package main

import (
	"fmt"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// Set by the Makefile with -ldflags "-X main.version=...".
var version = "dev"

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "memoflow",
		Short: "memoflow: the delivery backbone for Danish Digital Post (MeMo over Kafka, event log in ClickHouse)",
		Long: `memoflow takes MeMo messages from sender systems, parses, validates, routes and
delivers them over partitioned Kafka topics, and keeps the event log and the
statistics in ClickHouse.

  memoflow run            everything in one process (embedded Kafka unless --kafka-brokers)
  memoflow stage NAME     one stage as a member of its consumer group
  memoflow broker         the embedded Kafka broker alone`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageErr(fmt.Errorf("%v (see `%s --help`)", err, c.CommandPath()))
	})
	root.AddCommand(
		newRunCmd(),
		newStageCmd(),
		newBrokerCmd(),
		newConfigCmd(),
		newVersionCmd(),
	)
	for _, c := range extraCommands {
		root.AddCommand(c())
	}
	return root
}

// extraCommands are added by other files of this package (validate, gen,
// ...), so each command lives in its own file.
var extraCommands []func() *cobra.Command

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version of memoflow and of its main libraries",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "memoflow %s\n", version)
			if bi, ok := debug.ReadBuildInfo(); ok {
				fmt.Fprintf(out, "go %s\n", bi.GoVersion)
				for _, d := range bi.Deps {
					switch d.Path {
					case "github.com/twmb/franz-go", "github.com/twmb/franz-go/pkg/kfake", "github.com/ClickHouse/clickhouse-go/v2":
						fmt.Fprintf(out, "%s %s\n", d.Path, d.Version)
					}
				}
			}
			return nil
		},
	}
}
