package eventquery

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/memoflow/memoflow/pipeline"
	"github.com/memoflow/memoflow/schemas/chddl"
	"github.com/memoflow/memoflow/schemas/events"
)

// TestRetention writes events of a month long past the retention beside
// the recent test data, runs the retention, and checks that the old month
// is gone from events and from the messageUUID lookup, that the recent
// data and the statistics stay, and that the run is counted.
func TestRetention(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	old := time.Date(2015, 3, 10, 9, 0, 0, 0, time.UTC)
	ev := events.Event{Time: old, Tag: events.MemoSendReceived, MessageUUID: "old-message", SenderOrg: orgA, SenderSystem: "sysA1",
		Recipient: testPseudonymizer.Recipient(events.CPR, cprs[0]), MessageType: "DIGITALPOST", Size: 10}
	r := events.NewRecord(pipeline.TopicEvents, ev)
	r.Partition, r.Offset = 300, 0
	if err := f.sink.Write(ctx, &pipeline.Batch{Records: []*kgo.Record{r}}); err != nil {
		t.Fatal(err)
	}
	partitions := func(table string) []string {
		rows, err := f.conn.Query(ctx, "SELECT DISTINCT partition FROM system.parts WHERE database = ? AND table = ? AND active ORDER BY partition", f.db, table)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var p string
			if err := rows.Scan(&p); err != nil {
				t.Fatal(err)
			}
			out = append(out, p)
		}
		return out
	}
	for _, table := range []string{chddl.EventsTable, LookupTable, chddl.StatsTable} {
		if got := partitions(table); !slices.Equal(got, []string{"201503", "202610", "202611"}) {
			t.Fatalf("%s partitions before: %v", table, got)
		}
	}

	reg := prometheus.NewRegistry()
	ret, err := NewRetention(f.conn, RetentionConfig{Database: f.db}, slog.New(slog.NewTextHandler(io.Discard, nil)), reg)
	if err != nil {
		t.Fatal(err)
	}
	dropped, err := ret.RunOnce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"events:201503", "events_by_message:201503"}; !slices.Equal(dropped, want) {
		t.Errorf("dropped %v, want %v", dropped, want)
	}
	for table, want := range map[string][]string{
		chddl.EventsTable: {"202610", "202611"},
		LookupTable:       {"202610", "202611"},
		chddl.StatsTable:  {"201503", "202610", "202611"}, // aggregates are kept
	} {
		if got := partitions(table); !slices.Equal(got, want) {
			t.Errorf("%s partitions after: %v, want %v", table, got, want)
		}
	}
	if p := f.search(t, "operator", all()); p.TotalElements != uint64(len(f.data)) {
		t.Errorf("%d recent events after the retention, want %d", p.TotalElements, len(f.data))
	}
	f.audits(t, 1)

	// A second run finds nothing to do.
	if dropped, err := ret.RunOnce(ctx); err != nil || len(dropped) != 0 {
		t.Errorf("second run dropped %v, %v", dropped, err)
	}
	const want = `
# HELP memoflow_eventlog_retention_partitions_dropped_total Expired monthly partitions dropped, by table.
# TYPE memoflow_eventlog_retention_partitions_dropped_total counter
memoflow_eventlog_retention_partitions_dropped_total{table="events"} 1
memoflow_eventlog_retention_partitions_dropped_total{table="events_by_message"} 1
# HELP memoflow_eventlog_retention_runs_total Runs of the event log's retention, by result (ok, error).
# TYPE memoflow_eventlog_retention_runs_total counter
memoflow_eventlog_retention_runs_total{result="ok"} 2
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"memoflow_eventlog_retention_partitions_dropped_total", "memoflow_eventlog_retention_runs_total"); err != nil {
		t.Error(err)
	}
	if v := testutil.ToFloat64(ret.lastSuccess); time.Since(time.Unix(int64(v), 0)) > time.Minute {
		t.Errorf("last success gauge %v", v)
	}

	// A failing run (here: ClickHouse does not answer in time) is counted
	// and returned, and the loop goes on.
	breg := prometheus.NewRegistry()
	bad, err := NewRetention(f.conn, RetentionConfig{Database: f.db}, slog.New(slog.NewTextHandler(io.Discard, nil)), breg)
	if err != nil {
		t.Fatal(err)
	}
	cctx, cancelNow := context.WithCancel(ctx)
	cancelNow()
	if _, err := bad.RunOnce(cctx); err == nil {
		t.Error("a run without ClickHouse succeeded")
	}
	if v := testutil.ToFloat64(bad.runs.WithLabelValues("error")); v != 1 {
		t.Errorf("error runs %v, want 1", v)
	}

	// Run stops with its context.
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { ret.Run(rctx); close(done) }()
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not stop")
	}
}
