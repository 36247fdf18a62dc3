package eventquery

import (
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Bounds of every request: what one query may cost ClickHouse.
const (
	// MaxPageSize is the largest page of events.
	MaxPageSize = 1000
	// DefaultPageSize is the page size when size is not given.
	DefaultPageSize = 100
	// MaxDepth bounds (page+1)*size: ClickHouse sorts offset+size rows to
	// answer a page, so deep pages cost as much as exporting everything.
	MaxDepth = 100_000
	// MaxEventsRange is the longest dateFrom..dateTo of an events search.
	MaxEventsRange = 366 * 24 * time.Hour
	// DefaultEventsRange is the period searched when neither date is given:
	// the last 7 days.
	DefaultEventsRange = 7 * 24 * time.Hour
	// MaxStatsDays is the longest statistics period (the statistics are
	// kept beyond the event log's 5 years).
	MaxStatsDays = 3660
	// DefaultStatsDays is the statistics period when no date is given: the
	// last 30 days, today included.
	DefaultStatsDays = 30
	// MaxStatsRows bounds the groups one statistics answer may have.
	MaxStatsRows = 100_000
)

// Output formats.
const (
	formatJSON = "json"
	formatCSV  = "csv"
	formatHTML = "html"
)

// partyKind says what senderOrRecipient names.
type partyKind uint8

const (
	partyNone partyKind = iota
	partyOrg            // an organisation's CVR (8 digits)
	partyCPR            // a person's CPR (10 digits): never logged, never stored
)

// party is the senderOrRecipient parameter. A CPR is kept only for the
// time it takes to pseudonymise it.
type party struct {
	kind  partyKind
	value string
}

// Directions of an organisation's events (the direction parameter).
const (
	directionAll      = "all"      // sent or received by the organisation (NgDP's default)
	directionSent     = "sent"     // sender_org: the primary key's prefix, the fast path
	directionReceived = "received" // recipient CVR
)

// eventsQuery is a parsed GET /apis/v1/events.
type eventsQuery struct {
	from, to    time.Time // [from, to), UTC, whole seconds
	system      string    // senderOrRecipientSystem
	party       party     // senderOrRecipient
	tags        []string  // eventTag
	messageUUID string
	direction   string
	page, size  int
	sort        []sortKey
	format      string
}

type sortKey struct {
	field string // API name, a key of sortColumns
	desc  bool
}

// sortColumns maps the sortable fields to their columns.
var sortColumns = map[string][]string{
	"eventTime":          {"event_time", "event_ms"},
	"eventTag":           {"tag"},
	"messageUUID":        {"message_uuid"},
	"transmissionId":     {"transmission_id"},
	"senderOrganisation": {"sender_org"},
	"senderSystem":       {"sender_system"},
	"recipientSystem":    {"recipient_system"},
	"contactPoint":       {"contact_point"},
	"messageType":        {"message_type"},
	"postType":           {"post_type"},
	"size":               {"size_bytes"},
	"receiptStatus":      {"receipt_status"},
	"errorCode":          {"error_code"},
}

var eventsParams = []string{"dateFrom", "dateTo", "senderOrRecipientSystem", "senderOrRecipient", "eventTag",
	"messageUUID", "direction", "page", "size", "sortFields", "format"}

// parseEventsQuery reads and checks the parameters of an events search.
// Messages never repeat the value of senderOrRecipient: it may be a CPR.
func parseEventsQuery(q url.Values, accept string, now time.Time) (*eventsQuery, error) {
	if err := onlyKnown(q, eventsParams); err != nil {
		return nil, err
	}
	eq := &eventsQuery{page: 0, size: DefaultPageSize, direction: directionAll}
	var err error
	if eq.from, eq.to, err = timeRange(q, now, DefaultEventsRange, MaxEventsRange); err != nil {
		return nil, err
	}
	if eq.system, err = single(q, "senderOrRecipientSystem", checkText); err != nil {
		return nil, err
	}
	if eq.party, err = parseParty(q); err != nil {
		return nil, err
	}
	if eq.tags, err = list(q, "eventTag", checkTag); err != nil {
		return nil, err
	}
	if eq.messageUUID, err = single(q, "messageUUID", checkText); err != nil {
		return nil, err
	}
	if d := q.Get("direction"); d != "" {
		if d != directionAll && d != directionSent && d != directionReceived {
			return nil, badParam("direction", "must be all, sent or received, got %q", d)
		}
		eq.direction = d
	}
	if eq.page, err = intParam(q, "page", 0, 0, MaxDepth); err != nil {
		return nil, err
	}
	if eq.size, err = intParam(q, "size", DefaultPageSize, 1, MaxPageSize); err != nil {
		return nil, err
	}
	if (eq.page+1)*eq.size > MaxDepth {
		return nil, errorf(CodePageTooDeep, "page %d of size %d reaches row %d, beyond %d: narrow the date range or the filters", eq.page, eq.size, (eq.page+1)*eq.size, MaxDepth)
	}
	if eq.sort, err = parseSort(q.Get("sortFields")); err != nil {
		return nil, err
	}
	if eq.format, err = outputFormat(q, accept, formatJSON, formatCSV); err != nil {
		return nil, err
	}
	return eq, nil
}

// statsQuery is a parsed GET /apis/v1/statistics.
type statsQuery struct {
	from, to time.Time // first and last day, both included
	dims     []string  // API names, in the order asked
	filters  []statsFilter
	format   string
}

type statsFilter struct {
	param  string
	values []string
}

// statsDims maps the statistics dimensions (and their aliases) to the
// columns of event_stats_daily. month is computed from day.
var statsDims = map[string]string{
	"day":                "day",
	"month":              "toYYYYMM(day)",
	"senderOrganisation": "sender_org",
	"senderSystem":       "sender_system",
	"recipientSystem":    "recipient_system",
	"contactPoint":       "contact_point",
	"messageType":        "message_type",
	"postType":           "post_type",
	"recipientType":      "recipient_type",
	"tag":                "tag",
	"status":             "receipt_status",
}

var statsAliases = map[string]string{"eventTag": "tag", "receiptStatus": "status"}

// statsFilters maps the statistics filters to their columns.
var statsFilters = map[string]string{
	"senderOrganisation": "sender_org",
	"senderSystem":       "sender_system",
	"recipientSystem":    "recipient_system",
	"contactPoint":       "contact_point",
	"messageType":        "message_type",
	"postType":           "post_type",
	"recipientType":      "recipient_type",
	"eventTag":           "tag",
	"status":             "receipt_status",
}

// statsFilterOrder fixes the order filters are applied and logged in.
var statsFilterOrder = []string{"senderOrganisation", "senderSystem", "recipientSystem", "contactPoint",
	"messageType", "postType", "recipientType", "eventTag", "status"}

func parseStatsQuery(q url.Values, accept string, now time.Time) (*statsQuery, error) {
	known := append([]string{"dateFrom", "dateTo", "dimensions", "format"}, statsFilterOrder...)
	if err := onlyKnown(q, known); err != nil {
		return nil, err
	}
	sq := &statsQuery{}
	var err error
	if sq.from, sq.to, err = dayRange(q, now); err != nil {
		return nil, err
	}
	dims, err := list(q, "dimensions", func(string) bool { return true })
	if err != nil {
		return nil, err
	}
	for _, d := range dims {
		if a, ok := statsAliases[d]; ok {
			d = a
		}
		if _, ok := statsDims[d]; !ok {
			return nil, badParam("dimensions", "unknown dimension %q; known: day, month, senderOrganisation, senderSystem, recipientSystem, contactPoint, messageType, postType, recipientType, tag, status", d)
		}
		if slices.Contains(sq.dims, d) {
			return nil, badParam("dimensions", "%q appears twice", d)
		}
		sq.dims = append(sq.dims, d)
	}
	for _, name := range statsFilterOrder {
		check := checkText
		switch name {
		case "senderOrganisation":
			check = checkCVR
		case "eventTag":
			check = checkTag
		}
		vals, err := list(q, name, check)
		if err != nil {
			return nil, err
		}
		if len(vals) > 0 {
			sq.filters = append(sq.filters, statsFilter{param: name, values: vals})
		}
	}
	if sq.format, err = outputFormat(q, accept, formatJSON, formatCSV); err != nil {
		return nil, err
	}
	return sq, nil
}

func onlyKnown(q url.Values, known []string) error {
	for k := range q {
		if !slices.Contains(known, k) {
			return badParam(k, "unknown parameter; known: %s", strings.Join(known, ", "))
		}
	}
	return nil
}

// timeRange reads dateFrom and dateTo as [from, to). A date (2026-03-01)
// means its whole day, so dateTo=2026-03-31 includes the 31st; a time
// (RFC 3339, UTC when it has no zone) is exact. With neither, the range is
// the last def; with one, the other is def away from it.
func timeRange(q url.Values, now time.Time, def, max time.Duration) (from, to time.Time, err error) {
	fs, ts := q.Get("dateFrom"), q.Get("dateTo")
	if fs != "" {
		if from, _, err = parseTime("dateFrom", fs, false); err != nil {
			return
		}
	}
	if ts != "" {
		if to, _, err = parseTime("dateTo", ts, true); err != nil {
			return
		}
	}
	switch {
	case fs == "" && ts == "":
		to = now.UTC().Truncate(time.Second).Add(time.Second)
		from = to.Add(-def)
	case fs == "":
		from = to.Add(-def)
	case ts == "":
		to = from.Add(def)
	}
	if !from.Before(to) {
		return from, to, errorf(CodeDateRange, "dateFrom must be before dateTo")
	}
	if to.Sub(from) > max {
		return from, to, errorf(CodeDateRange, "the range is %s, longer than %d days: split the search", to.Sub(from).Round(time.Second), int(max/(24*time.Hour)))
	}
	return from, to, nil
}

// dayRange reads dateFrom and dateTo as whole days, both included.
func dayRange(q url.Values, now time.Time) (from, to time.Time, err error) {
	fs, ts := q.Get("dateFrom"), q.Get("dateTo")
	var dateOnly bool
	if fs != "" {
		if from, dateOnly, err = parseTime("dateFrom", fs, false); err != nil {
			return
		}
		if !dateOnly {
			return from, to, badParam("dateFrom", "statistics are daily: give a date (2026-03-01), not a time")
		}
	}
	if ts != "" {
		if to, dateOnly, err = parseTime("dateTo", ts, false); err != nil {
			return
		}
		if !dateOnly {
			return from, to, badParam("dateTo", "statistics are daily: give a date (2026-03-31), not a time")
		}
	}
	today := now.UTC().Truncate(24 * time.Hour)
	switch {
	case fs == "" && ts == "":
		to = today
		from = to.AddDate(0, 0, -(DefaultStatsDays - 1))
	case fs == "":
		from = to.AddDate(0, 0, -(DefaultStatsDays - 1))
	case ts == "":
		to = from.AddDate(0, 0, DefaultStatsDays-1)
	}
	if from.After(to) {
		return from, to, errorf(CodeDateRange, "dateFrom must not be after dateTo")
	}
	if days := int(to.Sub(from)/(24*time.Hour)) + 1; days > MaxStatsDays {
		return from, to, errorf(CodeDateRange, "the range has %d days, more than %d", days, MaxStatsDays)
	}
	return from, to, nil
}

// parseTime parses a date or an RFC 3339 time. A date is its day's start,
// or with end the next day's start (an exclusive end that includes it).
func parseTime(name, s string, end bool) (t time.Time, dateOnly bool, err error) {
	if d, err := time.Parse(time.DateOnly, s); err == nil {
		if end {
			d = d.AddDate(0, 0, 1)
		}
		return d, true, nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05"} {
		if t, err := time.Parse(layout, s); err == nil {
			if t.Year() < 1970 || t.Year() > 2105 { // the range of ClickHouse's DateTime
				break
			}
			return t.UTC().Truncate(time.Second), false, nil
		}
	}
	return t, false, badParam(name, "%q is neither a date (2026-03-01) nor an RFC 3339 time (2026-03-01T08:00:00Z) between 1970 and 2105", s)
}

var (
	reTag   = regexp.MustCompile(`^[A-Z][A-Z0-9_]{0,99}$`)
	reCVR   = regexp.MustCompile(`^[0-9]{8}$`)
	reDigit = regexp.MustCompile(`^[0-9]+$`)
)

func checkTag(s string) bool { return reTag.MatchString(s) }
func checkCVR(s string) bool { return reCVR.MatchString(s) }

// checkText accepts identifiers as senders write them (system ids, contact
// points, messageUUIDs, also malformed ones): printable, at most 200 bytes.
func checkText(s string) bool {
	if s == "" || len(s) > 200 {
		return false
	}
	for _, r := range s {
		if r < ' ' || r == 0x7f {
			return false
		}
	}
	return true
}

// single reads a parameter that may be given once.
func single(q url.Values, name string, ok func(string) bool) (string, error) {
	vs := q[name]
	switch {
	case len(vs) == 0:
		return "", nil
	case len(vs) > 1:
		return "", badParam(name, "given %d times; give it once", len(vs))
	case !ok(vs[0]):
		return "", badParam(name, "%q is not a valid value", vs[0])
	}
	return vs[0], nil
}

// list reads a parameter that may be repeated and may hold a
// comma-separated list; the result has no duplicates.
func list(q url.Values, name string, ok func(string) bool) ([]string, error) {
	var out []string
	for _, v := range q[name] {
		for _, s := range strings.Split(v, ",") {
			s = strings.TrimSpace(s)
			if s == "" {
				continue
			}
			if !ok(s) {
				return nil, badParam(name, "%q is not a valid value", s)
			}
			if !slices.Contains(out, s) {
				out = append(out, s)
			}
		}
	}
	if len(out) > 100 {
		return nil, badParam(name, "%d values; at most 100", len(out))
	}
	return out, nil
}

func intParam(q url.Values, name string, def, min, max int) (int, error) {
	s := q.Get(name)
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < min || n > max {
		return 0, badParam(name, "must be a whole number from %d to %d, got %q", min, max, s)
	}
	return n, nil
}

// parseParty reads senderOrRecipient: a CVR (8 digits) or a CPR (10
// digits; spaces and a dash are allowed, "010203-1234"). The error never
// repeats the value.
func parseParty(q url.Values) (party, error) {
	vs := q["senderOrRecipient"]
	if len(vs) == 0 {
		return party{}, nil
	}
	if len(vs) > 1 {
		return party{}, badParam("senderOrRecipient", "given %d times; give it once", len(vs))
	}
	v := strings.NewReplacer(" ", "", "-", "").Replace(vs[0])
	switch {
	case len(v) == 8 && reDigit.MatchString(v):
		return party{kind: partyOrg, value: v}, nil
	case len(v) == 10 && reDigit.MatchString(v):
		return party{kind: partyCPR, value: v}, nil
	}
	return party{}, badParam("senderOrRecipient", "must be a CVR number (8 digits) or a CPR number (10 digits)")
}

// parseSort reads sortFields, "eventTime:desc,eventTag" (asc by default).
func parseSort(s string) ([]sortKey, error) {
	if s == "" {
		return []sortKey{{field: "eventTime", desc: true}}, nil
	}
	var keys []sortKey
	for _, part := range strings.Split(s, ",") {
		field, dir, _ := strings.Cut(strings.TrimSpace(part), ":")
		if _, ok := sortColumns[field]; !ok {
			names := make([]string, 0, len(sortColumns))
			for n := range sortColumns {
				names = append(names, n)
			}
			slices.Sort(names)
			return nil, badParam("sortFields", "cannot sort by %q; sortable: %s", field, strings.Join(names, ", "))
		}
		k := sortKey{field: field}
		switch strings.ToLower(dir) {
		case "", "asc":
		case "desc":
			k.desc = true
		default:
			return nil, badParam("sortFields", "direction %q of %s must be asc or desc", dir, field)
		}
		if slices.ContainsFunc(keys, func(o sortKey) bool { return o.field == field }) {
			return nil, badParam("sortFields", "%s appears twice", field)
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// outputFormat is the format parameter, else what Accept asks for, else
// the first allowed format.
func outputFormat(q url.Values, accept string, allowed ...string) (string, error) {
	if f := q.Get("format"); f != "" {
		if !slices.Contains(allowed, f) {
			return "", badParam("format", "must be one of %s, got %q", strings.Join(allowed, ", "), f)
		}
		return f, nil
	}
	for _, f := range allowed[1:] {
		if strings.Contains(accept, "text/"+f) {
			return f, nil
		}
	}
	return allowed[0], nil
}
