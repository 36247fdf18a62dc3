package eventlog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/memoflow/memoflow/pipeline"
	"github.com/memoflow/memoflow/schemas/events"
)

func TestReadBack(t *testing.T) {
	f := newFixture(t)
	s := f.sink(t, Config{})
	if s.Name() != "eventlog" {
		t.Fatalf("Name = %q", s.Name())
	}
	recs := genRecords(3, 40, 2, 1) // offset 40: CPR recipient; 41: CVR
	vd := time.Date(2026, 11, 5, 0, 0, 0, 0, time.UTC)
	evs, _ := events.Decode(recs[0].Value, nil)
	evs[1].ValueDate, evs[1].ErrorCode, evs[1].Actor = vd, "E42", "admin-7"
	recs[0].Value = events.NewRecord(topic, evs...).Value
	f.write(t, s, recs)
	f.checkExactlyOnce(t, 2)

	var (
		day, at, valueDate                    time.Time
		ms, att, idx                          uint16
		org, sys, tag, uuid, rtype, rid, rkey string
		cp, rsys, mtype, ptype, status, errc  string
		actor                                 string
		size, off                             uint64
		part                                  uint32
	)
	err := f.conn.QueryRow(context.Background(), `SELECT event_date, event_time, event_ms, sender_org, sender_system, tag,
		message_uuid, recipient_type, recipient_id, recipient_key_id, contact_point, recipient_system, message_type,
		post_type, size_bytes, attachments, value_date, receipt_status, error_code, actor, kafka_partition, kafka_offset, event_index
		FROM `+f.db+`.events WHERE kafka_offset = 40 AND event_index = 1`).Scan(
		&day, &at, &ms, &org, &sys, &tag, &uuid, &rtype, &rid, &rkey, &cp, &rsys, &mtype, &ptype,
		&size, &att, &valueDate, &status, &errc, &actor, &part, &off, &idx)
	if err != nil {
		t.Fatal(err)
	}
	e := evs[1]
	wantTime := e.Time.Truncate(time.Millisecond)
	gotTime := at.Add(time.Duration(ms) * time.Millisecond)
	got := []any{day.Format(time.DateOnly), gotTime.UTC(), org, sys, tag, uuid, rtype, rid, rkey, cp, rsys, mtype, ptype, size, att, valueDate.Format(time.DateOnly), status, errc, actor, part, off, idx}
	want := []any{"2026-11-01", wantTime, e.SenderOrg, e.SenderSystem, string(e.Tag), e.MessageUUID, "CPR", e.Recipient.ID(), "test1",
		e.ContactPoint, e.RecipientSystem, e.MessageType, e.PostType, e.Size, e.Attachments, "2026-11-05", e.ReceiptStatus, "E42", "admin-7", uint32(3), uint64(40), uint16(1)}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("row read back:\n got %v\nwant %v", got, want)
	}
	var cvrID, cvrKey string
	if err := f.conn.QueryRow(context.Background(), "SELECT any(recipient_id), any(recipient_key_id) FROM "+f.db+".events WHERE kafka_offset = 41").Scan(&cvrID, &cvrKey); err != nil {
		t.Fatal(err)
	}
	if cvrID != "20000041" || cvrKey != "" {
		t.Errorf("CVR recipient stored as %q key %q, want it in clear", cvrID, cvrKey)
	}
}

// lossyConn loses the outcome of the next `lose` inserts: with written set
// the rows reach ClickHouse but the answer is lost (a crash or a network
// cut after the server committed); otherwise nothing is sent.
type lossyConn struct {
	driver.Conn
	lose    int
	written bool
}

func (c *lossyConn) PrepareBatch(ctx context.Context, q string, opts ...driver.PrepareBatchOption) (driver.Batch, error) {
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

// TestExactlyOnce replays the situations in which a batch's rows may
// already be in ClickHouse; after each, every event must be there once.
func TestExactlyOnce(t *testing.T) {
	recs := genRecords(0, 1000, 300, 2) // offsets 1000, 1002, ... (gaps like transaction markers)
	for _, tc := range []struct {
		name string
		run  func(t *testing.T, f fixture) (records int)
	}{
		{"same batch again, same sink (commit failed)", func(t *testing.T, f fixture) int {
			s := f.sink(t, Config{})
			f.write(t, s, recs[:200])
			f.write(t, s, recs[:200])
			return 200
		}},
		{"crash after insert, before commit: new sink, same batch", func(t *testing.T, f fixture) int {
			f.write(t, f.sink(t, Config{}), recs[:200])
			f.write(t, f.sink(t, Config{}), recs[:200])
			return 200
		}},
		{"overlapping batch after a crash", func(t *testing.T, f fixture) int {
			f.write(t, f.sink(t, Config{}), recs[:200])
			s := f.sink(t, Config{})
			f.write(t, s, recs[100:250])
			f.write(t, s, recs[250:]) // known partition now: no check, plain insert
			return 300
		}},
		{"crash after a batch beyond the commit, smaller batches after the restart", func(t *testing.T, f fixture) int {
			// The dead owner wrote 200 records it never committed; the new
			// owner's first batch (from the commit) covers only 50 of them.
			f.write(t, f.sink(t, Config{}), recs[:200])
			s := f.sink(t, Config{})
			f.write(t, s, recs[:50])
			f.write(t, s, recs[50:120]) // beyond the first check, still the dead owner's rows
			f.write(t, s, recs[120:250])
			f.write(t, s, recs[250:]) // past what was written: no check needed
			return 300
		}},
		{"overlapping batch, same sink", func(t *testing.T, f fixture) int {
			s := f.sink(t, Config{})
			f.write(t, s, recs[:200])
			f.write(t, s, recs[150:])
			return 300
		}},
		{"insert acknowledged but the answer lost, then retried", func(t *testing.T, f fixture) int {
			lossy := &lossyConn{Conn: f.conn, written: true}
			s, err := New(lossy, Config{Database: f.db}, WithRegisterer(newRegistry()))
			if err != nil {
				t.Fatal(err)
			}
			f.write(t, s, recs[:100]) // known partition from here on
			lossy.lose = 1
			b := &pipeline.Batch{Records: recs[100:200]}
			err = s.Write(context.Background(), b)
			if pipeline.ClassOf(err) != pipeline.ClassTransient {
				t.Fatalf("lost answer: %v, want a transient error", err)
			}
			f.write(t, s, recs[100:200]) // the runtime's retry
			return 200
		}},
		{"insert failed before reaching the server, then retried", func(t *testing.T, f fixture) int {
			lossy := &lossyConn{Conn: f.conn, lose: 1}
			s, err := New(lossy, Config{Database: f.db}, WithRegisterer(newRegistry()))
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Write(context.Background(), &pipeline.Batch{Records: recs[:100]}); pipeline.ClassOf(err) != pipeline.ClassTransient {
				t.Fatalf("failed insert: %v, want a transient error", err)
			}
			f.write(t, s, recs[:100])
			return 100
		}},
		{"one month written, the other not (partial insert)", func(t *testing.T, f fixture) int {
			// Write only the October rows (event 0) of the first 120 records,
			// as if the November part of an insert had failed.
			var c columns
			for _, r := range recs[:120] {
				evs, err := events.Decode(r.Value, nil)
				if err != nil {
					t.Fatal(err)
				}
				c.add(&evs[0], r.Partition, r.Offset, 0)
			}
			raw := f.sink(t, Config{})
			raw.cols = c
			if err := raw.send(context.Background()); err != nil {
				t.Fatal(err)
			}
			f.write(t, f.sink(t, Config{}), recs[:200])
			return 200
		}},
		{"partition revoked, another consumer wrote without committing", func(t *testing.T, f fixture) int {
			a, other := f.sink(t, Config{}), f.sink(t, Config{})
			f.write(t, a, recs[:100])
			f.write(t, other, recs[100:150]) // its commit is aborted by the rebalance
			a.PartitionsRevoked(map[string][]int32{topic: {0}})
			f.write(t, a, recs[100:200]) // the partition is back, from the last commit
			return 200
		}},
		{"no revoke hook: VerifyEveryBatch", func(t *testing.T, f fixture) int {
			a, other := f.sink(t, Config{VerifyEveryBatch: true}), f.sink(t, Config{})
			f.write(t, a, recs[:100])
			f.write(t, other, recs[100:150])
			f.write(t, a, recs[100:200])
			return 200
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			f.checkExactlyOnce(t, tc.run(t, f))
			checkStats(t, f)
		})
	}
}

// checkStats compares the statistics view with the raw rows, both read
// with GROUP BY and sum (never FINAL).
func checkStats(t *testing.T, f fixture) {
	t.Helper()
	const dims = "sender_org, sender_system, recipient_system, contact_point, message_type, post_type, recipient_type, tag, receipt_status"
	read := func(q string) map[string][2]uint64 {
		rows, err := f.conn.Query(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		out := map[string][2]uint64{}
		for rows.Next() {
			var key string
			var n, size uint64
			if err := rows.Scan(&key, &n, &size); err != nil {
				t.Fatal(err)
			}
			out[key] = [2]uint64{n, size}
		}
		return out
	}
	raw := read(`SELECT concat(toString(event_date), '|', ` + strings.ReplaceAll(dims, ", ", ", '|', ") + `) AS k,
		count(), sum(size_bytes) FROM ` + f.db + `.events GROUP BY k`)
	stats := read(`SELECT concat(toString(day), '|', ` + strings.ReplaceAll(dims, ", ", ", '|', ") + `) AS k,
		sum(events), sum(size_bytes) FROM ` + f.db + `.event_stats_daily GROUP BY k`)
	if len(raw) == 0 || !reflect.DeepEqual(raw, stats) {
		t.Fatalf("statistics differ from the raw events: %d raw groups, %d stats groups", len(raw), len(stats))
	}
}

func TestPoisonRecords(t *testing.T) {
	f := newFixture(t)
	s := f.sink(t, Config{})
	recs := genRecords(1, 0, 10, 1)

	garbage := &kgo.Record{Topic: topic, Partition: 1, Offset: 10, Value: []byte("not an event")}
	// A record carrying a CPR in clear: take a CVR recipient and relabel it
	// CPR on the wire (a producer that bypassed the Pseudonymizer).
	cvrRec := genRecords(1, 11, 1, 1)[0]
	at := bytes.Index(cvrRec.Value, []byte("20000011"))
	v := append([]byte(nil), cvrRec.Value...)
	v[at-2] = byte(events.CPR) // the type byte precedes the id's length byte
	clearCPR := &kgo.Record{Topic: topic, Partition: 1, Offset: 11, Value: v}

	b := f.write(t, s, append(recs, garbage, clearCPR))
	if b.Rejected() != 2 {
		t.Fatalf("rejected %d records, want 2", b.Rejected())
	}
	for code, want := range map[string]float64{CodeDecode: 1, CodeClearIdentifier: 1} {
		var m dto.Metric
		if err := s.metrics.rejected.WithLabelValues(code).Write(&m); err != nil || m.GetCounter().GetValue() != want {
			t.Errorf("rejected{code=%s} = %v, want %v", code, m.GetCounter().GetValue(), want)
		}
	}
	f.checkExactlyOnce(t, 10)
}

func TestFatalErrors(t *testing.T) {
	f := newFixture(t)
	s := f.sink(t, Config{})
	recs := genRecords(0, 0, 20, 1)
	f.write(t, s, recs[:10])

	t.Run("lineage collision", func(t *testing.T) {
		other := genRecords(0, 0, 10, 1)
		for _, r := range other {
			evs, _ := events.Decode(r.Value, nil)
			for i := range evs {
				evs[i].MessageUUID = "ffffffff-0000-4000-8000-000000000000"
			}
			r.Value = events.NewRecord(topic, evs...).Value
		}
		err := f.sink(t, Config{}).Write(context.Background(), &pipeline.Batch{Records: other})
		if !errors.Is(err, ErrLineageCollision) || pipeline.ClassOf(err) != pipeline.ClassFatal {
			t.Fatalf("Write = %v, want fatal ErrLineageCollision", err)
		}
	})
	t.Run("two topics", func(t *testing.T) {
		r := genRecords(0, 30, 1, 1)[0]
		r.Topic = "memo.other"
		err := s.Write(context.Background(), &pipeline.Batch{Records: []*kgo.Record{r}})
		if pipeline.ClassOf(err) != pipeline.ClassFatal {
			t.Fatalf("Write = %v, want fatal", err)
		}
	})
	t.Run("table gone", func(t *testing.T) {
		if err := f.conn.Exec(context.Background(), "DROP TABLE "+f.db+".events"); err != nil {
			t.Fatal(err)
		}
		err := s.Write(context.Background(), &pipeline.Batch{Records: recs[10:]})
		if pipeline.ClassOf(err) != pipeline.ClassFatal || pipeline.CodeOf(err) != "CLICKHOUSE_60" {
			t.Fatalf("Write = %v (%s), want fatal CLICKHOUSE_60", err, pipeline.CodeOf(err))
		}
	})
}

// TestNoCPRInClear writes events for many CPR recipients and scans every
// String column of the event log and the statistics for any of them.
func TestNoCPRInClear(t *testing.T) {
	f := newFixture(t)
	const n = 500
	recs := genRecords(2, 0, n, 1)
	f.write(t, f.sink(t, Config{}), recs)
	ctx := context.Background()

	var cprs []string
	for off := 0; off < n; off += 2 { // even offsets have CPR recipients
		c := cprOf(off)
		cprs = append(cprs, c, c[:6]+"-"+c[6:])
	}
	pattern := strings.Join(cprs, "|")
	if f.uint64(t, "SELECT toUInt64(match('x"+cprs[3]+"y', '"+pattern+"'))") != 1 {
		t.Fatal("the CPR pattern does not find a planted CPR")
	}
	for _, table := range []string{"events", "event_stats_daily"} {
		rows, err := f.conn.Query(ctx, "SELECT name FROM system.columns WHERE database = ? AND table = ? AND type = 'String'", f.db, table)
		if err != nil {
			t.Fatal(err)
		}
		var cols []string
		for rows.Next() {
			var c string
			if err := rows.Scan(&c); err != nil {
				t.Fatal(err)
			}
			cols = append(cols, c)
		}
		rows.Close()
		if len(cols) < 8 {
			t.Fatalf("%s: only %d String columns found", table, len(cols))
		}
		for _, c := range cols {
			// One regexp alternation: 18.16 has no multiSearchAny.
			q := fmt.Sprintf("SELECT count() FROM %s.%s WHERE match(%s, '%s')", f.db, table, c, pattern)
			if hits := f.uint64(t, q); hits != 0 {
				t.Errorf("%s.%s holds a CPR in clear in %d rows", table, c, hits)
			}
		}
	}
	bad := f.uint64(t, "SELECT count() FROM "+f.db+".events WHERE recipient_type = 'CPR' AND (recipient_key_id = '' OR length(recipient_id) != 64)")
	cprRows := f.uint64(t, "SELECT count() FROM "+f.db+".events WHERE recipient_type = 'CPR'")
	if bad != 0 || cprRows != n/2*eventsPerRecord {
		t.Errorf("%d CPR rows (want %d), %d of them not pseudonymised", cprRows, n/2*eventsPerRecord, bad)
	}
}

func TestDedupToken(t *testing.T) {
	var a, b columns
	for _, r := range genRecords(0, 0, 3, 1) {
		evs, _ := events.Decode(r.Value, nil)
		for i := range evs {
			a.add(&evs[i], r.Partition, r.Offset, i)
			b.add(&evs[i], r.Partition, r.Offset, i)
		}
	}
	ta := dedupSettings(&a)["insert_deduplication_token"]
	if ta != dedupSettings(&b)["insert_deduplication_token"] {
		t.Fatal("same rows, different tokens")
	}
	b.index[len(b.index)-1]++
	if ta == dedupSettings(&b)["insert_deduplication_token"] {
		t.Fatal("different rows, same token")
	}
}

func TestConfigValidate(t *testing.T) {
	if err := (Config{Database: "memoflow"}).Validate(); err != nil {
		t.Fatal(err)
	}
	if err := (Config{Database: "a;b"}).Validate(); err == nil {
		t.Fatal("bad database accepted")
	}
}
