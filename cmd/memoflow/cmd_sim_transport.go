package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/segmentio/encoding/json"
	"github.com/spf13/cobra"

	"github.com/memoflow/memoflow/internal/recipientsim"
)

// transportStats is the summary of `memoflow sim recipient --protocol
// sftp|smtp`.
type transportStats struct {
	Protocol   string   `json:"protocol"`
	Endpoint   string   `json:"endpoint"`
	Arrivals   int      `json:"arrivals"`
	Duplicates int      `json:"duplicates"`
	Expected   int      `json:"expected,omitempty"`
	Missing    []string `json:"missing,omitempty"`
}

// runTransportRecipient serves one simulated SFTP or SMTP recipient system
// until SIGINT/SIGTERM (or --duration) and reports the arrivals.
func runTransportRecipient(cmd *cobra.Command, protocol, addr, keysDir, sftpRoot, expectFile string, duration time.Duration, jsonOut bool) error {
	keys, err := recipientsim.LoadTransportKeys(keysDir)
	if err != nil {
		return usageErr(fmt.Errorf("--keys-dir %s: %w", keysDir, err))
	}
	var expect []string
	if expectFile != "" {
		b, err := os.ReadFile(expectFile)
		if err != nil {
			return usageErr(err)
		}
		expect = strings.Fields(string(b))
	}
	var (
		count    func(uuid string) int
		total    func() int
		endpoint string
		stop     func() error
	)
	switch protocol {
	case "sftp":
		r, err := recipientsim.StartSFTP(keys, sftpRoot, addr)
		if err != nil {
			return usageErr(fmt.Errorf("sftp on %s: %w", addr, err))
		}
		fmt.Fprint(cmd.OutOrStdout(), r.Describe())
		count, total, endpoint, stop = r.Count, r.Total, r.Endpoint(), r.Close
	case "smtp":
		r, err := recipientsim.StartSMTP(keys, addr)
		if err != nil {
			return usageErr(fmt.Errorf("smtp on %s: %w", addr, err))
		}
		fmt.Fprint(cmd.OutOrStdout(), r.Describe())
		count, total, endpoint, stop = r.Count, r.Total, r.Endpoint(), r.Close
	}
	defer func() { _ = stop() }()
	ctx, cancel := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
	defer cancel()
	if duration > 0 {
		var c context.CancelFunc
		ctx, c = context.WithTimeout(ctx, duration)
		defer c()
	}
	tick := time.NewTicker(10 * time.Second)
	defer tick.Stop()
	last := 0
	for ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-tick.C:
			if n := total(); n != last {
				fmt.Fprintf(cmd.ErrOrStderr(), "%s: %d messages arrived\n", protocol, n)
				last = n
			}
		}
	}
	st := transportStats{Protocol: protocol, Endpoint: endpoint, Arrivals: total(), Expected: len(expect)}
	for _, u := range expect {
		switch n := count(u); {
		case n == 0:
			st.Missing = append(st.Missing, u)
		case n > 1:
			st.Duplicates += n - 1
		}
	}
	sort.Strings(st.Missing)
	if jsonOut {
		return json.NewEncoder(cmd.OutOrStdout()).Encode(st)
	}
	fmt.Fprintf(cmd.OutOrStdout(), "%s recipient: %d messages arrived", protocol, st.Arrivals)
	if st.Expected > 0 {
		fmt.Fprintf(cmd.OutOrStdout(), "; of %d expected, %d missing, %d duplicates", st.Expected, len(st.Missing), st.Duplicates)
	}
	fmt.Fprintln(cmd.OutOrStdout())
	if len(st.Missing) > 0 || st.Duplicates > 0 {
		return &exitError{code: 1, err: fmt.Errorf("%d duplicates, %d missing", st.Duplicates, len(st.Missing))}
	}
	return nil
}
