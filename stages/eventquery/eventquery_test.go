package eventquery

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/encoding/json"

	"github.com/memoflow/memoflow/internal/auth"
	"github.com/memoflow/memoflow/pipeline"
	"github.com/memoflow/memoflow/schemas/events"
)

// inTime keeps events whose time, in whole seconds as ClickHouse keeps it,
// is in [from, to).
func inTime(from, to string) func(stored) bool {
	parse := func(s string) time.Time {
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			panic(err)
		}
		return t
	}
	f, t := parse(from), parse(to)
	return func(s stored) bool {
		ts := s.ev.Time.Truncate(time.Second)
		return !ts.Before(f) && ts.Before(t)
	}
}

func tagIs(tags ...events.Tag) func(stored) bool {
	return func(s stored) bool { return slices.Contains(tags, s.ev.Tag) }
}

func systemIs(sys string) func(stored) bool {
	return func(s stored) bool { return s.ev.SenderSystem == sys || s.ev.RecipientSystem == sys }
}

// personIs keeps events addressed to the person, under any key.
func personIs(cpr string) func(stored) bool {
	var ids []string
	for _, r := range testPseudonymizer.Pseudonyms(events.CPR, cpr) {
		ids = append(ids, r.ID())
	}
	return func(s stored) bool { return slices.Contains(ids, s.ev.Recipient.ID()) }
}

func msgIs(i int) func(stored) bool { return func(s stored) bool { return s.msg == i } }

// TestEventsParameters checks every parameter of GET /apis/v1/events
// against the same filter applied to the data in Go.
func TestEventsParameters(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		name string
		who  string
		q    url.Values
		want func(stored) bool
	}{
		{"whole period", "operator", all(), everything},
		{"default: the last 7 days", "operator", url.Values{"size": {"1000"}},
			inTime("2026-11-05T00:00:01Z", "2026-11-12T00:00:01Z")},
		{"dates: dateTo is included", "operator", url.Values{"dateFrom": {"2026-10-29"}, "dateTo": {"2026-10-30"}, "size": {"1000"}},
			inTime("2026-10-29T00:00:00Z", "2026-10-31T00:00:00Z")},
		{"times: dateTo is exclusive", "operator", url.Values{"dateFrom": {"2026-10-28T07:00:00Z"}, "dateTo": {"2026-10-28T14:00:01Z"}},
			inTime("2026-10-28T07:00:00Z", "2026-10-28T14:00:01Z")},
		{"time with a zone", "operator", url.Values{"dateFrom": {"2026-10-28T09:00:00+02:00"}, "dateTo": {"2026-10-28T16:00:01+02:00"}},
			inTime("2026-10-28T07:00:00Z", "2026-10-28T14:00:01Z")},
		{"only dateFrom: 7 days from it", "operator", url.Values{"dateFrom": {"2026-11-08"}, "size": {"1000"}},
			inTime("2026-11-08T00:00:00Z", "2026-11-15T00:00:00Z")},
		{"only dateTo: 7 days up to it", "operator", url.Values{"dateTo": {"2026-10-31"}, "size": {"1000"}},
			inTime("2026-10-25T00:00:00Z", "2026-11-01T00:00:00Z")},
		{"recipient system", "operator", all("senderOrRecipientSystem", "rsB"), systemIs("rsB")},
		{"sender system", "operator", all("senderOrRecipientSystem", "sysA1"), systemIs("sysA1")},
		{"organisation", "operator", all("senderOrRecipient", orgB), visibleTo(orgB)},
		{"organisation sent", "operator", all("senderOrRecipient", orgB, "direction", "sent"), sentBy(orgB)},
		{"organisation received", "operator", all("senderOrRecipient", orgB, "direction", "received"), receivedBy(orgB)},
		{"one tag", "operator", all("eventTag", "MEMO_SEND_VALIDATION_FAILED"), tagIs(events.MemoSendValidationFailed)},
		{"tag list", "operator", all("eventTag", "MEMO_SEND_RECEIVED,MEMO_AVAILABLE_TO_RECIPIENT"),
			tagIs(events.MemoSendReceived, events.MemoAvailableToRecipient)},
		{"repeated tag", "operator", func() url.Values {
			q := all()
			q["eventTag"] = []string{"MEMO_SEND_VALIDATED", "MEMO_SEND_SENT_TO_RECIPIENT_SYSTEM"}
			return q
		}(), tagIs(events.MemoSendValidated, events.MemoSendSentToRecipientSystem)},
		{"messageUUID", "operator", all("messageUUID", messageUUID(5)), msgIs(5)},
		{"messageUUID and tag", "operator", all("messageUUID", messageUUID(5), "eventTag", "MEMO_SEND_RECEIVED"),
			and(msgIs(5), tagIs(events.MemoSendReceived))},
		{"messageUUID outside the dates", "operator", url.Values{"messageUUID": {messageUUID(5)}, "dateFrom": {"2026-11-01"}}, func(stored) bool { return false }},
		{"unknown messageUUID", "operator", all("messageUUID", "7e0fffff-0000-4000-8000-000000000000"), func(stored) bool { return false }},
		{"person (CPR), every key", "opSearch", all("senderOrRecipient", cprs[0]), personIs(cprs[0])},
		{"person with a dash", "opSearch", all("senderOrRecipient", cprs[1][:6]+"-"+cprs[1][6:]), personIs(cprs[1])},
		{"everything at once", "opSearch", all("senderOrRecipient", cprs[3], "senderOrRecipientSystem", "sysA1",
			"eventTag", "MEMO_SEND_RECEIVED", "dateFrom", "2026-10-28", "dateTo", "2026-11-05"),
			and(personIs(cprs[3]), systemIs("sysA1"), tagIs(events.MemoSendReceived), inTime("2026-10-28T00:00:00Z", "2026-11-06T00:00:00Z"))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := f.expect(tc.want)
			if len(want) == 0 && !strings.Contains(tc.name, "messageUUID") {
				t.Fatal("the case selects nothing: it tests nothing")
			}
			p := f.search(t, tc.who, tc.q)
			equalIDs(t, "events", ids(p), want)
			t.Logf("%d events", len(want))
			if p.TotalElements != uint64(len(want)) {
				t.Errorf("totalElements %d, want %d", p.TotalElements, len(want))
			}
			f.audits(t, 1)
		})
	}
}

// TestSort checks sortFields against the same order made in Go; every
// order ends with the lineage, so it is total.
func TestSort(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		sort string
		less func(a, b stored) int // <0: a first
	}{
		{"eventTime:asc", func(a, b stored) int { return a.ev.Time.Compare(b.ev.Time) }},
		{"eventTime", func(a, b stored) int { return a.ev.Time.Compare(b.ev.Time) }},
		{"eventTime:desc", func(a, b stored) int { return b.ev.Time.Compare(a.ev.Time) }},
		{"size:asc", func(a, b stored) int { return cmpU(a.ev.Size, b.ev.Size) }},
		{"eventTag:asc,eventTime:desc", func(a, b stored) int {
			if c := strings.Compare(string(a.ev.Tag), string(b.ev.Tag)); c != 0 {
				return c
			}
			return b.ev.Time.Compare(a.ev.Time)
		}},
		{"senderOrganisation:desc,messageUUID:asc", func(a, b stored) int {
			if c := strings.Compare(b.ev.SenderOrg, a.ev.SenderOrg); c != 0 {
				return c
			}
			return strings.Compare(a.ev.MessageUUID, b.ev.MessageUUID)
		}},
	} {
		t.Run(tc.sort, func(t *testing.T) {
			sel := slices.Clone(f.data)
			sort.SliceStable(sel, func(i, j int) bool {
				if c := tc.less(sel[i], sel[j]); c != 0 {
					return c < 0
				}
				return lessLineage(sel[i], sel[j], false)
			})
			want := make([]string, len(sel))
			for i, s := range sel {
				want[i] = s.id()
			}
			equalIDs(t, "order", ids(f.search(t, "operator", all("sortFields", tc.sort))), want)
		})
	}
}

func cmpU(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// TestPaging walks every page and checks they add up to the whole answer,
// without repeats or gaps, with the NgDP paging fields.
func TestPaging(t *testing.T) {
	f := newFixture(t)
	want := f.expect(everything)
	for _, size := range []int{1, 7, 50, len(want), 1000} {
		var got []string
		pages := (len(want) + size - 1) / size
		for page := 0; page <= pages; page++ { // one past the last: empty
			q := all("size", strconv.Itoa(size), "page", strconv.Itoa(page))
			p := f.search(t, "operator", q)
			if p.Page != page || p.Size != size || p.TotalElements != uint64(len(want)) || p.TotalPages != uint64(pages) {
				t.Fatalf("size %d page %d: paging fields %+v, want %d elements in %d pages", size, page, p, len(want), pages)
			}
			if page == pages && len(p.Content) != 0 {
				t.Fatalf("size %d: page %d past the end has %d events", size, page, len(p.Content))
			}
			got = append(got, ids(p)...)
			if size == 1 && page == 3 {
				break // enough for size 1; the rest is the same
			}
		}
		if size == 1 {
			equalIDs(t, "size 1", got, want[:4])
			continue
		}
		equalIDs(t, "size "+strconv.Itoa(size), got, want)
	}
}

// TestCSV checks both ways to ask for CSV and that it holds what JSON does.
func TestCSV(t *testing.T) {
	f := newFixture(t)
	q := all("senderOrRecipientSystem", "rsA", "size", "10", "page", "1")
	jp := f.search(t, "operator", q)
	for _, tc := range []struct {
		name   string
		q      url.Values
		accept string
	}{
		{"Accept header", q, "text/csv"},
		{"format parameter", func() url.Values { c := url.Values{}; maps.Copy(c, q); c.Set("format", "csv"); return c }(), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := f.get(t, "operator", "/apis/v1/events", tc.q, tc.accept)
			if r.status != http.StatusOK || !strings.HasPrefix(r.header.Get("Content-Type"), "text/csv") {
				t.Fatalf("%d %s: %s", r.status, r.header.Get("Content-Type"), r.body)
			}
			recs := parseCSV(t, r.body)
			if !slices.Equal(recs[0], entryHeader) {
				t.Errorf("header %v", recs[0])
			}
			if len(recs)-1 != len(jp.Content) {
				t.Fatalf("%d CSV rows, JSON has %d", len(recs)-1, len(jp.Content))
			}
			for i, e := range jp.Content {
				if !slices.Equal(recs[i+1], e.record()) {
					t.Errorf("row %d: CSV %v, JSON %v", i, recs[i+1], e.record())
				}
			}
			if r.header.Get("X-Total-Elements") != strconv.FormatUint(jp.TotalElements, 10) {
				t.Errorf("X-Total-Elements %q, want %d", r.header.Get("X-Total-Elements"), jp.TotalElements)
			}
		})
	}
}

// TestBadParameters checks that wrong parameters are refused with their
// code, before anything is logged or queried.
func TestBadParameters(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		name string
		path string
		q    url.Values
		code string
	}{
		{"unknown parameter", "/apis/v1/events", all("datefrom", "2026-10-01"), CodeBadParameter},
		{"bad date", "/apis/v1/events", all("dateFrom", "1.10.2026"), CodeBadParameter},
		{"date before 1970", "/apis/v1/events", all("dateFrom", "1969-12-31T00:00:00Z"), CodeBadParameter},
		{"from after to", "/apis/v1/events", all("dateFrom", "2026-11-02", "dateTo", "2026-11-01"), CodeDateRange},
		{"range too long", "/apis/v1/events", all("dateFrom", "2025-01-01", "dateTo", "2026-06-01"), CodeDateRange},
		{"size 0", "/apis/v1/events", all("size", "0"), CodeBadParameter},
		{"size 1001", "/apis/v1/events", all("size", "1001"), CodeBadParameter},
		{"negative page", "/apis/v1/events", all("page", "-1"), CodeBadParameter},
		{"page too deep", "/apis/v1/events", all("page", "100", "size", "1000"), CodePageTooDeep},
		{"lower-case tag", "/apis/v1/events", all("eventTag", "memo_send_received"), CodeBadParameter},
		{"digits as a tag", "/apis/v1/events", all("eventTag", "0101901234"), CodeBadParameter},
		{"unsortable field", "/apis/v1/events", all("sortFields", "recipientId:asc"), CodeBadParameter},
		{"bad direction", "/apis/v1/events", all("sortFields", "eventTime:up"), CodeBadParameter},
		{"sort field twice", "/apis/v1/events", all("sortFields", "size,size:desc"), CodeBadParameter},
		{"party neither CVR nor CPR", "/apis/v1/events", all("senderOrRecipient", "12345"), CodeBadParameter},
		{"party twice", "/apis/v1/events", func() url.Values { q := all(); q["senderOrRecipient"] = []string{orgA, orgB}; return q }(), CodeBadParameter},
		{"direction", "/apis/v1/events", all("direction", "both"), CodeBadParameter},
		{"format", "/apis/v1/events", all("format", "xml"), CodeBadParameter},
		{"html is for proofs", "/apis/v1/events", all("format", "html"), CodeBadParameter},
		{"control character", "/apis/v1/events", all("senderOrRecipientSystem", "a\x00b"), CodeBadParameter},
		{"stats: unknown dimension", "/apis/v1/statistics", url.Values{"dimensions": {"day,colour"}}, CodeBadParameter},
		{"stats: dimension twice", "/apis/v1/statistics", url.Values{"dimensions": {"tag,eventTag"}}, CodeBadParameter},
		{"stats: a time", "/apis/v1/statistics", url.Values{"dateFrom": {"2026-10-01T00:00:00Z"}}, CodeBadParameter},
		{"stats: too long", "/apis/v1/statistics", url.Values{"dateFrom": {"2000-01-01"}, "dateTo": {"2026-01-01"}}, CodeDateRange},
		{"stats: organisation not a CVR", "/apis/v1/statistics", url.Values{"senderOrganisation": {"abc"}}, CodeBadParameter},
		{"stats: unknown filter", "/apis/v1/statistics", url.Values{"recipientId": {"x"}}, CodeBadParameter},
		{"proof: parameter", "/apis/v1/events/" + messageUUID(1) + "/proof", url.Values{"page": {"1"}}, CodeBadParameter},
		{"proof: format", "/apis/v1/events/" + messageUUID(1) + "/proof", url.Values{"format": {"csv"}}, CodeBadParameter},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := f.get(t, "opSearch", tc.path, tc.q, "")
			if got := r.errorCode(t); got != tc.code || r.status != (&Error{Code: tc.code}).Status() {
				t.Errorf("%d %s, want %s: %s", r.status, got, tc.code, r.body)
			}
			f.audits(t, 0)
		})
	}
}

// TestAccessControl checks who sees what: roles, organisations, CPR
// searches, and the redaction of pseudonyms.
func TestAccessControl(t *testing.T) {
	f := newFixture(t)
	none := func(stored) bool { return false }
	for _, tc := range []struct {
		name string
		who  string
		q    url.Values
		want func(stored) bool // nil: refused with code
		code string
	}{
		{"no token", "", all(), nil, auth.CodeMissing},
		{"sender system", "sender", all(), nil, auth.CodeForbidden},
		{"system admin without a log role", "admin", all(), nil, auth.CodeForbidden},
		{"org A", "logA", all(), visibleTo(orgA), ""},
		{"org B", "logB", all(), visibleTo(orgB), ""},
		{"org C", "logC", all(), visibleTo(orgC), ""},
		{"org A sent", "logA", all("direction", "sent"), sentBy(orgA), ""},
		{"org A received", "logA", all("direction", "received"), receivedBy(orgA), ""},
		{"org A asks for C: nothing in common", "logA", all("senderOrRecipient", orgC), none, ""},
		{"org A asks for B: their exchange", "logA", all("senderOrRecipient", orgB), and(visibleTo(orgA), visibleTo(orgB)), ""},
		{"org B asks for A's system", "logB", all("senderOrRecipientSystem", "sysA1"), none, ""},
		{"org A log-messages cannot search by CPR", "logA", all("senderOrRecipient", cprs[0]), nil, CodeCPRForbidden},
		{"operator without log-searches cannot search by CPR", "operator", all("senderOrRecipient", cprs[0]), nil, CodeCPRForbidden},
		{"org A log-searches: the person, A's messages only", "searchA", all("senderOrRecipient", cprs[3]), and(visibleTo(orgA), personIs(cprs[3])), ""},
		{"operator with log-searches: the person everywhere", "opSearch", all("senderOrRecipient", cprs[3]), personIs(cprs[3]), ""},
		{"operator: everything", "operator", all(), everything, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := f.get(t, tc.who, "/apis/v1/events", tc.q, "")
			if tc.want == nil {
				if got := r.errorCode(t); got != tc.code {
					t.Fatalf("%d %s, want %s", r.status, got, tc.code)
				}
				f.audits(t, 0)
				return
			}
			if r.status != http.StatusOK {
				t.Fatalf("%d %s", r.status, r.body)
			}
			var p EventPage
			if err := json.Unmarshal(r.body, &p); err != nil {
				t.Fatal(err)
			}
			equalIDs(t, "visible events", ids(p), f.expect(tc.want))
			who := testPrincipals[tc.who]
			seesPseudonyms := who.Has(auth.RoleLogSearches)
			for _, e := range p.Content {
				if e.RecipientIDType == "CPR" && (e.RecipientID != "") != seesPseudonyms {
					t.Fatalf("%s sees recipient id %q of a person", tc.who, e.RecipientID)
				}
				if e.RecipientIDType == "CVR" && e.RecipientID == "" {
					t.Fatalf("an organisation's CVR was hidden")
				}
			}
			f.audits(t, 1)
		})
	}

	// Statistics: an organisation reads only its own.
	if r := f.get(t, "logA", "/apis/v1/statistics", url.Values{"senderOrganisation": {orgB}}, ""); r.errorCode(t) != CodeOrgForbidden {
		t.Errorf("org A reading B's statistics: %d %s", r.status, r.body)
	}
	if r := f.get(t, "sender", "/apis/v1/statistics", nil, ""); r.errorCode(t) != auth.CodeForbidden {
		t.Errorf("sender reading statistics: %d %s", r.status, r.body)
	}
	f.audits(t, 0)

	// Proofs: the sender's and the recipient organisation's, nobody else's.
	for _, tc := range []struct {
		who    string
		msg    int
		status int
	}{
		{"logA", 0, http.StatusOK},       // A to a person
		{"logB", 0, http.StatusNotFound}, // not B's
		{"logB", 1, http.StatusOK},       // A to B
		{"logA", 2, http.StatusOK},       // B to A
		{"logC", 2, http.StatusNotFound}, // not C's
		{"logA", 3, http.StatusNotFound}, // C to a person
		{"operator", 3, http.StatusOK},   // operators see all
		{"sender", 0, http.StatusForbidden},
	} {
		r := f.get(t, tc.who, "/apis/v1/events/"+messageUUID(tc.msg)+"/proof", nil, "")
		if r.status != tc.status {
			t.Errorf("%s reading the proof of message %d: %d, want %d: %s", tc.who, tc.msg, r.status, tc.status, r.body)
		}
		if r.status == http.StatusNotFound && r.errorCode(t) != CodeNotFound {
			t.Errorf("not found with code %s", r.errorCode(t))
		}
		if tc.status != http.StatusForbidden {
			f.audits(t, 1)
		}
	}
}

// TestSearchesAreLogged checks that every search produces one event on
// memo.events, with the actor, the organisation and the parameters, and
// no CPR in clear; that a search which cannot be logged is not run; and
// that the audit events, written by the event-log sink like any other,
// can be searched.
func TestSearchesAreLogged(t *testing.T) {
	f := newFixture(t)
	dashed := cprs[2][:6] + "-" + cprs[2][6:]
	form := url.Values{"senderOrRecipient": {dashed}, "dateFrom": {"2026-10-01"}, "dateTo": {"2026-11-30"}}
	for _, tc := range []struct {
		name   string
		who    string
		req    func() *http.Request
		tag    events.Tag
		about  events.Recipient
		params []string // in the logged description
	}{
		{"events", "logA", getReq(f, "/apis/v1/events", all("eventTag", "MEMO_SEND_RECEIVED", "senderOrRecipientSystem", "rsB")),
			events.EventLogSearches, events.Recipient{}, []string{"/apis/v1/events?", "eventTag=MEMO_SEND_RECEIVED", "senderOrRecipientSystem=rsB", "dateFrom=2026-10-01T00:00:00Z", "dateTo=2026-12-01T00:00:00Z"}},
		{"events by organisation", "operator", getReq(f, "/apis/v1/events", all("senderOrRecipient", orgB)),
			events.EventLogSearches, testPseudonymizer.Recipient(events.CVR, orgB), []string{"senderOrRecipient=" + orgB}},
		{"events by CPR", "searchA", getReq(f, "/apis/v1/events", all("senderOrRecipient", cprs[2])),
			events.EventLogSearches, testPseudonymizer.Recipient(events.CPR, cprs[2]),
			[]string{"senderOrRecipient=" + pseudonymText(testPseudonymizer.Recipient(events.CPR, cprs[2]))}},
		{"events by CPR, POST form", "opSearch", func() *http.Request {
			r, _ := http.NewRequest(http.MethodPost, f.srv.URL+"/apis/v1/events", strings.NewReader(form.Encode()))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			return r
		}, events.EventLogSearches, testPseudonymizer.Recipient(events.CPR, cprs[2]), []string{"pseudonym:k2:"}},
		{"CPR typed into a system id", "logA", getReq(f, "/apis/v1/events", all("senderOrRecipientSystem", "sys "+dashed)),
			events.EventLogSearches, events.Recipient{}, []string{"senderOrRecipientSystem=sys+pseudonym:k2:"}},
		{"CPR typed into a messageUUID", "logA", getReq(f, "/apis/v1/events", all("messageUUID", cprs[2])),
			events.EventLogSearches, events.Recipient{}, []string{"messageUUID=pseudonym:k2:"}},
		{"CPR glued to letters", "logA", getReq(f, "/apis/v1/events", all("senderOrRecipientSystem", "cpr"+cprs[2]+"x")),
			events.EventLogSearches, events.Recipient{}, []string{"senderOrRecipientSystem=cprpseudonym:k2:"}},
		{"a UUID with ten digits in a row is kept", "logA", getReq(f, "/apis/v1/events", all("messageUUID", "7e0f0000-0000-4000-8000-ab0123456789")),
			events.EventLogSearches, events.Recipient{}, []string{"messageUUID=7e0f0000-0000-4000-8000-ab0123456789"}},
		{"proof", "logA", getReq(f, "/apis/v1/events/"+messageUUID(0)+"/proof", nil),
			events.EventLogSearches, events.Recipient{}, []string{"/apis/v1/events/proof?", "messageUUID=" + messageUUID(0)}},
		{"proof of another's message", "logB", getReq(f, "/apis/v1/events/"+messageUUID(0)+"/proof", url.Values{"format": {"html"}}),
			events.EventLogSearches, events.Recipient{}, []string{"format=html"}},
		{"statistics", "logA", getReq(f, "/apis/v1/statistics", url.Values{"dimensions": {"day,tag"}, "eventTag": {"MEMO_SEND_RECEIVED"}}),
			events.StatisticsRead, events.Recipient{}, []string{"/apis/v1/statistics?", "dimensions=day,tag", "eventTag=MEMO_SEND_RECEIVED"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := f.do(t, tc.who, tc.req(), "")
			if r.status != http.StatusOK && r.status != http.StatusNotFound {
				t.Fatalf("%d %s", r.status, r.body)
			}
			a := f.audits(t, 1)[0]
			p := testPrincipals[tc.who]
			e := a.ev
			if e.Tag != tc.tag || e.Actor != p.ID || e.SenderOrg != p.Org || e.MessageUUID != "" || !e.Time.Equal(testNow) {
				t.Errorf("audit event %+v", e)
			}
			if e.Recipient != tc.about {
				t.Errorf("audit event is about %v/%s, want %v/%s", e.Recipient.Type(), e.Recipient.ID(), tc.about.Type(), tc.about.ID())
			}
			for _, s := range tc.params {
				if !strings.Contains(e.TransmissionID, s) {
					t.Errorf("logged search %q lacks %q", e.TransmissionID, s)
				}
			}
			for _, c := range cprs {
				for _, form := range []string{c, c[:6] + "-" + c[6:], c[:6] + " " + c[6:], c[:6] + "+" + c[6:]} {
					if bytes.Contains(a.rec.Value, []byte(form)) || bytes.Contains(a.rec.Key, []byte(form)) {
						t.Fatalf("the audit record holds CPR %s in clear: %q", form, a.rec.Value)
					}
				}
			}
		})
	}

	// Audit events are event-log rows like any other: write the ones just
	// produced through the sink, then find them.
	recs := f.produced
	if len(recs) != 11 {
		t.Fatalf("%d records on memo.events, want 11", len(recs))
	}
	if err := f.sink.Write(t.Context(), &pipeline.Batch{Records: recs}); err != nil {
		t.Fatal(err)
	}
	p := f.search(t, "operator", url.Values{"eventTag": {"EVENT_LOG_SEARCHES,STATISTICS_READ"}, "dateFrom": {"2026-11-11"}, "dateTo": {"2026-11-12"}})
	if p.TotalElements != 11 {
		t.Fatalf("%d logged searches in the event log, want 11: %+v", p.TotalElements, p.Content)
	}
	// The person searched for can find the searches about them.
	p = f.search(t, "opSearch", url.Values{"senderOrRecipient": {cprs[2]}, "eventTag": {"EVENT_LOG_SEARCHES"}, "dateFrom": {"2026-11-11"}, "dateTo": {"2026-11-12"}})
	if p.TotalElements != 2 {
		t.Fatalf("%d searches about person 2, want 2 (GET and POST): %+v", p.TotalElements, p.Content)
	}
	for _, e := range p.Content {
		if e.Actor != "search-admin-a" && e.Actor != "op-2" {
			t.Errorf("search by %q", e.Actor)
		}
	}
	f.audits(t, 2) // the searches above are logged too
}

func getReq(f *fixture, path string, q url.Values) func() *http.Request {
	return func() *http.Request {
		u := f.srv.URL + path
		if len(q) > 0 {
			u += "?" + q.Encode()
		}
		r, _ := http.NewRequest(http.MethodGet, u, nil)
		return r
	}
}

// TestAuditUnavailable: when Kafka does not acknowledge the audit event,
// the search is refused and not answered.
func TestAuditUnavailable(t *testing.T) {
	f := newFixture(t, func(d *Deps) {
		d.Producer = deadProducer(t)
		d.AuditTimeout = 500 * time.Millisecond
	})
	for _, path := range []string{"/apis/v1/events", "/apis/v1/statistics", "/apis/v1/events/" + messageUUID(0) + "/proof"} {
		r := f.get(t, "operator", path, nil, "")
		if r.status != http.StatusServiceUnavailable || r.errorCode(t) != CodeAuditUnavailable {
			t.Errorf("%s: %d %s", path, r.status, r.body)
		}
	}
}

// TestProof checks the JSON trail and its summary, and the HTML page.
func TestProof(t *testing.T) {
	f := newFixture(t)
	get := func(msg int, format string) (*Proof, response) {
		r := f.get(t, "operator", "/apis/v1/events/"+messageUUID(msg)+"/proof", url.Values{"format": {format}}, "")
		if r.status != http.StatusOK {
			t.Fatalf("proof of %d: %d %s", msg, r.status, r.body)
		}
		if format != "json" {
			return nil, r
		}
		var p Proof
		if err := json.Unmarshal(r.body, &p); err != nil {
			t.Fatal(err)
		}
		return &p, r
	}
	for _, tc := range []struct {
		msg       int
		status    string
		available events.Tag
	}{
		{0, StatusDelivered, events.MemoAvailableToRecipient},
		{1, StatusDelivered, events.MemoSendSentToRecipientSystem},
		{2, StatusDelivered, events.MemoSendFetchedByRecipientSystem},
		{9, StatusFailed, ""},
	} {
		p, _ := get(tc.msg, "json")
		var trail []stored
		for _, s := range f.data {
			if s.msg == tc.msg {
				trail = append(trail, s)
			}
		}
		if len(p.Events) != len(trail) {
			t.Fatalf("message %d: %d events, want %d", tc.msg, len(p.Events), len(trail))
		}
		for i, s := range trail {
			e := p.Events[i]
			if e.ID != s.id() || e.EventTag != string(s.ev.Tag) || e.EventTime != s.ev.Time.Format(timeLayout) {
				t.Errorf("message %d event %d: %+v, want %s %s at %s", tc.msg, i, e, s.id(), s.ev.Tag, s.ev.Time.Format(timeLayout))
			}
		}
		if p.Status != tc.status || p.ReceivedAt != trail[0].ev.Time.Format(timeLayout) {
			t.Errorf("message %d: status %s received %s", tc.msg, p.Status, p.ReceivedAt)
		}
		if tc.available != "" && p.AvailableAt != trail[len(trail)-1].ev.Time.Format(timeLayout) {
			t.Errorf("message %d: available at %q", tc.msg, p.AvailableAt)
		}
		if p.SenderOrganisation != trail[0].ev.SenderOrg || p.MessageType != trail[0].ev.MessageType || p.Size != trail[0].ev.Size {
			t.Errorf("summary %+v", p)
		}
		b, _ := json.Marshal(p.Events)
		if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) != p.Digest {
			t.Errorf("digest %s does not match the events", p.Digest)
		}
		f.audits(t, 1)
	}

	p, _ := get(6, "json")
	_, r := get(6, "html")
	f.audits(t, 2)
	page := string(r.body)
	if ct := r.header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	for _, want := range []string{messageUUID(6), "DELIVERED", p.Digest, "MEMO_SEND_RECEIVED", "MEMO_SEND_FETCHED_BY_RECIPIENT_SYSTEM",
		p.Events[0].ID, "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;cpA", "Delivery proof"} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	// Self-contained and inert: no script, nothing loaded from anywhere.
	for _, bad := range []string{"<script", "src=", "<link", "http://", "https://", "url("} {
		if strings.Contains(page, bad) {
			t.Errorf("the page contains %q", bad)
		}
	}
	if r.header.Get("Content-Security-Policy") == "" {
		t.Error("no Content-Security-Policy")
	}
	// A person is a pseudonym at most, never a CPR.
	for _, c := range cprs {
		if strings.Contains(page, c) {
			t.Errorf("the page holds CPR %s", c)
		}
	}

	// Accept: text/html also gives the page.
	r = f.get(t, "operator", "/apis/v1/events/"+messageUUID(0)+"/proof", nil, "text/html")
	if !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") {
		t.Errorf("Accept text/html gave %s", r.header.Get("Content-Type"))
	}
	r = f.get(t, "operator", "/apis/v1/events/no-such-message/proof", nil, "")
	if r.status != http.StatusNotFound || r.errorCode(t) != CodeNotFound {
		t.Errorf("unknown message: %d %s", r.status, r.body)
	}
	f.audits(t, 2)
}

// TestTimeLimit checks that queries carry max_execution_time: the server,
// not only the client, stops a query that runs too long.
func TestTimeLimit(t *testing.T) {
	f := newFixture(t)
	s := store{conn: f.conn, db: f.db, maxTime: time.Second}
	start := time.Now()
	var n uint64
	err := s.queryRow(t.Context(), "SELECT count() FROM numbers(100000000000) WHERE number % 1000003 = 17", nil, &n)
	if e := storeError(err); e.Code != CodeTimeout {
		t.Fatalf("a long query gave %v (%v), want %s", err, e, CodeTimeout)
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Errorf("stopped after %v, want about 1 s", d)
	}
}

// TestCSVFormulas checks that a cell a spreadsheet would run as a formula
// is defused, and that other cells are left alone.
func TestCSVFormulas(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`=HYPERLINK("http://x","y")`, `'=HYPERLINK("http://x","y")`},
		{"+1", "'+1"},
		{"-2+3", "'-2+3"},
		{"@SUM(A1)", "'@SUM(A1)"},
		{"\tx", "'\tx"},
		{"sys-1", "sys-1"},
		{"", ""},
		{"12345", "12345"},
	} {
		w := httptest.NewRecorder()
		if err := writeCSV(w, "x.csv", [][]string{{"a", "b"}, {tc.in, "z"}}); err != nil {
			t.Fatal(err)
		}
		recs := parseCSV(t, w.Body.Bytes())
		if got := recs[1][0]; got != tc.want {
			t.Errorf("%q written as %q, want %q", tc.in, got, tc.want)
		}
	}
}
