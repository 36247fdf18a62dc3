package receipts

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/segmentio/encoding/json"

	"github.com/memoflow/memoflow/internal/auth"
	"github.com/memoflow/memoflow/pipeline"
)

// Paging limits. NgDP pages are zero-based; the default size is Spring's
// (NgDP's paging shape is Spring Data's Page), the maximum is this API's.
const (
	DefaultPageSize = 20
	MaxPageSize     = 1000
	maxPage         = 10_000_000
	maxFilterLen    = 128
)

// API serves a sender system's receipts. The caller is the sender system:
// its principal id is the only sender any query is made for, so a system
// never sees, reads or deletes another's receipts (they answer 404, as an
// unknown id does).
type API struct {
	store   *Store
	tokens  auth.Store
	log     *slog.Logger
	metrics apiMetrics
}

// NewAPI returns the API over store; callers authenticate against tokens
// and need auth.RoleSender.
func NewAPI(store *Store, tokens auth.Store, log *slog.Logger, opts ...Option) (*API, error) {
	o := buildOptions(opts)
	m, err := newAPIMetrics(o.reg)
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	return &API{store: store, tokens: tokens, log: log, metrics: m}, nil
}

// Register mounts the endpoints on mux.
func (a *API) Register(mux *http.ServeMux) {
	list := a.handle("list", a.list)
	bulk := a.handle("bulk", a.bulk)
	mux.Handle("GET /apis/v1/receipts/{$}", list)
	mux.Handle("GET /apis/v1/receipts", list)
	mux.Handle("GET /apis/v1/receipts/{id}", a.handle("get", a.get))
	mux.Handle("DELETE /apis/v1/receipts/{id}", a.handle("delete", a.delete))
	mux.Handle("GET /apis/v1/receipts-bulk/{$}", bulk)
	mux.Handle("GET /apis/v1/receipts-bulk", bulk)
	// Everything else under the prefixes answers in the API's error shape
	// instead of the mux's plain text.
	other := a.handle("other", a.other)
	for _, p := range []string{"/apis/v1/receipts", "/apis/v1/receipts/", "/apis/v1/receipts-bulk", "/apis/v1/receipts-bulk/"} {
		mux.Handle(p, other)
	}
}

type handlerFunc func(w http.ResponseWriter, r *http.Request, sender string) error

// handle authenticates (role sender), runs h with the caller's system id,
// writes h's error in the NgDP shape and counts the answer.
func (a *API) handle(endpoint string, h handlerFunc) http.Handler {
	inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		p := auth.FromContext(r.Context())
		code := "OK"
		if err := h(w, r, p.ID); err != nil {
			var ae *auth.Error
			if !errors.As(err, &ae) {
				ae = a.storeError(err)
				a.log.Warn("receipts API: store failed", "endpoint", endpoint, "sender", p.ID, "err", err)
			}
			if ae.Status == http.StatusServiceUnavailable {
				w.Header().Set("Retry-After", "5")
			}
			auth.WriteError(w, ae)
			code = ae.Code
		}
		a.metrics.requests.WithLabelValues(endpoint, code).Inc()
		a.metrics.seconds.WithLabelValues(endpoint).Observe(time.Since(start).Seconds())
	})
	return auth.Require(a.tokens, inner, auth.RoleSender)
}

// storeError maps a store failure to an answer: what a retry may fix is
// 503, the rest 500.
func (a *API) storeError(err error) *auth.Error {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrClosed) || pipeline.ClassOf(err) == pipeline.ClassTransient {
		return apiError(CodeUnavailable, "the receipt store did not answer; retry later")
	}
	return apiError(CodeInternal, "the receipt store failed")
}

func apiError(code, format string, args ...any) *auth.Error {
	return &auth.Error{Status: CodeTable[code], Code: code, Message: fmt.Sprintf(format, args...)}
}

// PagingResultUUID is the answer of GET /receipts/ (NgDP's shape).
type PagingResultUUID struct {
	Content       []string `json:"content"`
	Number        int      `json:"number"`
	Size          int      `json:"size"`
	TotalElements uint64   `json:"totalElements"`
	TotalPages    uint64   `json:"totalPages"`
	// Next and Previous are the paths of the neighbouring pages, absent at
	// either end.
	Next     string `json:"next,omitempty"`
	Previous string `json:"previous,omitempty"`
}

// ReceiptSearchResult is the answer of GET /receipts-bulk/ (NgDP's shape;
// each receipt is a Served, NgDP's BulkReceipt).
type ReceiptSearchResult struct {
	CurrentPage    int               `json:"currentPage"`
	Next           string            `json:"next,omitempty"`
	TotalPages     uint64            `json:"totalPages"`
	ElementsOnPage int               `json:"elementsOnPage"`
	TotalElements  uint64            `json:"totalElements"`
	Receipts       []json.RawMessage `json:"receipts"`
}

func (a *API) list(w http.ResponseWriter, r *http.Request, sender string) error {
	q, err := query(r, "page", "size")
	if err != nil {
		return err
	}
	number, size, err := paging(q)
	if err != nil {
		return err
	}
	ids, total, err := a.store.IDs(r.Context(), sender, Filter{}, number, size)
	if err != nil {
		return err
	}
	res := PagingResultUUID{Content: ids, Number: number, Size: size, TotalElements: total, TotalPages: pages(total, size)}
	if res.Content == nil {
		res.Content = []string{}
	}
	res.Next, res.Previous = links(r, number, res.TotalPages)
	writeJSON(w, http.StatusOK, res)
	return nil
}

func (a *API) bulk(w http.ResponseWriter, r *http.Request, sender string) error {
	q, err := query(r, "page", "size", "transmissionId", "messageUUID", "receiptStatus", "receiptType", "since")
	if err != nil {
		return err
	}
	number, size, err := paging(q)
	if err != nil {
		return err
	}
	f, err := filter(q)
	if err != nil {
		return err
	}
	bodies, total, err := a.store.Bulk(r.Context(), sender, f, number, size)
	if err != nil {
		return err
	}
	res := ReceiptSearchResult{CurrentPage: number, TotalPages: pages(total, size), ElementsOnPage: len(bodies),
		TotalElements: total, Receipts: make([]json.RawMessage, len(bodies))}
	for i, b := range bodies {
		res.Receipts[i] = b
	}
	res.Next, _ = links(r, number, res.TotalPages)
	writeJSON(w, http.StatusOK, res)
	return nil
}

func (a *API) get(w http.ResponseWriter, r *http.Request, sender string) error {
	q, err := query(r, "delete")
	if err != nil {
		return err
	}
	id, err := pathID(r)
	if err != nil {
		return err
	}
	del := false
	switch v := q.Get("delete"); v {
	case "", "false":
	case "true":
		del = true
	default:
		return apiError(CodeBadParameter, "delete must be true or false, got %q", v)
	}
	var (
		body     []byte
		ok       bool
		markErr  error
		storeErr error
	)
	if del {
		body, ok, markErr, storeErr = a.store.Take(r.Context(), sender, id)
	} else {
		body, ok, storeErr = a.store.Get(r.Context(), sender, id)
	}
	if storeErr != nil {
		return storeErr
	}
	if !ok {
		return notFound(id)
	}
	if markErr != nil {
		// The receipt is answered anyway and stays listed: the sender
		// reads it again later, under the same id.
		a.metrics.markFailures.Inc()
		a.log.Warn("receipts API: delete after read failed; the receipt stays listed", "sender", sender, "id", id, "err", markErr)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
	return nil
}

func (a *API) delete(w http.ResponseWriter, r *http.Request, sender string) error {
	if _, err := query(r); err != nil {
		return err
	}
	id, err := pathID(r)
	if err != nil {
		return err
	}
	ok, err := a.store.Delete(r.Context(), sender, id)
	if err != nil {
		return err
	}
	if !ok {
		return notFound(id)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// other answers requests no route took: a known path with another method
// (405 with Allow), or a path that is no receipt (404).
func (a *API) other(w http.ResponseWriter, r *http.Request, _ string) error {
	rest, bulk := strings.CutPrefix(r.URL.Path, "/apis/v1/receipts-bulk")
	if !bulk {
		rest = strings.TrimPrefix(r.URL.Path, "/apis/v1/receipts")
	}
	rest = strings.TrimPrefix(rest, "/")
	switch {
	case rest == "":
		w.Header().Set("Allow", "GET, HEAD")
	case !bulk && !strings.Contains(rest, "/"):
		w.Header().Set("Allow", "GET, HEAD, DELETE")
	default:
		return apiError(CodeNotFound, "no such receipts resource: %s", r.URL.Path)
	}
	return apiError(CodeMethodNotAllowed, "%s is not allowed on %s", r.Method, r.URL.Path)
}

func notFound(id string) error {
	return apiError(CodeNotFound, "no receipt %s", id)
}

// pathID returns the {id} path value as a canonical (lower-case) UUID.
func pathID(r *http.Request) (string, error) {
	raw := r.PathValue("id")
	id, err := uuid.Parse(raw)
	if err != nil || len(raw) != 36 {
		return "", apiError(CodeBadID, "receipt id %q is not a UUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)", raw)
	}
	return id.String(), nil
}

// query returns the request's query parameters, refusing names outside
// allowed and repeated names.
func query(r *http.Request, allowed ...string) (url.Values, error) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, apiError(CodeBadParameter, "the query string is malformed: %v", err)
	}
	for name, vs := range q {
		known := false
		for _, a := range allowed {
			known = known || a == name
		}
		if !known {
			if len(allowed) == 0 {
				return nil, apiError(CodeUnknownParameter, "unknown parameter %q: this endpoint takes none", name)
			}
			return nil, apiError(CodeUnknownParameter, "unknown parameter %q: this endpoint takes %s", name, strings.Join(allowed, ", "))
		}
		if len(vs) > 1 {
			return nil, apiError(CodeBadParameter, "parameter %s is given %d times", name, len(vs))
		}
	}
	return q, nil
}

func paging(q url.Values) (number, size int, err error) {
	number, size = 0, DefaultPageSize
	if v, ok := q["page"]; ok {
		n, perr := strconv.Atoi(v[0])
		if perr != nil || n < 0 || n > maxPage {
			return 0, 0, apiError(CodeBadParameter, "page must be a whole number from 0 to %d (zero-based), got %q", maxPage, v[0])
		}
		number = n
	}
	if v, ok := q["size"]; ok {
		n, perr := strconv.Atoi(v[0])
		if perr != nil || n < 1 || n > MaxPageSize {
			return 0, 0, apiError(CodeBadParameter, "size must be a whole number from 1 to %d, got %q", MaxPageSize, v[0])
		}
		size = n
	}
	return number, size, nil
}

func filter(q url.Values) (Filter, error) {
	var f Filter
	text := func(name string, dst *string) error {
		v, ok := q[name]
		if !ok {
			return nil
		}
		if v[0] == "" || len(v[0]) > maxFilterLen {
			return apiError(CodeBadParameter, "%s must be 1 to %d characters, got %d", name, maxFilterLen, len(v[0]))
		}
		*dst = v[0]
		return nil
	}
	if err := text("transmissionId", &f.TransmissionID); err != nil {
		return f, err
	}
	if err := text("messageUUID", &f.MessageUUID); err != nil {
		return f, err
	}
	if v, ok := q["receiptStatus"]; ok {
		if !validStatus(v[0]) {
			return f, apiError(CodeBadParameter, "receiptStatus must be RECEIVED, COMPLETED, INVALID, NOT_ALLOWED or FAILED, got %q", v[0])
		}
		f.Status = v[0]
	}
	if v, ok := q["receiptType"]; ok {
		if !validKind(v[0]) {
			return f, apiError(CodeBadParameter, "receiptType must be TECHNICAL or BUSINESS, got %q", v[0])
		}
		f.Kind = v[0]
	}
	if v, ok := q["since"]; ok {
		t, err := parseSince(v[0])
		if err != nil {
			return f, apiError(CodeBadParameter, "since must be an RFC 3339 time (2026-03-01T08:00:00Z, or with an offset, URL-encoded) or a date (2026-03-01), got %q", v[0])
		}
		f.Since = t
	}
	return f, nil
}

func parseSince(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		if t.Unix() < 0 || t.Unix() > maxDateTime {
			return time.Time{}, errors.New("out of range")
		}
		return t.UTC(), nil
	}
	t, err := time.Parse(time.DateOnly, s)
	if err != nil || t.Unix() < 0 || t.Unix() > maxDateTime {
		return time.Time{}, errors.New("not a time")
	}
	return t, nil
}

func pages(total uint64, size int) uint64 {
	return (total + uint64(size) - 1) / uint64(size)
}

// links returns the paths of the next and previous pages: the request's
// path and query with another page number.
func links(r *http.Request, number int, totalPages uint64) (next, prev string) {
	at := func(n int) string {
		q := r.URL.Query()
		q.Set("page", strconv.Itoa(n))
		return r.URL.Path + "?" + q.Encode()
	}
	if uint64(number)+1 < totalPages {
		next = at(number + 1)
	}
	if number > 0 {
		prev = at(min(number-1, int(max(totalPages, 1)-1)))
	}
	return next, prev
}

// writeJSON answers v without HTML escaping: the next/previous links keep
// their "&" readable for people reading answers with curl.
func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		auth.WriteError(w, apiError(CodeInternal, "encode answer: %v", err))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}
