package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/segmentio/encoding/json"
	"github.com/spf13/cobra"

	"github.com/memoflow/memoflow/internal/recipientsim"
)

func init() { extraCommands = append(extraCommands, newSimCmd) }

func newSimCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "sim",
		Short: "Simulators of the systems around memoflow, for tests and benchmarks",
	}
	cmd.AddCommand(newSimRecipientCmd())
	return cmd
}

func newSimRecipientCmd() *cobra.Command {
	var (
		cfg                    recipientsim.Config
		addr, expectFile       string
		pullURL, pullSystem    string
		pullToken, pullTokenFn string
		pullInterval, duration time.Duration
		pullNegative           float64
		jsonOut                bool
		protocol, keysDir      string
		sftpRoot               string
	)
	cmd := &cobra.Command{
		Use:   "recipient",
		Short: "Recipient systems: a push endpoint (POST /push/{system}) and a pull client; counts messages, duplicates and missing ones",
		Long: `Simulates recipient systems. Pushes go to http://ADDR/push/{system} (register
that URL as a push system's endpoint); --latency, --failure-rate (503) and
--negative-rate (200 with a negative business receipt) shape the answers.
With --pull-url the simulator also collects one system's post through the
pull API (list, fetch, delete, receipt) every --pull-interval.

Every accepted message is counted by messageUUID (the Idempotency-Key
header): GET http://ADDR/stats and the summary at exit report duplicates
and, with --expect-file (one uuid a line), missing messages.

--protocol sftp or smtp starts an in-process SFTP server (files under
--sftp-root) or SMTP server (STARTTLS; decrypts and verifies each mail)
instead, with test keys kept in --keys-dir, and prints what the registry
entry and memoflow's flags need (host key, certificate, TLS root, the key
to authorize). Arrivals are counted by messageUUID as for REST.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch protocol {
			case "rest", "":
			case "sftp", "smtp":
				if !cmd.Flags().Changed("addr") {
					addr = map[string]string{"sftp": "127.0.0.1:2222", "smtp": "127.0.0.1:2525"}[protocol]
				}
				return runTransportRecipient(cmd, protocol, addr, keysDir, sftpRoot, expectFile, duration, jsonOut)
			default:
				return usageErr(fmt.Errorf("--protocol %q: give rest, sftp or smtp", protocol))
			}
			sim, err := recipientsim.New(cfg)
			if err != nil {
				return usageErr(err)
			}
			if expectFile != "" {
				n, err := expectFrom(sim, expectFile)
				if err != nil {
					return usageErr(err)
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "expecting %d messages\n", n)
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			if duration > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, duration)
				defer cancel()
			}
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				return usageErr(fmt.Errorf("--addr %s: %w", addr, err))
			}
			srv := &http.Server{Handler: sim.Handler(), ReadHeaderTimeout: 10 * time.Second}
			go func() { _ = srv.Serve(ln) }()
			fmt.Fprintf(cmd.ErrOrStderr(), "recipient simulator on http://%s (push: /push/{system}, stats: /stats)\n", ln.Addr())
			if pullURL != "" {
				if pullTokenFn != "" {
					b, err := os.ReadFile(pullTokenFn)
					if err != nil {
						return usageErr(err)
					}
					pullToken = strings.TrimSpace(string(b))
				}
				if pullSystem == "" || pullToken == "" {
					return usageErr(errors.New("--pull-url needs --pull-system and --pull-token or --pull-token-file"))
				}
				p := sim.NewPuller(pullURL, pullSystem, pullToken)
				p.NegativeRate = pullNegative
				go func() {
					for ctx.Err() == nil {
						n, err := p.Cycle(ctx)
						if err != nil && ctx.Err() == nil {
							fmt.Fprintf(cmd.ErrOrStderr(), "pull: %v\n", err)
						}
						if n == 0 || err != nil {
							select {
							case <-ctx.Done():
							case <-time.After(pullInterval):
							}
						}
					}
				}()
			}
			<-ctx.Done()
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = srv.Shutdown(sctx)
			st := sim.Stats()
			if jsonOut {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(st)
			}
			fmt.Fprintln(cmd.OutOrStdout(), st.Summary())
			if st.DupCount > 0 || st.MissingCount > 0 {
				return &exitError{code: 1, err: fmt.Errorf("%d duplicates, %d missing", st.DupCount, st.MissingCount)}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&addr, "addr", "127.0.0.1:9090", "listen address of the push endpoint and /stats")
	f.DurationVar(&cfg.Latency, "latency", 0, "latency added to every push answer")
	f.DurationVar(&cfg.Jitter, "jitter", 0, "random extra latency, up to this")
	f.Float64Var(&cfg.FailureRate, "failure-rate", 0, "share of pushes answered 503 (0..1)")
	f.Float64Var(&cfg.NegativeRate, "negative-rate", 0, "share of pushes answered with a negative business receipt (0..1)")
	f.Uint64Var(&cfg.Seed, "seed", 1, "random seed")
	f.StringVar(&expectFile, "expect-file", "", "file of messageUUIDs (one a line) that should arrive; missing ones are reported")
	f.StringVar(&pullURL, "pull-url", "", "base URL of memoflow's pull API (e.g. http://127.0.0.1:8080); empty: no pulling")
	f.StringVar(&pullSystem, "pull-system", "", "recipient system id the pull client acts as")
	f.StringVar(&pullToken, "pull-token", "", "API token of --pull-system")
	f.StringVar(&pullTokenFn, "pull-token-file", "", "file holding the API token of --pull-system")
	f.DurationVar(&pullInterval, "pull-interval", time.Second, "pause between pull cycles when the outbox is empty")
	f.Float64Var(&pullNegative, "pull-negative-rate", 0, "share of pulled messages answered with a negative business receipt")
	f.DurationVar(&duration, "duration", 0, "stop after this long (0: at SIGINT/SIGTERM)")
	f.BoolVar(&jsonOut, "json", false, "print the final stats as JSON")
	f.StringVar(&protocol, "protocol", "rest", "rest (push endpoint and pull client), sftp or smtp (in-process servers; --addr defaults to 127.0.0.1:2222 / :2525)")
	f.StringVar(&keysDir, "keys-dir", "./var/sim-keys", "sftp/smtp: test keys and certificates, made once and kept here (memoflow's SSH key and function certificate among them)")
	f.StringVar(&sftpRoot, "sftp-root", "./var/sim-sftp", "sftp: the directory the server serves (inbox/ and receipts/ inside)")
	return cmd
}

func expectFrom(sim *recipientsim.Sim, path string) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		if u := strings.TrimSpace(sc.Text()); u != "" {
			sim.Expect(u)
			n++
		}
	}
	return n, sc.Err()
}
