package receipts

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/segmentio/encoding/json"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/memoflow/memoflow/pipeline"
	"github.com/memoflow/memoflow/schemas/records"
)

func TestID(t *testing.T) {
	g := gen{}
	a := g.receipt(7)
	same := *a
	same.TimeStamp, same.ErrorMessage, same.SenderSystem = "2030-01-01T00:00:00.000Z", "other words", "x"
	noKind := *a
	noKind.Kind = ""
	if ID(a) != ID(&same) || ID(a) != ID(&noKind) {
		t.Fatal("the id depends on more than transmissionId, messageUUID, type and status")
	}
	for name, edit := range map[string]func(r *records.Receipt){
		"transmissionId": func(r *records.Receipt) { r.TransmissionID += "x" },
		"messageUUID":    func(r *records.Receipt) { r.MessageUUID = "00000000-0000-4000-8000-000000000000" },
		"receiptStatus":  func(r *records.Receipt) { r.ReceiptStatus = records.StatusFailed },
		"receiptType":    func(r *records.Receipt) { r.Kind = records.KindBusiness },
	} {
		b := *a
		edit(&b)
		if ID(&b) == ID(a) {
			t.Errorf("changing %s keeps the id", name)
		}
	}
	if len(ID(a)) != 36 || ID(a)[14] != '5' {
		t.Errorf("id %s is not a version-5 UUID", ID(a))
	}
	// Unparsable batch entries have no messageUUID: their error tells
	// them apart.
	e1 := &records.Receipt{TransmissionID: "t", ReceiptStatus: records.StatusInvalid, ErrorCode: "MEMO_XML", ErrorMessage: "entry a.xml: bad"}
	e2 := *e1
	e2.ErrorMessage = "entry b.xml: bad"
	if ID(e1) == ID(&e2) {
		t.Error("two rejected entries without messageUUID share an id")
	}
}

func TestDecodeRecord(t *testing.T) {
	good := func() *records.Receipt { return gen{}.receipt(0) }
	rec := func(key string, rc *records.Receipt) *kgo.Record {
		r := records.NewReceiptRecord(topic, rc)
		r.Key = []byte(key)
		r.Timestamp = base
		return r
	}
	for _, tc := range []struct {
		name string
		rec  *kgo.Record
		code string // "" means it decodes
	}{
		{"good", rec("sys-0", good()), ""},
		{"sender from the key", rec("sys-0", func() *records.Receipt { r := good(); r.SenderSystem = ""; return r }()), ""},
		{"sender from the body", rec("", good()), ""},
		{"no type: from the status", rec("sys-0", func() *records.Receipt { r := good(); r.Kind = ""; return r }()), ""},
		{"bad timeStamp: the record's time", rec("sys-0", func() *records.Receipt { r := good(); r.TimeStamp = "yesterday"; return r }()), ""},
		{"not JSON", &kgo.Record{Key: []byte("sys-0"), Value: []byte("<receipt/>")}, CodeDecode},
		{"no sender", rec("", func() *records.Receipt { r := good(); r.SenderSystem = ""; return r }()), CodeNoSender},
		{"key and body disagree", rec("sys-9", good()), CodeSenderMismatch},
		{"no transmissionId", rec("sys-0", func() *records.Receipt { r := good(); r.TransmissionID = ""; return r }()), CodeInvalid},
		{"unknown status", rec("sys-0", func() *records.Receipt { r := good(); r.ReceiptStatus = "LOST"; return r }()), CodeInvalid},
		{"unknown type", rec("sys-0", func() *records.Receipt { r := good(); r.Kind = "SOCIAL"; return r }()), CodeInvalid},
		{"no time at all", func() *kgo.Record {
			r := rec("sys-0", func() *records.Receipt { r := good(); r.TimeStamp = ""; return r }())
			r.Timestamp = time.Time{}
			return r
		}(), CodeInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := decodeRecord(tc.rec)
			if tc.code != "" {
				if pipeline.ClassOf(err) != pipeline.ClassPoison || pipeline.CodeOf(err) != tc.code {
					t.Fatalf("decode = %v (code %s), want poison %s", err, pipeline.CodeOf(err), tc.code)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if e.sender != "sys-0" || e.kind != records.KindTechnical || e.at.IsZero() {
				t.Fatalf("entry %+v", e)
			}
			var served map[string]any
			if err := json.Unmarshal(e.body, &served); err != nil {
				t.Fatal(err)
			}
			if served["id"] != e.id || served["receiptType"] != records.KindTechnical || served["transmissionId"] == nil {
				t.Errorf("served body %s", e.body)
			}
			if _, ok := served["senderSystem"]; ok {
				t.Errorf("served body carries routing fields: %s", e.body)
			}
		})
	}
}

func TestReadBack(t *testing.T) {
	f := newFixture(t)
	s := f.sink(t)
	if s.Name() != "receipts" {
		t.Fatalf("Name = %q", s.Name())
	}
	g := gen{}
	recs := g.records(3, 40, 2, 1, 1) // receipt 2: INVALID with errors
	f.write(t, s, recs)
	f.checkExactlyOnce(t, 1)

	rc := g.receipt(2)
	var (
		day, at                                       time.Time
		ms                                            uint16
		sender, org, id, tx, msg, kind, status, ecode string
		body                                          string
		deleted                                       uint8
		version, off                                  uint64
		part                                          uint32
	)
	err := f.conn.QueryRow(context.Background(), `SELECT receipt_date, receipt_time, receipt_ms, sender_system, sender_org,
		toString(receipt_id), transmission_id, message_uuid, receipt_type, receipt_status, error_code, body, deleted, version,
		kafka_partition, kafka_offset FROM `+f.db+`.receipts`).Scan(
		&day, &at, &ms, &sender, &org, &id, &tx, &msg, &kind, &status, &ecode, &body, &deleted, &version, &part, &off)
	if err != nil {
		t.Fatal(err)
	}
	wantAt, _ := time.Parse(time.RFC3339Nano, rc.TimeStamp)
	got := []any{day.Format(time.DateOnly), at.UTC().Add(time.Duration(ms) * time.Millisecond), sender, org, id, tx, msg, kind, status, ecode, deleted, version, part, off}
	want := []any{wantAt.Format(time.DateOnly), wantAt, rc.SenderSystem, rc.SenderOrg, ID(rc), rc.TransmissionID, rc.MessageUUID,
		records.KindTechnical, records.StatusInvalid, "MEMO_SCHEMA", uint8(0), uint64(0), uint32(3), uint64(40)}
	for i := range got {
		if got[i] != want[i] {
			t.Errorf("column %d = %v, want %v", i, got[i], want[i])
		}
	}
	var served Served
	if err := json.Unmarshal([]byte(body), &served); err != nil {
		t.Fatal(err)
	}
	rc.SenderOrg, rc.SenderSystem = "", ""
	if served.ID != ID(rc) || served.TransmissionID != rc.TransmissionID || len(served.Errors) != 1 || served.Receipt.Kind != rc.Kind {
		t.Errorf("body %s", body)
	}
}

// TestExactlyOnce replays the situations in which a batch's rows may
// already be in ClickHouse, and the ones where the same receipt comes in
// another record; after each, every receipt must be there once.
func TestExactlyOnce(t *testing.T) {
	g := gen{senders: 3}
	recs := g.records(0, 1000, 0, 300, 2) // offsets 1000, 1002, ... (gaps like transaction markers)
	for _, tc := range []struct {
		name string
		run  func(t *testing.T, f fixture) (receipts int)
	}{
		{"same batch again, same sink (commit failed)", func(t *testing.T, f fixture) int {
			s := f.sink(t)
			f.write(t, s, recs[:200])
			f.write(t, s, recs[:200])
			return 200
		}},
		{"crash after insert, before commit: new sink, same batch", func(t *testing.T, f fixture) int {
			f.write(t, f.sink(t), recs[:200])
			f.write(t, f.sink(t), recs[:200])
			return 200
		}},
		{"overlapping batch after a crash", func(t *testing.T, f fixture) int {
			f.write(t, f.sink(t), recs[:200])
			s := f.sink(t)
			f.write(t, s, recs[100:250])
			f.write(t, s, recs[250:])
			return 300
		}},
		{"overlapping batch, same sink", func(t *testing.T, f fixture) int {
			s := f.sink(t)
			f.write(t, s, recs[:200])
			f.write(t, s, recs[150:])
			return 300
		}},
		{"insert acknowledged but the answer lost, then retried", func(t *testing.T, f fixture) int {
			lossy := &lossyConn{Conn: f.conn, written: true}
			s := f.sinkOn(t, lossy)
			f.write(t, s, recs[:100])
			lossy.lose = 1
			err := s.Write(context.Background(), &pipeline.Batch{Records: recs[100:200]})
			if pipeline.ClassOf(err) != pipeline.ClassTransient {
				t.Fatalf("lost answer: %v, want a transient error", err)
			}
			f.write(t, s, recs[100:200]) // the runtime's retry
			return 200
		}},
		{"insert failed before reaching the server, then retried", func(t *testing.T, f fixture) int {
			lossy := &lossyConn{Conn: f.conn, lose: 1}
			s := f.sinkOn(t, lossy)
			if err := s.Write(context.Background(), &pipeline.Batch{Records: recs[:100]}); pipeline.ClassOf(err) != pipeline.ClassTransient {
				t.Fatalf("failed insert: %v, want a transient error", err)
			}
			f.write(t, s, recs[:100])
			return 100
		}},
		{"partial write: part of the batch stored, then the whole batch", func(t *testing.T, f fixture) int {
			// Every other record of the first 120 stored, as if some parts
			// of an insert had been written and others not.
			var c columns
			for i, r := range recs[:120] {
				if i%2 == 0 {
					e, err := decodeRecord(r)
					if err != nil {
						t.Fatal(err)
					}
					c.addEntry(&e)
				}
			}
			if err := c.send(context.Background(), f.conn, insertStatement(f.db)); err != nil {
				t.Fatal(err)
			}
			f.write(t, f.sink(t), recs[:200])
			return 200
		}},
		{"partition revoked, another consumer wrote without committing", func(t *testing.T, f fixture) int {
			a, other := f.sink(t), f.sink(t)
			f.write(t, a, recs[:100])
			f.write(t, other, recs[100:150]) // its commit is aborted by the rebalance
			a.PartitionsRevoked(map[string][]int32{topic: {0}})
			f.write(t, a, recs[100:200]) // the partition is back, from the last commit
			return 200
		}},
		{"no revoke hook: the id check still keeps the rows out", func(t *testing.T, f fixture) int {
			a, other := f.sink(t), f.sink(t)
			f.write(t, a, recs[:100])
			f.write(t, other, recs[100:150])
			f.write(t, a, recs[100:200]) // a thinks partition 0 is known
			return 200
		}},
		{"the same receipts produced again, later, at other offsets", func(t *testing.T, f fixture) int {
			s := f.sink(t)
			f.write(t, s, recs[:100])
			// A producer re-ran: the same receipts with a new timeStamp,
			// on another partition.
			again := make([]*kgo.Record, 0, 100)
			for i := range 100 {
				rc := g.receipt(i)
				at, _ := time.Parse(time.RFC3339Nano, rc.TimeStamp)
				rc.TimeStamp = records.TimeStampOf(at.Add(10 * time.Minute))
				r := records.NewReceiptRecord(topic, rc)
				r.Partition, r.Offset = 5, int64(i)
				again = append(again, r)
			}
			f.write(t, s, again)
			f.write(t, f.sink(t), again) // and after a restart
			return 100
		}},
		{"the same receipt twice in one batch", func(t *testing.T, f fixture) int {
			batch := append(append([]*kgo.Record{}, recs[:50]...), g.records(1, 0, 0, 50, 1)...)
			f.write(t, f.sink(t), batch)
			return 50
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			f.checkExactlyOnce(t, tc.run(t, f))
		})
	}
}

// TestDedupWindow: a copy of a receipt older than the window is a new row
// (the cost of the check is bounded by the window).
func TestDedupWindow(t *testing.T) {
	f := newFixture(t)
	s := f.sink(t)
	rc := gen{}.receipt(0)
	first := records.NewReceiptRecord(topic, rc)
	f.write(t, s, []*kgo.Record{first})
	at, _ := time.Parse(time.RFC3339Nano, rc.TimeStamp)
	rc.TimeStamp = records.TimeStampOf(at.Add(DefaultDedupWindow + time.Minute))
	late := records.NewReceiptRecord(topic, rc)
	late.Offset = 1
	f.write(t, s, []*kgo.Record{late})
	if n := f.uint64(t, "SELECT count() FROM "+f.db+".receipts"); n != 2 {
		t.Fatalf("%d rows, want 2 (the late copy is outside the window)", n)
	}
}

func TestPoisonRecords(t *testing.T) {
	f := newFixture(t)
	s := f.sink(t)
	recs := gen{}.records(1, 0, 0, 10, 1)
	garbage := &kgo.Record{Topic: topic, Partition: 1, Offset: 10, Key: []byte("sys-0"), Value: []byte("not a receipt")}
	mismatch := gen{}.records(1, 11, 10, 1, 1)[0]
	mismatch.Key = []byte("sys-other")

	b := f.write(t, s, append(recs, garbage, mismatch))
	if b.Rejected() != 2 {
		t.Fatalf("rejected %d records, want 2", b.Rejected())
	}
	for code, want := range map[string]float64{CodeDecode: 1, CodeSenderMismatch: 1} {
		var m dto.Metric
		if err := s.metrics.rejected.WithLabelValues(code).Write(&m); err != nil || m.GetCounter().GetValue() != want {
			t.Errorf("rejected{code=%s} = %v, want %v", code, m.GetCounter().GetValue(), want)
		}
	}
	f.checkExactlyOnce(t, 10)
	// A batch of poison only is done (the runtime sends it to the DLQ).
	if b := f.write(t, s, []*kgo.Record{garbage}); b.Rejected() != 1 {
		t.Fatalf("rejected %d, want 1", b.Rejected())
	}
}

func TestFatalErrors(t *testing.T) {
	f := newFixture(t)
	s := f.sink(t)
	g := gen{}
	f.write(t, s, g.records(0, 0, 0, 10, 1))

	t.Run("lineage collision", func(t *testing.T) {
		// Other receipts at the same Kafka positions: the topic was reset.
		other := gen{tx: "reset-"}.records(0, 0, 0, 10, 1)
		err := f.sink(t).Write(context.Background(), &pipeline.Batch{Records: other})
		if !errors.Is(err, ErrLineageCollision) || pipeline.ClassOf(err) != pipeline.ClassFatal {
			t.Fatalf("Write = %v, want fatal ErrLineageCollision", err)
		}
	})
	t.Run("two topics", func(t *testing.T) {
		r := g.records(0, 30, 30, 1, 1)[0]
		r.Topic = "memo.other"
		err := s.Write(context.Background(), &pipeline.Batch{Records: []*kgo.Record{r}})
		if pipeline.ClassOf(err) != pipeline.ClassFatal {
			t.Fatalf("Write = %v, want fatal", err)
		}
	})
	t.Run("table gone", func(t *testing.T) {
		if err := f.conn.Exec(context.Background(), "DROP TABLE "+f.db+".receipts"); err != nil {
			t.Fatal(err)
		}
		err := s.Write(context.Background(), &pipeline.Batch{Records: g.records(0, 10, 10, 10, 1)})
		if pipeline.ClassOf(err) != pipeline.ClassFatal || pipeline.CodeOf(err) != "CLICKHOUSE_60" {
			t.Fatalf("Write = %v (%s), want fatal CLICKHOUSE_60", err, pipeline.CodeOf(err))
		}
	})
}

// recordingPusher records what it is given and fails while fail > 0.
type recordingPusher struct {
	mu     sync.Mutex
	fail   int
	pushed []Pushed
}

func (p *recordingPusher) Push(_ context.Context, rs []Pushed) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fail > 0 {
		p.fail--
		return errors.New("receipt endpoint unreachable")
	}
	p.pushed = append(p.pushed, rs...)
	return nil
}

func TestPusher(t *testing.T) {
	f := newFixture(t)
	p := &recordingPusher{fail: 1}
	s := f.sink(t, WithPusher(p))
	recs := gen{senders: 2}.records(0, 0, 0, 20, 1)

	err := s.Write(context.Background(), &pipeline.Batch{Records: recs})
	if err == nil || pipeline.ClassOf(err) != pipeline.ClassTransient {
		t.Fatalf("Write with a failing pusher = %v, want a transient error", err)
	}
	f.checkExactlyOnce(t, 20) // stored before the push
	f.write(t, s, recs)       // the runtime's retry: nothing inserted, all pushed
	f.checkExactlyOnce(t, 20)
	if len(p.pushed) != 20 {
		t.Fatalf("pushed %d receipts, want 20", len(p.pushed))
	}
	for i, pr := range p.pushed {
		rc := gen{senders: 2}.receipt(i)
		if pr.ID != ID(rc) || pr.SenderSystem != rc.SenderSystem || pr.SenderOrg != rc.SenderOrg || !strings.Contains(string(pr.Body), pr.ID) {
			t.Fatalf("pushed[%d] = %+v", i, pr)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg Config
		ok  bool
	}{
		{Config{Database: "memoflow"}, true},
		{Config{Database: "memoflow", DedupWindow: time.Minute}, true},
		{Config{Database: "a;b"}, false},
		{Config{Database: "memoflow", DedupWindow: -time.Second}, false},
	} {
		if err := tc.cfg.Validate(); (err == nil) != tc.ok {
			t.Errorf("Validate(%+v) = %v", tc.cfg, err)
		}
	}
}

// queuePusher is a RecordPusher: one queue record per receipt, never Push.
type queuePusher struct{ pushCalls int }

func (p *queuePusher) Push(context.Context, []Pushed) error { p.pushCalls++; return nil }
func (p *queuePusher) PushRecords(rs []Pushed) []*kgo.Record {
	out := make([]*kgo.Record, len(rs))
	for i, r := range rs {
		out[i] = &kgo.Record{Topic: "queue", Key: []byte(r.SenderSystem), Value: []byte(r.ID)}
	}
	return out
}

// TestRecordPusherEmitsInBatch: a RecordPusher's queue records are emitted
// in the batch (they commit with its offsets, exactly once), and Push is
// not called; a batch redone after that emits them again only because its
// first transaction did not commit.
func TestRecordPusherEmitsInBatch(t *testing.T) {
	f := newFixture(t)
	p := &queuePusher{}
	s := f.sink(t, WithPusher(p))
	recs := gen{senders: 2}.records(0, 0, 0, 10, 1)
	b := &pipeline.Batch{Records: recs}
	if err := s.Write(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	f.checkExactlyOnce(t, 10)
	if p.pushCalls != 0 || len(b.Outputs()) != 10 {
		t.Fatalf("Push called %d times, %d records emitted; want 0 and 10", p.pushCalls, len(b.Outputs()))
	}
	for i, o := range b.Outputs() {
		if string(o.Value) != ID(gen{senders: 2}.receipt(i)) {
			t.Fatalf("emitted[%d] = %s", i, o.Value)
		}
	}
}
