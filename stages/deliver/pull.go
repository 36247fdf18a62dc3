package deliver

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/segmentio/encoding/json"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/memoflow/memoflow/internal/auth"
	"github.com/memoflow/memoflow/internal/blob"
	"github.com/memoflow/memoflow/pipeline"
	"github.com/memoflow/memoflow/schemas/events"
	"github.com/memoflow/memoflow/schemas/records"
)

// Pull API answer codes besides auth's.
const (
	CodePullNotFound    = "PULL_NOT_FOUND"
	CodePullBadRequest  = "PULL_BAD_REQUEST"
	CodePullUnavailable = "PULL_UNAVAILABLE"
	CodePullInternal    = "PULL_INTERNAL"
)

// Paging of GET /memos/: zero-based pages as NgDP (Spring) does, plus an
// `after` cursor that stays cheap however deep the outbox is.
const (
	DefaultPullPageSize = 100
	MaxPullPageSize     = 1000
)

// PullAPI is "true" REST pull for recipient systems. The caller is a
// recipient system (auth.RoleRecipientSystem); its principal id is the only
// outbox it can list, read, delete or receipt, so another system's post
// answers 404 exactly as an unknown id does.
type PullAPI struct {
	store   *OutboxStore
	tokens  auth.Store
	prod    *kgo.Client
	pseudo  *events.Pseudonymizer
	systems Systems
	blobs   blob.Store
	now     func() time.Time
	log     *slog.Logger
	metrics *metrics
	// locks serialise changes to one message within this replica, so two
	// receipts racing for one message give one 200 and one 409.
	locks [64]sync.Mutex
}

func (a *PullAPI) lock(system, id string) func() {
	h := fnv.New32a()
	h.Write([]byte(system))
	h.Write([]byte(id))
	m := &a.locks[h.Sum32()%uint32(len(a.locks))]
	m.Lock()
	return m.Unlock
}

// NewPullAPI returns the API over store; prod writes the outbox changes,
// events and receipts (acks=all; an answer is given only after Kafka's
// ack). systems may be nil (the version stored with the entry is used).
func NewPullAPI(store *OutboxStore, tokens auth.Store, prod *kgo.Client, pseudo *events.Pseudonymizer, systems Systems, blobs blob.Store, opts ...Option) *PullAPI {
	d := &Deliverer{now: time.Now, log: slog.Default()}
	for _, o := range opts {
		o(d)
	}
	if d.metrics == nil {
		d.metrics = newMetrics(nil)
	}
	return &PullAPI{store: store, tokens: tokens, prod: prod, pseudo: pseudo, systems: systems, blobs: blobs, now: d.now, log: d.log, metrics: d.metrics}
}

// Register mounts the endpoints. POST /apis/v1/memos/ stays ingest's (the
// sender API); the more specific patterns here win for the rest.
func (a *PullAPI) Register(mux *http.ServeMux) {
	a.RegisterExceptDelete(mux)
	mux.Handle("DELETE /apis/v1/memos/{id}", a.DeleteHandler())
}

// RegisterExceptDelete mounts everything but DELETE /apis/v1/memos/{id},
// for a process where the sender API's recall shares that path: mount
// schedule.DispatchDelete(tokens, recall, pull.DeleteHandler()) there once.
func (a *PullAPI) RegisterExceptDelete(mux *http.ServeMux) {
	list := a.handle("list", a.list)
	mux.Handle("GET /apis/v1/memos/{$}", list)
	mux.Handle("GET /apis/v1/memos", list)
	mux.Handle("GET /apis/v1/memos/{id}", a.handle("get", a.get))
	mux.Handle("POST /apis/v1/memos/{id}/receipt", a.handle("receipt", a.receipt))
}

// DeleteHandler is the pickup (DELETE /apis/v1/memos/{id}, or {messageUUID}),
// authenticated as a recipient system.
func (a *PullAPI) DeleteHandler() http.Handler { return a.handle("delete", a.delete) }

// pathID is the message id of the path, whichever name the pattern gives it.
func pathID(r *http.Request) string {
	if id := r.PathValue("id"); id != "" {
		return id
	}
	return r.PathValue("messageUUID")
}

type pullHandler func(w http.ResponseWriter, r *http.Request, system string) error

func (a *PullAPI) handle(endpoint string, h pullHandler) http.Handler {
	inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := auth.FromContext(r.Context())
		code := "OK"
		if err := h(w, r, p.ID); err != nil {
			var ae *auth.Error
			if !errors.As(err, &ae) {
				ae = &auth.Error{Status: http.StatusServiceUnavailable, Code: CodePullUnavailable, Message: "the outbox did not answer; retry later"}
				w.Header().Set("Retry-After", "5")
				a.log.Warn("pull API failed", "endpoint", endpoint, "system", p.ID, "err", err)
			}
			auth.WriteError(w, ae)
			code = ae.Code
		}
		a.metrics.pull.WithLabelValues(endpoint, code).Inc()
	})
	return auth.Require(a.tokens, inner, auth.RoleRecipientSystem)
}

func notFoundErr(id string) error {
	return &auth.Error{Status: http.StatusNotFound, Code: CodePullNotFound, Message: "no message " + id + " for this system"}
}

func badRequest(format string, args ...any) error {
	return &auth.Error{Status: http.StatusBadRequest, Code: CodePullBadRequest, Message: fmt.Sprintf(format, args...)}
}

// PullPage is the answer of GET /memos/ (NgDP's PagingResultUUID).
type PullPage struct {
	Content       []string `json:"content"`
	Number        int      `json:"number"`
	Size          int      `json:"size"`
	TotalElements uint64   `json:"totalElements"`
	TotalPages    uint64   `json:"totalPages"`
	// Next is the path of the next page (an `after` cursor), absent at the end.
	Next string `json:"next,omitempty"`
}

func (a *PullAPI) list(w http.ResponseWriter, r *http.Request, system string) error {
	q := r.URL.Query()
	size, page := DefaultPullPageSize, 0
	var err error
	if v := q.Get("size"); v != "" {
		if size, err = strconv.Atoi(v); err != nil || size < 1 || size > MaxPullPageSize {
			return badRequest("size %q: give 1..%d", v, MaxPullPageSize)
		}
	}
	after := q.Get("after")
	if v := q.Get("page"); v != "" {
		if page, err = strconv.Atoi(v); err != nil || page < 0 || page > 1_000_000 {
			return badRequest("page %q: give a page number from 0", v)
		}
		if after != "" && page > 0 {
			return badRequest("give page or after, not both")
		}
	}
	ids, total, err := a.store.List(system, after, page*size, size)
	if err != nil {
		return err
	}
	out := PullPage{Content: ids, Number: page, Size: size, TotalElements: total, TotalPages: (total + uint64(size) - 1) / uint64(size)}
	if out.Content == nil {
		out.Content = []string{}
	}
	if len(ids) == size {
		out.Next = "/apis/v1/memos/?size=" + strconv.Itoa(size) + "&after=" + url.QueryEscape(ids[len(ids)-1])
	}
	w.Header().Set("Content-Type", "application/json")
	return json.NewEncoder(w).Encode(out)
}

func (a *PullAPI) entry(system, id string) (OutboxEntry, error) {
	if id == "" || len(id) > 64 {
		return OutboxEntry{}, badRequest("message id %q is not a messageUUID", id)
	}
	e, ok, err := a.store.Get(system, id)
	if err != nil {
		return e, err
	}
	if !ok {
		return e, notFoundErr(id)
	}
	return e, nil
}

func (a *PullAPI) get(w http.ResponseWriter, r *http.Request, system string) error {
	id := pathID(r)
	e, err := a.entry(system, id)
	if err != nil {
		return err
	}
	if e.Deleted() {
		return notFoundErr(id)
	}
	want := e.Env.WantVersion
	if a.systems != nil {
		if s, ok := a.systems.System(system); ok {
			want = s.WantVersion
		}
	}
	d := &Deliverer{blobs: a.blobs}
	src, aerr := d.original(r.Context(), &e.Env)
	if aerr == nil {
		src, aerr = convert(src, e.Env.MemoVersion, want)
	}
	if aerr != nil {
		if errors.Is(aerr, ErrPermanent) {
			return &auth.Error{Status: http.StatusInternalServerError, Code: aerr.Code, Message: aerr.Error()}
		}
		return aerr
	}
	w.Header().Set("Content-Type", "application/xml")
	w.Header().Set(HeaderMessageUUID, id)
	w.Header().Set("Content-Length", strconv.Itoa(len(src)))
	_, _ = w.Write(src)
	return nil
}

// write produces recs and applies the outbox change to the local index at
// once, so the caller reads its own write.
func (a *PullAPI) write(ctx context.Context, outbox *kgo.Record, others ...*kgo.Record) error {
	res := a.prod.ProduceSync(ctx, append([]*kgo.Record{outbox}, others...)...)
	if err := res.FirstErr(); err != nil {
		return pipeline.Transient(err)
	}
	return a.store.apply([]applied{{key: outbox.Key, value: outbox.Value, part: outbox.Partition, offset: outbox.Offset}}, false)
}

func (a *PullAPI) delete(w http.ResponseWriter, r *http.Request, system string) error {
	id := pathID(r)
	defer a.lock(system, id)()
	e, err := a.entry(system, id)
	if err != nil {
		return err
	}
	if e.Deleted() {
		return notFoundErr(id)
	}
	now := a.now()
	e.Env.Body = nil
	ev := makeEvent(a.pseudo, &e.Env, events.MemoSendFetchedByRecipientSystem, now)
	rec := &kgo.Record{Topic: TopicOutbox, Key: OutboxKey(system, id), Value: outboxValue(&e.Env, e.Flags|flagDeleted)}
	// Picked up: a claim-checked body is no longer needed.
	if err := a.write(r.Context(), rec, appendBlobDone([]*kgo.Record{events.NewRecord(pipeline.TopicEvents, ev)}, &e.Env)...); err != nil {
		return err
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

// receipt relays the system's business receipt to the sender.
func (a *PullAPI) receipt(w http.ResponseWriter, r *http.Request, system string) error {
	id := pathID(r)
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	if err != nil {
		return badRequest("reading the receipt: %v", err)
	}
	var in records.Receipt
	if err := json.Unmarshal(body, &in); err != nil {
		if _, err := a.entry(system, id); err != nil {
			return err
		}
		return receiptUnprocessable("the body is not a Receipt JSON object: " + err.Error())
	}
	out, err := a.RelayReceipt(r.Context(), system, id, &in)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	return json.NewEncoder(w).Encode(out)
}

func receiptUnprocessable(msg string) error {
	return &auth.Error{Status: http.StatusUnprocessableEntity, Code: CodeReceiptInvalid, Message: msg}
}

// RelayReceipt is the one path of a recipient system's business receipt
// for message id of its outbox, whether it came as POST
// /memos/{id}/receipt or as an SFTP receipt file: check it, mark the
// outbox entry receipted, and produce the event and the sender's receipt
// (memo.receipts), answering only after Kafka acknowledged them. Errors
// are *auth.Error for the caller's faults: 404 CodePullNotFound (no such
// message for this system), 422 CodeReceiptInvalid, 409 CodeReceiptTwice;
// anything else is transient.
func (a *PullAPI) RelayReceipt(ctx context.Context, system, id string, in *records.Receipt) (*records.Receipt, error) {
	defer a.lock(system, id)()
	e, err := a.entry(system, id)
	if err != nil {
		return nil, err
	}
	switch in.ReceiptStatus {
	case records.StatusCompleted, records.StatusInvalid, records.StatusNotAllowed, records.StatusFailed:
	default:
		return nil, receiptUnprocessable(fmt.Sprintf("receiptStatus %q: give COMPLETED, or INVALID, NOT_ALLOWED or FAILED with an errorCode", in.ReceiptStatus))
	}
	if in.ReceiptStatus != records.StatusCompleted && in.ErrorCode == "" {
		return nil, receiptUnprocessable("a negative receipt needs an errorCode")
	}
	if in.MessageUUID != "" && in.MessageUUID != id {
		return nil, receiptUnprocessable("messageUUID " + in.MessageUUID + " is not the message " + id + " of the path")
	}
	if len(in.ErrorCode) > 256 || len(in.ErrorMessage) > 4096 {
		return nil, receiptUnprocessable("errorCode above 256 or errorMessage above 4096 characters")
	}
	if e.Receipted() {
		return nil, &auth.Error{Status: http.StatusConflict, Code: CodeReceiptTwice, Message: "message " + id + " already has a business receipt"}
	}
	now := a.now()
	out := &records.Receipt{
		TransmissionID: e.Env.TransmissionID, MessageUUID: id, ErrorCode: in.ErrorCode, ErrorMessage: in.ErrorMessage,
		TimeStamp: records.TimeStampOf(now), ReceiptStatus: in.ReceiptStatus, Kind: records.KindBusiness,
		SenderOrg: e.Env.SenderOrg, SenderSystem: e.Env.SenderSystem,
	}
	ev := makeEvent(a.pseudo, &e.Env, events.BusinessReceiptReceivedByRecipientSys, now)
	ev.ReceiptStatus, ev.ErrorCode = in.ReceiptStatus, in.ErrorCode
	flags := e.Flags | flagReceipted
	if flags&flagDeleted != 0 {
		e.Env.Body = nil
	}
	rec := &kgo.Record{Topic: TopicOutbox, Key: OutboxKey(system, id), Value: outboxValue(&e.Env, flags)}
	if err := a.write(ctx, rec, events.NewRecord(pipeline.TopicEvents, ev),
		records.NewReceiptRecord(pipeline.TopicReceipts, out)); err != nil {
		return nil, err
	}
	return out, nil
}
