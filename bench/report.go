package bench

import (
	"bytes"
	"compress/gzip"
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"math"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/go-echarts/go-echarts/v2/charts"
	"github.com/go-echarts/go-echarts/v2/opts"
	"github.com/go-echarts/go-echarts/v2/render"
	"github.com/segmentio/encoding/json"
)

// Report is a run's result: the summary, the JSON file and the HTML page
// are all made from it.
type Report struct {
	Scenario string `json:"scenario"`
	OK       bool   `json:"ok"`
	// Failures say why a run is not OK (lost messages, wrong event counts).
	Failures []string `json:"failures,omitempty"`
	Messages int      `json:"messages"`
	// Seconds is from the first message sent until every accepted message
	// arrived and the event log was complete.
	Seconds        float64 `json:"seconds"`
	MsgsPerSec     float64 `json:"msgs_per_s"`
	NullMsgsPerSec float64 `json:"null_msgs_per_s"`
	Ratio          float64 `json:"ratio"`
	// CPURatio is the null pipeline's CPU per message over the run's (in
	// process, where both are this process's): the ratio with the noise
	// of a shared machine's CPU taken out, since a starved run is slow in
	// wall time but not in CPU per message.
	CPURatio        float64 `json:"cpu_ratio,omitempty"`
	CPUPerMsgMs     float64 `json:"cpu_ms_per_msg"`
	NullCPUPerMsgMs float64 `json:"null_cpu_ms_per_msg,omitempty"`
	P50ms           float64 `json:"p50_ms"`
	P95ms           float64 `json:"p95_ms"`
	P99ms           float64 `json:"p99_ms"`
	MaxMs           float64 `json:"max_ms"`
	Lost            int64   `json:"lost"`
	Duplicates      int64   `json:"duplicates"`
	// Unexpected are arrivals of messages that should not have arrived
	// (never sent, or invalid).
	Unexpected         int64   `json:"unexpected_arrivals"`
	EventsExpected     int64   `json:"events_expected"`
	EventsInClickHouse int64   `json:"events_in_clickhouse"`
	MaxRSSMB           float64 `json:"max_rss_mb"`

	Accepted              int64   `json:"accepted"`
	RejectedAtIngest      int64   `json:"rejected_at_ingest"`
	LoadSeconds           float64 `json:"load_seconds"`
	IngestMsgsPerSec      float64 `json:"ingest_msgs_per_s"`
	ArrivalSeconds        float64 `json:"arrival_seconds"`
	EventsCompleteSeconds float64 `json:"events_complete_seconds"`
	EventRowsPerSec       float64 `json:"event_rows_per_s"`
	PeakEventRowsPerSec   float64 `json:"peak_event_rows_per_s"`
	CPUSeconds            float64 `json:"cpu_seconds"`
	// CPUScope says whose CPU and RSS these are.
	CPUScope      string            `json:"cpu_scope"`
	EventsByTag   map[string]uint64 `json:"events_by_tag"`
	EventsWantTag map[string]int64  `json:"events_expected_by_tag"`
	ErrorsByCode  map[string]int64  `json:"errors_by_code"`
	Stages        []StageStat       `json:"stages"`
	Latency       Latency           `json:"latency"`
	Histogram     []Bucket          `json:"latency_histogram"`
	Null          *NullResult       `json:"null,omitempty"`
	Mix           MixInfo           `json:"mix"`
	Setup         Setup             `json:"setup"`
	ArrivalPoint  string            `json:"arrival_point"`
	RSS           *RSSTrend         `json:"rss_trend,omitempty"`
	Notes         []string          `json:"notes,omitempty"`
	SourceErrors  map[string]string `json:"sampling_errors,omitempty"`
	LostSample    []string          `json:"lost_sample,omitempty"`
	// Details are a scenario's own measures (release rate, the healthy
	// systems' ratio, ...), in the order it added them.
	Details []Detail `json:"details,omitempty"`
	Samples []Sample `json:"samples"`
}

// Detail is one of a scenario's own measures.
type Detail struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
	Unit  string  `json:"unit,omitempty"`
	Note  string  `json:"note,omitempty"`
}

// AddDetail adds a scenario measure to the report.
func (r *Report) AddDetail(name string, value float64, unit, note string) {
	r.Details = append(r.Details, Detail{Name: name, Value: value, Unit: unit, Note: note})
}

// Detail returns the named measure (0, false when absent).
func (r *Report) Detail(name string) (float64, bool) {
	for _, d := range r.Details {
		if d.Name == name {
			return d.Value, true
		}
	}
	return 0, false
}

// StageStat is one consumer group's throughput and lag over the run, from
// its committed offsets (exactly-once stages also count transaction
// markers, about one per partition per transaction).
type StageStat struct {
	Group      string  `json:"group"`
	Records    int64   `json:"records"`
	MeanPerSec float64 `json:"mean_per_s"`
	PeakPerSec float64 `json:"peak_per_s"`
	MaxLag     int64   `json:"max_lag"`
}

// MixInfo describes what was sent.
type MixInfo struct {
	Kinds     map[string]int `json:"kinds"`
	MedianB   int            `json:"median_bytes"`
	P99B      int            `json:"p99_bytes"`
	MaxB      int            `json:"max_bytes"`
	TotalMB   float64        `json:"total_mb"`
	Mix       Mix            `json:"shares"`
	Seed      uint64         `json:"seed"`
	Prepared  string         `json:"prepared,omitempty"`
	PrepSecs  float64        `json:"prepare_seconds"`
	LZMAMB    float64        `json:"lzma_mb,omitempty"`
	CacheUsed bool           `json:"prepared_from_cache"`
}

// Setup is the run's configuration.
type Setup struct {
	Target      string   `json:"target"`
	Stages      []string `json:"stages"`
	Sender      string   `json:"sender"`
	BatchSize   int      `json:"batch_size"`
	Concurrency int      `json:"concurrency"`
	Partitions  int      `json:"partitions"`
	Machine     string   `json:"machine"`
	Started     string   `json:"started"`
}

func newReport(name string, t Target, o Options) *Report {
	r := &Report{Scenario: name, Messages: o.Messages}
	r.Setup = Setup{Stages: t.Stages, BatchSize: o.BatchSize, Concurrency: o.Concurrency,
		Partitions: t.Kafka.TopicPartitions, Machine: machine(), Started: time.Now().UTC().Format(time.RFC3339)}
	switch {
	case t.InProcess:
		r.Setup.Target = "in process (memoflow run's stages), Kafka " + t.Kafka.Brokers + ", ClickHouse " + t.ClickHouse.Addr + "/" + t.ClickHouse.Database
	default:
		r.Setup.Target = "running setup: API " + t.URL + ", Kafka " + t.Kafka.Brokers + ", ClickHouse " + t.ClickHouse.Addr + "/" + t.ClickHouse.Database
	}
	switch {
	case o.Direct:
		r.Setup.Sender = "direct produce into memo.ingest"
	case o.Live:
		r.Setup.Sender = "ingest API, tar+LZMA compressed while sending (internal/sendclient)"
	default:
		r.Setup.Sender = "ingest API, tar+LZMA batches prepared beforehand"
	}
	r.Mix.Mix, r.Mix.Seed = o.Mix, o.Seed
	return r
}

func (r *Report) setMix(m *Manifest) {
	r.Messages = len(m.UUIDs)
	r.Mix.Kinds = m.KindCounts()
	r.Mix.MedianB, r.Mix.P99B, r.Mix.MaxB = m.SizeQuantile(0.5), m.SizeQuantile(0.99), m.SizeQuantile(1)
	var tot int64
	for _, s := range m.Sizes {
		tot += int64(s)
	}
	r.Mix.TotalMB = float64(tot) / 1e6
}

// SetPrepared records how the load was prepared (scenarios call it).
func (r *Report) SetPrepared(p *Prepared) {
	r.Mix.Prepared, r.Mix.PrepSecs, r.Mix.LZMAMB, r.Mix.CacheUsed = p.Dir, p.Seconds, float64(p.LZMA)/1e6, p.Cached
}

type finishInput struct {
	start                  time.Time
	accepted, expArrivals  int64
	arrivedAt, eventsAt    time.Duration
	lost, dups, unexpected int64
	lostSample             []string
	eventsGot              map[string]uint64
	eventsWant             map[string]int64
	lat                    []float64
	samples                []Sample
	srcErrs                map[string]string
	ingestCodes            map[string]int64
	stageCodes             map[string]int64
	cpu                    float64
	inProcess              bool
	unmodelled             string
	maxRSS                 float64 // in process: peak RSS of the run
	atLeast                map[string]bool
}

func (r *Report) finish(in finishInput) {
	r.Accepted = in.accepted
	r.Lost, r.Duplicates, r.Unexpected, r.LostSample = in.lost, in.dups, in.unexpected, in.lostSample
	r.EventsByTag, r.EventsWantTag = in.eventsGot, in.eventsWant
	r.EventsExpected = sumValues(in.eventsWant)
	r.EventsInClickHouse = sumValues(in.eventsGot)
	r.Samples, r.SourceErrors = in.samples, in.srcErrs
	r.ErrorsByCode = map[string]int64{}
	for c, n := range in.ingestCodes {
		r.ErrorsByCode["ingest:"+c] += n
		r.RejectedAtIngest += n
	}
	for c, n := range in.stageCodes {
		r.ErrorsByCode["receipt:"+c] += n
	}
	if r.LoadSeconds > 0 {
		r.IngestMsgsPerSec = float64(r.Accepted+r.RejectedAtIngest) / r.LoadSeconds
	}
	r.ArrivalSeconds = in.arrivedAt.Seconds()
	r.EventsCompleteSeconds = in.eventsAt.Seconds()
	if in.arrivedAt > 0 && in.eventsAt > 0 {
		r.Seconds = max(r.ArrivalSeconds, r.EventsCompleteSeconds)
		r.MsgsPerSec = float64(r.Accepted) / r.Seconds
	}
	if r.EventsCompleteSeconds > 0 {
		r.EventRowsPerSec = float64(r.EventsInClickHouse) / r.EventsCompleteSeconds
	}
	if r.NullMsgsPerSec > 0 {
		r.Ratio = r.MsgsPerSec / r.NullMsgsPerSec
	}
	r.Latency = Summarize(in.lat)
	r.P50ms, r.P95ms, r.P99ms, r.MaxMs = r.Latency.P50, r.Latency.P95, r.Latency.P99, r.Latency.Max
	r.Histogram = LogHistogram(in.lat, 10)
	r.CPUSeconds = in.cpu
	if r.Accepted > 0 {
		r.CPUPerMsgMs = 1000 * in.cpu / float64(r.Accepted)
	}
	if in.inProcess && r.Null != nil && r.Null.Records > 0 && r.Null.CPUSeconds > 0 && r.CPUPerMsgMs > 0 {
		r.NullCPUPerMsgMs = 1000 * r.Null.CPUSeconds / float64(r.Null.Records)
		r.CPURatio = r.NullCPUPerMsgMs / r.CPUPerMsgMs
	}
	if in.inProcess {
		r.CPUScope = "this process: stages, embedded broker (unless --kafka-brokers) and the bench's senders"
		r.MaxRSSMB = in.maxRSS
	} else {
		r.CPUScope = "the processes of --metrics-url (none: not measured)"
		for _, s := range r.Samples {
			r.MaxRSSMB = max(r.MaxRSSMB, s.RSSMB)
		}
	}
	r.Stages = stageStats(r.Samples)
	for i := 1; i < len(r.Samples); i++ {
		a, b := r.Samples[i-1], r.Samples[i]
		if dt := b.T - a.T; dt > 0 && b.Events >= a.Events {
			r.PeakEventRowsPerSec = max(r.PeakEventRowsPerSec, float64(b.Events-a.Events)/dt)
		}
	}

	if r.Lost > 0 {
		r.Failures = append(r.Failures, fmt.Sprintf("%d accepted messages never arrived (e.g. %s)", r.Lost, strings.Join(r.LostSample, ", ")))
	}
	if r.Unexpected > 0 {
		r.Failures = append(r.Failures, fmt.Sprintf("%d arrivals of messages that should not arrive", r.Unexpected))
	}
	if d := EventDiffAtLeast(r.EventsByTag, r.EventsWantTag, in.atLeast); len(d) > 0 {
		msg := "event log differs: " + strings.Join(d, "; ")
		if in.unmodelled != "" {
			msg += " (stages without a bench.StageEvents entry: " + in.unmodelled + ")"
		}
		r.Failures = append(r.Failures, msg)
	}
	if r.Accepted == 0 {
		r.Failures = append(r.Failures, "ingest accepted nothing")
	}
	if r.Duplicates > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("%d duplicate arrivals (the same messageUUID seen again at the arrival point)", r.Duplicates))
	}
	r.OK = len(r.Failures) == 0
}

// stageStats derives each group's throughput from committed offsets.
func stageStats(ss []Sample) []StageStat {
	byGroup := map[string]*StageStat{}
	var first, last map[string]float64 = map[string]float64{}, map[string]float64{}
	for i, s := range ss {
		for g, c := range s.Committed {
			st := byGroup[g]
			if st == nil {
				st = &StageStat{Group: g}
				byGroup[g] = st
				first[g] = s.T
			}
			st.MaxLag = max(st.MaxLag, s.Lag[g])
			if i > 0 {
				if pc, ok := ss[i-1].Committed[g]; ok && s.T > ss[i-1].T {
					st.PeakPerSec = max(st.PeakPerSec, float64(c-pc)/(s.T-ss[i-1].T))
				}
			}
			last[g] = s.T
		}
	}
	out := make([]StageStat, 0, len(byGroup))
	for g, st := range byGroup {
		var c0, c1 int64
		seen := false
		for _, s := range ss {
			if c, ok := s.Committed[g]; ok {
				if !seen {
					c0, seen = c, true
				}
				c1 = c
			}
		}
		st.Records = c1 - c0
		// Mean over the time the group was moving.
		t0, t1 := -1.0, 0.0
		for i := 1; i < len(ss); i++ {
			if ss[i].Committed[g] != ss[i-1].Committed[g] {
				if t0 < 0 {
					t0 = ss[i-1].T
				}
				t1 = ss[i].T
			}
		}
		if t1 > t0 && t0 >= 0 {
			st.MeanPerSec = float64(st.Records) / (t1 - t0)
		}
		out = append(out, *st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Group < out[j].Group })
	return out
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// Summary writes the one-screen summary.
func (r *Report) Summary(w io.Writer) {
	verdict := "OK"
	if !r.OK {
		verdict = "FAILED"
	}
	fmt.Fprintf(w, "\nmemoflow bench %s: %s\n", r.Scenario, verdict)
	fmt.Fprintf(w, "  %-22s %s\n", "target", r.Setup.Target)
	fmt.Fprintf(w, "  %-22s %s; batches of %d, %d in flight; stages %s\n", "sender", r.Setup.Sender, r.Setup.BatchSize, r.Setup.Concurrency, strings.Join(r.Setup.Stages, ","))
	fmt.Fprintf(w, "  %-22s %d messages, median %s, p99 %s, max %s, %.0f MB; %s\n", "load", r.Messages,
		human(r.Mix.MedianB), human(r.Mix.P99B), human(r.Mix.MaxB), r.Mix.TotalMB, kindsLine(r.Mix.Kinds))
	fmt.Fprintf(w, "  %-22s %s\n", "arrival point", r.ArrivalPoint)
	fmt.Fprintf(w, "  %-22s %s\n", "machine", r.Setup.Machine)
	fmt.Fprintln(w)
	fmt.Fprintf(w, "  %-22s %d accepted in %.1fs: %.0f msgs/s\n", "ingest", r.Accepted, r.LoadSeconds, r.IngestMsgsPerSec)
	fmt.Fprintf(w, "  %-22s %.1fs until all arrived, %.1fs until the event log was complete\n", "end to end", r.ArrivalSeconds, r.EventsCompleteSeconds)
	fmt.Fprintf(w, "  %-22s %.0f msgs/s over %.1fs\n", "rate", r.MsgsPerSec, r.Seconds)
	if r.NullMsgsPerSec > 0 {
		shape := ""
		if r.Null != nil {
			shape = fmt.Sprintf(" (%d hop(s), %d records)", r.Null.Hops, r.Null.Records)
		}
		fmt.Fprintf(w, "  %-22s %.0f msgs/s%s: ratio %.2f (target >= 0.5)\n", "null pipeline", r.NullMsgsPerSec, shape, r.Ratio)
		if r.CPURatio > 0 {
			fmt.Fprintf(w, "  %-22s %.3f ms per message, the run %.3f: CPU ratio %.2f\n", "null pipeline CPU", r.NullCPUPerMsgMs, r.CPUPerMsgMs, r.CPURatio)
		}
	}
	fmt.Fprintf(w, "  %-22s p50 %.0f ms, p95 %.0f ms, p99 %.0f ms, max %.0f ms (%d messages)\n", "latency", r.P50ms, r.P95ms, r.P99ms, r.MaxMs, r.Latency.Count)
	for _, s := range r.Stages {
		fmt.Fprintf(w, "  %-22s %8.0f rec/s mean, %8.0f peak, max lag %d\n", "group "+s.Group, s.MeanPerSec, s.PeakPerSec, s.MaxLag)
	}
	for _, d := range r.Details {
		fmt.Fprintf(w, "  %-22s %s %s  %s\n", d.Name, trimFloat(d.Value), d.Unit, d.Note)
	}
	fmt.Fprintf(w, "  %-22s %d rows (%.0f rows/s to completion, peak %.0f/s)\n", "event log", r.EventsInClickHouse, r.EventRowsPerSec, r.PeakEventRowsPerSec)
	fmt.Fprintf(w, "  %-22s %.1f CPU s (%.2f ms per message), max RSS %.0f MB [%s]\n", "resources", r.CPUSeconds,
		1000*r.CPUSeconds/math.Max(float64(r.Accepted), 1), r.MaxRSSMB, r.CPUScope)
	if t := r.RSS; t != nil {
		fmt.Fprintf(w, "  %-22s median RSS %.0f MB early, %.0f MB late (%+.0f%%): flat=%v\n", "memory trend", t.EarlyMB, t.LateMB, 100*t.Growth, t.Flat)
	}
	if len(r.ErrorsByCode) > 0 {
		fmt.Fprintf(w, "  %-22s %s\n", "errors by code", codesLine(r.ErrorsByCode))
	}
	fmt.Fprintf(w, "  %-22s lost %d, duplicates %d, unexpected %d; events %d of %d expected\n", "correctness",
		r.Lost, r.Duplicates, r.Unexpected, r.EventsInClickHouse, r.EventsExpected)
	for _, f := range r.Failures {
		fmt.Fprintf(w, "  FAILURE: %s\n", f)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "  note: %s\n", n)
	}
	for src, e := range r.SourceErrors {
		fmt.Fprintf(w, "  sampling %s failed (first error): %s\n", src, e)
	}
}

func trimFloat(v float64) string {
	if v == math.Trunc(v) && math.Abs(v) < 1e15 {
		return fmt.Sprintf("%.0f", v)
	}
	if math.Abs(v) >= 100 {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

func human(b int) string {
	switch {
	case b >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
	case b >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(b)/(1<<10))
	}
	return fmt.Sprintf("%d B", b)
}

func kindsLine(k map[string]int) string {
	names := make([]string, 0, len(k))
	for n := range k {
		names = append(names, n)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = fmt.Sprintf("%s %d", n, k[n])
	}
	return strings.Join(parts, ", ")
}

func codesLine(m map[string]int64) string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = fmt.Sprintf("%s=%d", n, m[n])
	}
	return strings.Join(parts, " ")
}

//go:embed report.html
var reportTemplate string

// echarts.min.js (Apache ECharts 5.6.0, Apache-2.0, see assets/ECHARTS-LICENSE),
// gzipped: inlined into every report so it opens offline.
//
//go:embed assets/echarts.min.js.gz
var echartsGz []byte

func echartsJS() (string, error) {
	zr, err := gzip.NewReader(bytes.NewReader(echartsGz))
	if err != nil {
		return "", err
	}
	b, err := io.ReadAll(zr)
	return string(b), err
}

// Chart is one plot of the HTML report.
type Chart struct {
	Title   string
	Element template.HTML
	Script  template.HTML
}

// Charts renders the report's plots with go-echarts.
func (r *Report) Charts() []Chart {
	var out []Chart
	x := make([]string, len(r.Samples))
	for i, s := range r.Samples {
		x[i] = fmt.Sprintf("%.0f", s.T)
	}
	rate := func(f func(Sample) float64) []opts.LineData {
		d := make([]opts.LineData, len(r.Samples))
		for i := range r.Samples {
			if i == 0 {
				d[i] = opts.LineData{Value: 0}
				continue
			}
			dt := r.Samples[i].T - r.Samples[i-1].T
			v := 0.0
			if dt > 0 {
				v = (f(r.Samples[i]) - f(r.Samples[i-1])) / dt
			}
			d[i] = opts.LineData{Value: math.Round(math.Max(v, 0))}
		}
		return d
	}
	series := func(f func(Sample) float64) []opts.LineData {
		d := make([]opts.LineData, len(r.Samples))
		for i, s := range r.Samples {
			d[i] = opts.LineData{Value: math.Round(f(s)*10) / 10}
		}
		return d
	}
	groups := r.groups()

	tp := newLine("throughput", "Throughput (per second)", "records/s", x)
	tp.AddSeries("accepted by ingest", rate(func(s Sample) float64 { return float64(s.Accepted) }))
	tp.AddSeries("arrived", rate(func(s Sample) float64 { return float64(s.Arrived) }))
	for _, g := range groups {
		tp.AddSeries("group "+g+" committed", rate(func(s Sample) float64 { return float64(s.Committed[g]) }))
	}
	tp.AddSeries("event log rows", rate(func(s Sample) float64 { return float64(s.Events) }))
	out = append(out, snippet("Throughput over time", tp))

	lag := newLine("lag", "Consumer lag (records behind the end offsets)", "records", x)
	for _, g := range groups {
		lag.AddSeries(g, series(func(s Sample) float64 { return float64(s.Lag[g]) }))
	}
	out = append(out, snippet("Consumer lag over time", lag))

	hist := charts.NewBar()
	hist.SetGlobalOptions(
		charts.WithInitializationOpts(opts.Initialization{ChartID: "latency_hist", Width: "1000px", Height: "380px"}),
		charts.WithTitleOpts(opts.Title{Title: "End-to-end latency (acceptance to arrival)", Subtitle: fmt.Sprintf("p50 %.0f ms, p95 %.0f ms, p99 %.0f ms, max %.0f ms; log-scale buckets", r.P50ms, r.P95ms, r.P99ms, r.MaxMs)}),
		charts.WithTooltipOpts(opts.Tooltip{Show: opts.Bool(true), Trigger: "axis"}),
		charts.WithXAxisOpts(opts.XAxis{Name: "ms"}),
		charts.WithYAxisOpts(opts.YAxis{Name: "messages"}),
	)
	hx := make([]string, len(r.Histogram))
	hd := make([]opts.BarData, len(r.Histogram))
	for i, b := range r.Histogram {
		hx[i] = fmt.Sprintf("%.3g–%.3g", b.Lo, b.Hi)
		hd[i] = opts.BarData{Value: b.Count}
	}
	hist.SetXAxis(hx).AddSeries("messages", hd)
	out = append(out, snippet("Latency histogram", hist))

	lt := newLine("latency_time", "Latency of each second's arrivals", "ms", x)
	lt.AddSeries("p50", series(func(s Sample) float64 { return s.LatP50 }))
	lt.AddSeries("p99", series(func(s Sample) float64 { return s.LatP99 }))
	out = append(out, snippet("Latency over time", lt))

	res := newLine("resources", "Resources ("+r.CPUScope+")", "", x)
	res.AddSeries("RSS MB", series(func(s Sample) float64 { return s.RSSMB }))
	res.AddSeries("CPU cores busy ×100", rate(func(s Sample) float64 { return 100 * s.CPUSeconds }))
	out = append(out, snippet("RSS and CPU over time", res))
	return out
}

func newLine(id, title, yname string, x []string) *charts.Line {
	l := charts.NewLine()
	l.SetGlobalOptions(
		charts.WithInitializationOpts(opts.Initialization{ChartID: id, Width: "1000px", Height: "380px"}),
		charts.WithTitleOpts(opts.Title{Title: title}),
		charts.WithTooltipOpts(opts.Tooltip{Show: opts.Bool(true), Trigger: "axis"}),
		charts.WithLegendOpts(opts.Legend{Show: opts.Bool(true), Top: "bottom"}),
		charts.WithXAxisOpts(opts.XAxis{Name: "s"}),
		charts.WithYAxisOpts(opts.YAxis{Name: yname}),
		charts.WithDataZoomOpts(opts.DataZoom{Type: "inside"}),
	)
	l.SetXAxis(x)
	return l
}

func snippet(title string, c interface{ RenderSnippet() render.ChartSnippet }) Chart {
	sn := c.RenderSnippet()
	return Chart{Title: title, Element: template.HTML(sn.Element), Script: template.HTML(sn.Script)}
}

func (r *Report) groups() []string {
	seen := map[string]bool{}
	for _, s := range r.Samples {
		for g := range s.Committed {
			seen[g] = true
		}
	}
	out := make([]string, 0, len(seen))
	for g := range seen {
		out = append(out, g)
	}
	sort.Strings(out)
	return out
}

// WriteHTML writes the self-contained report page.
func (r *Report) WriteHTML(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := r.RenderHTML(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// RenderHTML writes the report page to w.
func (r *Report) RenderHTML(w io.Writer) error {
	js, err := echartsJS()
	if err != nil {
		return err
	}
	tpl, err := template.New("report").Funcs(template.FuncMap{
		"f0":    func(v float64) string { return fmt.Sprintf("%.0f", v) },
		"f1":    func(v float64) string { return fmt.Sprintf("%.1f", v) },
		"f2":    func(v float64) string { return fmt.Sprintf("%.2f", v) },
		"human": human, "kinds": kindsLine, "codes": codesLine, "num": trimFloat,
	}).Parse(reportTemplate)
	if err != nil {
		return err
	}
	return tpl.Execute(w, struct {
		R       *Report
		Charts  []Chart
		ECharts template.JS
	}{r, r.Charts(), template.JS(js)})
}

// EChartsJS returns the inlined ECharts library, for other reports (the
// chaos scenario's) that must open offline too.
func EChartsJS() (string, error) { return echartsJS() }
