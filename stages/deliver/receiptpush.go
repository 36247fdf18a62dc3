package deliver

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/memoflow/memoflow/pipeline"
	"github.com/memoflow/memoflow/schemas/events"
	"github.com/memoflow/memoflow/schemas/records"
	"github.com/memoflow/memoflow/schemas/registry"
	"github.com/memoflow/memoflow/stages/receipts"
)

// Receipt push: receipts for sender systems that have a receiptEndpoint.
// The receipts sink hands them to a ReceiptPusher, which only queues them
// durably (memo.receipts.push) and returns; the receipt-push consumer POSTs
// them, and a failed POST waits in memo.receipts.push.retry (one constant
// gap, so that topic's partitions fall due in order, like the delivery
// schedule's) until MaxAttempts.
const (
	TopicReceiptPush      = pipeline.TopicReceiptPush
	TopicReceiptPushRetry = TopicReceiptPush + ".retry"

	headerReceiptID      = "memoflow.receipt.id"
	headerReceiptAttempt = "memoflow.receipt.attempt"
	headerReceiptDue     = "memoflow.receipt.due"
	// HeaderReceiptID carries the receipt id to the sender system, which
	// tells repeats apart by it.
	HeaderReceiptID = "X-Memo-Receipt-Id"
)

// SenderEndpoints answers where a sender system takes its receipts ("" =
// it reads them from the receipts API only).
type SenderEndpoints interface {
	ReceiptEndpoint(senderSystem string) string
}

// RegistrySenders is SenderEndpoints over the registry view.
type RegistrySenders struct{ View *registry.View }

func (r *RegistrySenders) ReceiptEndpoint(id string) string {
	s := r.View.SenderSystem(id)
	if s == nil || !s.Active {
		return ""
	}
	return s.ReceiptEndpoint
}

// StaticSenders is SenderEndpoints from a map (tests).
type StaticSenders map[string]string

func (s StaticSenders) ReceiptEndpoint(id string) string { return s[id] }

// ReceiptPusher implements receipts.RecordPusher: the receipts of sender
// systems with an endpoint go to memo.receipts.push, emitted by the
// receipts sink in its batch's transaction (a slow endpoint never holds the
// sink, and each receipt is queued exactly once). Push, for callers outside
// a transaction, produces them with prod (acks=all) instead.
type ReceiptPusher struct {
	senders SenderEndpoints
	prod    *kgo.Client
}

// NewReceiptPusher returns a Pusher; prod (acks=all) is used only by Push.
func NewReceiptPusher(senders SenderEndpoints, prod *kgo.Client) *ReceiptPusher {
	return &ReceiptPusher{senders: senders, prod: prod}
}

var _ receipts.RecordPusher = (*ReceiptPusher)(nil)

// PushRecords returns the queue records of the receipts whose sender system
// takes receipts by push.
func (p *ReceiptPusher) PushRecords(rs []receipts.Pushed) []*kgo.Record {
	var recs []*kgo.Record
	for _, r := range rs {
		if p.senders.ReceiptEndpoint(r.SenderSystem) == "" {
			continue
		}
		recs = append(recs, &kgo.Record{Topic: TopicReceiptPush, Key: []byte(r.SenderSystem), Value: r.Body,
			Headers: []kgo.RecordHeader{{Key: headerReceiptID, Value: []byte(r.ID)}}})
	}
	return recs
}

// Push produces the queue records and returns once Kafka acknowledged them.
func (p *ReceiptPusher) Push(ctx context.Context, rs []receipts.Pushed) error {
	recs := p.PushRecords(rs)
	if len(recs) == 0 {
		return nil
	}
	if err := p.prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return pipeline.Transient(err)
	}
	return nil
}

// ReceiptPushConfig configures the receipt-push consumer.
type ReceiptPushConfig struct {
	Gap         time.Duration // wait between attempts (5m)
	MaxAttempts int           // then BUSINESS_RECEIPT_SEND_TO_SENDER_SYSTEM_FAILED (288: a day)
	Timeout     time.Duration // per POST (30s)
	PerSender   int           // POSTs in flight per sender system (4)
	MaxIdle     time.Duration
	PollRecords int
}

// DefaultReceiptPushConfig: every 5 minutes for a day.
func DefaultReceiptPushConfig() ReceiptPushConfig {
	return ReceiptPushConfig{Gap: 5 * time.Minute, MaxAttempts: 288, Timeout: 30 * time.Second, PerSender: 4, MaxIdle: time.Second, PollRecords: 1000}
}

type receiptSender struct {
	cfg     ReceiptPushConfig
	senders SenderEndpoints
	client  *http.Client
	now     func() time.Time
	log     *slog.Logger
}

// NewReceiptPushConsumer returns the consumer that POSTs queued receipts.
func NewReceiptPushConsumer(cfg ReceiptPushConfig, senders SenderEndpoints, opts []kgo.Opt, group string, client *http.Client, now func() time.Time, log *slog.Logger, dopts ...DelayOption) (*RetryConsumer, error) {
	if cfg.Gap <= 0 || cfg.MaxAttempts < 1 || cfg.Timeout <= 0 || cfg.PerSender < 1 || cfg.MaxIdle <= 0 || cfg.PollRecords < 1 {
		return nil, errors.New("deliver: receipt push: gap, max attempts, timeout, per-sender, max idle and poll records must be positive")
	}
	if client == nil {
		client = &http.Client{}
	}
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.Default()
	}
	h := &receiptSender{cfg: cfg, senders: senders, client: client, now: now, log: log}
	return newDelayConsumer(h, []string{TopicReceiptPush, TopicReceiptPushRetry}, opts, group, now, cfg.MaxIdle, cfg.PollRecords, noGauge{}, log, dopts...)
}

type noGauge struct{}

func (noGauge) Set(float64) {}

func header(r *kgo.Record, k string) string {
	for _, h := range r.Headers {
		if h.Key == k {
			return string(h.Value)
		}
	}
	return ""
}

func (s *receiptSender) dueAt(r *kgo.Record) int64 {
	n, _ := strconv.ParseInt(header(r, headerReceiptDue), 10, 64)
	return n
}

func (s *receiptSender) handle(ctx context.Context, recs []*kgo.Record) ([]*kgo.Record, error) {
	bySender := map[string][]int{}
	for i, r := range recs {
		bySender[string(r.Key)] = append(bySender[string(r.Key)], i)
	}
	outs := make([][]*kgo.Record, len(recs))
	var wg sync.WaitGroup
	for sender, idx := range bySender {
		ep := s.senders.ReceiptEndpoint(sender)
		var mu sync.Mutex
		next := 0
		for range min(s.cfg.PerSender, len(idx)) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					mu.Lock()
					if next >= len(idx) {
						mu.Unlock()
						return
					}
					i := idx[next]
					next++
					mu.Unlock()
					outs[i] = s.send(ctx, recs[i], ep)
				}
			}()
		}
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []*kgo.Record
	for _, o := range outs {
		out = append(out, o...)
	}
	return out, nil
}

// send POSTs one receipt and says what follows.
func (s *receiptSender) send(ctx context.Context, r *kgo.Record, endpoint string) []*kgo.Record {
	var rc records.Receipt
	_ = records.DecodeReceipt(r.Value, &rc)
	attempt, _ := strconv.Atoi(header(r, headerReceiptAttempt))
	attempt++
	id := header(r, headerReceiptID)
	code := ""
	if endpoint == "" {
		code = "RECEIPT_PUSH_NO_ENDPOINT" // the endpoint was removed meanwhile
	} else {
		pctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
		req, err := http.NewRequestWithContext(pctx, http.MethodPost, endpoint, bytes.NewReader(r.Value))
		if err == nil {
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set(HeaderReceiptID, id)
			req.Header.Set(HeaderIdempotencyKey, id)
			var resp *http.Response
			if resp, err = s.client.Do(req); err == nil {
				_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
				resp.Body.Close()
				if resp.StatusCode < 200 || resp.StatusCode > 299 {
					code = CodeHTTPStatus
				}
			} else {
				code = CodeConnect
			}
		} else {
			code = CodeNoEndpoint
		}
		cancel()
	}
	now := s.now()
	ev := events.Event{
		Time: now, Tag: events.BusinessReceiptSendToSenderSystem, MessageUUID: rc.MessageUUID,
		TransmissionID: rc.TransmissionID, SenderOrg: rc.SenderOrg, SenderSystem: string(r.Key),
		ReceiptStatus: rc.ReceiptStatus,
	}
	if code == "" {
		return []*kgo.Record{events.NewRecord(pipeline.TopicEvents, ev)}
	}
	if ctx.Err() != nil {
		return nil // stopping: not decided, the record is processed again
	}
	if attempt < s.cfg.MaxAttempts && code != "RECEIPT_PUSH_NO_ENDPOINT" {
		return []*kgo.Record{{Topic: TopicReceiptPushRetry, Key: r.Key, Value: r.Value, Headers: []kgo.RecordHeader{
			{Key: headerReceiptID, Value: []byte(id)},
			{Key: headerReceiptAttempt, Value: []byte(strconv.Itoa(attempt))},
			{Key: headerReceiptDue, Value: []byte(strconv.FormatInt(now.Add(s.cfg.Gap).UnixMilli(), 10))},
		}}}
	}
	ev.Tag, ev.ErrorCode = events.BusinessReceiptSendToSenderSystemFailed, code
	s.log.Warn("receipt push given up", "sender", string(r.Key), "receipt", id, "attempts", attempt, "code", code)
	return []*kgo.Record{events.NewRecord(pipeline.TopicEvents, ev)}
}
