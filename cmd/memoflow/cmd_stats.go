package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/segmentio/encoding/json"
	"github.com/spf13/cobra"

	"github.com/memoflow/memoflow/stages/eventquery"
)

func init() { extraCommands = append(extraCommands, newStatsCmd) }

// statsFilterFlags maps the command's filter flags to the API's parameters.
var statsFilterFlags = []struct{ flag, param, help string }{
	{"sender-organisation", "senderOrganisation", "sender organisation CVR (operators only; others see their own)"},
	{"sender-system", "senderSystem", "sender system id"},
	{"recipient-system", "recipientSystem", "recipient system id"},
	{"contact-point", "contactPoint", "contact point id"},
	{"message-type", "messageType", "DIGITALPOST, NEMSMS or PHYSICAL_LETTER"},
	{"post-type", "postType", "MYNDIGHEDSPOST or VIRKSOMHEDSPOST"},
	{"recipient-type", "recipientType", "CPR, CVR or OTHER"},
	{"tag", "eventTag", "event tag, e.g. MEMO_SEND_RECEIVED"},
	{"status", "status", "receipt status: RECEIVED, COMPLETED, INVALID, NOT_ALLOWED"},
}

func newStatsCmd() *cobra.Command {
	var (
		base, token, dims, from, to string
		asCSV, asJSON               bool
		timeout                     time.Duration
	)
	filters := make([]string, len(statsFilterFlags))
	cmd := &cobra.Command{
		Use:   "stats",
		Short: "Event-log statistics from the API (GET /apis/v1/statistics) as a table, --csv or --json",
		Long: `stats asks a running memoflow's statistics API for event counts and bytes,
grouped by the dimensions given (none: one total) and filtered by the flags.
Filters take a value or a comma-separated list.

Dimensions: day, month, senderOrganisation, senderSystem, recipientSystem,
contactPoint, messageType, postType, recipientType, tag, status.

The token needs the role log-messages, log-searches or operator; the answer
covers the token's own organisation unless it is an operator's. The read is
itself logged (STATISTICS_READ).

  memoflow stats --dimensions month,tag --from 2026-01-01 --to 2026-03-31
  memoflow stats -d day --tag MEMO_SEND_RECEIVED,MEMO_MASS_SEND_RECEIVED --csv > sends.csv

Exit status: 0 answered, 1 refused or failed, 2 usage.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if token == "" {
				token = os.Getenv("MEMOFLOW_TOKEN")
			}
			if token == "" {
				return usageErr(errors.New("no token: give --token or set MEMOFLOW_TOKEN (memoflow run writes a demo log administrator's to var/demo/admin.token)"))
			}
			if asCSV && asJSON {
				return usageErr(errors.New("--csv and --json exclude each other"))
			}
			q := url.Values{}
			set := func(k, v string) {
				if v != "" {
					q.Set(k, v)
				}
			}
			set("dimensions", dims)
			set("dateFrom", from)
			set("dateTo", to)
			for i, f := range statsFilterFlags {
				set(f.param, filters[i])
			}
			format := "json"
			if asCSV {
				format = "csv"
			}
			q.Set("format", format)
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			body, err := getStats(ctx, base, token, q)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			switch {
			case asCSV:
				_, err = out.Write(body)
				return err
			case asJSON:
				var buf bytes.Buffer
				if err := json.Indent(&buf, body, "", "  "); err != nil {
					return fmt.Errorf("the API's answer is not JSON: %v", err)
				}
				buf.WriteByte('\n')
				_, err = out.Write(buf.Bytes())
				return err
			}
			var page eventquery.StatsPage
			if err := json.Unmarshal(body, &page); err != nil {
				return fmt.Errorf("the API's answer is not a statistics page: %v", err)
			}
			printStatsTable(out, &page)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&base, "url", "http://127.0.0.1:8080", "base URL of memoflow's API")
	f.StringVar(&token, "token", "", "API token of a log administrator or operator (default $MEMOFLOW_TOKEN)")
	f.StringVarP(&dims, "dimensions", "d", "", "comma-separated dimensions to group by (none: the total)")
	f.StringVar(&from, "from", "", "first day, YYYY-MM-DD (default: 30 days before --to)")
	f.StringVar(&to, "to", "", "last day, YYYY-MM-DD, included (default: today)")
	for i, fl := range statsFilterFlags {
		f.StringVar(&filters[i], fl.flag, "", fl.help)
	}
	f.BoolVar(&asCSV, "csv", false, "print the CSV the API returns")
	f.BoolVar(&asJSON, "json", false, "print the API's JSON")
	f.DurationVar(&timeout, "timeout", 2*time.Minute, "give up after this long")
	return cmd
}

// getStats fetches the statistics; an API refusal becomes an error with
// its code (exit status 1).
func getStats(ctx context.Context, base, token string, q url.Values) ([]byte, error) {
	u := strings.TrimRight(base, "/") + "/apis/v1/statistics?" + q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, usageErr(fmt.Errorf("--url %q: %v", base, err))
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, &exitError{code: 1, err: fmt.Errorf("memoflow's API at %s is not reachable: %v (is memoflow running? --url)", base, err)}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return nil, &exitError{code: 1, err: fmt.Errorf("reading the answer: %v", err)}
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			ErrorCode    string `json:"errorCode"`
			ErrorMessage string `json:"errorMessage"`
		}
		if json.Unmarshal(body, &e) == nil && e.ErrorCode != "" {
			return nil, &exitError{code: 1, err: fmt.Errorf("statistics refused: %d %s: %s", resp.StatusCode, e.ErrorCode, e.ErrorMessage)}
		}
		return nil, &exitError{code: 1, err: fmt.Errorf("statistics: %s: %s", resp.Status, strings.TrimSpace(string(body)))}
	}
	return body, nil
}

// statsCell replaces control characters: ids come from senders, and an
// escape sequence must not reach the terminal.
func statsCell(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return '?'
		}
		return r
	}, s)
}

// printStatsTable prints the rows aligned: text columns left, numbers
// right, then the totals.
func printStatsTable(w io.Writer, p *eventquery.StatsPage) {
	header := append(append([]string{}, p.Dimensions...), "events", "bytes")
	rows := [][]string{header}
	for _, r := range p.Rows {
		row := make([]string, 0, len(header))
		for _, d := range p.Dimensions {
			v := statsCell(r.Key[d])
			if v == "" {
				v = "-"
			}
			row = append(row, v)
		}
		rows = append(rows, append(row, strconv.FormatUint(r.Events, 10), strconv.FormatUint(r.SizeBytes, 10)))
	}
	total := make([]string, len(header))
	total[0] = "total"
	if len(p.Dimensions) == 0 {
		total = total[:0]
	}
	if len(p.Dimensions) > 0 {
		total[len(header)-2] = strconv.FormatUint(p.Totals.Events, 10)
		total[len(header)-1] = strconv.FormatUint(p.Totals.SizeBytes, 10)
	}
	width := make([]int, len(header))
	for _, r := range append(rows, total) {
		for i, c := range r {
			width[i] = max(width[i], utf8.RuneCountInString(c))
		}
	}
	numeric := len(p.Dimensions) // the first numeric column
	line := func(r []string) {
		var b strings.Builder
		for i, c := range r {
			pad := strings.Repeat(" ", width[i]-utf8.RuneCountInString(c))
			if i > 0 {
				b.WriteString("  ")
			}
			if i >= numeric {
				b.WriteString(pad + c)
			} else {
				b.WriteString(c + pad)
			}
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
	}
	for _, r := range rows {
		line(r)
	}
	if len(p.Dimensions) > 0 {
		line(total)
	}
	fmt.Fprintf(w, "(%s to %s, %d rows)\n", p.DateFrom, p.DateTo, len(p.Rows))
}
