package main

import (
	"archive/tar"
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/ulikunitz/xz/lzma"

	"github.com/memoflow/memoflow/schemas/memo"
)

func init() { extraCommands = append(extraCommands, newGenCmd) }

func newGenCmd() *cobra.Command {
	var (
		messages    int
		seed        uint64
		out         string
		nowFlag     string
		attachment  string
		senders     []string
		citizens    []string
		companies   []string
		authorities []string
		cfg         memo.GenConfig
	)
	cmd := &cobra.Command{
		Use:   "gen --messages N --out DIR|FILE.tar|FILE.tar.lzma|-",
		Short: "Generate realistic, valid MeMo messages (deterministic for a seed and --now)",
		Long: `gen writes MeMo 1.1 and 1.2 messages: DIGITALPOST and NEMSMS, to citizens (CPR),
companies (CVR) and authorities (CVR + contact point), with actions, value dates
up to 5 days after --now and attachments drawn from --attachment-size. The same
--seed and --now give the same bytes.

--out DIR writes one file per message (UUID.xml); FILE.tar a tar archive;
FILE.tar.lzma (or .lzma) a tar compressed with LZMA, the NgDP bulk format
(application/x-lzma); - a tar on standard output.

--attachment-size: none | fixed:SIZE | lognormal:MEDIAN[,sigma=S][,max=SIZE]
(units B, KB, KiB, MB, MiB). Shares are probabilities; 0 keeps the default,
a negative value means never.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if messages < 0 {
				return usageErr(errors.New("--messages must not be negative"))
			}
			if out == "" {
				return usageErr(errors.New("--out is required (a directory, FILE.tar, FILE.tar.lzma or - for a tar on stdout)"))
			}
			cfg.Seed = seed
			cfg.Now = time.Now()
			if nowFlag != "" {
				t, err := time.Parse(time.RFC3339, nowFlag)
				if err != nil {
					return usageErr(fmt.Errorf("--now %q: want RFC 3339, e.g. 2025-09-12T10:00:00Z", nowFlag))
				}
				cfg.Now = t
			}
			size, err := memo.ParseSizeDist(attachment)
			if err != nil {
				return usageErr(err)
			}
			cfg.AttachmentSize = size
			cfg.SenderCVRs, cfg.CitizenCPRs, cfg.CompanyCVRs = senders, citizens, companies
			for _, a := range authorities {
				cvr, cps, ok := strings.Cut(a, "=")
				if !ok || cvr == "" || cps == "" {
					return usageErr(fmt.Errorf("--authority %q: want CVR=CONTACTPOINT[,CONTACTPOINT...]", a))
				}
				cfg.Authorities = append(cfg.Authorities, memo.Authority{CVR: cvr, ContactPoints: strings.Split(cps, ",")})
			}
			start := time.Now()
			n, bytes, err := writeGenerated(cmd, out, messages, cfg)
			if err != nil {
				return err
			}
			el := time.Since(start)
			fmt.Fprintf(cmd.ErrOrStderr(), "memoflow gen: %d messages, %d bytes to %s in %v (%.0f messages/s)\n",
				n, bytes, out, el.Round(time.Millisecond), float64(n)/max(el.Seconds(), 1e-9))
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&messages, "messages", 1000, "how many messages to generate")
	f.Uint64Var(&seed, "seed", 1, "random seed: the same seed and --now give the same messages")
	f.StringVar(&out, "out", "", "DIR, FILE.tar, FILE.tar.lzma (or .lzma), or - for a tar on stdout")
	f.StringVar(&nowFlag, "now", "", "the generator's clock, RFC 3339 (default: the current time)")
	f.StringVar(&attachment, "attachment-size", "none", "main-document size: none | fixed:SIZE | lognormal:MEDIAN[,sigma=S][,max=SIZE]")
	f.StringSliceVar(&senders, "sender-cvr", nil, "sending authorities' CVR numbers (default: synthetic)")
	f.StringSliceVar(&citizens, "citizen-cpr", nil, "citizen recipients' CPR numbers (default: synthetic)")
	f.StringSliceVar(&companies, "company-cvr", nil, "company recipients' CVR numbers (default: synthetic)")
	f.StringArrayVar(&authorities, "authority", nil, "authority recipient CVR=CONTACTPOINT[,CONTACTPOINT...] (repeatable; default: synthetic)")
	f.Float64Var(&cfg.V12Share, "v12-share", 0, "share of MeMo 1.2 messages (default 0.5)")
	f.Float64Var(&cfg.NemSMSShare, "nemsms-share", 0, "share of NEMSMS messages to citizens (default 0.1)")
	f.Float64Var(&cfg.ActionShare, "action-share", 0, "share of letters with actions (default 0.3)")
	f.Float64Var(&cfg.ValueDateShare, "value-date-share", 0, "share of messages with a value date (default 0.2)")
	f.Float64Var(&cfg.RichShare, "rich-share", 0, "share with ContentData, AttentionData, ReplyData, ... (default 0.3)")
	f.Float64Var(&cfg.CitizenShare, "citizen-share", 0, "recipient mix: citizens (default 0.75)")
	f.Float64Var(&cfg.CompanyShare, "company-share", 0, "recipient mix: companies (default 0.15)")
	f.Float64Var(&cfg.AuthorityShare, "authority-share", 0, "recipient mix: authorities (default 0.10)")
	f.IntVar(&cfg.ExtraFiles, "extra-files", 0, "at most this many additional documents per letter")
	cmd.AddCommand(newGenRegistryCmd())
	return cmd
}

// writeGenerated writes n messages to out and returns how many and how
// many bytes of MeMo were written.
func writeGenerated(cmd *cobra.Command, out string, n int, cfg memo.GenConfig) (int, int64, error) {
	g := memo.NewGenerator(cfg)
	buf := make([]byte, 0, 64<<10)
	var total int64
	lower := strings.ToLower(out)
	isTar := out == "-" || strings.HasSuffix(lower, ".tar") || strings.HasSuffix(lower, ".lzma")
	if !isTar {
		if err := os.MkdirAll(out, 0o755); err != nil {
			return 0, 0, &exitError{code: 2, err: err}
		}
		for i := 0; i < n; i++ {
			var id memo.UUID
			buf, id = g.Next(buf[:0])
			if err := os.WriteFile(filepath.Join(out, id.String()+".xml"), buf, 0o644); err != nil {
				return i, total, err
			}
			total += int64(len(buf))
		}
		return n, total, nil
	}

	var w io.Writer
	var closers []io.Closer
	if out == "-" {
		w = cmd.OutOrStdout()
	} else {
		f, err := os.Create(out)
		if err != nil {
			return 0, 0, &exitError{code: 2, err: err}
		}
		defer f.Close()
		w = f
		closers = append(closers, f)
	}
	bw := bufio.NewWriterSize(w, 1<<20)
	w = bw
	var lz *lzma.Writer
	if strings.HasSuffix(lower, ".lzma") {
		var err error
		if lz, err = lzma.NewWriter(bw); err != nil {
			return 0, 0, err
		}
		w = lz
	}
	tw := tar.NewWriter(w)
	for i := 0; i < n; i++ {
		var id memo.UUID
		buf, id = g.Next(buf[:0])
		hdr := &tar.Header{Name: id.String() + ".xml", Mode: 0o644, Size: int64(len(buf)), ModTime: cfg.Now.Truncate(time.Second), Typeflag: tar.TypeReg, Format: tar.FormatPAX}
		if err := tw.WriteHeader(hdr); err != nil {
			return i, total, err
		}
		if _, err := tw.Write(buf); err != nil {
			return i, total, err
		}
		total += int64(len(buf))
	}
	if err := tw.Close(); err != nil {
		return n, total, err
	}
	if lz != nil {
		if err := lz.Close(); err != nil {
			return n, total, err
		}
	}
	if err := bw.Flush(); err != nil {
		return n, total, err
	}
	for _, c := range closers {
		if err := c.Close(); err != nil {
			return n, total, err
		}
	}
	return n, total, nil
}
