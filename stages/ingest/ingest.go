// Package ingest is the NgDP-compatible sender API: it authenticates sender
// systems, checks what can be checked at once (size, well-formedness, the
// uuid, that the sender sends as itself) and writes accepted messages to
// memo.ingest. RECEIVED is answered only after Kafka acknowledged the
// record (acks=all, idempotent producer). Full validation happens in the
// parse/validate stage, which sends INVALID receipts later.
package ingest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/segmentio/encoding/json"
	"github.com/spf13/pflag"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/time/rate"

	"github.com/memoflow/memoflow/internal/auth"
	"github.com/memoflow/memoflow/internal/blob"
	"github.com/memoflow/memoflow/pipeline"
	"github.com/memoflow/memoflow/schemas/memo"
	"github.com/memoflow/memoflow/schemas/records"
)

// Config of the ingest API.
type Config struct {
	MaxShipmentBytes int64         `yaml:"max_shipment_bytes"`
	RatePerSecond    float64       `yaml:"rate_per_second"`
	RateBurst        int           `yaml:"rate_burst"`
	OverloadBytes    int64         `yaml:"overload_bytes"`
	AckTimeout       time.Duration `yaml:"ack_timeout"`
}

func (c *Config) RegisterFlags(fs *pflag.FlagSet) {
	fs.Int64Var(&c.MaxShipmentBytes, "ingest-max-shipment-bytes", memo.DefaultMaxBytes, "largest accepted request body (NgDP: 99.5 MB)")
	fs.Float64Var(&c.RatePerSecond, "ingest-rate-per-second", 200, "requests per second per sender system (429 beyond)")
	fs.IntVar(&c.RateBurst, "ingest-rate-burst", 400, "request burst per sender system")
	fs.Int64Var(&c.OverloadBytes, "ingest-overload-bytes", 256<<20, "bytes waiting for Kafka above which ingest answers 503")
	fs.DurationVar(&c.AckTimeout, "ingest-ack-timeout", 30*time.Second, "longest wait for Kafka's acknowledgement of a submission")
}

func (c *Config) Validate() error {
	switch {
	case c.MaxShipmentBytes < 1<<20:
		return fmt.Errorf("ingest.max_shipment_bytes: %d is below 1 MiB", c.MaxShipmentBytes)
	case c.RatePerSecond <= 0 || c.RateBurst < 1:
		return errors.New("ingest.rate_per_second and rate_burst: must be positive")
	case c.OverloadBytes < 1<<20:
		return fmt.Errorf("ingest.overload_bytes: %d is below 1 MiB", c.OverloadBytes)
	case c.AckTimeout < time.Second:
		return fmt.Errorf("ingest.ack_timeout: %s is below 1s", c.AckTimeout)
	}
	return nil
}

// API serves the sender endpoints.
type API struct {
	cfg      Config
	tokens   auth.Store
	producer *kgo.Client
	log      *slog.Logger
	now      func() time.Time

	topic     string
	blobs     blob.Store
	threshold int64

	mu       sync.Mutex
	limiters map[string]*rate.Limiter
}

// Option configures the API.
type Option func(*API)

// WithTopic makes the API write to topic instead of memo.ingest
// (benchmarks against a shared cluster).
func WithTopic(topic string) Option { return func(a *API) { a.topic = topic } }

// WithBlobStore turns on the claim check: a MeMo larger than threshold
// bytes goes to store and its Kafka record carries only the reference, so
// records stay small whatever the attachments weigh.
func WithBlobStore(store blob.Store, threshold int64) Option {
	return func(a *API) { a.blobs, a.threshold = store, threshold }
}

// New returns the API. producer must be an idempotent, acks=all client
// (franz-go's default).
func New(cfg Config, tokens auth.Store, producer *kgo.Client, log *slog.Logger, opts ...Option) (*API, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	a := &API{cfg: cfg, tokens: tokens, producer: producer, log: log, now: time.Now, topic: pipeline.TopicIngest, limiters: map[string]*rate.Limiter{}}
	for _, o := range opts {
		o(a)
	}
	return a, nil
}

// Register mounts the endpoints on mux.
func (a *API) Register(mux *http.ServeMux) {
	mux.Handle("POST /apis/v1/memos/", auth.Require(a.tokens, http.HandlerFunc(a.submit), auth.RoleSender))
	mux.Handle("POST /apis/v1/memos", auth.Require(a.tokens, http.HandlerFunc(a.submit), auth.RoleSender))
	mux.Handle("GET /apis/v1/whoami", auth.Require(a.tokens, http.HandlerFunc(whoami)))
}

// whoami tells a caller who its token says it is (clients use it to send
// as their own organisation).
func whoami(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, auth.FromContext(r.Context()))
}

// rejection is a submission refused at once.
type rejection struct {
	status  int
	code    string
	message string
	errs    []records.ReceiptError
}

func reject(code, format string, args ...any) *rejection {
	return &rejection{status: statusOf(code), code: code, message: fmt.Sprintf(format, args...)}
}

func (a *API) submit(w http.ResponseWriter, r *http.Request) {
	p := auth.FromContext(r.Context())
	tid := newUUID()
	if !a.limiter(p.ID).Allow() {
		w.Header().Set("Retry-After", "1")
		a.answer(w, tid, "", reject(CodeRateLimited, "more than %.0f requests per second from system %s", a.cfg.RatePerSecond, p.ID))
		return
	}
	if buffered := a.producer.BufferedProduceBytes(); buffered > a.cfg.OverloadBytes {
		w.Header().Set("Retry-After", "5")
		a.answer(w, tid, "", reject(CodeOverloaded, "%d bytes are waiting for Kafka; nothing was accepted", buffered))
		return
	}
	mt, params, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch mt {
	case "application/xml", "text/xml":
		a.submitOne(w, r, p, tid)
	case "application/x-lzma", "multipart/form-data":
		a.submitBatch(w, r, p, tid, mt, params)
	default:
		a.answer(w, tid, "", reject(CodeContentType, "Content-Type %q is not application/xml, application/x-lzma or multipart/form-data", r.Header.Get("Content-Type")))
	}
}

func (a *API) submitOne(w http.ResponseWriter, r *http.Request, p *auth.Principal, tid string) {
	uuid := r.URL.Query().Get("memo-message-uuid")
	if uuid == "" {
		a.answer(w, tid, "", reject(CodeUUIDMissing, "give the message's uuid as ?memo-message-uuid="))
		return
	}
	if !memo.IsUUID(uuid) {
		a.answer(w, tid, uuid, reject(CodeUUIDInvalid, "memo-message-uuid %q is not a UUID", uuid))
		return
	}
	body, rej := readBody(w, r, a.cfg.MaxShipmentBytes)
	if rej != nil {
		a.answer(w, tid, uuid, rej)
		return
	}
	m, rej := a.check(body, p)
	if rej == nil && m.Header.MessageUUID != uuid {
		rej = reject(CodeUUIDMismatch, "memo-message-uuid is %s but the message's messageUUID is %q", uuid, m.Header.MessageUUID)
	}
	if rej != nil {
		a.answer(w, tid, uuid, rej)
		a.emitReceipt(r.Context(), tid, uuid, p, rej)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), a.cfg.AckTimeout)
	defer cancel()
	rec, err := a.ingestRecord(ctx, tid, uuid, p, body, false)
	if err != nil {
		a.log.Warn("blob store refused a message", "err", err, "messageUUID", uuid)
		w.Header().Set("Retry-After", "5")
		a.answer(w, tid, uuid, reject(CodeBlobStore, "the message could not be stored: %v", err))
		return
	}
	if err := a.producer.ProduceSync(ctx, rec).FirstErr(); err != nil {
		a.log.Warn("kafka did not acknowledge a submission", "err", err, "messageUUID", uuid)
		w.Header().Set("Retry-After", "5")
		a.answer(w, tid, uuid, reject(CodeKafkaUnavailable, "Kafka did not acknowledge the message: %v", err))
		return
	}
	a.answer(w, tid, uuid, nil)
}

// check parses enough to refuse at once what can never be accepted: a
// document that is not well-formed (or breaks the parser's limits) and a
// sender that is not the caller's organisation. Schema validation is the
// parse/validate stage's.
func (a *API) check(body []byte, p *auth.Principal) (*memo.Message, *rejection) {
	m, err := memo.Parse(body)
	if err != nil {
		var me *memo.Error
		if errors.As(err, &me) {
			msg := me.Message
			if me.Path != "" {
				msg += " (at " + me.Path + ")"
			}
			rj := reject(string(me.Code), "%s", msg)
			rj.status = http.StatusBadRequest
			if me.Code == memo.CodeLimitSize {
				rj.status = http.StatusRequestEntityTooLarge
			}
			rj.errs = []records.ReceiptError{{Code: string(me.Code), Path: me.Path, Message: me.Message}}
			return nil, rj
		}
		return nil, reject(CodeReadFailed, "%v", err)
	}
	if s := m.Header.Sender.SenderID; s != p.Org {
		return m, reject(CodeSenderNotAllowed, "Sender/senderID %q is not %s, the organisation of system %s", s, p.Org, p.ID)
	}
	return m, nil
}

// ingestRecord builds the memo.ingest record; a MeMo above the claim-check
// threshold is stored as a blob first and the record carries its key.
func (a *API) ingestRecord(ctx context.Context, tid, uuid string, p *auth.Principal, body []byte, mass bool) (*kgo.Record, error) {
	sum := sha256.Sum256(body)
	meta := records.IngestMeta{
		MessageUUID: uuid, TransmissionID: tid, SenderOrg: p.Org, SenderSystem: p.ID,
		ReceivedAt: a.now(), MassSend: mass, ContentSHA256: hex.EncodeToString(sum[:]), Size: len(body),
	}
	if a.blobs != nil && int64(len(body)) > a.threshold {
		// The key holds the content hash: a resend of the same message
		// finds its blob (Put is idempotent), other content gets its own.
		key := p.Org + "/" + strings.ToLower(uuid) + "-" + meta.ContentSHA256[:16]
		if _, err := a.blobs.Put(ctx, key, bytes.NewReader(body)); err != nil {
			return nil, err
		}
		meta.BlobKey = key
		body = nil
	}
	return records.NewIngestRecord(a.topic, meta, body), nil
}

// emitReceipt records a rejection in memo.receipts so the sender also finds
// it with GET /receipts. Best effort: the HTTP answer already carries it.
func (a *API) emitReceipt(ctx context.Context, tid, uuid string, p *auth.Principal, rj *rejection) {
	rc := a.receipt(tid, uuid, rj)
	rc.SenderOrg, rc.SenderSystem = p.Org, p.ID
	a.producer.Produce(context.WithoutCancel(ctx), records.NewReceiptRecord(pipeline.TopicReceipts, rc), func(_ *kgo.Record, err error) {
		if err != nil {
			a.log.Warn("could not record a rejection receipt", "err", err)
		}
	})
}

func (a *API) receipt(tid, uuid string, rj *rejection) *records.Receipt {
	rc := &records.Receipt{TransmissionID: tid, MessageUUID: uuid, TimeStamp: records.TimeStampOf(a.now()),
		ReceiptStatus: records.StatusReceived, Kind: records.KindTechnical}
	if rj != nil {
		rc.ErrorCode, rc.ErrorMessage, rc.Errors = rj.code, rj.message, rj.errs
		rc.ReceiptStatus = records.StatusInvalid
		if rj.code == CodeSenderNotAllowed {
			rc.ReceiptStatus = records.StatusNotAllowed
		}
	}
	return rc
}

// answer writes the receipt: 201 RECEIVED, or the rejection's status.
func (a *API) answer(w http.ResponseWriter, tid, uuid string, rj *rejection) {
	rc := a.receipt(tid, uuid, rj)
	status := http.StatusCreated
	if rj != nil {
		status = rj.status
	}
	writeJSON(w, status, rc)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func readBody(w http.ResponseWriter, r *http.Request, max int64) ([]byte, *rejection) {
	if r.ContentLength > max {
		return nil, reject(CodeTooLarge, "the body is %d bytes, more than %d", r.ContentLength, max)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, max))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, reject(CodeTooLarge, "the body is more than %d bytes", max)
		}
		return nil, reject(CodeReadFailed, "reading the body: %v", err)
	}
	if len(body) == 0 {
		return nil, reject(CodeEmpty, "the request body is empty")
	}
	return body, nil
}

func (a *API) limiter(system string) *rate.Limiter {
	a.mu.Lock()
	defer a.mu.Unlock()
	l, ok := a.limiters[system]
	if !ok {
		l = rate.NewLimiter(rate.Limit(a.cfg.RatePerSecond), a.cfg.RateBurst)
		a.limiters[system] = l
	}
	return l
}

// newUUID returns a random (v4) UUID for transmission ids.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var s [36]byte
	hex.Encode(s[0:8], b[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], b[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], b[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], b[8:10])
	s[23] = '-'
	hex.Encode(s[24:], b[10:])
	return string(s[:])
}
