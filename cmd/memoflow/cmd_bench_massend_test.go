package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/encoding/json"

	"github.com/memoflow/memoflow/internal/chconn/chtest"
)

// benchStages are the stages the bench tests run: the ones whose events
// bench.StageEvents models today. (The default, all, picks up every stage
// registered in the binary.)
const benchStages = "ingest,validate,eventlog,receipts"

// TestBenchMassSendSmall runs `memoflow bench mass-send` end to end on the
// embedded broker (kfake) and the real ClickHouse: 2,000 messages, 5% of
// them invalid, through the ingest API in tar+LZMA batches. It must exit 0
// with nothing lost, the exact event log, every JSON field and an HTML
// report with its plots.
func TestBenchMassSendSmall(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end bench skipped in -short mode")
	}
	_, chcfg := chtest.Conn(t)
	dir := t.TempDir()
	jsonPath, htmlPath := filepath.Join(dir, "r.json"), filepath.Join(dir, "r.html")
	var out bytes.Buffer
	root := newRootCmd()
	root.SetOut(&out)
	root.SetErr(&out)
	// The prepared batches are cached across runs of the test (same seed,
	// size and day), so only the first run pays for LZMA.
	root.SetArgs([]string{"bench", "mass-send", "--messages", "2000", "--batch-size", "500", "--stages", benchStages,
		"--invalid-share", "0.05", "--attachment-share", "0.005", "--seed", "42",
		"--cache-dir", filepath.Join(os.TempDir(), "memoflow-bench-test"), "--clickhouse-addr", chcfg.Addr,
		"--sink-batch-wait", "200ms", "--stall-timeout", "20s", "--json", jsonPath, "--html", htmlPath})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := root.ExecuteContext(ctx); err != nil {
		t.Fatalf("bench mass-send: %v\n%s", err, out.String())
	}
	b, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	var rep map[string]any
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"scenario", "messages", "seconds", "msgs_per_s", "null_msgs_per_s", "ratio", "p50_ms", "p99_ms",
		"lost", "duplicates", "events_expected", "events_in_clickhouse", "max_rss_mb", "samples"} {
		if _, ok := rep[f]; !ok {
			t.Errorf("JSON report lacks %q", f)
		}
	}
	num := func(k string) float64 { v, _ := rep[k].(float64); return v }
	if rep["ok"] != true || num("lost") != 0 || num("duplicates") != 0 || num("messages") != 2000 || num("accepted") != 2000 {
		t.Fatalf("report: ok=%v lost=%v dups=%v messages=%v accepted=%v\n%s", rep["ok"], rep["lost"], rep["duplicates"], rep["messages"], rep["accepted"], out.String())
	}
	// Two rows per message (received + validated or failed), exactly.
	if num("events_expected") != 4000 || num("events_in_clickhouse") != 4000 {
		t.Fatalf("events expected %v, in ClickHouse %v", rep["events_expected"], rep["events_in_clickhouse"])
	}
	byTag, _ := rep["events_by_tag"].(map[string]any)
	invalid, _ := byTag["MEMO_SEND_VALIDATION_FAILED"].(float64)
	valid, _ := byTag["MEMO_SEND_VALIDATED"].(float64)
	if invalid < 50 || invalid > 160 || valid+invalid != 2000 {
		t.Fatalf("events by tag %v: want about 5%% validation failures", byTag)
	}
	// Every invalid message has its INVALID receipt, counted by code.
	codes, _ := rep["errors_by_code"].(map[string]any)
	var receipts float64
	for k, v := range codes {
		if strings.HasPrefix(k, "receipt:") {
			receipts += v.(float64)
		}
	}
	if receipts != invalid {
		t.Fatalf("receipts with an error code %v, want %v: %v", receipts, invalid, codes)
	}
	if num("null_msgs_per_s") <= 0 || num("ratio") <= 0 || num("p99_ms") <= 0 || num("max_rss_mb") <= 0 {
		t.Fatalf("null %v ratio %v p99 %v rss %v", rep["null_msgs_per_s"], rep["ratio"], rep["p99_ms"], rep["max_rss_mb"])
	}
	if s, _ := rep["samples"].([]any); len(s) < 2 {
		t.Fatalf("%d samples", len(s))
	}
	page, err := os.ReadFile(htmlPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`id="throughput"`, `id="lag"`, `id="latency_hist"`, "echarts.init(", "group validate committed"} {
		if !bytes.Contains(page, []byte(want)) {
			t.Errorf("HTML report lacks %q", want)
		}
	}
	if !strings.Contains(out.String(), "memoflow bench mass-send: OK") {
		t.Errorf("no summary in the output:\n%s", out.String())
	}
}

// TestBenchMassSendLossFails: without the validate stage nothing reaches
// memo.valid; the run must exit 1 and report every message lost.
func TestBenchMassSendLossFails(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end bench skipped in -short mode")
	}
	_, chcfg := chtest.Conn(t)
	dir := t.TempDir()
	jsonPath := filepath.Join(dir, "r.json")
	var out bytes.Buffer
	root := newRootCmd()
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs([]string{"bench", "mass-send", "--messages", "200", "--batch-size", "100", "--stages", "ingest,eventlog",
		"--attachment-share", "0", "--seed", "43", "--null-records", "-1",
		"--cache-dir", filepath.Join(os.TempDir(), "memoflow-bench-test"), "--clickhouse-addr", chcfg.Addr,
		"--stall-timeout", "3s", "--json", jsonPath})
	err := root.ExecuteContext(context.Background())
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != 1 {
		t.Fatalf("a run that lost everything returned %v, want exit code 1\n%s", err, out.String())
	}
	b, rerr := os.ReadFile(jsonPath)
	if rerr != nil {
		t.Fatal(rerr)
	}
	var rep map[string]any
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if rep["ok"] != false || rep["lost"] != float64(200) {
		t.Fatalf("ok=%v lost=%v, want false and 200", rep["ok"], rep["lost"])
	}
	if !strings.Contains(out.String(), "FAILED") {
		t.Errorf("summary does not say FAILED:\n%s", out.String())
	}
}
