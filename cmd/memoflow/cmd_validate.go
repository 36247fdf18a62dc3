package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/segmentio/encoding/json"
	"github.com/spf13/cobra"

	"github.com/memoflow/memoflow/schemas/memo"
)

func init() { extraCommands = append(extraCommands, newValidateCmd) }

// validateReport is the --json line for one file.
type validateReport struct {
	File        string          `json:"file"`
	Valid       bool            `json:"valid"`
	MemoVersion string          `json:"memoVersion"`
	MessageUUID string          `json:"messageUUID"`
	Errors      []validateError `json:"errors"`
}

type validateError struct {
	Code    string `json:"code"`
	Path    string `json:"path"`
	Message string `json:"message"`
}

func newValidateCmd() *cobra.Command {
	var (
		asJSON     bool
		schemaOnly bool
		nowFlag    string
		maxErrors  int
		maxDays    int
	)
	cmd := &cobra.Command{
		Use:   "validate FILE... (- for standard input)",
		Short: "Validate MeMo messages: well-formedness, the MeMo 1.1/1.2 schema and the NgDP business rules",
		Long: `validate checks each MeMo file the way memoflow's validate stage does: XML
well-formedness (no DTDs), the XSD of the message's memoVersion, and the
business rules (CPR/CVR shapes, NemSMS shape, value date at most 5 days ahead in
Europe/Copenhagen, postType, action codes, ...). Every failure is printed with
its code and element path; codes are listed in docs/memo-errors.md.

Exit status: 0 all files valid, 1 some file invalid, 2 usage error or an
unreadable file.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			now := time.Now
			if nowFlag != "" {
				t, err := time.Parse(time.RFC3339, nowFlag)
				if err != nil {
					return usageErr(fmt.Errorf("--now %q: want RFC 3339, e.g. 2025-09-12T10:00:00Z", nowFlag))
				}
				now = func() time.Time { return t }
			}
			if maxErrors < 1 {
				return usageErr(errors.New("--max-errors must be at least 1"))
			}
			opts := memo.ValidateOptions{Now: now, MaxErrors: maxErrors, MaxValueDateDays: maxDays, SkipBusiness: schemaOnly}
			out := bufio.NewWriter(cmd.OutOrStdout())
			defer out.Flush()
			stdinUsed := false
			invalid := 0
			for _, name := range args {
				data, err := readMeMoInput(cmd, name, &stdinUsed)
				if err != nil {
					out.Flush()
					return &exitError{code: 2, err: err}
				}
				m, errs := memo.Check(data, opts)
				valid := len(errs) == 0
				if !valid {
					invalid++
				}
				if asJSON {
					rep := validateReport{File: name, Valid: valid, Errors: make([]validateError, 0, len(errs))}
					if m != nil {
						rep.MemoVersion, rep.MessageUUID = m.MemoVersion.Value, m.Header.MessageUUID
					}
					for _, e := range errs {
						rep.Errors = append(rep.Errors, validateError{Code: string(e.Code), Path: e.Path, Message: e.Message})
					}
					b, err := json.Marshal(rep)
					if err != nil {
						return err
					}
					out.Write(b)
					out.WriteByte('\n')
					continue
				}
				if valid {
					fmt.Fprintf(out, "%s: valid (MeMo %s, messageUUID %s)\n", name, m.Version, m.Header.MessageUUID)
					continue
				}
				verdict := "invalid"
				if errs.SchemaValid() {
					verdict = "invalid (schema-valid; business rules failed)"
				}
				fmt.Fprintf(out, "%s: %s, %d error(s)\n", name, verdict, len(errs))
				for _, e := range errs {
					fmt.Fprintf(out, "  %s [%s] %s: %s\n", e.Code, memo.LookupCode(e.Code).Level, e.Path, e.Message)
				}
			}
			if invalid > 0 {
				if err := out.Flush(); err != nil {
					return err
				}
				return &exitError{code: 1}
			}
			return out.Flush()
		},
	}
	f := cmd.Flags()
	f.BoolVar(&asJSON, "json", false, `print one JSON object per file: {"file","valid","memoVersion","messageUUID","errors":[{"code","path","message"}]}`)
	f.BoolVar(&schemaOnly, "schema-only", false, "check well-formedness and the XSD only, not the business rules")
	f.StringVar(&nowFlag, "now", "", "clock for the value-date rules, RFC 3339 (default: the current time)")
	f.IntVar(&maxErrors, "max-errors", memo.DefaultMaxErrors, "report at most this many failures per file")
	f.IntVar(&maxDays, "max-value-date-days", memo.DefaultMaxValueDateDays, "how many days ahead doNotDeliverUntilDate may be")
	return cmd
}

// readMeMoInput reads a file, or standard input for "-" (once), refusing
// more than a shipment's 99.5 MB without reading it all.
func readMeMoInput(cmd *cobra.Command, name string, stdinUsed *bool) ([]byte, error) {
	var r io.Reader
	if name == "-" {
		if *stdinUsed {
			return nil, errors.New("standard input (-) given twice")
		}
		*stdinUsed = true
		r = cmd.InOrStdin()
	} else {
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	// One byte over the limit is enough for the parser to report LIMIT_SIZE.
	return io.ReadAll(io.LimitReader(r, memo.DefaultMaxBytes+1))
}
