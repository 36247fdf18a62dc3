package main

import (
	"fmt"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"
)

func newConfigCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Print the effective configuration as YAML (file, environment and flags applied; secrets redacted)",
		Args:  cobra.NoArgs,
	}
	cfg := bindConfig(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := loadConfig(cmd, cfg); err != nil {
			return err
		}
		b, err := yaml.Marshal(cfg.redacted())
		if err != nil {
			return err
		}
		fmt.Fprint(cmd.OutOrStdout(), string(b))
		return nil
	}
	return cmd
}
