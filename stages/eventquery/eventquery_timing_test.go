package eventquery

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/memoflow/memoflow/internal/auth"
	"github.com/memoflow/memoflow/internal/chconn"
	"github.com/memoflow/memoflow/internal/chconn/chtest"
	"github.com/memoflow/memoflow/schemas/chddl"
)

// The benchmark's data set lives in its own database and is kept between
// runs: generating 100M events takes minutes, querying them milliseconds.
// DROP DATABASE memoflow_bench to generate it again.
const (
	benchChunk = 10_000_000
	// benchBigOrg sends about 10% of all messages (org index 0 of the
	// skewed distribution); benchSmallOrg about 0.15% (index 100).
	benchBigOrg   = "10000000"
	benchSmallOrg = "10000100"
)

var (
	benchRows  = flag.Int64("eventquery.rows", 100_000_000, "events in the data set of BenchmarkQueries (a multiple of 10M)")
	benchDBArg = flag.String("eventquery.db", "memoflow_bench", "database of BenchmarkQueries' data set, kept between runs")
)

// benchSQL generates one chunk of events inside ClickHouse: message m has
// four events (n = 4m+j); messages are spread evenly over 2025; sender
// organisations are skewed like real traffic (org index = 1000·u³ for a
// uniform u: index 0 sends 10%, the median organisation 0.03%); 85% of
// recipients are persons (a 64-hex pseudonym out of 4.4M), 15% companies
// (200k companies, 10% of them with a recipient system) or authorities
// (300, each with 3 recipient systems and 40 contact points, 80% authority
// post); 95% DIGITALPOST, 4% NEMSMS,
// 1% PHYSICAL_LETTER; 2% fail validation and 1% of system deliveries fail
// once. kafka_partition is the chunk number, so a chunk is known to be
// complete by counting it. Every function here exists on 18.16 and 24+.
const benchSQL = `INSERT INTO %[1]s.events (event_date, event_time, event_ms, sender_org, sender_system, tag,
  message_uuid, transmission_id, recipient_type, recipient_id, recipient_key_id, contact_point, recipient_system,
  message_type, post_type, size_bytes, attachments, value_date, receipt_status, error_code, actor,
  kafka_partition, kafka_offset, event_index)
SELECT
  toDate(t), t, toUInt16(n %% 1000),
  toString(10000000 + org), concat('sys-', toString(org), '-', toString(m %% 3)),
  multiIf(j = 0, if(m %% 5 = 0, 'MEMO_MASS_SEND_RECEIVED', 'MEMO_SEND_RECEIVED'),
          j = 1, if(invalid, 'MEMO_SEND_VALIDATION_FAILED', 'MEMO_SEND_VALIDATED'),
          j = 2, multiIf(invalid, 'TECHNICAL_RECEIPT_SENT', pushfail, 'MEMO_SEND_SENT_TO_RECIPIENT_SYSTEM_FAILED',
                         rs = '', 'MEMO_AVAILABLE_TO_RECIPIENT',
                         cityHash64(m, 12) %% 2 = 0, 'MEMO_SEND_SENT_TO_RECIPIENT_SYSTEM', 'MEMO_SEND_READY_FOR_FETCH'),
          'BUSINESS_RECEIPT_CREATED'),
  UUIDNumToString(toFixedString(concat(reinterpretAsString(cityHash64(m, 10)), reinterpretAsString(cityHash64(m, 11))), 16)),
  concat('tx-', toString(intDiv(m, 1000))),
  if(is_cpr, 'CPR', 'CVR'),
  if(is_cpr, lower(concat(hex(cityHash64(p, 1)), hex(cityHash64(p, 2)), hex(cityHash64(p, 3)), hex(cityHash64(p, 4)))), cvr),
  if(is_cpr, 'k1', ''),
  cp, rs,
  multiIf(mt < 95, 'DIGITALPOST', mt < 99, 'NEMSMS', 'PHYSICAL_LETTER'),
  pt,
  2000 + cityHash64(m, 8) %% 500000, toUInt16(cityHash64(m, 9) %% 4), toDate('1970-01-01'),
  multiIf(j = 0, 'RECEIVED', j = 1 AND invalid, 'INVALID', j = 3, 'COMPLETED', ''),
  multiIf(j = 1 AND invalid, 'MEMO_XSD_INVALID', j = 2 AND pushfail, 'DELIVERY_HTTP_503', ''),
  '',
  toUInt32(%[2]d), n, toUInt16(j)
FROM (
  SELECT
    number + %[3]d AS n, intDiv(n, 4) AS m, n %% 4 AS j,
    toUInt32(pow((cityHash64(m, 1) %% 1000000) / 1000000, 3) * 1000) AS org,
    cityHash64(m, 2) %% 100 < 85 AS is_cpr,
    cityHash64(m, 3) %% 4400000 AS p,
    cityHash64(m, 5) %% 10 < 2 AS to_authority,
    if(to_authority, cityHash64(m, 4) %% 300, cityHash64(m, 4) %% 200000) AS rn,
    toString(if(to_authority, 29000000, 20000000) + rn) AS cvr,
    multiIf(is_cpr, '', to_authority, concat('rs-', toString(rn), '-', toString(cityHash64(m, 6) %% 3)),
            rn %% 10 = 0, concat('rs-c', toString(rn)), '') AS rs,
    multiIf(is_cpr, 'MYNDIGHEDSPOST', to_authority AND cityHash64(m, 13) %% 10 < 8, 'MYNDIGHEDSPOST', 'VIRKSOMHEDSPOST') AS pt,
    if(NOT is_cpr AND to_authority AND pt = 'MYNDIGHEDSPOST', concat('cp-', toString(rn), '-', toString(cityHash64(m, 6) %% 40)), '') AS cp,
    cityHash64(m, 7) %% 100 AS mt,
    m %% 50 = 7 AS invalid,
    rs != '' AND m %% 100 = 13 AS pushfail,
    toDateTime(1735689600 + intDiv(m * 31536000, %[4]d) + j * (30 + cityHash64(m, 14) %% 300)) AS t
  FROM numbers(%[5]d)
)`

// benchUUID is the messageUUID benchSQL gives message m.
const benchUUID = `SELECT UUIDNumToString(toFixedString(concat(reinterpretAsString(cityHash64(m, 10)), reinterpretAsString(cityHash64(m, 11))), 16)),
  toString(toDate(toDateTime(1735689600 + intDiv(m * 31536000, %d)))) FROM (SELECT toUInt64(%d) AS m)`

// benchData makes sure memoflow_bench holds *benchRows events, generating
// the missing 10M chunks, and returns a connection with a read timeout
// long enough for one chunk's INSERT … SELECT.
func benchData(b *testing.B) (driver.Conn, chconn.Version, string) {
	benchDB := *benchDBArg
	if !chconn.IsIdentifier(benchDB) {
		b.Fatalf("-eventquery.db=%q is not an identifier", benchDB)
	}
	_, cfg := chtest.Conn(b) // starts a local server if needed, or skips
	cfg.ReadTimeout = time.Hour
	cfg.Database = benchDB
	ctx := context.Background()
	conn, err := chconn.Open(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close() })
	v, err := chconn.ServerVersion(conn)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := chddl.Migrate(ctx, conn, chddl.Options{Database: benchDB}); err != nil {
		b.Fatal(err)
	}
	if *benchRows%benchChunk != 0 || *benchRows <= 0 {
		b.Fatalf("-eventquery.rows=%d is not a positive multiple of %d", *benchRows, benchChunk)
	}
	have := map[uint32]uint64{}
	rows, err := conn.Query(ctx, "SELECT kafka_partition, count() FROM "+benchDB+".events GROUP BY kafka_partition")
	if err != nil {
		b.Fatal(err)
	}
	for rows.Next() {
		var p uint32
		var n uint64
		if err := rows.Scan(&p, &n); err != nil {
			b.Fatal(err)
		}
		have[p] = n
	}
	rows.Close()
	messages := *benchRows / 4
	for k := range uint32(*benchRows / benchChunk) {
		switch have[k] {
		case benchChunk:
			continue
		case 0:
		default:
			b.Fatalf("%s holds %d of the %d events of chunk %d (an interrupted run): DROP DATABASE %s and run again", benchDB, have[k], benchChunk, k, benchDB)
		}
		start := time.Now()
		q := fmt.Sprintf(benchSQL, benchDB, k, int64(k)*benchChunk, messages, benchChunk)
		if err := conn.Exec(ctx, q); err != nil {
			b.Fatalf("generate chunk %d: %v", k, err)
		}
		d := time.Since(start)
		fmt.Printf("generated chunk %d: %d events in %v (%.0f rows/s, materialized views included)\n", k, benchChunk, d.Round(time.Millisecond), benchChunk/d.Seconds())
	}
	var total uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM "+benchDB+".events").Scan(&total); err != nil {
		b.Fatal(err)
	}
	if total != uint64(*benchRows) {
		b.Fatalf("%s.events has %d rows, want %d", benchDB, total, *benchRows)
	}
	return conn, v, benchDB
}

// BenchmarkQueries measures the APIs over 100M events, end to end (HTTP,
// authentication, the audit event to an in-process Kafka, ClickHouse,
// JSON): statistics of one organisation for one month, and one message's
// events. Each sub-benchmark reports p50 and p99 in ms.
//
//	go test -run '^$' -bench Queries -benchtime 50x ./stages/eventquery/
//
// The first run generates the data set (minutes); later runs reuse it.
func BenchmarkQueries(b *testing.B) {
	conn, v, benchDB := benchData(b)
	messages := *benchRows / 4
	var uuid, day string
	// The message whose trail is looked up: one in the middle of the year.
	if err := conn.QueryRow(context.Background(), fmt.Sprintf(benchUUID, messages, messages/2+1234)).Scan(&uuid, &day); err != nil {
		b.Fatal(err)
	}
	fmt.Printf("ClickHouse %s, %s: %d events; %s\n", v, benchDB, *benchRows, tableSizes(b, conn, benchDB))

	f := &fixture{conn: conn, db: benchDB}
	testPrincipals["bigOrg"] = auth.Principal{ID: "log-big", Org: benchBigOrg, Roles: []auth.Role{auth.RoleLogMessages}}
	testPrincipals["smallOrg"] = auth.Principal{ID: "log-small", Org: benchSmallOrg, Roles: []auth.Role{auth.RoleLogMessages}}
	// A supplier whose standard system authority 29000005 selected for its
	// three recipient systems (benchSQL's rs-<rn>-<0..2>).
	testPrincipals["supplier"] = auth.Principal{ID: "sup", Org: orgS, Roles: []auth.Role{auth.RoleSupplier}}
	b.Cleanup(func() {
		delete(testPrincipals, "bigOrg")
		delete(testPrincipals, "smallOrg")
		delete(testPrincipals, "supplier")
	})
	f.serve(b, func(d *Deps) {
		d.Now = time.Now
		d.Selections = fakeSelections{orgS: {"rs-5-0", "rs-5-1", "rs-5-2"}}
	})
	p50s := map[string]time.Duration{}

	month := url.Values{"dateFrom": {"2025-06-01"}, "dateTo": {"2025-06-30"}}
	with := func(q url.Values, kv ...string) url.Values {
		c := url.Values{}
		for k, v := range q {
			c[k] = v
		}
		for i := 0; i+1 < len(kv); i += 2 {
			c.Set(kv[i], kv[i+1])
		}
		return c
	}
	for _, bc := range []struct {
		name   string
		who    string
		path   string
		q      url.Values
		target time.Duration
	}{
		{"stats/big-org/month/day,tag", "bigOrg", "/apis/v1/statistics", with(month, "dimensions", "day,tag"), 100 * time.Millisecond},
		{"stats/big-org/month/all-dimensions", "bigOrg", "/apis/v1/statistics",
			with(month, "dimensions", "day,senderSystem,recipientSystem,contactPoint,messageType,postType,recipientType,tag,status"), 100 * time.Millisecond},
		{"stats/small-org/month/day,tag", "smallOrg", "/apis/v1/statistics", with(month, "dimensions", "day,tag"), 100 * time.Millisecond},
		{"stats/operator/month/senderOrganisation", "operator", "/apis/v1/statistics", with(month, "dimensions", "senderOrganisation"), 0},
		{"message/proof", "operator", "/apis/v1/events/" + uuid + "/proof", nil, 50 * time.Millisecond},
		{"message/events?messageUUID", "operator", "/apis/v1/events", url.Values{"messageUUID": {uuid}, "dateFrom": {day}}, 50 * time.Millisecond},
		{"events/big-org/sent/one-day", "bigOrg", "/apis/v1/events", url.Values{"dateFrom": {"2025-06-10"}, "dateTo": {"2025-06-10"}, "direction": {"sent"}}, 0},
		{"events/small-org/sent+received/one-day", "smallOrg", "/apis/v1/events", url.Values{"dateFrom": {"2025-06-10"}, "dateTo": {"2025-06-10"}}, 0},
		// A supplier's view: recipient_system IN (its selections), which no
		// key covers; against the organisation searches above.
		{"events/supplier-3-selections/one-day", "supplier", "/apis/v1/events", url.Values{"dateFrom": {"2025-06-10"}, "dateTo": {"2025-06-10"}}, 0},
		{"stats/supplier-3-selections/month/day,tag", "supplier", "/apis/v1/statistics", with(month, "dimensions", "day,tag"), 100 * time.Millisecond},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var times []time.Duration
			for b.Loop() {
				start := time.Now()
				r := f.get(b, bc.who, bc.path, bc.q, "")
				times = append(times, time.Since(start))
				if r.status != http.StatusOK {
					b.Fatalf("%d %s", r.status, r.body)
				}
				if strings.HasPrefix(bc.name, "message/") && strings.Count(string(r.body), `"eventTag"`) != 4 {
					b.Fatalf("the message's 4 events are not in the answer: %s", r.body)
				}
			}
			p50, p99 := percentile(times, 0.50), percentile(times, 0.99)
			p50s[bc.name] = p50
			b.ReportMetric(ms(p50), "p50-ms")
			b.ReportMetric(ms(p99), "p99-ms")
			verdict := ""
			if bc.target > 0 {
				verdict = fmt.Sprintf(" (target p50 < %v: %s)", bc.target, map[bool]string{true: "met", false: "MISSED"}[p50 < bc.target])
			}
			fmt.Printf("%-45s n=%-4d p50 %7.1f ms  p99 %7.1f ms%s\n", bc.name, len(times), ms(p50), ms(p99), verdict)
		})
	}

	for _, r := range [][2]string{
		{"events/supplier-3-selections/one-day", "events/small-org/sent+received/one-day"},
		{"stats/supplier-3-selections/month/day,tag", "stats/small-org/month/day,tag"},
	} {
		if a, base := p50s[r[0]], p50s[r[1]]; a > 0 && base > 0 {
			fmt.Printf("%-45s p50 %.2f× %s (same run)\n", r[0], float64(a)/float64(base), r[1])
		}
	}

	// Why the lookup table exists: the same message found without it.
	b.Run("message/without-lookup-table", func(b *testing.B) {
		var times []time.Duration
		for b.Loop() {
			start := time.Now()
			var n uint64
			if err := conn.QueryRow(context.Background(), "SELECT count() FROM "+benchDB+".events WHERE message_uuid = ?", uuid).Scan(&n); err != nil {
				b.Fatal(err)
			}
			times = append(times, time.Since(start))
			if n != 4 {
				b.Fatalf("%d events of the message, want 4", n)
			}
		}
		b.ReportMetric(ms(percentile(times, 0.5)), "p50-ms")
		fmt.Printf("%-45s n=%-4d p50 %7.1f ms  p99 %7.1f ms (a full scan of message_uuid)\n", "message/without-lookup-table", len(times),
			ms(percentile(times, 0.5)), ms(percentile(times, 0.99)))
	})
}

func tableSizes(b *testing.B, conn driver.Conn, benchDB string) string {
	rows, err := conn.Query(context.Background(), `SELECT table, sum(rows), sum(bytes) FROM system.parts
		WHERE database = ? AND active GROUP BY table ORDER BY table`, benchDB)
	if err != nil {
		b.Fatal(err)
	}
	defer rows.Close()
	var parts []string
	for rows.Next() {
		var t string
		var n, by uint64
		if err := rows.Scan(&t, &n, &by); err != nil {
			b.Fatal(err)
		}
		parts = append(parts, fmt.Sprintf("%s %d rows %.1f GB", t, n, float64(by)/1e9))
	}
	return strings.Join(parts, ", ")
}

func percentile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(q*float64(len(s))+0.5) - 1
	i = max(0, min(i, len(s)-1))
	return s[i]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
