package main

// Operator commands: the dead-letter topic (dlq list/show/replay), stage
// replays from a point in time, consumer lag, and the topic catalogue.
// docs/operations.md says when to use each.
//
// They take the same configuration as the stages (bindConfig: flags,
// MEMOFLOW_* variables, --config), so inside a stage's pod or container
// `memoflow lag` reaches Kafka with that stage's TLS and SASL settings as is.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/signal"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/memoflow/memoflow/pipeline"
)

func init() {
	extraCommands = append(extraCommands, newDLQCmd, newLagCmd, newReplayCmd, newTopicsCmd)
}

const (
	// dlqReplayTxnID is the transactional id of `memoflow dlq replay`. One
	// id for every replay: a second replay started while one runs fences
	// the first (its open transaction is aborted), so two replays can never
	// both commit copies of the same record.
	dlqReplayTxnID = "memoflow-dlq-replay"

	// headerDLQReplayed marks a DLQ record as replayed. A replay writes one
	// marker per record it copies back, into memo.dlq and in the same
	// transaction as the copy; its value names the replayed record as
	// "PARTITION/OFFSET". Markers, not a consumer group offset, remember
	// what was replayed because replays are filtered: one offset per
	// partition cannot say "records 3 and 9 were replayed but 5 was not".
	headerDLQReplayed = "memoflow.dlq.replayed"

	dlqHeaderPrefix = "memoflow.dlq."
)

// opsConnect loads the configuration and returns a client that reached
// Kafka. Without --kafka-brokers it uses the embedded broker that
// `memoflow run` starts (127.0.0.1:--broker-port), the laptop case.
func opsConnect(ctx context.Context, cmd *cobra.Command, cfg *Config, extra ...kgo.Opt) (*kgo.Client, error) {
	if err := loadConfig(cmd, cfg); err != nil {
		return nil, err
	}
	if cfg.Kafka.Brokers == "" {
		cfg.Kafka.Brokers = fmt.Sprintf("127.0.0.1:%d", cfg.Broker.Port)
	}
	cl, err := newOpsClient(cfg, extra...)
	if err != nil {
		return nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := cl.Ping(pctx); err != nil {
		cl.Close()
		return nil, fmt.Errorf("kafka at %s is not reachable: %v (set --kafka-brokers or MEMOFLOW_KAFKA_BROKERS)", cfg.Kafka.Brokers, err)
	}
	return cl, nil
}

func newOpsClient(cfg *Config, extra ...kgo.Opt) (*kgo.Client, error) {
	opts, err := cfg.Kafka.ClientOpts()
	if err != nil {
		return nil, usageErr(err)
	}
	opts = append(opts, kgo.ClientID(cfg.Kafka.ClientID+"-ops"))
	cl, err := kgo.NewClient(append(opts, extra...)...)
	if err != nil {
		return nil, usageErr(fmt.Errorf("kafka: %w", err))
	}
	return cl, nil
}

// opsContext ends on SIGINT/SIGTERM or after timeout (0: never).
func opsContext(cmd *cobra.Command, timeout time.Duration) (context.Context, context.CancelFunc) {
	ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
	if timeout <= 0 {
		return ctx, stop
	}
	tctx, cancel := context.WithTimeout(ctx, timeout)
	return tctx, func() { cancel(); stop() }
}

// ---- memoflow dlq ----------------------------------------------------------

func newDLQCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dlq",
		Short: "Inspect and replay the dead-letter topic memo.dlq",
		Long: `Records no stage could process land in memo.dlq with headers saying where they
came from (memoflow.dlq.topic/partition/offset), which stage rejected them, the
error code and message, and when. A record is addressed by its position in
memo.dlq, PARTITION:OFFSET, as the DLQ column of "memoflow dlq list" shows.`,
	}
	cmd.AddCommand(newDLQListCmd(), newDLQShowCmd(), newDLQReplayCmd())
	return cmd
}

// dlqFilter selects DLQ records.
type dlqFilter struct {
	stage, code, topic, since string
	stages, codes, topics     []string
	positions                 []dlqPos
	sinceTime                 time.Time
}

// Lists are plain string flags split here: loadConfig sets every given
// flag again from its String(), which a pflag slice would append to.
func (f *dlqFilter) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.stage, "stage", "", "only records rejected by these stages (comma-separated)")
	cmd.Flags().StringVar(&f.code, "code", "", "only records with these error codes (comma-separated)")
	cmd.Flags().StringVar(&f.topic, "source-topic", "", "only records that came from these topics (comma-separated)")
	cmd.Flags().StringVar(&f.since, "since", "", "only records dead-lettered at or after this time: RFC 3339, a date (UTC), or a duration ago (90m, 24h, 7d)")
}

// splitList splits a comma-separated flag value, dropping blanks.
func splitList(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

func (f *dlqFilter) prepare(now time.Time, args []string) error {
	f.stages, f.codes, f.topics = splitList(f.stage), splitList(f.code), splitList(f.topic)
	if f.since != "" {
		t, err := parseTimeArg(f.since, now)
		if err != nil {
			return usageErr(fmt.Errorf("--since: %v", err))
		}
		f.sinceTime = t
	}
	for _, a := range args {
		p, err := parseDLQPos(a)
		if err != nil {
			return usageErr(err)
		}
		f.positions = append(f.positions, p)
	}
	return nil
}

func (f *dlqFilter) match(e *dlqEntry) bool {
	switch {
	case len(f.stages) > 0 && !slices.Contains(f.stages, e.Stage),
		len(f.codes) > 0 && !slices.Contains(f.codes, e.Code),
		len(f.topics) > 0 && !slices.Contains(f.topics, e.SourceTopic),
		!f.sinceTime.IsZero() && e.Time.Before(f.sinceTime),
		len(f.positions) > 0 && !slices.Contains(f.positions, e.pos()):
		return false
	}
	return true
}

// dlqPos is a record's position in memo.dlq.
type dlqPos struct {
	Partition int32
	Offset    int64
}

func (p dlqPos) String() string { return fmt.Sprintf("%d:%d", p.Partition, p.Offset) }

func parseDLQPos(s string) (dlqPos, error) {
	ps, os, ok := strings.Cut(s, ":")
	if !ok {
		ps, os, ok = strings.Cut(s, "/")
	}
	if !ok {
		return dlqPos{}, fmt.Errorf("DLQ position %q: want PARTITION:OFFSET, e.g. 3:1042 (the DLQ column of `memoflow dlq list`)", s)
	}
	p, err1 := strconv.ParseInt(ps, 10, 32)
	o, err2 := strconv.ParseInt(os, 10, 64)
	if err1 != nil || err2 != nil || p < 0 || o < 0 {
		return dlqPos{}, fmt.Errorf("DLQ position %q: want PARTITION:OFFSET with non-negative numbers, e.g. 3:1042", s)
	}
	return dlqPos{int32(p), o}, nil
}

// dlqEntry is one dead-lettered record and what its headers say.
type dlqEntry struct {
	Partition       int32      `json:"dlq_partition"`
	Offset          int64      `json:"dlq_offset"`
	Time            time.Time  `json:"time"`
	Stage           string     `json:"stage"`
	Code            string     `json:"code"`
	Error           string     `json:"error"`
	SourceTopic     string     `json:"source_topic"`
	SourcePartition int32      `json:"source_partition"`
	SourceOffset    int64      `json:"source_offset"`
	Key             string     `json:"key"`
	ReplayedAt      *time.Time `json:"replayed_at,omitempty"`

	rec *kgo.Record
}

func (e *dlqEntry) pos() dlqPos { return dlqPos{e.Partition, e.Offset} }

func (e *dlqEntry) source() string {
	if e.SourceTopic == "" {
		return "?"
	}
	return fmt.Sprintf("%s/%d/%d", e.SourceTopic, e.SourcePartition, e.SourceOffset)
}

func (e *dlqEntry) status() string {
	if e.ReplayedAt != nil {
		return "replayed"
	}
	return "pending"
}

func newDLQEntry(r *kgo.Record) *dlqEntry {
	h := func(k string) string { return string(pipeline.Header(r, k)) }
	e := &dlqEntry{
		Partition: r.Partition, Offset: r.Offset, Time: r.Timestamp.UTC(),
		Stage: h(pipeline.HeaderDLQStage), Code: h(pipeline.HeaderDLQCode), Error: h(pipeline.HeaderDLQError),
		SourceTopic: h(pipeline.HeaderDLQTopic), SourcePartition: -1, SourceOffset: -1,
		Key: printable(r.Key, 64), rec: r,
	}
	if t, err := time.Parse(time.RFC3339Nano, h(pipeline.HeaderDLQTime)); err == nil {
		e.Time = t.UTC()
	}
	if p, err := strconv.ParseInt(h(pipeline.HeaderDLQPartition), 10, 32); err == nil {
		e.SourcePartition = int32(p)
	}
	if o, err := strconv.ParseInt(h(pipeline.HeaderDLQOffset), 10, 64); err == nil {
		e.SourceOffset = o
	}
	return e
}

// dlqScan is memo.dlq read from its start to its last stable offset.
type dlqScan struct {
	entries []*dlqEntry // by DLQ time, then position
	markers int
}

// scanDLQ reads every committed record of memo.dlq up to the last stable
// offset as of the call (read_committed: records of aborted transactions
// are not there). Markers of replays are folded into the entries they mark.
func scanDLQ(ctx context.Context, cfg *Config, adm *kadm.Client) (*dlqScan, error) {
	starts, err := adm.ListStartOffsets(ctx, pipeline.TopicDLQ)
	if err != nil {
		return nil, fmt.Errorf("list %s start offsets: %w", pipeline.TopicDLQ, err)
	}
	// The last stable offset: what a read_committed consumer can reach.
	ends, err := adm.ListCommittedOffsets(ctx, pipeline.TopicDLQ)
	if err != nil {
		return nil, fmt.Errorf("list %s end offsets: %w", pipeline.TopicDLQ, err)
	}
	s := &dlqScan{}
	from := map[int32]kgo.Offset{}
	want := map[int32]int64{}
	var listErr error
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			if listErr == nil && !errors.Is(o.Err, kerr.UnknownTopicOrPartition) {
				listErr = fmt.Errorf("%s partition %d: %w", o.Topic, o.Partition, o.Err)
			}
			return
		}
		start := int64(0)
		if so, ok := starts.Lookup(o.Topic, o.Partition); ok && so.Err == nil {
			start = so.Offset
		}
		if o.Offset > start {
			from[o.Partition] = kgo.NewOffset().At(start)
			want[o.Partition] = o.Offset
		}
	})
	if listErr != nil {
		return nil, listErr
	}
	if len(want) == 0 {
		return s, nil
	}
	rd, err := newOpsClient(cfg,
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{pipeline.TopicDLQ: from}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// Transaction markers are the last offsets of most DLQ
		// partitions (the runtime writes DLQ records in transactions);
		// seeing them is how the scan knows it reached the end.
		kgo.KeepControlRecords(),
	)
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	replayed := map[dlqPos]time.Time{}
	for len(want) > 0 {
		fs := rd.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			var left []string
			for p, end := range want {
				left = append(left, fmt.Sprintf("partition %d (end %d)", p, end))
			}
			sort.Strings(left)
			return nil, fmt.Errorf("reading %s: %v before reaching the end of %s; raise --timeout", pipeline.TopicDLQ, err, strings.Join(left, ", "))
		}
		var ferr error
		fs.EachError(func(t string, p int32, err error) {
			if ferr == nil {
				ferr = fmt.Errorf("reading %s partition %d: %w", t, p, err)
			}
		})
		if ferr != nil {
			return nil, ferr
		}
		fs.EachRecord(func(r *kgo.Record) {
			end, ok := want[r.Partition]
			if !ok || r.Offset >= end {
				return
			}
			if r.Offset == end-1 {
				delete(want, r.Partition)
			}
			if r.Attrs.IsControl() {
				return
			}
			if m := pipeline.Header(r, headerDLQReplayed); m != nil {
				s.markers++
				if p, err := parseDLQPos(string(m)); err == nil {
					replayed[p] = r.Timestamp.UTC()
				}
				return
			}
			s.entries = append(s.entries, newDLQEntry(r))
		})
	}
	for _, e := range s.entries {
		if t, ok := replayed[e.pos()]; ok {
			e.ReplayedAt = &t
		}
	}
	sort.SliceStable(s.entries, func(i, j int) bool {
		a, b := s.entries[i], s.entries[j]
		if !a.Time.Equal(b.Time) {
			return a.Time.Before(b.Time)
		}
		if a.Partition != b.Partition {
			return a.Partition < b.Partition
		}
		return a.Offset < b.Offset
	})
	return s, nil
}

func newDLQListCmd() *cobra.Command {
	var (
		f       dlqFilter
		pending bool
		asJSON  bool
		limit   int
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List dead-lettered records: time, position, stage, code, source, key, status",
		Example: `  memoflow dlq list
  memoflow dlq list --stage validate --code MEMO_SCHEMA_INVALID --since 24h
  memoflow dlq list --pending --json`,
		Args: cobra.NoArgs,
	}
	cfg := bindConfig(cmd)
	f.register(cmd)
	cmd.Flags().BoolVar(&pending, "pending", false, "only records not replayed yet")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON (one object with the records and the counts)")
	cmd.Flags().IntVar(&limit, "limit", 500, "print at most this many records, the oldest first (0: all); the counts cover every match")
	cmd.Flags().DurationVar(&timeout, "timeout", 2*time.Minute, "give up reading memo.dlq after this long")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := f.prepare(time.Now(), nil); err != nil {
			return err
		}
		ctx, cancel := opsContext(cmd, timeout)
		defer cancel()
		cl, err := opsConnect(ctx, cmd, cfg)
		if err != nil {
			return err
		}
		defer cl.Close()
		s, err := scanDLQ(ctx, cfg, kadm.NewClient(cl))
		if err != nil {
			return err
		}
		var match []*dlqEntry
		for _, e := range s.entries {
			if f.match(e) && (!pending || e.ReplayedAt == nil) {
				match = append(match, e)
			}
		}
		return printDLQList(cmd.OutOrStdout(), match, limit, asJSON)
	}
	return cmd
}

type dlqCount struct {
	Stage    string `json:"stage"`
	Code     string `json:"code"`
	Pending  int    `json:"pending"`
	Replayed int    `json:"replayed"`
}

func countDLQ(es []*dlqEntry) []dlqCount {
	idx := map[[2]string]*dlqCount{}
	var out []*dlqCount
	for _, e := range es {
		k := [2]string{e.Stage, e.Code}
		c := idx[k]
		if c == nil {
			c = &dlqCount{Stage: e.Stage, Code: e.Code}
			idx[k] = c
			out = append(out, c)
		}
		if e.ReplayedAt != nil {
			c.Replayed++
		} else {
			c.Pending++
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Stage != out[j].Stage {
			return out[i].Stage < out[j].Stage
		}
		return out[i].Code < out[j].Code
	})
	res := make([]dlqCount, len(out))
	for i, c := range out {
		res[i] = *c
	}
	return res
}

func printDLQList(w io.Writer, es []*dlqEntry, limit int, asJSON bool) error {
	shown := es
	if limit > 0 && len(shown) > limit {
		shown = shown[:limit]
	}
	counts := countDLQ(es)
	if asJSON {
		if shown == nil {
			shown = []*dlqEntry{}
		}
		if counts == nil {
			counts = []dlqCount{}
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(struct {
			Total   int         `json:"total"`
			Records []*dlqEntry `json:"records"`
			Counts  []dlqCount  `json:"counts"`
		}{len(es), shown, counts})
	}
	if len(es) == 0 {
		fmt.Fprintln(w, "no dead-lettered records match")
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tDLQ\tSTAGE\tCODE\tSOURCE\tKEY\tSTATUS\tERROR")
	for _, e := range shown {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Time.Format(time.RFC3339), e.pos(), dash(e.Stage), dash(e.Code),
			e.source(), dash(truncate(e.Key, 40)), e.status(), truncate(oneLine(e.Error), 60))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(shown) < len(es) {
		fmt.Fprintf(w, "... %d more (--limit 0 shows all)\n", len(es)-len(shown))
	}
	fmt.Fprintf(w, "\n%d records\n", len(es))
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "STAGE\tCODE\tPENDING\tREPLAYED")
	for _, c := range counts {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\n", dash(c.Stage), dash(c.Code), c.Pending, c.Replayed)
	}
	return tw.Flush()
}

func newDLQShowCmd() *cobra.Command {
	var (
		partition int32
		offset    int64
		maxBytes  int
		timeout   time.Duration
	)
	cmd := &cobra.Command{
		Use:   "show [PARTITION:OFFSET | OFFSET]",
		Short: "Show one dead-lettered record: where it came from, the error, its headers and (the start of) its value",
		Example: `  memoflow dlq show 3:1042
  memoflow dlq show --partition 3 --offset 1042 --max-bytes 0
  memoflow dlq show 1042          # offset 1042 of every partition that has it`,
		Args: cobra.MaximumNArgs(1),
	}
	cfg := bindConfig(cmd)
	cmd.Flags().Int32Var(&partition, "partition", -1, "partition of memo.dlq")
	cmd.Flags().Int64Var(&offset, "offset", -1, "offset in that partition")
	cmd.Flags().IntVar(&maxBytes, "max-bytes", 4096, "show at most this many bytes of the value (0: all)")
	cmd.Flags().DurationVar(&timeout, "timeout", 2*time.Minute, "give up reading memo.dlq after this long")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		match := func(e *dlqEntry) bool { return e.Partition == partition && e.Offset == offset }
		switch {
		case len(args) == 1 && (partition >= 0 || offset >= 0):
			return usageErr(errors.New("give the record as PARTITION:OFFSET or with --partition and --offset, not both"))
		case len(args) == 1 && strings.ContainsAny(args[0], ":/"):
			p, err := parseDLQPos(args[0])
			if err != nil {
				return usageErr(err)
			}
			partition, offset = p.Partition, p.Offset
		case len(args) == 1:
			o, err := strconv.ParseInt(args[0], 10, 64)
			if err != nil || o < 0 {
				return usageErr(fmt.Errorf("%q is not an offset; give PARTITION:OFFSET, e.g. 3:1042", args[0]))
			}
			offset = o
			match = func(e *dlqEntry) bool { return e.Offset == o }
		case offset < 0:
			return usageErr(errors.New("which record? give PARTITION:OFFSET (e.g. 3:1042) or --partition P --offset O"))
		case partition < 0:
			match = func(e *dlqEntry) bool { return e.Offset == offset }
		}
		ctx, cancel := opsContext(cmd, timeout)
		defer cancel()
		cl, err := opsConnect(ctx, cmd, cfg)
		if err != nil {
			return err
		}
		defer cl.Close()
		s, err := scanDLQ(ctx, cfg, kadm.NewClient(cl))
		if err != nil {
			return err
		}
		var found []*dlqEntry
		for _, e := range s.entries {
			if match(e) {
				found = append(found, e)
			}
		}
		if len(found) == 0 {
			where := fmt.Sprintf("at %d:%d", partition, offset)
			if partition < 0 {
				where = fmt.Sprintf("at offset %d of any partition", offset)
			}
			return &exitError{code: 1, err: fmt.Errorf("no dead-lettered record %s in %s (`memoflow dlq list` shows the positions)", where, pipeline.TopicDLQ)}
		}
		sort.Slice(found, func(i, j int) bool { return found[i].Partition < found[j].Partition })
		w := cmd.OutOrStdout()
		for i, e := range found {
			if i > 0 {
				fmt.Fprintln(w)
			}
			printDLQRecord(w, e, maxBytes)
		}
		return nil
	}
	return cmd
}

func printDLQRecord(w io.Writer, e *dlqEntry, maxBytes int) {
	r := e.rec
	fmt.Fprintf(w, "record    %s %s\n", pipeline.TopicDLQ, e.pos())
	fmt.Fprintf(w, "time      %s\n", e.Time.Format(time.RFC3339Nano))
	fmt.Fprintf(w, "stage     %s\n", dash(e.Stage))
	fmt.Fprintf(w, "code      %s\n", dash(e.Code))
	fmt.Fprintf(w, "error     %s\n", dash(e.Error))
	fmt.Fprintf(w, "source    %s (topic/partition/offset)\n", e.source())
	fmt.Fprintf(w, "key       %s\n", dash(printable(r.Key, 0)))
	if e.ReplayedAt != nil {
		fmt.Fprintf(w, "status    replayed at %s\n", e.ReplayedAt.Format(time.RFC3339))
	} else {
		fmt.Fprintf(w, "status    pending\n")
	}
	fmt.Fprintf(w, "headers   %d\n", len(r.Headers))
	for _, h := range r.Headers {
		fmt.Fprintf(w, "  %s: %s\n", h.Key, printable(h.Value, 200))
	}
	n := len(r.Value)
	shown := r.Value
	if maxBytes > 0 && n > maxBytes {
		shown = shown[:maxBytes]
	}
	if len(shown) < n {
		fmt.Fprintf(w, "value     %d bytes, the first %d:\n", n, len(shown))
	} else {
		fmt.Fprintf(w, "value     %d bytes:\n", n)
	}
	if utf8.Valid(shown) || len(shown) < n && utf8.Valid(shown[:lastRuneStart(shown)]) {
		fmt.Fprintln(w, string(shown))
	} else {
		fmt.Fprintf(w, "(binary, hex) %x\n", shown)
	}
}

// lastRuneStart is where a possibly cut final UTF-8 sequence starts, so a
// value truncated mid-character still prints as text.
func lastRuneStart(b []byte) int {
	for i := len(b) - 1; i >= 0 && i >= len(b)-utf8.UTFMax; i-- {
		if utf8.RuneStart(b[i]) {
			if utf8.FullRune(b[i:]) {
				return len(b)
			}
			return i
		}
	}
	return len(b)
}

func newDLQReplayCmd() *cobra.Command {
	var (
		f       dlqFilter
		dryRun  bool
		batch   int
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "replay [PARTITION:OFFSET...]",
		Short: "Produce dead-lettered records again to the topic they came from, once each",
		Long: `Re-produces each selected pending record, with its original key, value and
headers (the memoflow.dlq.* headers removed), to the topic and partition it came
from (headers memoflow.dlq.topic and memoflow.dlq.partition). Fix the cause
first: a record that fails again is dead-lettered again, as a new DLQ record.

Each copy commits in one Kafka transaction together with a marker record in
memo.dlq (header memoflow.dlq.replayed) naming the record it replays, so a
record is replayed at most once however often replay runs, filtered or not,
and a replay that crashes leaves whole batches replayed or not at all. Two
replays running at once fence each other (transactional id memoflow-dlq-replay).`,
		Example: `  memoflow dlq replay --stage validate --code MEMO_SCHEMA_INVALID --dry-run
  memoflow dlq replay --stage validate --code MEMO_SCHEMA_INVALID
  memoflow dlq replay 3:1042 7:88`,
	}
	cfg := bindConfig(cmd)
	f.register(cmd)
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print what would be replayed and write nothing")
	cmd.Flags().IntVar(&batch, "batch", 500, "records per transaction")
	cmd.Flags().DurationVar(&timeout, "timeout", 10*time.Minute, "give up after this long (a transaction in flight is aborted)")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := f.prepare(time.Now(), args); err != nil {
			return err
		}
		if batch < 1 {
			return usageErr(fmt.Errorf("--batch %d: must be at least 1", batch))
		}
		ctx, cancel := opsContext(cmd, timeout)
		defer cancel()
		cl, err := opsConnect(ctx, cmd, cfg)
		if err != nil {
			return err
		}
		defer cl.Close()
		adm := kadm.NewClient(cl)
		var prod *kgo.Client
		if !dryRun {
			prod, err = newOpsClient(cfg,
				kgo.TransactionalID(dlqReplayTxnID),
				kgo.TransactionTimeout(time.Minute),
				kgo.RecordPartitioner(kgo.ManualPartitioner()),
			)
			if err != nil {
				return err
			}
			defer prod.Close()
			// Take the transactional id before reading: this fences
			// a replay still running and aborts its open
			// transaction, so the scan below sees every marker that
			// will ever be committed for what it replays.
			if _, _, err := prod.ProducerID(ctx); err != nil {
				return fmt.Errorf("dlq replay: initialise transactional id %s: %w", dlqReplayTxnID, err)
			}
		}
		s, err := scanDLQ(ctx, cfg, adm)
		if err != nil {
			return err
		}
		var todo []*dlqEntry
		already, noSource := 0, 0
		for _, e := range s.entries {
			switch {
			case !f.match(e):
			case e.ReplayedAt != nil:
				already++
			case e.SourceTopic == "" || e.SourcePartition < 0:
				noSource++
			default:
				todo = append(todo, e)
			}
		}
		for _, p := range f.positions {
			if !slices.ContainsFunc(s.entries, func(e *dlqEntry) bool { return e.pos() == p }) {
				return &exitError{code: 1, err: fmt.Errorf("no dead-lettered record at %s", p)}
			}
		}
		plans, err := planReplay(ctx, adm, todo)
		if err != nil {
			return err
		}
		w := cmd.OutOrStdout()
		if len(plans) > 0 {
			tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "DLQ\tSTAGE\tCODE\tKEY\tTO")
			for _, p := range plans {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s/%d%s\n", p.e.pos(), dash(p.e.Stage), dash(p.e.Code), dash(truncate(p.e.Key, 40)), p.e.SourceTopic, p.partition, p.note)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
		}
		skipped := ""
		if already > 0 {
			skipped += fmt.Sprintf("; %d matching records were replayed before and are skipped", already)
		}
		if noSource > 0 {
			skipped += fmt.Sprintf("; %d matching records have no %s header and cannot be replayed", noSource, pipeline.HeaderDLQTopic)
		}
		if dryRun {
			fmt.Fprintf(w, "dry run: %d records would be replayed%s; nothing was written\n", len(plans), skipped)
			return nil
		}
		done, err := replay(ctx, prod, plans, batch)
		if err != nil {
			fmt.Fprintf(w, "replayed %d of %d records before the error (each batch is all or nothing; run again to continue)\n", done, len(plans))
			return err
		}
		fmt.Fprintf(w, "replayed %d records in %d transactions%s\n", done, (done+batch-1)/batch, skipped)
		return nil
	}
	return cmd
}

type replayPlan struct {
	e         *dlqEntry
	partition int32
	note      string
}

// planReplay picks the target partition of every record: the one it came
// from, so per-key order and partition-local state (memo.held) stay as they
// were; if the topic has fewer partitions now, the key's default partition.
func planReplay(ctx context.Context, adm *kadm.Client, es []*dlqEntry) ([]replayPlan, error) {
	if len(es) == 0 {
		return nil, nil
	}
	var topics []string
	for _, e := range es {
		if !slices.Contains(topics, e.SourceTopic) {
			topics = append(topics, e.SourceTopic)
		}
	}
	td, err := adm.ListTopics(ctx, topics...)
	if err != nil {
		return nil, fmt.Errorf("describe %s: %w", strings.Join(topics, ", "), err)
	}
	hash := kgo.StickyKeyPartitioner(nil)
	plans := make([]replayPlan, 0, len(es))
	for _, e := range es {
		d, ok := td[e.SourceTopic]
		if !ok || d.Err != nil || len(d.Partitions) == 0 {
			return nil, fmt.Errorf("record %s came from %s, which does not exist now; create it (`memoflow topics apply`) or leave the record out", e.pos(), e.SourceTopic)
		}
		n := len(d.Partitions)
		p := replayPlan{e: e, partition: e.SourcePartition}
		if int(e.SourcePartition) >= n {
			p.partition = int32(hash.ForTopic(e.SourceTopic).Partition(&kgo.Record{Key: e.rec.Key}, n))
			p.note = fmt.Sprintf(" (partition %d no longer exists; by key)", e.SourcePartition)
		}
		plans = append(plans, p)
	}
	return plans, nil
}

// replay copies the records back in transactions of batch records, each
// with the markers of what it copied.
func replay(ctx context.Context, prod *kgo.Client, plans []replayPlan, batch int) (int, error) {
	done := 0
	for len(plans) > 0 {
		n := min(batch, len(plans))
		chunk := plans[:n]
		if err := prod.BeginTransaction(); err != nil {
			return done, fmt.Errorf("dlq replay: begin transaction: %w", err)
		}
		now := time.Now().UTC()
		rs := make([]*kgo.Record, 0, 2*n)
		for _, p := range chunk {
			src := p.e.rec
			hs := make([]kgo.RecordHeader, 0, len(src.Headers))
			for _, h := range src.Headers {
				if !strings.HasPrefix(h.Key, dlqHeaderPrefix) {
					hs = append(hs, h)
				}
			}
			rs = append(rs,
				&kgo.Record{Topic: p.e.SourceTopic, Partition: p.partition, Key: src.Key, Value: src.Value, Headers: hs},
				&kgo.Record{Topic: pipeline.TopicDLQ, Partition: p.e.Partition, Headers: []kgo.RecordHeader{
					{Key: headerDLQReplayed, Value: fmt.Appendf(nil, "%d/%d", p.e.Partition, p.e.Offset)},
					{Key: pipeline.HeaderDLQTime, Value: now.AppendFormat(nil, time.RFC3339Nano)},
				}},
			)
		}
		perr := prod.ProduceSync(ctx, rs...).FirstErr()
		commit := kgo.TryCommit
		if perr != nil {
			commit = kgo.TryAbort
		}
		// End the transaction even when ctx is done: an abandoned
		// transaction would hold read_committed readers of the
		// target topics until it times out.
		ectx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		eerr := prod.EndTransaction(ectx, commit)
		cancel()
		switch {
		case perr != nil:
			return done, fmt.Errorf("dlq replay: produce: %w (the batch was aborted)", perr)
		case eerr != nil:
			return done, fmt.Errorf("dlq replay: commit: %w (another replay may have fenced this one; nothing of this batch was written)", eerr)
		}
		done += n
		plans = plans[n:]
	}
	return done, nil
}

// ---- memoflow replay -------------------------------------------------------

func newReplayCmd() *cobra.Command {
	var (
		stage, from, topicList string
		dryRun                 bool
		timeout                time.Duration
	)
	cmd := &cobra.Command{
		Use:   "replay --stage NAME --from TIME",
		Short: "Rewind a stage's consumer group to TIME on its input topics, so the stage processes those records again",
		Long: `Moves the committed offsets of the group memoflow-NAME back to the first offset
at or after TIME on each partition of the stage's input topics (the stage table,
or --topic). Offsets are only moved back: a partition the group has not reached
yet, or never committed, is left alone, so nothing is skipped.

The stage must be stopped: Kafka refuses offset changes while the group has
members, and this command refuses first, naming them. Scale the stage to zero,
replay, scale it back. Records processed again produce their outputs again;
see docs/operations.md ("Replay") for what that means downstream.`,
		Example: `  memoflow replay --stage route --from 2025-03-12T08:00:00Z --dry-run
  memoflow replay --stage route --from 2h`,
		Args: cobra.NoArgs,
	}
	cfg := bindConfig(cmd)
	cmd.Flags().StringVar(&stage, "stage", "", "stage whose group memoflow-NAME is rewound (required)")
	cmd.Flags().StringVar(&from, "from", "", "RFC 3339 time, a date (UTC), or a duration ago (90m, 24h, 7d) (required)")
	cmd.Flags().StringVar(&topicList, "topic", "", "input topics to rewind, comma-separated (default: the stage's inputs)")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print the plan and change nothing")
	cmd.Flags().DurationVar(&timeout, "timeout", time.Minute, "give up after this long")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if stage == "" || from == "" {
			return usageErr(errors.New("--stage and --from are required, e.g. memoflow replay --stage route --from 2h"))
		}
		at, err := parseTimeArg(from, time.Now())
		if err != nil {
			return usageErr(fmt.Errorf("--from: %v", err))
		}
		topics := splitList(topicList)
		group := "memoflow-" + stage
		ctx, cancel := opsContext(cmd, timeout)
		defer cancel()
		cl, err := opsConnect(ctx, cmd, cfg)
		if err != nil {
			return err
		}
		defer cl.Close()
		adm := kadm.NewClient(cl)

		dg, err := adm.DescribeGroups(ctx, group)
		if err != nil {
			return fmt.Errorf("describe group %s: %w", group, err)
		}
		if d, ok := dg[group]; ok {
			if d.Err != nil && !errors.Is(d.Err, kerr.GroupIDNotFound) {
				return fmt.Errorf("describe group %s: %w", group, d.Err)
			}
			if len(d.Members) > 0 || (d.State != "" && d.State != "Empty" && d.State != "Dead") {
				var who []string
				for _, m := range d.Members {
					who = append(who, fmt.Sprintf("%s (%s)", m.ClientID, strings.TrimPrefix(m.ClientHost, "/")))
				}
				return &exitError{code: 1, err: fmt.Errorf("group %s is %s with %d active members [%s]: stop stage %s first (kubectl scale deployment/memoflow-%s --replicas=0, or docker compose stop %s), then run this again",
					group, d.State, len(d.Members), strings.Join(who, ", "), stage, stage, stage)}
			}
		}

		if len(topics) == 0 {
			if def, ok := lookupStage(stage); ok {
				topics = def.inputs
			}
		}
		committed, err := adm.FetchOffsets(ctx, group)
		if errors.Is(err, kerr.GroupIDNotFound) {
			committed, err = kadm.OffsetResponses{}, nil // never committed
		}
		if err != nil {
			return fmt.Errorf("fetch offsets of %s: %w", group, err)
		}
		if len(topics) == 0 {
			// A stage this binary does not know: rewind what its
			// group has committed.
			for t := range committed {
				topics = append(topics, t)
			}
			sort.Strings(topics)
		}
		if len(topics) == 0 {
			return usageErr(fmt.Errorf("stage %q is not in this binary's stage table (%s) and group %s has no committed offsets; name the input topics with --topic", stage, strings.Join(stageNames(), ", "), group))
		}
		after, err := adm.ListOffsetsAfterMilli(ctx, at.UnixMilli(), topics...)
		if err != nil {
			return fmt.Errorf("list offsets at %s: %w", at.Format(time.RFC3339), err)
		}
		if err := after.Error(); err != nil {
			return fmt.Errorf("list offsets at %s of %s: %w", at.Format(time.RFC3339), strings.Join(topics, ", "), err)
		}
		type row struct {
			topic      string
			partition  int32
			cur, to    int64
			hasCommit  bool
			willChange bool
		}
		var rows []row
		set := kadm.Offsets{}
		after.Each(func(o kadm.ListedOffset) {
			r := row{topic: o.Topic, partition: o.Partition, cur: -1, to: o.Offset}
			if c, ok := committed.Lookup(o.Topic, o.Partition); ok && c.Err == nil && c.At >= 0 {
				r.cur, r.hasCommit = c.At, true
			}
			r.willChange = r.hasCommit && o.Offset >= 0 && o.Offset < r.cur
			if r.willChange {
				set.Add(kadm.Offset{Topic: o.Topic, Partition: o.Partition, At: o.Offset, LeaderEpoch: -1})
			}
			rows = append(rows, r)
		})
		sort.Slice(rows, func(i, j int) bool {
			if rows[i].topic != rows[j].topic {
				return rows[i].topic < rows[j].topic
			}
			return rows[i].partition < rows[j].partition
		})
		w := cmd.OutOrStdout()
		fmt.Fprintf(w, "group %s, from %s\n", group, at.UTC().Format(time.RFC3339))
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "TOPIC\tPARTITION\tCOMMITTED\tNEW\tAGAIN")
		total := int64(0)
		for _, r := range rows {
			switch {
			case !r.hasCommit:
				fmt.Fprintf(tw, "%s\t%d\t-\t-\tno commit: left to the stage's start policy\n", r.topic, r.partition)
			case !r.willChange:
				fmt.Fprintf(tw, "%s\t%d\t%d\t%d\tunchanged (not yet past %s)\n", r.topic, r.partition, r.cur, r.cur, from)
			default:
				total += r.cur - r.to
				fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\n", r.topic, r.partition, r.cur, r.to, r.cur-r.to)
			}
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		if dryRun {
			fmt.Fprintf(w, "dry run: %d partitions would be rewound, %d records processed again; nothing changed\n", len(set.Sorted()), total)
			return nil
		}
		if len(set) == 0 {
			fmt.Fprintln(w, "nothing to rewind")
			return nil
		}
		resp, err := adm.CommitOffsets(ctx, group, set)
		if err == nil {
			err = resp.Error()
		}
		if err != nil {
			if errors.Is(err, kerr.UnknownMemberID) || errors.Is(err, kerr.IllegalGeneration) || errors.Is(err, kerr.RebalanceInProgress) {
				return fmt.Errorf("commit offsets of %s: %w: a member joined meanwhile; stop stage %s and run this again", group, err, stage)
			}
			return fmt.Errorf("commit offsets of %s: %w", group, err)
		}
		fmt.Fprintf(w, "rewound %d partitions of %s: %d records will be processed again when stage %s starts\n", len(set.Sorted()), group, total, stage)
		return nil
	}
	return cmd
}

// ---- memoflow lag ----------------------------------------------------------

type lagPartition struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Committed int64  `json:"committed"` // -1: nothing committed
	End       int64  `json:"end"`
	Lag       int64  `json:"lag"` // -1: unknown (see error)
	Member    string `json:"member,omitempty"`
	Error     string `json:"error,omitempty"`
}

type lagGroup struct {
	Stage      string         `json:"stage"`
	Group      string         `json:"group"`
	State      string         `json:"state"`
	Members    int            `json:"members"`
	Lag        int64          `json:"lag"`
	Error      string         `json:"error,omitempty"`
	Partitions []lagPartition `json:"partitions"`
}

func newLagCmd() *cobra.Command {
	var (
		stageList string
		asJSON    bool
		timeout   time.Duration
	)
	cmd := &cobra.Command{
		Use:   "lag",
		Short: "Consumer lag of every stage group (memoflow-*), per partition and in total",
		Example: `  memoflow lag
  memoflow lag --stage route,deliver --json`,
		Args: cobra.NoArgs,
	}
	cfg := bindConfig(cmd)
	cmd.Flags().StringVar(&stageList, "stage", "", "only these stages, comma-separated (default: every stage in the stage table and every memoflow-* group)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().DurationVar(&timeout, "timeout", 30*time.Second, "give up after this long")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		ctx, cancel := opsContext(cmd, timeout)
		defer cancel()
		cl, err := opsConnect(ctx, cmd, cfg)
		if err != nil {
			return err
		}
		defer cl.Close()
		adm := kadm.NewClient(cl)
		groups := map[string]bool{}
		if stages := splitList(stageList); len(stages) > 0 {
			for _, s := range stages {
				groups["memoflow-"+s] = true
			}
		} else {
			for _, n := range stageNames() {
				groups["memoflow-"+n] = true
			}
			listed, err := adm.ListGroups(ctx)
			if err != nil {
				return fmt.Errorf("list groups: %w", err)
			}
			for g := range listed {
				if strings.HasPrefix(g, "memoflow-") {
					groups[g] = true
				}
			}
		}
		names := make([]string, 0, len(groups))
		for g := range groups {
			names = append(names, g)
		}
		sort.Strings(names)
		var out []lagGroup
		if len(names) > 0 {
			// Lag reuses the slice it is given: pass a copy.
			lags, err := adm.Lag(ctx, slices.Clone(names)...)
			if err != nil {
				return fmt.Errorf("lag of %s: %w", strings.Join(names, ", "), err)
			}
			out = collectLag(names, lags)
		}
		return printLag(cmd.OutOrStdout(), out, asJSON)
	}
	return cmd
}

func collectLag(names []string, lags kadm.DescribedGroupLags) []lagGroup {
	out := make([]lagGroup, 0, len(names))
	for _, g := range names {
		l, ok := lags[g]
		lg := lagGroup{Stage: strings.TrimPrefix(g, "memoflow-"), Group: g, Partitions: []lagPartition{}}
		if !ok {
			lg.State = "unknown"
			out = append(out, lg)
			continue
		}
		lg.State, lg.Members = l.State, len(l.Members)
		if err := l.Error(); err != nil && !errors.Is(err, kerr.GroupIDNotFound) {
			lg.Error = err.Error()
		}
		for _, ps := range l.Lag {
			for _, pl := range ps {
				p := lagPartition{Topic: pl.Topic, Partition: pl.Partition, Committed: pl.Commit.At, End: pl.End.Offset, Lag: pl.Lag}
				if pl.Member != nil {
					p.Member = pl.Member.ClientID + "@" + strings.TrimPrefix(pl.Member.ClientHost, "/")
				}
				if pl.Err != nil {
					p.Error = pl.Err.Error()
				}
				if p.Lag > 0 {
					lg.Lag += p.Lag
				}
				lg.Partitions = append(lg.Partitions, p)
			}
		}
		sort.Slice(lg.Partitions, func(i, j int) bool {
			a, b := lg.Partitions[i], lg.Partitions[j]
			if a.Topic != b.Topic {
				return a.Topic < b.Topic
			}
			return a.Partition < b.Partition
		})
		out = append(out, lg)
	}
	return out
}

func printLag(w io.Writer, gs []lagGroup, asJSON bool) error {
	if asJSON {
		if gs == nil {
			gs = []lagGroup{}
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(struct {
			Stages []lagGroup `json:"stages"`
		}{gs})
	}
	if len(gs) == 0 {
		fmt.Fprintln(w, "no memoflow consumer groups")
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "STAGE\tTOPIC\tPARTITION\tCOMMITTED\tEND\tLAG\tMEMBER")
	for _, g := range gs {
		for _, p := range g.Partitions {
			committed, lag := strconv.FormatInt(p.Committed, 10), strconv.FormatInt(p.Lag, 10)
			if p.Committed < 0 {
				committed = "-"
			}
			if p.Error != "" {
				lag = "? " + p.Error
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%d\t%s\t%s\n", g.Stage, p.Topic, p.Partition, committed, p.End, lag, dash(p.Member))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "STAGE\tGROUP\tSTATE\tMEMBERS\tLAG")
	for _, g := range gs {
		state := g.State
		if len(g.Partitions) == 0 && g.Error == "" {
			state += " (no offsets)"
		}
		if g.Error != "" {
			state += " (" + g.Error + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\n", g.Stage, g.Group, state, g.Members, g.Lag)
	}
	return tw.Flush()
}

// ---- memoflow topics -------------------------------------------------------

func newTopicsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "topics",
		Short: "The topic catalogue: list it, or create and configure it on a cluster",
	}
	cmd.AddCommand(newTopicsListCmd(), newTopicsApplyCmd())
	return cmd
}

// topicPlan is one catalogue topic as it should be on the cluster.
type topicPlan struct {
	Name        string            `json:"name"`
	Partitions  int               `json:"partitions"`
	Replication int               `json:"replication"`
	Configs     map[string]string `json:"configs"`
	ReadBy      []string          `json:"read_by"`
	Purpose     string            `json:"purpose"`
}

// wantTopics is the catalogue with production settings: every topic
// replicated with min.insync.replicas so an acks=all write survives a
// broker loss; state topics compacted (the registry forever, the dedup
// window for its retention), the rest kept for a retention (the DLQ
// longer, per the catalogue).
func wantTopics(partitions, replication int, retention time.Duration, minISR int) []topicPlan {
	if minISR <= 0 {
		// Two in-sync copies when there are three: one broker may be
		// down (rolling upgrade) and writes still land twice.
		minISR = max(1, min(2, replication-1))
	}
	out := make([]topicPlan, 0, len(pipeline.Catalogue))
	for _, s := range pipeline.Catalogue {
		p := topicPlan{Name: s.Name, Partitions: partitions, Replication: replication, Purpose: s.Purpose, Configs: map[string]string{
			"min.insync.replicas": strconv.Itoa(minISR),
		}}
		switch {
		case s.Compacted && s.Retention > 0:
			// State that may forget keys older than the retention
			// (pipeline.TopicSpec).
			p.Configs["cleanup.policy"] = "compact,delete"
			p.Configs["retention.ms"] = strconv.FormatInt(s.Retention.Milliseconds(), 10)
		case s.Compacted:
			p.Configs["cleanup.policy"] = "compact"
		default:
			ret := s.Retention
			if ret == 0 {
				ret = retention
			}
			p.Configs["cleanup.policy"] = "delete"
			p.Configs["retention.ms"] = strconv.FormatInt(ret.Milliseconds(), 10)
		}
		for _, d := range stageDefs {
			if slices.Contains(d.inputs, s.Name) {
				p.ReadBy = append(p.ReadBy, d.name)
			}
		}
		sort.Strings(p.ReadBy)
		out = append(out, p)
	}
	return out
}

func sortedKeys(m map[string]string) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func newTopicsListCmd() *cobra.Command {
	var (
		asJSON    bool
		retention time.Duration
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "Print the topic catalogue with the settings `topics apply` uses and the stages that read each topic (no Kafka needed; --json adds the stage table)",
		Args:  cobra.NoArgs,
	}
	cfg := bindConfig(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().DurationVar(&retention, "retention", 7*24*time.Hour, "retention of pipeline topics (the DLQ keeps its own 30 days)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := loadConfig(cmd, cfg); err != nil {
			return err
		}
		ts := wantTopics(cfg.Kafka.TopicPartitions, cfg.Kafka.TopicReplication, retention, 0)
		w := cmd.OutOrStdout()
		if asJSON {
			// The stage table too: deploy/ checks its manifests
			// (groups, KEDA topics) against it.
			type stage struct {
				Name   string   `json:"name"`
				Group  string   `json:"group,omitempty"` // empty: an API stage, no consumer group
				Inputs []string `json:"inputs"`
			}
			var st []stage
			for _, n := range stageNames() {
				d, _ := lookupStage(n)
				s := stage{Name: n, Inputs: append([]string{}, d.inputs...)}
				if len(d.inputs) > 0 {
					s.Group = "memoflow-" + n
				}
				st = append(st, s)
			}
			enc := json.NewEncoder(w)
			enc.SetIndent("", "  ")
			return enc.Encode(struct {
				Topics []topicPlan `json:"topics"`
				Stages []stage     `json:"stages"`
			}{ts, st})
		}
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "TOPIC\tPARTITIONS\tREPLICATION\tCONFIG\tREAD BY")
		for _, t := range ts {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\n", t.Name, t.Partitions, t.Replication, configString(t.Configs, nil), dash(strings.Join(t.ReadBy, ",")))
		}
		return tw.Flush()
	}
	return cmd
}

func configString(want map[string]string, have map[string]string) string {
	var parts []string
	for _, k := range sortedKeys(want) {
		s := k + "=" + want[k]
		if have != nil {
			if v, ok := have[k]; ok {
				s += " (was " + v + ")"
			}
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, " ")
}

func newTopicsApplyCmd() *cobra.Command {
	var (
		dryRun    bool
		retention time.Duration
		minISR    int
		timeout   time.Duration
	)
	cmd := &cobra.Command{
		Use:   "apply",
		Short: "Create missing catalogue topics and set their configs (replication, min.insync.replicas, retention, compaction); prints the plan first",
		Long: `Creates every catalogue topic that does not exist with --kafka-topic-partitions
partitions and --kafka-topic-replication replicas, and sets cleanup.policy,
retention.ms and min.insync.replicas on every topic whose values differ.

It never deletes a topic or lowers a partition count, and it does not add
partitions or replicas to existing topics: adding partitions moves keys to other
partitions (breaking per-message order and schedule's per-partition state), and
changing replication is a reassignment (kafka-reassign-partitions, or the Strimzi
KafkaTopic). Such differences are printed as warnings; see docs/operations.md.

Stages create missing topics at start too (pipeline.EnsureTopics), with the
same partitions and replication but only retention and compaction configs; run
this before the first deployment and after upgrades.`,
		Example: `  memoflow topics apply --kafka-brokers kafka-1:9092 --kafka-topic-replication 3 --dry-run
  MEMOFLOW_KAFKA_TOPIC_REPLICATION=3 memoflow topics apply`,
		Args: cobra.NoArgs,
	}
	cfg := bindConfig(cmd)
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print the plan and change nothing")
	cmd.Flags().DurationVar(&retention, "retention", 7*24*time.Hour, "retention of pipeline topics (the DLQ keeps its own 30 days)")
	cmd.Flags().IntVar(&minISR, "min-insync-replicas", 0, "min.insync.replicas of every topic (default: 2 with replication 3 or more, else 1)")
	cmd.Flags().DurationVar(&timeout, "timeout", time.Minute, "give up after this long")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		ctx, cancel := opsContext(cmd, timeout)
		defer cancel()
		cl, err := opsConnect(ctx, cmd, cfg)
		if err != nil {
			return err
		}
		defer cl.Close()
		if minISR > cfg.Kafka.TopicReplication {
			return usageErr(fmt.Errorf("--min-insync-replicas %d is more than --kafka-topic-replication %d: no write could succeed", minISR, cfg.Kafka.TopicReplication))
		}
		adm := kadm.NewClient(cl)
		return applyTopics(ctx, cmd.OutOrStdout(), adm, wantTopics(cfg.Kafka.TopicPartitions, cfg.Kafka.TopicReplication, retention, minISR), dryRun)
	}
	return cmd
}

func applyTopics(ctx context.Context, w io.Writer, adm *kadm.Client, want []topicPlan, dryRun bool) error {
	names := make([]string, len(want))
	for i, t := range want {
		names[i] = t.Name
	}
	existing, err := adm.ListTopics(ctx, names...)
	if err != nil {
		return fmt.Errorf("list topics: %w", err)
	}
	var present []string
	for _, t := range want {
		if d, ok := existing[t.Name]; ok && d.Err == nil {
			present = append(present, t.Name)
		}
	}
	current := map[string]map[string]string{}
	if len(present) > 0 {
		rcs, err := adm.DescribeTopicConfigs(ctx, present...)
		if err != nil {
			return fmt.Errorf("describe topic configs: %w", err)
		}
		for _, rc := range rcs {
			if rc.Err != nil {
				return fmt.Errorf("describe configs of %s: %w", rc.Name, rc.Err)
			}
			m := map[string]string{}
			for _, c := range rc.Configs {
				if c.Value != nil {
					m[c.Key] = *c.Value
				}
			}
			current[rc.Name] = m
		}
	}
	type action struct {
		t      topicPlan
		create bool
		alter  map[string]string // key -> wanted value
		was    map[string]string
		warn   []string
	}
	var acts []action
	for _, t := range want {
		a := action{t: t}
		d, ok := existing[t.Name]
		if !ok || d.Err != nil {
			if ok && d.Err != nil && !errors.Is(d.Err, kerr.UnknownTopicOrPartition) {
				return fmt.Errorf("describe %s: %w", t.Name, d.Err)
			}
			a.create = true
			acts = append(acts, a)
			continue
		}
		if n := len(d.Partitions); n < t.Partitions {
			a.warn = append(a.warn, fmt.Sprintf("has %d partitions, the catalogue wants %d: not added (it remaps keys)", n, t.Partitions))
		}
		if rf := replicationOf(d); rf < t.Replication {
			a.warn = append(a.warn, fmt.Sprintf("has replication %d, wanted %d: reassign partitions to change it", rf, t.Replication))
		}
		a.alter, a.was = map[string]string{}, map[string]string{}
		for k, v := range t.Configs {
			if cur, ok := current[t.Name][k]; !ok || cur != v {
				a.alter[k] = v
				if ok {
					a.was[k] = cur
				}
			}
		}
		acts = append(acts, a)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TOPIC\tACTION\tPARTITIONS\tREPLICATION\tCONFIG")
	var creates, alters int
	for _, a := range acts {
		switch {
		case a.create:
			creates++
			fmt.Fprintf(tw, "%s\tcreate\t%d\t%d\t%s\n", a.t.Name, a.t.Partitions, a.t.Replication, configString(a.t.Configs, nil))
		case len(a.alter) > 0:
			alters++
			d := existing[a.t.Name]
			fmt.Fprintf(tw, "%s\talter\t%d\t%d\t%s\n", a.t.Name, len(d.Partitions), replicationOf(d), configString(a.alter, a.was))
		default:
			d := existing[a.t.Name]
			fmt.Fprintf(tw, "%s\tok\t%d\t%d\t\n", a.t.Name, len(d.Partitions), replicationOf(d))
		}
		for _, wmsg := range a.warn {
			fmt.Fprintf(tw, "%s\tWARNING\t\t\t%s\n", a.t.Name, wmsg)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if dryRun {
		fmt.Fprintf(w, "dry run: %d to create, %d to alter; nothing changed\n", creates, alters)
		return nil
	}
	for _, a := range acts {
		switch {
		case a.create:
			cfgs := map[string]*string{}
			for k, v := range a.t.Configs {
				cfgs[k] = kadm.StringPtr(v)
			}
			resp, err := adm.CreateTopic(ctx, int32(a.t.Partitions), int16(a.t.Replication), cfgs, a.t.Name)
			if err == nil {
				err = resp.Err
			}
			if errors.Is(err, kerr.TopicAlreadyExists) {
				err = nil // a stage created it meanwhile; the next apply aligns its configs
			}
			if err != nil {
				if resp.ErrMessage != "" {
					err = fmt.Errorf("%w: %s", err, resp.ErrMessage)
				}
				return fmt.Errorf("create %s: %w", a.t.Name, err)
			}
		case len(a.alter) > 0:
			var acs []kadm.AlterConfig
			for _, k := range sortedKeys(a.alter) {
				acs = append(acs, kadm.AlterConfig{Op: kadm.SetConfig, Name: k, Value: kadm.StringPtr(a.alter[k])})
			}
			resp, err := adm.AlterTopicConfigs(ctx, acs, a.t.Name)
			if err == nil {
				for _, r := range resp {
					if r.Err != nil {
						err = fmt.Errorf("%w %s", r.Err, r.ErrMessage)
					}
				}
			}
			if err != nil {
				return fmt.Errorf("alter configs of %s: %w", a.t.Name, err)
			}
		}
	}
	fmt.Fprintf(w, "applied: %d created, %d altered\n", creates, alters)
	return nil
}

func replicationOf(d kadm.TopicDetail) int {
	rf := 0
	for _, p := range d.Partitions {
		if rf == 0 || len(p.Replicas) < rf {
			rf = len(p.Replicas)
		}
	}
	return rf
}

// ---- helpers ---------------------------------------------------------------

// parseTimeArg reads an operator's time: RFC 3339, a date or minute (UTC),
// or a duration that long before now ("90m", "24h", "7d", "-2h").
func parseTimeArg(s string, now time.Time) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04", "2006-01-02 15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, time.UTC); err == nil {
			return t, nil
		}
	}
	d := strings.TrimPrefix(s, "-")
	if days, ok := strings.CutSuffix(d, "d"); ok {
		n, err := strconv.Atoi(days)
		if err == nil && n >= 0 {
			return now.Add(-time.Duration(n) * 24 * time.Hour), nil
		}
	}
	if dur, err := time.ParseDuration(d); err == nil && dur >= 0 {
		return now.Add(-dur), nil
	}
	return time.Time{}, fmt.Errorf("%q is not a time: use RFC 3339 (2025-03-12T08:00:00Z), a date (2025-03-12) or a duration ago (90m, 24h, 7d)", s)
}

// printable renders bytes for a terminal: text as is (one line), anything
// else as hex; limit > 0 truncates.
func printable(b []byte, limit int) string {
	if b == nil {
		return ""
	}
	var s string
	if utf8.Valid(b) && !strings.ContainsFunc(string(b), func(r rune) bool { return r < 0x20 && r != '\t' }) {
		s = string(b)
	} else {
		s = "0x" + fmt.Sprintf("%x", b)
	}
	if limit > 0 {
		s = truncate(s, limit)
	}
	return s
}

func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
