// Package eventquery serves the event log (hændelseslog) to the people
// allowed to read it: searches of events (GET /apis/v1/events, NgDP's
// parameters), statistics from the summing view (GET /apis/v1/statistics),
// and a message's delivery proof (GET /apis/v1/events/{messageUUID}/proof,
// JSON or a printable HTML page). It also runs the event log's retention
// (Retention).
//
// Access: an organisation sees only its own events (it sent them, or it is
// the recipient CVR); log-messages and log-searches administrators see
// metadata, log-searches may also search by a person's CPR (pseudonymised
// here, never stored or logged), operators see every organisation. A
// supplier's administrator (role supplier) sees the traffic of the
// authorities that selected one of its standard systems: the events whose
// recipient system is such a selection (Deps.Selections), and nothing
// else of theirs. Every search is itself logged as an event on
// memo.events before it runs.
// docs/eventlog-api.md is the reference.
package eventquery

import (
	"bytes"
	"encoding/csv"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/encoding/json"

	"github.com/memoflow/memoflow/internal/auth"
	"github.com/memoflow/memoflow/internal/chconn"
	"github.com/memoflow/memoflow/schemas/events"
)

// DefaultMaxExecutionTime is the server-side time limit of every query.
const DefaultMaxExecutionTime = 30 * time.Second

// Deps are what the APIs need.
type Deps struct {
	// Conn reaches ClickHouse; the schema must be migrated (chddl.Migrate).
	Conn driver.Conn
	// Database holds the event log (chconn.Config.Database).
	Database string
	// Tokens authenticates callers.
	Tokens auth.Store
	// Pseudonymizer turns a searched CPR into the pseudonyms the log holds;
	// it must have the producing stages' keys.
	Pseudonymizer *events.Pseudonymizer
	// Producer logs every search to memo.events.
	Producer Producer
	// Log gets one line per refused audit; never a parameter value.
	Log *slog.Logger
	// Registerer gets the metrics (default prometheus.DefaultRegisterer).
	Registerer prometheus.Registerer
	// MaxExecutionTime is ClickHouse's limit per query (default 30 s).
	MaxExecutionTime time.Duration
	// AuditTimeout bounds the wait for Kafka's acknowledgement of the audit
	// event (default 10 s).
	AuditTimeout time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Selections finds a supplier's selections (RegistrySelections over
	// the registry view). Nil: suppliers see nothing.
	Selections Selections
}

// API serves the endpoints.
type API struct {
	store        store
	tokens       auth.Store
	pseudo       *events.Pseudonymizer
	producer     Producer
	log          *slog.Logger
	metrics      *metrics
	auditTimeout time.Duration
	now          func() time.Time
	selections   Selections
}

// The roles that may read the event log at all.
var readRoles = []auth.Role{auth.RoleLogMessages, auth.RoleLogSearches, auth.RoleOperator, auth.RoleSupplier}

// New checks d and returns the API.
func New(d Deps) (*API, error) {
	switch {
	case d.Conn == nil:
		return nil, errors.New("eventquery: no ClickHouse connection")
	case !chconn.IsIdentifier(d.Database):
		return nil, errors.New("eventquery: database must be a plain identifier, got " + strconv.Quote(d.Database))
	case d.Tokens == nil:
		return nil, errors.New("eventquery: no token store")
	case d.Pseudonymizer == nil:
		return nil, errors.New("eventquery: no pseudonymizer (CPR searches need the pseudonym keys)")
	case d.Producer == nil:
		return nil, errors.New("eventquery: no producer (every search is logged to memo.events)")
	}
	if d.Log == nil {
		d.Log = slog.Default()
	}
	if d.Registerer == nil {
		d.Registerer = prometheus.DefaultRegisterer
	}
	if d.MaxExecutionTime <= 0 {
		d.MaxExecutionTime = DefaultMaxExecutionTime
	}
	if d.AuditTimeout <= 0 {
		d.AuditTimeout = 10 * time.Second
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	m, err := newMetrics(d.Registerer)
	if err != nil {
		return nil, err
	}
	return &API{
		store:  store{conn: d.Conn, db: d.Database, maxTime: d.MaxExecutionTime},
		tokens: d.Tokens, pseudo: d.Pseudonymizer, producer: d.Producer, log: d.Log,
		metrics: m, auditTimeout: d.AuditTimeout, now: d.Now, selections: d.Selections,
	}, nil
}

// Register builds the API from d and mounts it on mux.
func Register(mux *http.ServeMux, d Deps) error {
	a, err := New(d)
	if err != nil {
		return err
	}
	a.Register(mux)
	return nil
}

// Register mounts the endpoints on mux. POST /apis/v1/events takes the same
// parameters as a form body, so a CPR search need not put the CPR in a URL
// (URLs end up in proxies' access logs).
func (a *API) Register(mux *http.ServeMux) {
	mux.Handle("GET /apis/v1/events", a.handle("events", a.searchEvents))
	mux.Handle("POST /apis/v1/events", a.handle("events", a.searchEvents))
	mux.Handle("GET /apis/v1/events/{messageUUID}/proof", a.handle("proof", a.proof))
	mux.Handle("GET /apis/v1/statistics", a.handle("statistics", a.statistics))
}

// handle wraps an endpoint: authentication and roles, metrics, and the
// error body.
func (a *API) handle(endpoint string, h func(http.ResponseWriter, *http.Request, *auth.Principal) error) http.Handler {
	inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		err := h(w, r, auth.FromContext(r.Context()))
		code := "OK"
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				e = storeError(err)
			}
			code = e.Code
			writeError(w, e)
		}
		a.metrics.requests.WithLabelValues(endpoint, code).Inc()
		a.metrics.seconds.WithLabelValues(endpoint).Observe(time.Since(start).Seconds())
	})
	return auth.Require(a.tokens, inner, readRoles...)
}

// scope is what a principal may see.
type scope struct {
	all        bool   // every organisation (operator)
	org        string // else this organisation's events ("" if none: a supplier's administrator without a log role)
	cpr        bool   // may search by a person's CPR
	pseudonyms bool   // may see recipients' pseudonyms
	// systems: a supplier's administrator also sees the events received by
	// these recipient systems (the selections of its standard systems).
	systems []string
}

func (a *API) scopeOf(p *auth.Principal) scope {
	s := scope{all: p.Has(auth.RoleOperator), cpr: p.Has(auth.RoleLogSearches)}
	if p.Has(auth.RoleLogMessages) || p.Has(auth.RoleLogSearches) {
		s.org = p.Org
	}
	if !s.all && p.Has(auth.RoleSupplier) && a.selections != nil {
		s.systems = a.selections.SupplierSelections(p.Org)
	}
	// A pseudonym links a person's messages to each other; only the role
	// that may search by person sees it. Others see "CPR" and no id.
	s.pseudonyms = s.cpr
	return s
}

// restrict puts the scope on f: nothing for operators; else the
// organisation's events in direction dir, or a supplier's selections'
// received events, or both.
func (s scope) restrict(f *eventFilter, dir string) {
	if s.all {
		return
	}
	f.scoped, f.scopeOrg, f.scopeDir, f.scopeSystems = true, s.org, dir, s.systems
}

// EventPage is one page of a search, in the NgDP paging shape.
type EventPage struct {
	Content       []Entry `json:"content"`
	Page          int     `json:"page"`
	Size          int     `json:"size"`
	TotalElements uint64  `json:"totalElements"`
	TotalPages    uint64  `json:"totalPages"`
}

// Entry is one event as the APIs show it: metadata only.
type Entry struct {
	// ID is the event's position in memo.events (partition-offset-index):
	// unique, and how a printed proof is traced back to the log.
	ID                    string `json:"id"`
	EventTime             string `json:"eventTime"`
	EventTag              string `json:"eventTag"`
	MessageUUID           string `json:"messageUUID,omitempty"`
	TransmissionID        string `json:"transmissionId,omitempty"`
	SenderOrganisation    string `json:"senderOrganisation,omitempty"`
	SenderSystem          string `json:"senderSystem,omitempty"`
	RecipientIDType       string `json:"recipientIdType,omitempty"`
	RecipientID           string `json:"recipientId,omitempty"`
	RecipientKeyID        string `json:"recipientKeyId,omitempty"`
	ContactPoint          string `json:"contactPoint,omitempty"`
	RecipientSystem       string `json:"recipientSystem,omitempty"`
	MessageType           string `json:"messageType,omitempty"`
	PostType              string `json:"postType,omitempty"`
	Size                  uint64 `json:"size"`
	Attachments           uint16 `json:"attachments"`
	DoNotDeliverUntilDate string `json:"doNotDeliverUntilDate,omitempty"`
	ReceiptStatus         string `json:"receiptStatus,omitempty"`
	ErrorCode             string `json:"errorCode,omitempty"`
	Actor                 string `json:"actor,omitempty"`
}

const timeLayout = "2006-01-02T15:04:05.000Z07:00"

func (r *eventRow) entry(sc scope) Entry {
	e := Entry{
		ID:                 strconv.FormatUint(uint64(r.partition), 10) + "-" + strconv.FormatUint(r.offset, 10) + "-" + strconv.FormatUint(uint64(r.index), 10),
		EventTime:          r.time.UTC().Add(time.Duration(r.ms) * time.Millisecond).Format(timeLayout),
		EventTag:           r.tag,
		MessageUUID:        r.messageUUID,
		TransmissionID:     r.transmissionID,
		SenderOrganisation: r.senderOrg,
		SenderSystem:       r.senderSystem,
		RecipientIDType:    r.recipientType,
		RecipientID:        r.recipientID,
		RecipientKeyID:     r.recipientKeyID,
		ContactPoint:       r.contactPoint,
		RecipientSystem:    r.recipientSystem,
		MessageType:        r.messageType,
		PostType:           r.postType,
		Size:               r.size,
		Attachments:        r.attachments,
		ReceiptStatus:      r.receiptStatus,
		ErrorCode:          r.errorCode,
		Actor:              r.actor,
	}
	if r.valueDate.Unix() > 0 { // 1970-01-01 is "no value date"
		e.DoNotDeliverUntilDate = r.valueDate.Format(time.DateOnly)
	}
	if r.recipientKeyID != "" && !sc.pseudonyms {
		e.RecipientID, e.RecipientKeyID = "", ""
	}
	return e
}

var entryHeader = []string{"id", "eventTime", "eventTag", "messageUUID", "transmissionId", "senderOrganisation",
	"senderSystem", "recipientIdType", "recipientId", "recipientKeyId", "contactPoint", "recipientSystem",
	"messageType", "postType", "size", "attachments", "doNotDeliverUntilDate", "receiptStatus", "errorCode", "actor"}

func (e *Entry) record() []string {
	return []string{e.ID, e.EventTime, e.EventTag, e.MessageUUID, e.TransmissionID, e.SenderOrganisation,
		e.SenderSystem, e.RecipientIDType, e.RecipientID, e.RecipientKeyID, e.ContactPoint, e.RecipientSystem,
		e.MessageType, e.PostType, strconv.FormatUint(e.Size, 10), strconv.FormatUint(uint64(e.Attachments), 10),
		e.DoNotDeliverUntilDate, e.ReceiptStatus, e.ErrorCode, e.Actor}
}

func (a *API) searchEvents(w http.ResponseWriter, r *http.Request, p *auth.Principal) error {
	if err := r.ParseForm(); err != nil {
		return badParam("query", "%v", err)
	}
	eq, err := parseEventsQuery(r.Form, r.Header.Get("Accept"), a.now())
	if err != nil {
		return err
	}
	sc := a.scopeOf(p)
	f := &eventFilter{from: eq.from, to: eq.to, system: eq.system, tags: eq.tags, messageUUID: eq.messageUUID}
	if sc.all {
		f.partyDir = eq.direction
	}
	sc.restrict(f, eq.direction)
	s := search{tag: events.EventLogSearches, path: r.URL.Path}
	cprText := ""
	switch eq.party.kind {
	case partyCPR:
		if !sc.cpr {
			return errorf(CodeCPRForbidden, "searching by a person's CPR needs the role %s", auth.RoleLogSearches)
		}
		for _, rc := range a.pseudo.Pseudonyms(events.CPR, eq.party.value) {
			f.pseudonyms = append(f.pseudonyms, rc.ID())
		}
		s.about = a.pseudo.Recipient(events.CPR, eq.party.value)
		cprText = pseudonymText(s.about)
	case partyOrg:
		f.party = eq.party.value
		s.about = a.pseudo.Recipient(events.CVR, eq.party.value)
	}
	s.params = eq.canonical(cprText)
	if eq.party.kind == partyCPR {
		eq.party.value = "" // the CPR is not needed any more
	}
	if err := a.audit(r.Context(), p, s); err != nil {
		return err
	}
	if eq.messageUUID != "" {
		loc, err := a.store.locate(r.Context(), eq.messageUUID)
		if err != nil {
			return err
		}
		if loc == nil {
			return a.writeEvents(w, eq, sc, nil, 0)
		}
		f.loc = loc
	}
	rows, total, err := a.store.events(r.Context(), f, eq.sort, eq.page*eq.size, eq.size, true)
	if err != nil {
		return err
	}
	return a.writeEvents(w, eq, sc, rows, total)
}

func (a *API) writeEvents(w http.ResponseWriter, eq *eventsQuery, sc scope, rows []eventRow, total uint64) error {
	page := EventPage{Content: make([]Entry, len(rows)), Page: eq.page, Size: eq.size, TotalElements: total,
		TotalPages: (total + uint64(eq.size) - 1) / uint64(eq.size)}
	for i := range rows {
		page.Content[i] = rows[i].entry(sc)
	}
	if eq.format == formatCSV {
		h := w.Header()
		h.Set("X-Total-Elements", strconv.FormatUint(total, 10))
		h.Set("X-Total-Pages", strconv.FormatUint(page.TotalPages, 10))
		h.Set("X-Page", strconv.Itoa(eq.page))
		h.Set("X-Size", strconv.Itoa(eq.size))
		recs := make([][]string, 0, len(rows)+1)
		recs = append(recs, entryHeader)
		for i := range page.Content {
			recs = append(recs, page.Content[i].record())
		}
		return writeCSV(w, "events.csv", recs)
	}
	writeJSON(w, http.StatusOK, page)
	return nil
}

// StatsPage is a statistics answer: one row per group, in the order of
// the dimensions, and the totals.
type StatsPage struct {
	DateFrom   string     `json:"dateFrom"`
	DateTo     string     `json:"dateTo"`
	Dimensions []string   `json:"dimensions"`
	Rows       []StatsRow `json:"rows"`
	Totals     StatsTotal `json:"totals"`
}

// StatsRow is one group: its dimension values by name, and the sums.
type StatsRow struct {
	Key       map[string]string `json:"key"`
	Events    uint64            `json:"events"`
	SizeBytes uint64            `json:"sizeBytes"`
}

// StatsTotal sums every row.
type StatsTotal struct {
	Events    uint64 `json:"events"`
	SizeBytes uint64 `json:"sizeBytes"`
}

func (a *API) statistics(w http.ResponseWriter, r *http.Request, p *auth.Principal) error {
	sq, err := parseStatsQuery(r.URL.Query(), r.Header.Get("Accept"), a.now())
	if err != nil {
		return err
	}
	sc := a.scopeOf(p)
	if !sc.all {
		for _, f := range sq.filters {
			if f.param == "senderOrganisation" && (len(f.values) != 1 || f.values[0] != sc.org) {
				return errorf(CodeOrgForbidden, "senderOrganisation: only operators may read another organisation's statistics")
			}
		}
	}
	if err := a.audit(r.Context(), p, search{tag: events.StatisticsRead, path: r.URL.Path, params: sq.canonical()}); err != nil {
		return err
	}
	rows, err := a.store.stats(r.Context(), sq, sc)
	if err != nil {
		return err
	}
	page := StatsPage{DateFrom: sq.from.Format(time.DateOnly), DateTo: sq.to.Format(time.DateOnly),
		Dimensions: append([]string{}, sq.dims...), Rows: make([]StatsRow, 0, len(rows))}
	if i := slices.Index(sq.dims, "month"); i >= 0 {
		for _, row := range rows { // 202610 -> 2026-10
			if m := row.key[i]; len(m) == 6 {
				row.key[i] = m[:4] + "-" + m[4:]
			}
		}
	}
	for _, row := range rows {
		sr := StatsRow{Key: make(map[string]string, len(sq.dims)), Events: row.events, SizeBytes: row.sizeBytes}
		for i, d := range sq.dims {
			sr.Key[d] = row.key[i]
		}
		page.Rows = append(page.Rows, sr)
		page.Totals.Events += row.events
		page.Totals.SizeBytes += row.sizeBytes
	}
	if sq.format == formatCSV {
		recs := [][]string{append(append([]string{}, sq.dims...), "events", "sizeBytes")}
		for i, row := range rows {
			recs = append(recs, append(append([]string{}, row.key...),
				strconv.FormatUint(page.Rows[i].Events, 10), strconv.FormatUint(page.Rows[i].SizeBytes, 10)))
		}
		return writeCSV(w, "statistics.csv", recs)
	}
	writeJSON(w, http.StatusOK, page)
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(w, errorf(CodeInternal, "encoding the answer: %v", err))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// writeCSV writes RFC 4180 CSV. A cell a spreadsheet would run as a
// formula (=, +, -, @ first) gets a leading apostrophe: system ids and
// contact points come from senders, and data teams open these files in
// spreadsheets.
func writeCSV(w http.ResponseWriter, name string, recs [][]string) error {
	var buf bytes.Buffer
	cw := csv.NewWriter(&buf)
	for _, rec := range recs {
		for i, c := range rec {
			if c != "" && strings.ContainsRune("=+-@\t\r", rune(c[0])) {
				rec[i] = "'" + c
			}
		}
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return err
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(buf.Bytes())
	return nil
}
