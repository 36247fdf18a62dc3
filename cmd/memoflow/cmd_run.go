package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
)

func newRunCmd() *cobra.Command {
	var stages string
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run every stage, the APIs and (unless --kafka-brokers is set) the embedded Kafka broker in one process",
		Args:  cobra.NoArgs,
	}
	cfg := bindConfig(cmd)
	cmd.Flags().StringVar(&stages, "stages", "all", "comma-separated stages to run (default all)")
	demo := addDemoFlags(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := loadConfig(cmd, cfg); err != nil {
			return err
		}
		defs, err := parseStageList(stages)
		if err != nil {
			return err
		}
		ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
		defer stop()
		a := newApp(cfg, cmd.ErrOrStderr())
		a.generate = true
		defer a.close()
		// Bind the HTTP port first: a port in use fails before anything starts.
		if err := a.http.ListenTLS(cfg.HTTP.Addr, cfg.HTTP.TLS); err != nil {
			return err
		}
		if err := a.startProfiling("run"); err != nil {
			return err
		}
		if err := a.startEmbeddedBroker(); err != nil {
			return err
		}
		if _, err := a.connectKafka(ctx); err != nil {
			return err
		}
		if err := seedDemoRegistry(ctx, a, demo); err != nil {
			return err
		}
		wait, err := runStages(ctx, a, defs)
		if err != nil {
			return err
		}
		a.http.Started()
		base := "http://" + a.http.Addr()
		if cfg.HTTP.TLS.Enabled() {
			base = "https://" + a.http.Addr()
		}
		fmt.Fprintf(cmd.OutOrStdout(), "memoflow ready: api=%s metrics=%s/metrics health=%s/readyz kafka=%s clickhouse=%s stages=%s\n",
			base, base, base, cfg.Kafka.Brokers, cfg.ClickHouse.Addr, strings.Join(namesOf(defs), ","))
		if tf := filepath.Join(cfg.VarDir, "demo", "sender.token"); fileExists(tf) && cfg.Auth.TokensFile == "" {
			fmt.Fprintf(cmd.OutOrStdout(), "demo sender token in %s (organisation %s); send with: curl -H \"Authorization: Bearer $(cat %s)\" -H \"Content-Type: application/xml\" --data-binary @msg.xml \"%s/apis/v1/memos/?memo-message-uuid=<uuid>\" or: memoflow send --generate 10000 --url %s --token $(cat %s)\n", tf, demoOrg, tf, base, base, tf)
		}
		err = wait()
		shutdownHTTP(a)
		if err != nil {
			return err
		}
		a.log.Info("memoflow stopped")
		return nil
	}
	return cmd
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func namesOf(defs []stageDef) []string {
	out := make([]string, len(defs))
	for i, d := range defs {
		out[i] = d.name
	}
	return out
}

func shutdownHTTP(a *app) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = a.http.Shutdown(ctx)
}

func newStageCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "stage NAME",
		Short: "Run one stage as a member of its consumer group (scale out by running more)",
		Args:  cobra.ExactArgs(1),
	}
	cfg := bindConfig(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := loadConfig(cmd, cfg); err != nil {
			return err
		}
		def, ok := lookupStage(args[0])
		if !ok {
			return usageErr(fmt.Errorf("unknown stage %q; known stages: %s", args[0], strings.Join(stageNames(), ", ")))
		}
		if cfg.Kafka.Brokers == "" {
			return usageErr(fmt.Errorf("stage %s needs --kafka-brokers (or MEMOFLOW_KAFKA_BROKERS); start a broker with `memoflow broker` for a local cluster", def.name))
		}
		ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
		defer stop()
		a := newApp(cfg, cmd.ErrOrStderr())
		defer a.close()
		if err := a.http.ListenTLS(cfg.HTTP.Addr, cfg.HTTP.TLS); err != nil {
			return err
		}
		if err := a.startProfiling(def.name); err != nil {
			return err
		}
		if _, err := a.connectKafka(ctx); err != nil {
			return err
		}
		wait, err := runStages(ctx, a, []stageDef{def})
		if err != nil {
			return err
		}
		a.http.Started()
		fmt.Fprintf(cmd.OutOrStdout(), "memoflow ready: stage=%s metrics=http://%s/metrics kafka=%s\n", def.name, a.http.Addr(), cfg.Kafka.Brokers)
		err = wait()
		shutdownHTTP(a)
		return err
	}
	return cmd
}

func newBrokerCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "broker",
		Short: "Run the embedded Kafka broker alone (one node, data on disk; not for production)",
		Args:  cobra.NoArgs,
	}
	cfg := bindConfig(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := loadConfig(cmd, cfg); err != nil {
			return err
		}
		if cfg.Kafka.Brokers != "" {
			return usageErr(fmt.Errorf("memoflow broker starts the embedded broker; unset --kafka-brokers/MEMOFLOW_KAFKA_BROKERS (%s)", cfg.Kafka.Brokers))
		}
		ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
		defer stop()
		a := newApp(cfg, cmd.ErrOrStderr())
		defer a.close()
		if err := a.http.ListenTLS(cfg.HTTP.Addr, cfg.HTTP.TLS); err != nil {
			return err
		}
		if err := a.startEmbeddedBroker(); err != nil {
			return err
		}
		if _, err := a.connectKafka(ctx); err != nil {
			return err
		}
		a.http.Started()
		fmt.Fprintf(cmd.OutOrStdout(), "memoflow ready: kafka=%s data_dir=%s metrics=http://%s/metrics\n", cfg.Kafka.Brokers, cfg.Broker.DataDir, a.http.Addr())
		<-ctx.Done()
		shutdownHTTP(a)
		return nil
	}
	return cmd
}
