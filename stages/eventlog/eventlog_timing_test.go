package eventlog

import (
	"context"
	"testing"
	"time"

	"github.com/memoflow/memoflow/pipeline"
	"github.com/memoflow/memoflow/schemas/events"
)

// BenchmarkSinkVsRaw writes 200k events per iteration twice into the same
// table (materialized view included): once through Sink.Write (decode the
// records, build the columns, insert) and once as a bare clickhouse-go
// PrepareBatch of the same rows already in column slices, the fastest a
// hand-written insert gets. It reports both rates and sink/raw.
//
//	go test -run XXX -bench SinkVsRaw -benchtime 5x ./stages/eventlog/
func BenchmarkSinkVsRaw(b *testing.B) {
	f := newFixture(b)
	const records = 200_000 / eventsPerRecord
	recs := genRecords(0, 0, records+1, 1) // 200,001 events
	rows := len(recs) * eventsPerRecord

	// The raw insert's rows: the same events, lineage on another partition
	// so they never meet the sink's.
	raw := f.sink(b, Config{})
	for _, r := range recs {
		evs, err := events.Decode(r.Value, nil)
		if err != nil {
			b.Fatal(err)
		}
		for i := range evs {
			raw.cols.add(&evs[i], 99, r.Offset, i)
		}
	}
	s := f.sink(b, Config{})
	ctx := context.Background()

	var sinkTime, rawTime time.Duration
	iters := 0
	for b.Loop() {
		for j, r := range recs { // fresh offsets: new records, not a replay
			r.Offset = int64(iters*len(recs) + j)
		}
		rawInsert := func() {
			t0 := time.Now()
			if err := raw.send(ctx); err != nil {
				b.Fatal(err)
			}
			rawTime += time.Since(t0)
		}
		sinkWrite := func() {
			t0 := time.Now()
			if err := s.Write(ctx, &pipeline.Batch{Records: recs}); err != nil {
				b.Fatal(err)
			}
			sinkTime += time.Since(t0)
		}
		// Alternate the order: the second insert of a round meets the
		// first one's background merges.
		if iters%2 == 0 {
			rawInsert()
			sinkWrite()
		} else {
			sinkWrite()
			rawInsert()
		}
		iters++
	}
	want := uint64(2 * iters * rows)
	if got := f.uint64(b, "SELECT count() FROM "+f.db+".events"); got != want {
		b.Fatalf("%d rows in the table, want %d", got, want)
	}
	sinkRate := float64(iters*rows) / sinkTime.Seconds()
	rawRate := float64(iters*rows) / rawTime.Seconds()
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(sinkRate, "sink-rows/s")
	b.ReportMetric(rawRate, "raw-rows/s")
	b.ReportMetric(sinkRate/rawRate, "sink/raw")
}
