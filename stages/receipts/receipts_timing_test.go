package receipts

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/memoflow/memoflow/pipeline"
	"github.com/memoflow/memoflow/schemas/records"
)

// benchRecords returns n receipt records of 20 sender systems, 1 ms
// apart from `from` on (a busy hour: 3.6M receipts), on offsets off.. of
// partition 0. Transmission ids carry the prefix so every call can make
// new receipts.
func benchRecords(prefix string, from time.Time, off int64, n int) []*kgo.Record {
	recs := make([]*kgo.Record, n)
	statuses := []string{records.StatusReceived, records.StatusCompleted}
	for i := range n {
		rc := &records.Receipt{
			TransmissionID: fmt.Sprintf("%s-%08x-0000-4000-8000-%012x", prefix, i/1000, i/1000),
			MessageUUID:    fmt.Sprintf("%08x-1111-4000-8000-%012x", i%20, i),
			TimeStamp:      records.TimeStampOf(from.Add(time.Duration(i) * time.Millisecond)),
			ReceiptStatus:  statuses[i%2],
			SenderOrg:      fmt.Sprintf("%08d", 20000000+i%20),
			SenderSystem:   fmt.Sprintf("bench-sys-%02d", i%20),
		}
		r := records.NewReceiptRecord(topic, rc)
		r.Partition, r.Offset = 0, off+int64(i)
		recs[i] = r
	}
	return recs
}

// BenchmarkSinkVsRaw stores 200,000 receipts per iteration twice into the
// same table: once through Sink.Write in batches of 50,000 (the runtime's
// default --sink-batch-records): decode the JSON, derive the id, re-encode
// the body, look up stored ids and lineage, insert; and once as a bare
// clickhouse-go PrepareBatch of the same rows already in column slices,
// in the same 50,000-row blocks (under other sender names, so the two
// never meet). It reports both rates
// and sink/raw.
//
//	go test -run XXX -bench SinkVsRaw -benchtime 5x ./stages/receipts/
func BenchmarkSinkVsRaw(b *testing.B) {
	f := newFixture(b)
	const (
		perIter = 200_000
		batch   = 50_000
	)
	s := f.sink(b)
	insert := insertStatement(f.db)
	ctx := context.Background()
	var sinkTime, rawTime time.Duration
	iters := 0
	start := time.Date(2026, 11, 2, 8, 0, 0, 0, time.UTC)
	for b.Loop() {
		// New receipts each round, continuing in time, so the look-up
		// meets a growing window of stored receipts as in production.
		from := start.Add(time.Duration(iters*perIter) * time.Millisecond)
		recs := benchRecords(fmt.Sprintf("it%d", iters), from, int64(iters*perIter), perIter)
		raw := make([]columns, (perIter+batch-1)/batch)
		for i, r := range recs {
			e, err := decodeRecord(r)
			if err != nil {
				b.Fatal(err)
			}
			e.sender = "raw-" + e.sender
			e.partition = 99
			raw[i/batch].addEntry(&e)
		}
		rawInsert := func() {
			t0 := time.Now()
			for i := range raw {
				if err := raw[i].send(ctx, f.conn, insert); err != nil {
					b.Fatal(err)
				}
			}
			rawTime += time.Since(t0)
		}
		sinkWrite := func() {
			t0 := time.Now()
			for i := 0; i < len(recs); i += batch {
				if err := s.Write(ctx, &pipeline.Batch{Records: recs[i:min(i+batch, len(recs))]}); err != nil {
					b.Fatal(err)
				}
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
	want := uint64(2 * iters * perIter)
	if got := f.uint64(b, "SELECT count() FROM "+f.db+".receipts"); got != want {
		b.Fatalf("%d rows in the table, want %d", got, want)
	}
	sinkRate := float64(iters*perIter) / sinkTime.Seconds()
	rawRate := float64(iters*perIter) / rawTime.Seconds()
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(sinkRate, "sink-rows/s")
	b.ReportMetric(rawRate, "raw-rows/s")
	b.ReportMetric(sinkRate/rawRate, "sink/raw")
	// Where the sink's time goes: the per-batch look-up of stored ids
	// and lineage, and the INSERT itself (the rest is decoding).
	for name, h := range map[string]prometheus.Histogram{"check": s.metrics.checkSeconds, "insert": s.metrics.insertSeconds} {
		var m dto.Metric
		if err := h.Write(&m); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(m.GetHistogram().GetSampleSum()/float64(m.GetHistogram().GetSampleCount())*1000, name+"-ms/batch")
	}
}

// BenchmarkListPage times the API's queries for one sender system holding
// 1,000,000 receipts (over about 11.6 days, in 10 inserts) of which 100,000
// are deleted (unmerged deletion marks), plus 1,000,000 of other senders.
// Each sub-benchmark's ns/op is one call's latency.
//
//	go test -run XXX -bench ListPage -benchtime 20x ./stages/receipts/
func BenchmarkListPage(b *testing.B) {
	f := newFixture(b)
	ctx := context.Background()
	insert := insertStatement(f.db)
	const (
		n       = 1_000_000
		parts   = 10
		deleted = n / 10
	)
	body := `{"id":"%s","transmissionId":"%s","messageUUID":"%s","timeStamp":"%s","receiptStatus":"COMPLETED","receiptType":"BUSINESS"}`
	start := time.Date(2026, 10, 20, 0, 0, 0, 0, time.UTC)
	rowOf := func(sender string, i int) row {
		at := start.Add(time.Duration(i) * time.Second)
		uuid := fmt.Sprintf("%08x-2222-4000-8000-%012x", i%1000, i)
		rc := &records.Receipt{TransmissionID: fmt.Sprintf("tx-%s-%d", sender, i/100), MessageUUID: uuid, ReceiptStatus: records.StatusCompleted}
		id := ID(rc)
		return row{at: at, sender: sender, org: "12345678", id: id, transmission: rc.TransmissionID, message: uuid,
			kind: records.KindBusiness, status: records.StatusCompleted,
			body: fmt.Sprintf(body, id, rc.TransmissionID, uuid, records.TimeStampOf(at)), partition: 0, offset: int64(i)}
	}
	t0 := time.Now()
	for p := range parts {
		var c columns
		for i := p * n / parts; i < (p+1)*n/parts; i++ {
			r := rowOf("big", i)
			c.add(&r)
			o := rowOf(fmt.Sprintf("other-%d", i%50), i)
			c.add(&o)
		}
		if err := c.send(ctx, f.conn, insert); err != nil {
			b.Fatal(err)
		}
	}
	var marks columns
	for i := 0; i < n; i += n / deleted {
		r := rowOf("big", i)
		r.body, r.deleted, r.version, r.deletedAt = "", true, 1, time.Now()
		marks.add(&r)
	}
	if err := marks.send(ctx, f.conn, insert); err != nil {
		b.Fatal(err)
	}
	b.Logf("setup: %d rows in %v", 2*n+deleted, time.Since(t0).Round(time.Millisecond))
	store := f.store(b, StoreConfig{QueryTimeout: time.Minute})
	live := uint64(n - deleted)

	check := func(b *testing.B, total uint64, got, want int) {
		if total != live || got != want {
			b.Fatalf("total %d (want %d), %d on the page (want %d)", total, live, got, want)
		}
	}
	for _, tc := range []struct {
		name string
		run  func(b *testing.B)
	}{
		{"ids/page0-size100", func(b *testing.B) {
			ids, total, err := store.IDs(ctx, "big", Filter{}, 0, 100)
			if err != nil {
				b.Fatal(err)
			}
			check(b, total, len(ids), 100)
		}},
		{"ids/page0-size1000", func(b *testing.B) {
			ids, total, err := store.IDs(ctx, "big", Filter{}, 0, 1000)
			if err != nil {
				b.Fatal(err)
			}
			check(b, total, len(ids), 1000)
		}},
		{"ids/last-page-size1000", func(b *testing.B) {
			ids, total, err := store.IDs(ctx, "big", Filter{}, int(live/1000)-1, 1000)
			if err != nil {
				b.Fatal(err)
			}
			check(b, total, len(ids), 1000)
		}},
		{"bulk/page0-size1000", func(b *testing.B) {
			bodies, total, err := store.Bulk(ctx, "big", Filter{}, 0, 1000)
			if err != nil {
				b.Fatal(err)
			}
			check(b, total, len(bodies), 1000)
		}},
		{"bulk/since-last-day-size1000", func(b *testing.B) {
			since := start.Add(time.Duration(n-86400) * time.Second)
			bodies, _, err := store.Bulk(ctx, "big", Filter{Since: since}, 0, 1000)
			if err != nil || len(bodies) != 1000 {
				b.Fatalf("%d bodies, %v", len(bodies), err)
			}
		}},
		{"get-one", func(b *testing.B) {
			r := rowOf("big", n/2+1)
			if _, ok, err := store.Get(ctx, "big", r.id); err != nil || !ok {
				b.Fatalf("get: %v %v", ok, err)
			}
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				tc.run(b)
			}
		})
	}
}
