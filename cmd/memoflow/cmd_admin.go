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
	"path/filepath"
	"strings"
	"time"

	"github.com/segmentio/encoding/json"
	"github.com/spf13/cobra"

	"github.com/memoflow/memoflow/stages/admin"
)

func init() { extraCommands = append(extraCommands, newAdminCmd) }

// adminClient talks to a running memoflow's admin API (stage admin-api).
type adminClient struct {
	base, token, org string
	timeout          time.Duration
}

func (c *adminClient) flags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&c.base, "url", "http://127.0.0.1:8080", "base URL of memoflow's API")
	f.StringVar(&c.token, "token", "", "API token of a contact-structure administrator or operator (default $MEMOFLOW_TOKEN)")
	f.StringVar(&c.org, "organisation", "", "the authority's CVR (default: the token's own organisation)")
	f.DurationVar(&c.timeout, "timeout", 5*time.Minute, "give up after this long")
}

// do sends one request; a refusal becomes an exit-1 error with its code.
func (c *adminClient) do(ctx context.Context, method, path string, q url.Values, ct string, body []byte) ([]byte, *admin.Error, error) {
	u := strings.TrimRight(c.base, "/") + admin.Prefix + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		return nil, nil, usageErr(fmt.Errorf("--url %q: %v", c.base, err))
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, nil, &exitError{code: 1, err: fmt.Errorf("memoflow's API at %s is not reachable: %v (is memoflow running with the admin-api stage? --url)", c.base, err)}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return nil, nil, &exitError{code: 1, err: fmt.Errorf("reading the answer: %v", err)}
	}
	if resp.StatusCode >= 300 {
		var e admin.Error
		if json.Unmarshal(b, &e) == nil && e.Code != "" {
			return nil, &e, nil
		}
		return nil, nil, &exitError{code: 1, err: fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(b)))}
	}
	return b, nil, nil
}

// setup checks the token and finds the organisation: the token's own when
// it administers exactly one.
func (c *adminClient) setup(ctx context.Context) error {
	if c.token == "" {
		c.token = os.Getenv("MEMOFLOW_TOKEN")
	}
	if c.token == "" {
		return usageErr(errors.New("no token: give --token or set MEMOFLOW_TOKEN (memoflow run writes a demo administrator's to var/demo/admin.token)"))
	}
	if c.org != "" {
		return nil
	}
	b, ae, err := c.do(ctx, http.MethodGet, "/organisations", nil, "", nil)
	if err != nil {
		return err
	}
	if ae != nil {
		return &exitError{code: 1, err: fmt.Errorf("listing organisations: %s: %s", ae.Code, ae.Message)}
	}
	var page admin.Page[admin.OrgJSON]
	if err := json.Unmarshal(b, &page); err != nil {
		return &exitError{code: 1, err: fmt.Errorf("the API's answer is not a page of organisations: %v", err)}
	}
	if len(page.Content) != 1 {
		return usageErr(fmt.Errorf("the token sees %d organisations; name one with --organisation CVR", len(page.Content)))
	}
	c.org = page.Content[0].CVR
	return nil
}

func newAdminCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "admin",
		Short: "Registry administration through the admin API: contact-structure import and export",
		Long: `admin talks to a running memoflow's admin API (the admin-api stage) with an
administrator's token. Every change goes through the registry writer, so it is
on memo.registry and in the event log with the token's user as the actor.

  memoflow admin import kontaktstruktur.xlsx --dry-run
  memoflow admin import kontaktstruktur.csv
  memoflow admin export --format csv --out kontaktstruktur.csv
  memoflow admin export --systems --out systemer.xlsx     (recipient/standard systems, forwarding)
  memoflow admin import --systems systemer.xlsx

Exit status: 0 done, 1 refused or failed (every row error printed), 2 usage.`,
	}
	cmd.AddCommand(newAdminImportCmd(), newAdminExportCmd())
	return cmd
}

func newAdminImportCmd() *cobra.Command {
	var (
		c       adminClient
		dryRun  bool
		format  string
		asJSON  bool
		maxShow int
		systems bool
	)
	cmd := &cobra.Command{
		Use:   "import FILE",
		Short: "Import a contact-structure sheet (XLSX or CSV): every row is validated before anything is written",
		Long: `import sends FILE (the NgDP contact-structure workbook with sheets
Kontaktgrupper and Kontaktpunkter, or its CSV form) to the admin API. Every row
is validated first; with any error nothing is imported and every error is
printed with its sheet, row, column and code. Rows merge with the registry by
ID; groups and points the file does not mention are kept. See
docs/admin-api.md for the columns.

With --systems FILE is the systems workbook (sheets Modtagersystemer,
Standardsystemer, Videresendelse, or its CSV form); the API keys issued for
new selections of standard systems are printed once.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			switch format {
			case "", "xlsx", "csv":
			default:
				return usageErr(fmt.Errorf("--format %q: xlsx or csv", format))
			}
			data, err := os.ReadFile(args[0])
			if err != nil {
				return usageErr(err)
			}
			if format == "" && strings.EqualFold(filepath.Ext(args[0]), ".csv") {
				format = "csv"
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), c.timeout)
			defer cancel()
			if err := c.setup(ctx); err != nil {
				return err
			}
			q := url.Values{}
			if dryRun {
				q.Set("dryRun", "true")
			}
			if format != "" {
				q.Set("format", format)
			}
			what := "/contact-structure/import"
			if systems {
				what = "/systems/import"
			}
			b, ae, err := c.do(ctx, http.MethodPost, "/organisations/"+url.PathEscape(c.org)+what, q, "application/octet-stream", data)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if ae != nil {
				if asJSON {
					j, _ := json.MarshalIndent(ae, "", "  ")
					fmt.Fprintf(out, "%s\n", j)
				} else {
					printImportErrors(cmd.ErrOrStderr(), ae, maxShow)
				}
				return &exitError{code: 1, err: fmt.Errorf("import refused: %s: %s", ae.Code, ae.Message)}
			}
			if asJSON {
				var buf bytes.Buffer
				json.Indent(&buf, b, "", "  ")
				buf.WriteByte('\n')
				_, err := out.Write(buf.Bytes())
				return err
			}
			if systems {
				return printSystemsResult(out, args[0], b)
			}
			var res admin.Result
			if err := json.Unmarshal(b, &res); err != nil {
				return &exitError{code: 1, err: fmt.Errorf("the API's answer is not an import result: %v", err)}
			}
			verb := "imported"
			if res.DryRun {
				verb = "valid (dry run, nothing written)"
			}
			fmt.Fprintf(out, "%s %s into organisation %s\n", args[0], verb, res.Organisation)
			fmt.Fprintf(out, "  contact groups: %d rows, %d new, %d changed, %d unchanged\n", res.Groups.Rows, res.Groups.Created, res.Groups.Updated, res.Groups.Unchanged)
			fmt.Fprintf(out, "  contact points: %d rows, %d new, %d changed, %d unchanged\n", res.Points.Rows, res.Points.Created, res.Points.Updated, res.Points.Unchanged)
			if !res.DryRun {
				fmt.Fprintf(out, "  %d registry changes written\n", res.Written)
			}
			return nil
		},
	}
	c.flags(cmd)
	f := cmd.Flags()
	f.BoolVar(&dryRun, "dry-run", false, "only validate: report what would change, write nothing")
	f.StringVar(&format, "format", "", "xlsx or csv (default: from the file's content and name)")
	f.BoolVar(&asJSON, "json", false, "print the API's JSON (the result, or the error with every row error)")
	f.IntVar(&maxShow, "max-errors", 200, "print at most this many row errors (all are counted)")
	f.BoolVar(&systems, "systems", false, "FILE is the systems workbook (recipient and standard systems, forwarding), not the contact structure")
	return cmd
}

// printSystemsResult prints a systems import's counts and the API keys it
// issued (shown here once: the registry keeps only their hashes).
func printSystemsResult(out io.Writer, file string, b []byte) error {
	var res admin.SystemsResult
	if err := json.Unmarshal(b, &res); err != nil {
		return &exitError{code: 1, err: fmt.Errorf("the API's answer is not a systems import result: %v", err)}
	}
	verb := "imported"
	if res.DryRun {
		verb = "valid (dry run, nothing written)"
	}
	fmt.Fprintf(out, "%s %s into organisation %s\n", file, verb, res.Organisation)
	for _, c := range []struct {
		what string
		n    admin.Counts
	}{{"recipient systems", res.RecipientSystems}, {"standard systems", res.StandardSystems}, {"forwarding", res.Forwarding}} {
		fmt.Fprintf(out, "  %s: %d rows, %d new, %d changed, %d unchanged\n", c.what, c.n.Rows, c.n.Created, c.n.Updated, c.n.Unchanged)
	}
	if !res.DryRun {
		fmt.Fprintf(out, "  %d registry changes written\n", res.Written)
	}
	for _, k := range res.APIKeys {
		fmt.Fprintf(out, "  API key of %s (selects %s; shown only now, hand it to the supplier): %s\n", k.System.ID, k.System.StandardSystem, k.APIKey)
	}
	return nil
}

// printImportErrors prints one line per row error, as a user fixes them
// in the sheet: where, code, message. Cells are sanitised (they are the
// file's own text).
func printImportErrors(w io.Writer, e *admin.Error, max int) {
	fmt.Fprintf(w, "%s: %s\n", e.Code, statsCell(e.Message))
	for i, re := range e.Errors {
		if i == max {
			fmt.Fprintf(w, "  ... and %d more\n", len(e.Errors)-max)
			break
		}
		fmt.Fprintf(w, "  %s\n", statsCell(re.String()))
	}
}

func newAdminExportCmd() *cobra.Command {
	var (
		c       adminClient
		format  string
		out     string
		systems bool
	)
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Export the contact structure as XLSX or CSV in the import layout",
		Long: `export writes the organisation's contact groups and points in the layout
import reads, so export -> edit -> import changes exactly what was edited (and
an unedited file imports as a no-op). Text a spreadsheet would run as a
formula (= + - @ first) is escaped with a leading apostrophe, which import
removes again.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if format != "xlsx" && format != "csv" {
				return usageErr(fmt.Errorf("--format %q: xlsx or csv", format))
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), c.timeout)
			defer cancel()
			if err := c.setup(ctx); err != nil {
				return err
			}
			what := "/contact-structure/export"
			if systems {
				what = "/systems/export"
			}
			b, ae, err := c.do(ctx, http.MethodGet, "/organisations/"+url.PathEscape(c.org)+what, url.Values{"format": {format}}, "", nil)
			if err != nil {
				return err
			}
			if ae != nil {
				return &exitError{code: 1, err: fmt.Errorf("export refused: %s: %s", ae.Code, ae.Message)}
			}
			if out == "" || out == "-" {
				_, err := cmd.OutOrStdout().Write(b)
				return err
			}
			// Write beside the target and rename: a failed export never
			// leaves half a workbook under the name.
			tmp, err := os.CreateTemp(filepath.Dir(out), ".memoflow-export-*")
			if err != nil {
				return usageErr(err)
			}
			defer os.Remove(tmp.Name())
			if _, err := tmp.Write(b); err != nil {
				tmp.Close()
				return &exitError{code: 1, err: err}
			}
			if err := tmp.Close(); err != nil {
				return &exitError{code: 1, err: err}
			}
			if err := os.Rename(tmp.Name(), out); err != nil {
				return &exitError{code: 1, err: err}
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "wrote %s (%d bytes) for organisation %s\n", out, len(b), c.org)
			return nil
		},
	}
	c.flags(cmd)
	f := cmd.Flags()
	f.StringVar(&format, "format", "xlsx", "xlsx or csv")
	f.StringVarP(&out, "out", "o", "", "file to write (default: standard output)")
	f.BoolVar(&systems, "systems", false, "export the systems workbook (recipient and standard systems, forwarding) instead of the contact structure")
	return cmd
}
