package eventlog

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/memoflow/memoflow/internal/chconn/chtest"
	"github.com/memoflow/memoflow/pipeline"
	"github.com/memoflow/memoflow/schemas/chddl"
	"github.com/memoflow/memoflow/schemas/events"
)

const topic = "memo.events"

var pseudonymizer = func() *events.Pseudonymizer {
	p, err := events.NewPseudonymizer(events.Key{ID: "test1", Secret: bytes.Repeat([]byte{7}, 32)})
	if err != nil {
		panic(err)
	}
	return p
}()

// cprOf is the (made-up) CPR of the recipient of record i.
func cprOf(i int) string { return fmt.Sprintf("%06d%04d", 10190+i%9000, i%10000) }

// eventsPerRecord is how many events each generated record carries.
const eventsPerRecord = 3

// genRecords returns n memo.events records of partition p from offset
// from on, every offsetStep apart (transaction markers leave gaps). Each
// record holds three events of one message step; the first falls on
// 31 October and the others on 1 November, so every insert writes two
// month partitions. Even records go to a person (CPR), odd ones to a
// company (CVR).
func genRecords(p int32, from int64, n int, offsetStep int64) []*kgo.Record {
	base := time.Date(2026, 10, 31, 23, 59, 59, 500_000_000, time.UTC)
	tags := []events.Tag{events.MemoSendReceived, events.MemoSendValidated, events.MemoAvailableToRecipient}
	recs := make([]*kgo.Record, 0, n)
	for i := range n {
		off := from + int64(i)*offsetStep
		var rcpt events.Recipient
		if off%2 == 0 {
			rcpt = pseudonymizer.Recipient(events.CPR, cprOf(int(off)))
		} else {
			rcpt = pseudonymizer.Recipient(events.CVR, fmt.Sprintf("%08d", 20000000+off%1000))
		}
		uuid := fmt.Sprintf("%08x-0000-4000-8000-%012x", p, off)
		evs := make([]events.Event, eventsPerRecord)
		for j := range evs {
			evs[j] = events.Event{
				Time:            base.Add(time.Duration(j)*700*time.Millisecond + time.Duration(off%997)*time.Microsecond),
				Tag:             tags[j],
				MessageUUID:     uuid,
				TransmissionID:  fmt.Sprintf("tx-%d", off/100),
				SenderOrg:       fmt.Sprintf("%08d", 10000000+off%7),
				SenderSystem:    fmt.Sprintf("sys-%d", off%3),
				Recipient:       rcpt,
				ContactPoint:    fmt.Sprintf("cp-%d", off%5),
				RecipientSystem: fmt.Sprintf("rs-%d", off%4),
				MessageType:     "DIGITALPOST",
				PostType:        "MYNDIGHEDSPOST",
				Size:            uint64(1000 + off%5000),
				Attachments:     uint16(off % 4),
				ReceiptStatus:   "RECEIVED",
			}
		}
		r := events.NewRecord(topic, evs...)
		r.Partition, r.Offset = p, off
		recs = append(recs, r)
	}
	return recs
}

type fixture struct {
	conn driver.Conn
	db   string
}

func newFixture(t testing.TB) fixture {
	t.Helper()
	conn, _ := chtest.Conn(t)
	db := chtest.Database(t, conn)
	if _, err := chddl.Migrate(context.Background(), conn, chddl.Options{Database: db}); err != nil {
		t.Fatal(err)
	}
	return fixture{conn, db}
}

// sink returns a fresh sink, as after a process start.
func (f fixture) sink(t testing.TB, cfg Config) *Sink {
	t.Helper()
	cfg.Database = f.db
	s, err := New(f.conn, cfg, WithRegisterer(prometheus.NewRegistry()))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (f fixture) write(t testing.TB, s *Sink, recs []*kgo.Record) *pipeline.Batch {
	t.Helper()
	b := &pipeline.Batch{Records: recs}
	if err := s.Write(context.Background(), b); err != nil {
		t.Fatalf("Write: %v", err)
	}
	return b
}

func (f fixture) uint64(t testing.TB, query string) uint64 {
	t.Helper()
	var n uint64
	if err := f.conn.QueryRow(context.Background(), query).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// checkExactlyOnce asserts that the table holds exactly `records` records'
// events, each lineage once.
func (f fixture) checkExactlyOnce(t testing.TB, records int) {
	t.Helper()
	want := uint64(records * eventsPerRecord)
	rows := f.uint64(t, "SELECT count() FROM "+f.db+".events")
	distinct := f.uint64(t, "SELECT uniqExact(kafka_partition, kafka_offset, event_index) FROM "+f.db+".events")
	if rows != want || distinct != want {
		t.Fatalf("events table: %d rows, %d distinct lineages, want %d of each", rows, distinct, want)
	}
}

func newRegistry() *prometheus.Registry { return prometheus.NewRegistry() }
