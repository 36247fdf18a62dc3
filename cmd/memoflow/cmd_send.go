package main

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/segmentio/encoding/json"
	"github.com/spf13/cobra"

	"github.com/memoflow/memoflow/internal/auth"
	"github.com/memoflow/memoflow/internal/sendclient"
	"github.com/memoflow/memoflow/schemas/memo"
)

func init() { extraCommands = append(extraCommands, newSendCmd) }

func newSendCmd() *cobra.Command {
	var (
		o                       sendclient.Options
		generate                int
		seed                    uint64
		attachment, receiptsOut string
		jsonOut, noProgress     bool
	)
	cmd := &cobra.Command{
		Use:   "send [DIR | FILE.tar | FILE.tar.lzma]",
		Short: "Mass send: MeMo files (or --generate N) in tar+LZMA batches to the ingest API, resumable, with progress",
		Long: `send cuts messages into tar+LZMA batches, posts them concurrently to
POST /apis/v1/memos/, retries what the server asks to retry (429, 503) and
journals every accepted messageUUID (--journal), so running the same command
again after a crash sends nothing twice.

Exit status: 0 all accepted, 1 some rejected or the send failed, 2 usage.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.Token == "" {
				o.Token = os.Getenv("MEMOFLOW_TOKEN")
			}
			if o.Token == "" {
				return usageErr(errors.New("no token: give --token or set MEMOFLOW_TOKEN (memoflow run writes a demo one to var/demo/sender.token)"))
			}
			if (len(args) == 1) == (generate > 0) {
				return usageErr(errors.New("give either a source (a directory of MeMo files or a .tar/.tar.lzma) or --generate N"))
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			var src sendclient.Source
			var err error
			if generate > 0 {
				who, err := whoAmI(ctx, o.URL, o.Token)
				if err != nil {
					return err
				}
				size, err := memo.ParseSizeDist(attachment)
				if err != nil {
					return usageErr(fmt.Errorf("--attachment-size: %v", err))
				}
				// Today's midnight as the generator's clock: a rerun the same
				// day regenerates byte-identical messages, which the pipeline
				// recognises as resends of the same messageUUIDs.
				today := time.Now().UTC().Truncate(24 * time.Hour)
				src = sendclient.NewGenSource(generate, memo.GenConfig{Seed: seed, Now: today, SenderCVRs: []string{who.Org}, AttachmentSize: size})
			} else if st, statErr := os.Stat(args[0]); statErr == nil && st.IsDir() {
				src, err = sendclient.NewDirSource(args[0])
			} else {
				src, err = sendclient.NewArchiveSource(args[0])
			}
			if err != nil {
				return usageErr(err)
			}
			var bar *progressbar.ProgressBar
			if !noProgress {
				bar = progressbar.NewOptions(src.Total(),
					progressbar.OptionSetWriter(cmd.ErrOrStderr()),
					progressbar.OptionSetDescription("sending"),
					progressbar.OptionShowCount(),
					progressbar.OptionShowIts(),
					progressbar.OptionSetItsString("msgs"),
					progressbar.OptionSetPredictTime(true),
					progressbar.OptionThrottle(200*time.Millisecond),
					progressbar.OptionClearOnFinish())
				o.OnProgress = func(done int) { _ = bar.Set(done) }
			}
			sum, sendErr := sendclient.Send(ctx, src, o)
			if bar != nil {
				_ = bar.Finish()
			}
			if sum != nil {
				if receiptsOut != "" {
					if err := writeResults(receiptsOut, sum.Results); err != nil {
						return err
					}
				}
				printSummary(cmd.OutOrStdout(), sum, jsonOut)
			}
			if sendErr != nil {
				return sendErr
			}
			if sum.Rejected > 0 {
				return &exitError{code: 1}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.URL, "url", "http://127.0.0.1:8080", "base URL of the ingest API")
	f.StringVar(&o.Token, "token", "", "API token of the sender system (default $MEMOFLOW_TOKEN)")
	f.IntVar(&generate, "generate", 0, "generate N realistic messages from the token's own organisation instead of reading files")
	f.Uint64Var(&seed, "seed", 1, "seed of --generate")
	f.StringVar(&attachment, "attachment-size", "none", "attachment size distribution of --generate (see memoflow gen --help)")
	f.IntVar(&o.BatchSize, "batch-size", 10000, "messages per tar+LZMA batch")
	f.IntVar(&o.Concurrency, "concurrency", 2, "batches in flight")
	f.StringVar(&o.Journal, "journal", "memoflow-send.journal", "journal of accepted messageUUIDs for resuming (empty: none)")
	f.StringVar(&o.SaveDir, "save", "", "keep a copy of every batch sent in this directory")
	f.StringVar(&receiptsOut, "receipts", "", "write the per-message results to FILE (.csv or .json)")
	f.BoolVar(&jsonOut, "json", false, "print the summary as one JSON object")
	f.BoolVar(&noProgress, "no-progress", false, "no progress bar")
	return cmd
}

func whoAmI(ctx context.Context, url, token string) (*auth.Principal, error) {
	req, _ := http.NewRequestWithContext(ctx, "GET", strings.TrimRight(url, "/")+"/apis/v1/whoami", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("ingest API at %s is not reachable: %v (is memoflow running? --url)", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("whoami: %d %s", resp.StatusCode, b)
	}
	var p auth.Principal
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

func printSummary(w io.Writer, s *sendclient.Summary, asJSON bool) {
	if asJSON {
		b, _ := json.Marshal(s)
		fmt.Fprintln(w, string(b))
		return
	}
	fmt.Fprintf(w, "accepted %d, rejected %d, skipped (already sent) %d in %d batches, %.1fs (%.0f msgs/s)\n",
		s.Accepted, s.Rejected, s.Skipped, s.Batches, s.Seconds, s.MsgsPerSec)
	codes := make([]string, 0, len(s.RejectedByCode))
	for c := range s.RejectedByCode {
		codes = append(codes, c)
	}
	sort.Strings(codes)
	for _, c := range codes {
		fmt.Fprintf(w, "  %-32s %d\n", c, s.RejectedByCode[c])
	}
}

func writeResults(path string, rs []sendclient.Result) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if strings.HasSuffix(path, ".json") {
		b, err := json.Marshal(rs)
		if err != nil {
			return err
		}
		_, err = f.Write(b)
		return err
	}
	cw := csv.NewWriter(f)
	_ = cw.Write([]string{"messageUUID", "file", "status", "errorCode", "errorMessage", "transmissionId"})
	for _, r := range rs {
		_ = cw.Write([]string{r.MessageUUID, r.File, r.Status, r.ErrorCode, r.ErrorMessage, r.TransmissionID})
	}
	cw.Flush()
	return cw.Error()
}
