package receipts

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"syscall"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/memoflow/memoflow/internal/chconn/chtest"
	"github.com/memoflow/memoflow/pipeline"
	"github.com/memoflow/memoflow/schemas/chddl"
	"github.com/memoflow/memoflow/schemas/records"
)

const topic = pipeline.TopicReceipts

// base is the time of the first generated receipt.
var base = time.Date(2026, 10, 31, 23, 0, 0, 0, time.UTC)

// gen describes generated receipts.
type gen struct {
	senders int           // sender systems sys-0 .. sys-(senders-1); 0 means 1
	step    time.Duration // between receipts' timeStamps; 0 means 1 s
	tx      string        // transmission id prefix
}

// receipt returns the i-th generated receipt: sender sys-(i%senders),
// transmission tx-(i/10), a distinct messageUUID, statuses cycling
// RECEIVED, COMPLETED, INVALID, NOT_ALLOWED, FAILED.
func (g gen) receipt(i int) *records.Receipt {
	senders := max(g.senders, 1)
	step := g.step
	if step == 0 {
		step = time.Second
	}
	statuses := []string{records.StatusReceived, records.StatusCompleted, records.StatusInvalid, records.StatusNotAllowed, records.StatusFailed}
	rc := &records.Receipt{
		TransmissionID: fmt.Sprintf("%stx-%d", g.tx, i/10),
		MessageUUID:    fmt.Sprintf("%08x-0000-4000-8000-%012x", i%senders, i),
		TimeStamp:      records.TimeStampOf(base.Add(time.Duration(i) * step)),
		ReceiptStatus:  statuses[i%len(statuses)],
		SenderOrg:      fmt.Sprintf("%08d", 10000000+i%senders),
		SenderSystem:   fmt.Sprintf("sys-%d", i%senders),
	}
	rc.Kind = kindOf(rc.ReceiptStatus)
	if rc.ReceiptStatus == records.StatusInvalid {
		rc.ErrorCode, rc.ErrorMessage = "MEMO_SCHEMA", "element X is not allowed"
		rc.Errors = []records.ReceiptError{{Code: "MEMO_SCHEMA", Path: "/Message/X", Message: "element X is not allowed"}}
	}
	return rc
}

// records returns n memo.receipts records of partition p from offset from
// on, every offsetStep apart (transaction markers leave gaps), carrying
// receipts first .. first+n-1.
func (g gen) records(p int32, from int64, first, n int, offsetStep int64) []*kgo.Record {
	recs := make([]*kgo.Record, n)
	for i := range n {
		r := records.NewReceiptRecord(topic, g.receipt(first+i))
		r.Partition, r.Offset = p, from+int64(i)*offsetStep
		r.Timestamp = base
		recs[i] = r
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
func (f fixture) sink(t testing.TB, opts ...Option) *Sink {
	t.Helper()
	return f.sinkOn(t, f.conn, opts...)
}

func (f fixture) sinkOn(t testing.TB, conn driver.Conn, opts ...Option) *Sink {
	t.Helper()
	s, err := New(conn, Config{Database: f.db}, append([]Option{WithRegisterer(prometheus.NewRegistry())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (f fixture) store(t testing.TB, cfg StoreConfig, opts ...Option) *Store {
	t.Helper()
	cfg.Database = f.db
	s, err := NewStore(f.conn, cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
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

func (f fixture) uint64(t testing.TB, query string, args ...any) uint64 {
	t.Helper()
	var n uint64
	if err := f.conn.QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// checkExactlyOnce asserts that the table holds `want` rows (sink rows,
// version 0), each record once and each receipt id once.
func (f fixture) checkExactlyOnce(t testing.TB, want int) {
	t.Helper()
	from := " FROM " + f.db + "." + Table + " WHERE version = 0"
	rows := f.uint64(t, "SELECT count()"+from)
	lineages := f.uint64(t, "SELECT uniqExact(kafka_partition, kafka_offset)"+from)
	ids := f.uint64(t, "SELECT uniqExact(receipt_id)"+from)
	if rows != uint64(want) || lineages != uint64(want) || ids != uint64(want) {
		t.Fatalf("receipts table: %d rows, %d distinct lineages, %d distinct ids; want %d of each", rows, lineages, ids, want)
	}
}

// lossyConn loses the outcome of the next `lose` inserts: with written set
// the rows reach ClickHouse but the answer is lost (a crash or a network
// cut after the server committed); otherwise nothing is sent. It counts
// the inserts it was asked for.
type lossyConn struct {
	driver.Conn
	lose    int
	written bool
	inserts int
}

func (c *lossyConn) PrepareBatch(ctx context.Context, q string, opts ...driver.PrepareBatchOption) (driver.Batch, error) {
	c.inserts++
	b, err := c.Conn.PrepareBatch(ctx, q, opts...)
	if err != nil || c.lose == 0 {
		return b, err
	}
	c.lose--
	return lossyBatch{b, c.written}, nil
}

type lossyBatch struct {
	driver.Batch
	written bool
}

func (b lossyBatch) Send() error {
	if !b.written {
		_ = b.Batch.Abort()
		return fmt.Errorf("write: %w", syscall.ECONNRESET)
	}
	if err := b.Batch.Send(); err != nil {
		return err
	}
	return io.ErrUnexpectedEOF
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
