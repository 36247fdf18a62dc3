package chaos

import (
	"fmt"
	"html/template"
	"math"
	"os"
	"strings"

	"github.com/go-echarts/go-echarts/v2/charts"
	"github.com/go-echarts/go-echarts/v2/opts"
	"github.com/segmentio/encoding/json"

	"github.com/memoflow/memoflow/bench"
)

// WriteJSON writes the report as JSON.
func (r *Report) WriteJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// ReadReport reads a report written by WriteJSON.
func ReadReport(path string) (*Report, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	r := &Report{}
	if err := json.Unmarshal(b, r); err != nil {
		return nil, err
	}
	return r, nil
}

// chart renders the throughput plot with one vertical line per fault, so a
// reader sees each fault and the recovery after it.
func (r *Report) chart() (element, script template.HTML) {
	x := make([]string, len(r.Samples))
	for i, s := range r.Samples {
		x[i] = fmt.Sprintf("%.0f", s.T)
	}
	rate := func(f func(Sample) float64) []opts.LineData {
		d := make([]opts.LineData, len(r.Samples))
		for i := range r.Samples {
			if i == 0 {
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
	var marks []charts.SeriesOpts
	for _, e := range r.Timeline {
		switch e.Kind {
		case KillStage, KillBroker, ClickHouse, RecipientsDown, SlowRecipient, "exit", "recovered":
			t := e.T.Sub(r.Started).Seconds()
			// The x axis is the samples' seconds; find the nearest.
			best := ""
			for i, s := range r.Samples {
				if s.T >= t {
					best = x[i]
					break
				}
			}
			if best != "" {
				marks = append(marks, charts.WithMarkLineNameXAxisItemOpts(opts.MarkLineNameXAxisItem{Name: e.Kind + " " + e.Target, XAxis: best}))
			}
		}
	}
	l := charts.NewLine()
	l.SetGlobalOptions(
		charts.WithInitializationOpts(opts.Initialization{ChartID: "chaos_throughput", Width: "1000px", Height: "420px"}),
		charts.WithTitleOpts(opts.Title{Title: "Throughput, with the faults", Subtitle: "vertical lines: faults (kill-stage, kill-broker, clickhouse, recipients-down, slow-recipient, unexpected exits) and each recovery"}),
		charts.WithTooltipOpts(opts.Tooltip{Show: opts.Bool(true), Trigger: "axis"}),
		charts.WithLegendOpts(opts.Legend{Show: opts.Bool(true), Top: "bottom"}),
		charts.WithXAxisOpts(opts.XAxis{Name: "s"}),
		charts.WithYAxisOpts(opts.YAxis{Name: "messages/s"}),
	)
	l.SetXAxis(x)
	l.AddSeries("accepted by ingest", rate(func(s Sample) float64 { return float64(s.Accepted) }))
	l.AddSeries("delivered (event log)", rate(func(s Sample) float64 { return float64(s.Delivered) }), marks...)
	l.AddSeries("pushes accepted by the simulator (slow system excluded)", rate(func(s Sample) float64 { return float64(s.Pushed) }))
	sn := l.RenderSnippet()
	return template.HTML(sn.Element), template.HTML(sn.Script)
}

var page = template.Must(template.New("chaos").Funcs(template.FuncMap{
	"f1": func(v float64) string { return fmt.Sprintf("%.1f", v) },
}).Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>memoflow bench chaos: {{if .R.OK}}OK{{else}}FAILED{{end}}</title>
<style>
 body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1040px; color: #222; }
 .ok { color: #1a7f37; } .failed { color: #cf222e; }
 table { border-collapse: collapse; margin: 1em 0; }
 td, th { padding: .25em .8em; border-bottom: 1px solid #ddd; text-align: left; vertical-align: top; }
 th { background: #f6f8fa; }
 .fail { background: #ffebe9; padding: .5em 1em; border-left: 4px solid #cf222e; }
</style>
<script type="text/javascript">{{.ECharts}}</script>
</head><body>
<h1>memoflow bench chaos: <span class="{{if .R.OK}}ok{{else}}failed{{end}}">{{if .R.OK}}OK{{else}}FAILED{{end}}</span></h1>
<small>{{.R.Started}}</small>
{{range .R.Problems}}<p class="fail">{{.}}</p>{{end}}
<h2>Summary</h2>
<table>
<tr><th>messages</th><td>{{.R.Messages}} in {{f1 .R.Seconds}} s ({{printf "%.0f" .R.MsgsPerSec}} msgs/s end to end, faults included)</td></tr>
<tr><th>lost</th><td>{{.R.Lost}}</td></tr>
<tr><th>duplicate pushes</th><td>{{.R.Duplicates}} (same idempotency key): {{.R.DupCauses.Explained}} repeat a push made before a fault that interrupts delivery ({{range $k, $v := .R.DupCauses.ByCause}}{{$k}}: {{$v}}; {{end}}), {{.R.DupCauses.Unexplained}} with no such fault between the two{{range .R.DupCauses.Examples}}<br><small>{{.}}</small>{{end}}</td></tr>
<tr><th>faults</th><td>{{.R.Kills}} kills ({{.R.BrokerKills}} of the broker), {{.R.Exits}} unexpected exits restarted, {{.R.SenderRetries}} sender resumes</td></tr>
<tr><th>event log</th><td>{{range $k, $v := .R.Verdict.EventsFound}}{{$k}} {{$v}}<br>{{end}}</td></tr>
<tr><th>simulator</th><td>{{.R.Simulator.Summary}}</td></tr>
<tr><th>print outbox</th><td>{{.R.Outbox}} messages for citizens exempt from digital post wait for the print provider's pickup (MEMO_SEND_READY_FOR_FETCH)</td></tr>
<tr><th>idempotency keys</th><td>{{.R.Keys.Pushes}} pushes, {{.R.Keys.Mismatches}} with a key other than their messageUUID</td></tr>
<tr><th>receipts at the sender</th><td>{{.R.Receipts.Final}} messages with a final business receipt; {{.R.Receipts.Repeats}} repeated POSTs (same receipt id); {{.R.Receipts.MoreThanOne}} messages with two</td></tr>
<tr><th>sender</th><td>{{.R.SenderErrors}} failed requests retried, {{.R.SenderRetries}} resumes from the journal</td></tr>
<tr><th>recovery over the 30 s target</th><td>{{.R.RecoveryMiss}} of {{len .R.Recovery}} faults</td></tr>
</table>
<h2>Recovery after each fault</h2>
<p>Seconds from the end of the fault (restart, ClickHouse started, recipients answering) until the delivered rate is back at 80% of the median rate in the 10 s before it; target 30 s.</p>
<table><tr><th>fault</th><th>target</th><th>at (s)</th><th>ended (s)</th><th>rate before (msgs/s)</th><th>recovery (s)</th><th></th></tr>
{{range .R.Recovery}}<tr><td>{{.Kind}}</td><td>{{.Target}}</td><td>{{f1 .At}}</td><td>{{f1 .Ended}}</td><td>{{printf "%.0f" .Rate}}</td><td>{{f1 .Second}}</td><td>{{if .Within}}ok{{else}}<b>over target</b>{{end}} {{.Note}}</td></tr>{{end}}
</table>
{{if .R.Slow}}<h2>Slow recipient</h2>
<table><tr><th>system</th><th>at (s)</th><th>slow for (s)</th><th>others before (pushes/s)</th><th>others while slow</th><th>ratio</th></tr>
{{range .R.Slow}}<tr><td>{{.System}}</td><td>{{f1 .At}}</td><td>{{f1 .For}}</td><td>{{printf "%.0f" .Before}}</td><td>{{printf "%.0f" .During}}</td><td>{{printf "%.2f" .Ratio}}</td></tr>{{end}}
</table>{{end}}
<div class="container">{{.Element}}</div>
<script type="text/javascript">{{.Script}}</script>
<h2>Timeline</h2>
<table><tr><th>time</th><th>what</th><th>target</th><th>note</th></tr>
{{range .R.Timeline}}<tr><td>{{.T.Format "15:04:05.000"}}</td><td>{{.Kind}}</td><td>{{.Target}}</td><td>{{.Note}}</td></tr>{{end}}
</table>
</body></html>
`))

// WriteHTML writes a self-contained page: the summary, the throughput plot
// with the faults drawn over it, and the timeline.
func (r *Report) WriteHTML(path string) error {
	js, err := bench.EChartsJS()
	if err != nil {
		return err
	}
	el, sc := r.chart()
	var b strings.Builder
	// The snippet's script carries its own <script> tags; strip them since
	// the page wraps it.
	s := strings.TrimSpace(string(sc))
	s = strings.TrimPrefix(s, `<script type="text/javascript">`)
	s = strings.TrimSuffix(s, `</script>`)
	err = page.Execute(&b, map[string]any{"R": r, "ECharts": template.JS(js), "Element": el, "Script": template.JS(s)})
	if err != nil {
		return err
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}
