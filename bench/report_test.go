package bench

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/encoding/json"

	"github.com/memoflow/memoflow/schemas/memo"
)

// JSONFields are the report fields issue 9 promises; tests of real runs
// check them too.
var JSONFields = []string{"scenario", "messages", "seconds", "msgs_per_s", "null_msgs_per_s", "ratio", "p50_ms", "p99_ms",
	"lost", "duplicates", "events_expected", "events_in_clickhouse", "max_rss_mb", "samples"}

func syntheticReport() *Report {
	r := newReport("mass-send", Target{InProcess: true, Stages: []string{"ingest", "validate", "eventlog"}}, Options{Messages: 3000, BatchSize: 1000, Concurrency: 2})
	r.NullMsgsPerSec = 3000
	r.LoadSeconds = 1.5
	var samples []Sample
	for i := 0; i <= 4; i++ {
		samples = append(samples, Sample{T: float64(i), Accepted: int64(min(i*1000, 3000)), Arrived: int64(min(i*800, 3000)),
			Events: uint64(min(i*1500, 6000)), LatP50: 100, LatP99: 300,
			Committed: map[string]int64{"validate": int64(min(i*900, 3010)), "eventlog": int64(min(i*700, 3012))},
			Lag:       map[string]int64{"validate": int64(100 * (4 - i)), "eventlog": int64(200 * (4 - i))}, RSSMB: 200, CPUSeconds: float64(i)})
	}
	lat := []float64{50, 80, 120, 200, 300, 900}
	r.finish(finishInput{accepted: 3000, expArrivals: 3000, arrivedAt: 3500 * time.Millisecond, eventsAt: 4 * time.Second,
		eventsGot:  map[string]uint64{"MEMO_MASS_SEND_RECEIVED": 3000, "MEMO_SEND_VALIDATED": 3000},
		eventsWant: map[string]int64{"MEMO_MASS_SEND_RECEIVED": 3000, "MEMO_SEND_VALIDATED": 3000},
		lat:        lat, samples: samples, ingestCodes: map[string]int64{}, stageCodes: map[string]int64{"MEMO_SCHEMA": 2}, inProcess: true})
	return r
}

func TestReportFinish(t *testing.T) {
	r := syntheticReport()
	if !r.OK {
		t.Fatalf("synthetic run not OK: %v", r.Failures)
	}
	if r.Seconds != 4 || r.MsgsPerSec != 750 || r.Ratio != 0.25 {
		t.Fatalf("seconds %v rate %v ratio %v, want 4, 750, 0.25", r.Seconds, r.MsgsPerSec, r.Ratio)
	}
	if r.P50ms != 120 || r.P99ms != 900 || r.MaxMs != 900 {
		t.Fatalf("latency %+v", r.Latency)
	}
	if r.ErrorsByCode["receipt:MEMO_SCHEMA"] != 2 {
		t.Fatalf("errors by code %v", r.ErrorsByCode)
	}
	if len(r.Stages) != 2 || r.Stages[1].Group != "validate" || r.Stages[1].Records != 3010 || r.Stages[1].MaxLag != 400 || r.Stages[1].PeakPerSec != 900 {
		t.Fatalf("stages %+v", r.Stages)
	}
	// validate moved from t=0 to t=4 (3010 records over 4 s).
	if got := r.Stages[1].MeanPerSec; got < 752 || got > 753 {
		t.Fatalf("validate mean %v", got)
	}

	// A loss fails the run whatever its speed, and so does one event too many.
	lossy := syntheticReport()
	lossy.Failures, lossy.OK = nil, false
	lossy.finish(finishInput{accepted: 3000, lost: 1, lostSample: []string{"x"},
		eventsGot:  map[string]uint64{"MEMO_SEND_VALIDATED": 3001},
		eventsWant: map[string]int64{"MEMO_SEND_VALIDATED": 3000}, inProcess: true, unmodelled: "route"})
	if lossy.OK || len(lossy.Failures) != 2 || !strings.Contains(lossy.Failures[1], "route") {
		t.Fatalf("lossy run: ok=%v failures %q", lossy.OK, lossy.Failures)
	}
}

func TestReportJSONHasEveryField(t *testing.T) {
	r := syntheticReport()
	path := filepath.Join(t.TempDir(), "r.json")
	if err := r.WriteJSON(path); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, f := range JSONFields {
		if _, ok := m[f]; !ok {
			t.Errorf("JSON report lacks %q", f)
		}
	}
}

func TestReportHTML(t *testing.T) {
	r := syntheticReport()
	var buf bytes.Buffer
	if err := r.RenderHTML(&buf); err != nil {
		t.Fatal(err)
	}
	page := buf.String()
	for _, want := range []string{
		`id="throughput"`, `id="lag"`, `id="latency_hist"`, `id="latency_time"`, `id="resources"`, // the plots
		"echarts.init(", "group validate committed", // series
		"Apache License", // the inlined library (self-contained: opens offline)
		"MEMO_SEND_VALIDATED", ">OK<",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("HTML report lacks %q", want)
		}
	}
	if strings.Contains(page, `src="http`) {
		t.Error("HTML report loads a script from the network")
	}
	var sb strings.Builder
	r.Summary(&sb)
	if !strings.Contains(sb.String(), "ratio 0.25") || !strings.Contains(sb.String(), "lost 0") {
		t.Errorf("summary:\n%s", sb.String())
	}
}

func TestMessageSetDeterministic(t *testing.T) {
	mix := DefaultMix()
	mix.InvalidShare = 0.2
	mix.Letter = memo.SizeDist{Kind: memo.SizeFixed, Bytes: 200}
	mix.Attachment = memo.SizeDist{Kind: memo.SizeFixed, Bytes: 2000}
	day := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	a := &MessageSet{Seed: 5, Messages: 250, BatchSize: 100, Mix: mix, SenderOrg: "12345678", Day: day}
	if a.Batches() != 3 || len(a.Batch(2)) != 50 {
		t.Fatalf("batches %d, last %d", a.Batches(), len(a.Batch(2)))
	}
	b1, b2 := a.Batch(1), a.Batch(1)
	for i := range b1 {
		if b1[i].UUID != b2[i].UUID || !bytes.Equal(b1[i].Data, b2[i].Data) {
			t.Fatal("batch 1 differs between two generations")
		}
	}
	other := *a
	other.Seed = 6
	if other.Batch(1)[0].UUID == b1[0].UUID {
		t.Fatal("another seed gives the same messages")
	}
	seen := map[string]bool{}
	kinds := map[uint8]int{}
	for i := 0; i < a.Batches(); i++ {
		for _, it := range a.Batch(i) {
			if seen[it.UUID] {
				t.Fatalf("UUID %s twice", it.UUID)
			}
			seen[it.UUID] = true
			kinds[it.Kind]++
			_, verrs := memo.Check(it.Data, memo.ValidateOptions{Now: func() time.Time { return day.Add(time.Hour) }, ExpectedUUID: it.UUID})
			if (len(verrs) > 0) != (it.Kind == KindInvalid) {
				t.Fatalf("kind %s but validation errors %v", kindNames[it.Kind], verrs)
			}
		}
	}
	if kinds[KindInvalid] == 0 || kinds[KindNemSMS] == 0 || kinds[KindLetter] == 0 {
		t.Fatalf("kinds %v", kinds)
	}

	// Prepared batches are written once and then reused.
	dir := t.TempDir()
	p, err := a.Prepare(context.Background(), dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if p.Cached || len(p.Files) != 3 || len(p.Manifest.UUIDs) != 250 || p.LZMA == 0 {
		t.Fatalf("first prepare: %+v", p)
	}
	p2, err := a.Prepare(context.Background(), dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !p2.Cached || p2.Manifest.UUIDs[249] != p.Manifest.UUIDs[249] {
		t.Fatalf("second prepare not from the cache: %+v", p2)
	}
}
