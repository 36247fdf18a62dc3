package eventquery

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/encoding/json"

	"github.com/memoflow/memoflow/pipeline"
	"github.com/memoflow/memoflow/schemas/events"
)

// statsOf returns the statistics answer; it fails unless 200.
func (f *fixture) stats(t testing.TB, who string, q url.Values) StatsPage {
	t.Helper()
	r := f.get(t, who, "/apis/v1/statistics", q, "")
	if r.status != http.StatusOK {
		t.Fatalf("GET /apis/v1/statistics?%s: %d %s", q.Encode(), r.status, r.body)
	}
	var p StatsPage
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatal(err)
	}
	return p
}

// dimOf is a statistics dimension of a test event, as the API shows it.
func dimOf(s stored, dim string) string {
	e := s.ev
	switch dim {
	case "day":
		return e.Time.UTC().Format(time.DateOnly)
	case "month":
		return e.Time.UTC().Format("2006-01")
	case "senderOrganisation":
		return e.SenderOrg
	case "senderSystem":
		return e.SenderSystem
	case "recipientSystem":
		return e.RecipientSystem
	case "contactPoint":
		return e.ContactPoint
	case "messageType":
		return e.MessageType
	case "postType":
		return e.PostType
	case "recipientType":
		return e.Recipient.Type().String()
	case "tag":
		return string(e.Tag)
	case "status":
		return e.ReceiptStatus
	}
	panic(dim)
}

// rawColumn is the events column behind a dimension.
var rawColumn = map[string]string{
	"day": "toString(event_date)", "month": "toString(toYYYYMM(event_date))", "senderOrganisation": "sender_org",
	"senderSystem": "sender_system", "recipientSystem": "recipient_system", "contactPoint": "contact_point",
	"messageType": "message_type", "postType": "post_type", "recipientType": "recipient_type", "tag": "tag",
	"status": "receipt_status",
}

type sums struct{ events, bytes uint64 }

// rawGroups counts the events table itself, GROUP BY the same columns:
// the truth the summing view must agree with.
func (f *fixture) rawGroups(t testing.TB, dims []string, where string) map[string]sums {
	t.Helper()
	sel := []string{}
	for _, d := range dims {
		sel = append(sel, rawColumn[d])
	}
	key := "''"
	if len(sel) > 0 {
		key = "concat(" + strings.Join(append(slices.Clone(sel), "''"), ", '|', ") + ")"
	}
	q := fmt.Sprintf("SELECT %s AS k, count(), sum(size_bytes) FROM %s.events WHERE %s GROUP BY k", key, f.db, where)
	rows, err := f.conn.Query(context.Background(), q)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	out := map[string]sums{}
	for rows.Next() {
		var k string
		var s sums
		if err := rows.Scan(&k, &s.events, &s.bytes); err != nil {
			t.Fatal(err)
		}
		if slices.Contains(dims, "month") { // 202610 -> 2026-10, as the API shows it
			parts := strings.Split(k, "|")
			i := slices.Index(dims, "month")
			parts[i] = parts[i][:4] + "-" + parts[i][4:]
			k = strings.Join(parts, "|")
		}
		out[k] = s
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func apiGroups(p StatsPage) map[string]sums {
	out := map[string]sums{}
	for _, r := range p.Rows {
		var parts []string
		for _, d := range p.Dimensions {
			parts = append(parts, r.Key[d])
		}
		k := strings.Join(append(parts, ""), "|")
		if len(parts) == 0 {
			k = ""
		}
		out[k] = sums{r.Events, r.SizeBytes}
	}
	return out
}

// goGroups counts the test data in Go.
func (f *fixture) goGroups(dims []string, keep func(stored) bool) map[string]sums {
	out := map[string]sums{}
	for _, s := range f.data {
		if !keep(s) {
			continue
		}
		var parts []string
		for _, d := range dims {
			parts = append(parts, dimOf(s, d))
		}
		k := strings.Join(append(parts, ""), "|")
		if len(parts) == 0 {
			k = ""
		}
		g := out[k]
		g.events++
		g.bytes += s.ev.Size
		out[k] = g
	}
	return out
}

// TestStatistics checks that the statistics, read from the summing view,
// equal counts of the raw events (in ClickHouse and in Go) for every
// dimension, alone and together, with filters and access rules; also
// after a second insert leaves unmerged rows with the same keys.
func TestStatistics(t *testing.T) {
	f := newFixture(t)
	whole := url.Values{"dateFrom": {"2026-10-01"}, "dateTo": {"2026-11-30"}}
	with := func(kv ...string) url.Values {
		q := url.Values{}
		maps.Copy(q, whole)
		for i := 0; i+1 < len(kv); i += 2 {
			q.Set(kv[i], kv[i+1])
		}
		return q
	}
	type tc struct {
		name  string
		who   string
		q     url.Values
		dims  []string
		where string // on events, for the raw count
		keep  func(stored) bool
	}
	cases := []tc{
		{"no dimension: the total", "operator", whole, nil, "1", everything},
		{"default period: the last 30 days", "operator", url.Values{"dimensions": {"day"}}, []string{"day"}, "event_date >= '2026-10-14'", everything},
		{"senderOrganisation", "operator", with("dimensions", "senderOrganisation"), []string{"senderOrganisation"}, "1", everything},
		{"operator filters an organisation", "operator", with("dimensions", "tag", "senderOrganisation", orgB), []string{"tag"}, "sender_org = '" + orgB + "'", sentBy(orgB)},
		{"organisation A sees its own", "logA", with("dimensions", "senderOrganisation,senderSystem"), []string{"senderOrganisation", "senderSystem"}, "sender_org = '" + orgA + "'", sentBy(orgA)},
		{"organisation A may name itself", "logA", with("dimensions", "day", "senderOrganisation", orgA), []string{"day"}, "sender_org = '" + orgA + "'", sentBy(orgA)},
		{"tag and status filters", "operator", with("dimensions", "eventTag,receiptStatus", "eventTag", "MEMO_SEND_RECEIVED,MEMO_SEND_VALIDATION_FAILED", "status", "INVALID"),
			[]string{"tag", "status"}, "tag IN ('MEMO_SEND_RECEIVED','MEMO_SEND_VALIDATION_FAILED') AND receipt_status = 'INVALID'",
			and(tagIs(events.MemoSendReceived, events.MemoSendValidationFailed), func(s stored) bool { return s.ev.ReceiptStatus == "INVALID" })},
		{"message and post types", "operator", with("dimensions", "messageType,postType,recipientType"), []string{"messageType", "postType", "recipientType"}, "1", everything},
		{"systems and contact points", "operator", with("dimensions", "senderSystem,recipientSystem,contactPoint", "recipientSystem", "rsA,rsB"),
			[]string{"senderSystem", "recipientSystem", "contactPoint"}, "recipient_system IN ('rsA','rsB')",
			func(s stored) bool { return s.ev.RecipientSystem == "rsA" || s.ev.RecipientSystem == "rsB" }},
		{"contact point filter", "operator", with("dimensions", "contactPoint", "contactPoint", "cpA"), []string{"contactPoint"}, "contact_point = 'cpA'",
			func(s stored) bool { return s.ev.ContactPoint == "cpA" }},
		{"month", "operator", with("dimensions", "month,messageType", "messageType", "NEMSMS"), []string{"month", "messageType"}, "message_type = 'NEMSMS'",
			func(s stored) bool { return s.ev.MessageType == "NEMSMS" }},
		{"one day", "operator", url.Values{"dateFrom": {"2026-10-30"}, "dateTo": {"2026-10-30"}, "dimensions": {"day,tag"}}, []string{"day", "tag"}, "event_date = '2026-10-30'",
			func(s stored) bool { return s.ev.Time.Format(time.DateOnly) == "2026-10-30" }},
		{"every dimension", "operator", with("dimensions", "day,senderOrganisation,senderSystem,recipientSystem,contactPoint,messageType,postType,recipientType,tag,status"),
			[]string{"day", "senderOrganisation", "senderSystem", "recipientSystem", "contactPoint", "messageType", "postType", "recipientType", "tag", "status"}, "1", everything},
	}
	check := func(t *testing.T, c tc, extra int) {
		p := f.stats(t, c.who, c.q)
		f.audits(t, 1)
		raw := f.rawGroups(t, c.dims, c.where)
		got := apiGroups(p)
		if !maps.Equal(got, raw) {
			t.Fatalf("statistics %v\nraw events %v", got, raw)
		}
		if extra == 0 {
			if want := f.goGroups(c.dims, c.keep); !maps.Equal(got, want) {
				t.Fatalf("statistics %v\ntest data %v", got, want)
			}
		}
		var total sums
		for _, s := range raw {
			total.events += s.events
			total.bytes += s.bytes
		}
		if p.Totals.Events != total.events || p.Totals.SizeBytes != total.bytes || total.events == 0 {
			t.Fatalf("totals %+v, raw %+v", p.Totals, total)
		}
		if !slices.Equal(p.Dimensions, c.dims) && !(len(c.dims) == 0 && len(p.Dimensions) == 0) {
			t.Errorf("dimensions %v, want %v", p.Dimensions, c.dims)
		}
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { check(t, c, 0) })
	}

	// Write the data again under other offsets: every statistics key now
	// has rows in two parts that have not merged, which a reader must sum.
	recs, _ := genData()
	for _, r := range recs {
		r.Partition += 100
	}
	if err := f.sink.Write(context.Background(), &pipeline.Batch{Records: recs}); err != nil {
		t.Fatal(err)
	}
	var parts uint64
	if err := f.conn.QueryRow(context.Background(), "SELECT count() FROM system.parts WHERE database = ? AND table = 'event_stats_daily' AND active", f.db).Scan(&parts); err != nil {
		t.Fatal(err)
	}
	t.Logf("event_stats_daily has %d active parts", parts)
	for _, c := range cases {
		t.Run("twice/"+c.name, func(t *testing.T) { check(t, c, 1) })
	}

	t.Run("CSV", func(t *testing.T) {
		q := with("dimensions", "month,tag", "format", "csv")
		r := f.get(t, "operator", "/apis/v1/statistics", q, "")
		f.audits(t, 1)
		recs := parseCSV(t, r.body)
		if !slices.Equal(recs[0], []string{"month", "tag", "events", "sizeBytes"}) {
			t.Fatalf("header %v", recs[0])
		}
		raw := f.rawGroups(t, []string{"month", "tag"}, "1")
		if len(recs)-1 != len(raw) {
			t.Fatalf("%d rows, want %d", len(recs)-1, len(raw))
		}
		for _, rec := range recs[1:] {
			n, _ := strconv.ParseUint(rec[2], 10, 64)
			if s := raw[rec[0]+"|"+rec[1]+"|"]; s.events != n {
				t.Errorf("row %v: raw count %d", rec, s.events)
			}
		}
		r = f.get(t, "operator", "/apis/v1/statistics", with("dimensions", "tag"), "text/csv")
		f.audits(t, 1)
		if !strings.HasPrefix(r.header.Get("Content-Type"), "text/csv") {
			t.Errorf("Accept text/csv gave %s", r.header.Get("Content-Type"))
		}
	})
}
