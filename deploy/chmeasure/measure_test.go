// Package chmeasure measures how well ClickHouse compresses memoflow's event
// log, the figure docs/operations.md sizes five years of storage with.
//
// It is a measurement, not a check, so it only runs when asked:
//
//	scripts/clickhouse.sh start
//	CH_MEASURE=1 go test ./deploy/chmeasure -run TestMeasureEventLogCompression -v -timeout 10m
//
// It creates the real schema (schemas/chddl migrations) in a scratch
// database, inserts CH_MEASURE_ROWS (default 1,000,000) realistic event rows
// in sink-sized batches of 50,000, reads system.parts and system.columns
// before and after OPTIMIZE … FINAL (production parts end up merged), prints
// the figures and drops the database. CLICKHOUSE_ADDR picks another server.
package chmeasure

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/memoflow/memoflow/internal/chconn"
	"github.com/memoflow/memoflow/schemas/chddl"
)

const database = "memoflow_measure"

func TestMeasureEventLogCompression(t *testing.T) {
	if os.Getenv("CH_MEASURE") == "" {
		t.Skip("a measurement, not a check: run with CH_MEASURE=1 (see the package comment)")
	}
	rows := 1_000_000
	if v := os.Getenv("CH_MEASURE_ROWS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("CH_MEASURE_ROWS=%q: want a positive integer", v)
		}
		rows = n
	}
	ctx := context.Background()
	cfg := chconn.DefaultConfig()
	cfg.Database = database
	cfg.ReadTimeout = 5 * time.Minute // OPTIMIZE FINAL of 1M rows on 2 cores
	conn, err := chconn.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+database); err != nil {
		t.Fatal(err)
	}
	defer conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+database) //nolint:errcheck // best-effort cleanup
	res, err := chddl.Migrate(ctx, conn, chddl.Options{Database: database})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("server %s, migrations applied %v, skipped %v", res.Server, res.Applied, res.Skipped)

	start := time.Now()
	g := newGen(1)
	for done := 0; done < rows; {
		n := min(50_000, rows-done)
		if err := insert(ctx, conn, g, n); err != nil {
			t.Fatal(err)
		}
		done += n
	}
	t.Logf("inserted %d rows in %s (%d messages, %.2f events per message)", rows, time.Since(start).Round(time.Millisecond), g.messages, float64(rows)/float64(g.messages))

	report(ctx, t, conn, "after insert (unmerged parts)")
	if err := conn.Exec(ctx, "OPTIMIZE TABLE "+database+".events FINAL"); err != nil {
		t.Fatal(err)
	}
	for _, tbl := range []string{"event_stats_daily", "events_by_message"} {
		if err := conn.Exec(ctx, "OPTIMIZE TABLE "+database+"."+tbl+" FINAL"); err != nil && !strings.Contains(err.Error(), "doesn't exist") {
			t.Fatal(err)
		}
	}
	report(ctx, t, conn, "after OPTIMIZE FINAL (merged, as in steady state)")
}

func report(ctx context.Context, t *testing.T, conn driver.Conn, when string) {
	t.Helper()
	var parts, rows, comp, uncomp, marks, disk uint64
	row := conn.QueryRow(ctx, `SELECT count(), sum(rows), sum(data_compressed_bytes), sum(data_uncompressed_bytes), sum(marks_bytes), sum(bytes_on_disk)
		FROM system.parts WHERE database = ? AND table = 'events' AND active`, database)
	if err := row.Scan(&parts, &rows, &comp, &uncomp, &marks, &disk); err != nil {
		t.Fatal(err)
	}
	t.Logf("== events, %s: %d parts, %d rows", when, parts, rows)
	t.Logf("   uncompressed %d B (%.1f B/row), compressed %d B (%.1f B/row), ratio %.2f", uncomp, float64(uncomp)/float64(rows), comp, float64(comp)/float64(rows), float64(uncomp)/float64(comp))
	t.Logf("   on disk %d B (%.1f B/row, marks and primary index included)", disk, float64(disk)/float64(rows))
	// The tables the materialized views keep beside the event log.
	tabs, err := conn.Query(ctx, `SELECT table, sum(rows), sum(bytes_on_disk) FROM system.parts
		WHERE database = ? AND active AND table != 'events' GROUP BY table ORDER BY table`, database)
	if err != nil {
		t.Fatal(err)
	}
	for tabs.Next() {
		var name string
		var trows, tdisk uint64
		if err := tabs.Scan(&name, &trows, &tdisk); err != nil {
			t.Fatal(err)
		}
		t.Logf("   %s: %d rows, %d B on disk (%.1f B per event row)", name, trows, tdisk, float64(tdisk)/float64(rows))
	}
	tabs.Close()
	cols, err := conn.Query(ctx, `SELECT name, data_compressed_bytes, data_uncompressed_bytes FROM system.columns
		WHERE database = ? AND table = 'events' ORDER BY data_compressed_bytes DESC`, database)
	if err != nil {
		t.Fatal(err)
	}
	defer cols.Close()
	t.Logf("   %-18s %12s %12s %7s", "column", "compressed", "uncompressed", "ratio")
	for cols.Next() {
		var name string
		var c, u uint64
		if err := cols.Scan(&name, &c, &u); err != nil {
			t.Fatal(err)
		}
		ratio := 0.0
		if c > 0 {
			ratio = float64(u) / float64(c)
		}
		t.Logf("   %-18s %12d %12d %7.2f", name, c, u, ratio)
	}
	if err := cols.Err(); err != nil {
		t.Fatal(err)
	}
}

func insert(ctx context.Context, conn driver.Conn, g *gen, n int) error {
	b, err := conn.PrepareBatch(ctx, "INSERT INTO "+database+".events (event_date, event_time, event_ms, sender_org, sender_system, tag, message_uuid, transmission_id, recipient_type, recipient_id, recipient_key_id, contact_point, recipient_system, message_type, post_type, size_bytes, attachments, value_date, receipt_status, error_code, actor, kafka_partition, kafka_offset, event_index)")
	if err != nil {
		return err
	}
	for i := 0; i < n; i++ {
		e := g.next()
		day := time.Date(e.t.Year(), e.t.Month(), e.t.Day(), 0, 0, 0, 0, time.UTC)
		if err := b.Append(day, e.t, uint16(e.t.Nanosecond()/1e6), e.org, e.system, e.tag, e.msg, e.tx,
			e.rtype, e.rid, e.kid, e.contact, e.recipSystem, e.mtype, e.ptype,
			e.size, e.attachments, e.valueDate, e.status, e.code, "", e.partition, e.offset, e.index); err != nil {
			return err
		}
	}
	return b.Send()
}

// row is one event as the eventlog sink writes it.
type row struct {
	t                                     time.Time
	org, system, tag, msg, tx             string
	rtype, rid, kid, contact, recipSystem string
	mtype, ptype, status, code            string
	size                                  uint64
	attachments                           uint16
	valueDate                             time.Time
	partition                             uint32
	offset                                uint64
	index                                 uint16
}

// gen makes a working day of deliveries: 1,500 sending organisations,
// Zipf-skewed (a few authorities send most), 1-4 sender systems each; 60% of
// messages in mass sends sharing a transmission id; 88% CPR recipients
// (64-hex HMAC pseudonyms, incompressible by design), 12% CVR; each
// message produces the events of a real delivery (received, validated,
// technical receipt, available; often notification and read; 2% fail
// validation), about 5 per message.
type gen struct {
	r           *mrand.Rand
	zipf        *mrand.Zipf
	key         []byte
	orgs        []string
	systems     [][]string
	t           time.Time
	offsets     [12]uint64
	pending     []row
	messages    int
	txLeft      int
	tx          string
	mass        bool
	org, system int
}

var (
	recipSystems = []string{"DIGITAL_POST_MAILBOX", "e-Boks", "mit.dk", "NEMSMS_GATEWAY", "PHYSICAL_PRINT"}
	contacts     = []string{"", "a9f0c1e4-6f3c-4c57-9e8b-1d0a2b3c4d5e", "3c2b1a0f-1111-4a2b-8c3d-4e5f60718293", "7d6e5f40-2222-4b3c-9d4e-5f6071829304"}
)

func newGen(seed uint64) *gen {
	r := mrand.New(mrand.NewPCG(seed, 2))
	g := &gen{r: r, zipf: mrand.NewZipf(r, 1.2, 1, 1499), key: make([]byte, 32), t: time.Date(2025, 3, 12, 6, 0, 0, 0, time.UTC)}
	_, _ = rand.Read(g.key)
	for i := 0; i < 1500; i++ {
		g.orgs = append(g.orgs, fmt.Sprintf("%08d", 10000000+r.IntN(89999999)))
		var s []string
		for k := 1 + r.IntN(4); k > 0; k-- {
			s = append(s, g.uuid())
		}
		g.systems = append(g.systems, s)
	}
	return g
}

func (g *gen) uuid() string {
	var b [16]byte
	for i := range b {
		b[i] = byte(g.r.IntN(256))
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func (g *gen) next() row {
	if len(g.pending) == 0 {
		g.message()
	}
	e := g.pending[0]
	g.pending = g.pending[1:]
	return e
}

// message queues the events of one message.
func (g *gen) message() {
	r := g.r
	if g.txLeft == 0 {
		g.org = int(g.zipf.Uint64())
		g.system = r.IntN(len(g.systems[g.org]))
		g.tx = g.uuid()
		g.mass = r.Float64() < 0.6
		g.txLeft = 1
		if g.mass {
			g.txLeft = 20 + r.IntN(400)
		}
	}
	g.txLeft--
	g.messages++
	g.t = g.t.Add(time.Duration(r.ExpFloat64() * float64(50*time.Millisecond)))
	msg := g.uuid()
	rtype, rid, kid := "CPR", "", "k1"
	if r.Float64() < 0.12 {
		rtype, rid, kid = "CVR", fmt.Sprintf("%08d", 10000000+r.IntN(89999999)), ""
	} else {
		h := sha256.Sum256(append(append([]byte(nil), g.key...), fmt.Sprintf("%010d", r.IntN(1e10))...))
		rid = hex.EncodeToString(h[:])
	}
	mtype, ptype := "DIGITALPOST", "MYNDIGHEDSPOST"
	switch x := r.Float64(); {
	case x < 0.03:
		mtype = "NEMSMS"
	case x < 0.06:
		mtype = "PHYSICAL_LETTER"
	}
	if r.Float64() < 0.1 {
		ptype = "VIRKSOMHEDSPOST"
	}
	size := uint64(math.Exp(10.5 + r.NormFloat64()*0.9)) // median ~36 KB, long tail
	att := uint16(r.IntN(3))
	vd := time.Unix(0, 0).UTC()
	if r.Float64() < 0.05 {
		vd = time.Date(g.t.Year(), g.t.Month(), g.t.Day()+1+r.IntN(30), 0, 0, 0, 0, time.UTC)
	}
	rs := recipSystems[r.IntN(len(recipSystems))]
	cp := contacts[r.IntN(len(contacts))]
	tags := []string{"MEMO_SEND_RECEIVED", "MEMO_SEND_VALIDATED", "TECHNICAL_RECEIPT_SENT", "MEMO_AVAILABLE_TO_RECIPIENT"}
	if g.mass {
		tags[0] = "MEMO_MASS_SEND_RECEIVED"
	}
	if r.Float64() < 0.5 {
		tags = append(tags, "NOTIFICATION_SENT")
	}
	if r.Float64() < 0.4 {
		tags = append(tags, "MESSAGE_READ")
	}
	if r.Float64() < 0.02 {
		tags = []string{tags[0], "MEMO_SEND_VALIDATION_FAILED"}
	}
	p := uint32(r.IntN(12))
	et := g.t
	for i, tag := range tags {
		et = et.Add(time.Duration(r.ExpFloat64() * float64(200*time.Millisecond)))
		if tag == "MESSAGE_READ" {
			et = et.Add(time.Duration(r.IntN(6*3600)) * time.Second)
		}
		e := row{t: et, org: g.orgs[g.org], system: g.systems[g.org][g.system], tag: tag, msg: msg, tx: g.tx,
			rtype: rtype, rid: rid, kid: kid, mtype: mtype, ptype: ptype, size: size, attachments: att,
			valueDate: vd, partition: p, offset: g.offsets[p], index: uint16(i)}
		g.offsets[p]++
		if i >= 3 {
			e.recipSystem, e.contact = rs, cp
		}
		switch tag {
		case "TECHNICAL_RECEIPT_SENT":
			e.status = "RECEIVED"
		case "MEMO_SEND_VALIDATION_FAILED":
			e.status, e.code = "INVALID", "MEMO_SCHEMA_INVALID"
		}
		g.pending = append(g.pending, e)
	}
}
