// Package deliver is memoflow's delivery stage: it hands routed messages to
// recipient systems by REST push, keeps them for REST pull (and tells
// publish/subscribe systems they are there), redelivers on the seeds'
// schedule through durable delay topics, tells the contact person and the
// sender when it gives up, deactivates systems that received nothing for a
// week, and sends senders their business receipts. See DESIGN.md.
package deliver

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/encoding/json"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/memoflow/memoflow/internal/blob"
	"github.com/memoflow/memoflow/pipeline"
	"github.com/memoflow/memoflow/schemas/events"
	"github.com/memoflow/memoflow/schemas/memo"
	"github.com/memoflow/memoflow/schemas/records"
	"github.com/memoflow/memoflow/stages/blobgc"
)

// Topics delivery writes besides events and receipts. TopicOutbox and
// TopicNotify are in pipeline's catalogue; the delay topics come from the
// schedule (Config.RetryTopics).
const (
	TopicOutbox = pipeline.TopicOutbox
	TopicNotify = pipeline.TopicNotify
	// HeaderFirstFailure (Unix ms) on retry records anchors the schedule.
	HeaderFirstFailure = "memoflow.deliver.first-failure"
)

// Deliverer attempts deliveries and says what follows from each: events,
// receipts, the next retry, an outbox entry, a notification. The Sink
// (memo.routed) and the RetryConsumer (delay topics) share one.
type Deliverer struct {
	cfg     Config
	systems Systems
	deact   Deactivator
	blobs   blob.Store
	pseudo  *events.Pseudonymizer
	client  *http.Client
	now     func() time.Time
	started time.Time
	log     *slog.Logger
	gates   *gates
	workers chan struct{}
	metrics *metrics
	// tr holds the SFTP and SMTP clients and their targets.
	tr transports

	deactMu     sync.Mutex
	deactivated map[string]bool

	// journal, when set, remembers acknowledged pushes outside the batch
	// transaction (journal.go).
	journal *Journal
}

// Option configures a Deliverer.
type Option func(*Deliverer)

// WithClock injects time (tests run the week-long schedule in milliseconds).
func WithClock(now func() time.Time) Option { return func(d *Deliverer) { d.now = now } }

// WithHTTPClient replaces the HTTP client (its Timeout is left alone; each
// push has its own deadline).
func WithHTTPClient(c *http.Client) Option { return func(d *Deliverer) { d.client = c } }

// WithBlobStore lets delivery read claim-checked MeMo.
func WithBlobStore(s blob.Store) Option { return func(d *Deliverer) { d.blobs = s } }

// WithDeactivator sets who deactivates systems (the registry writer).
// Without one, a system is never deactivated (only logged).
func WithDeactivator(x Deactivator) Option { return func(d *Deliverer) { d.deact = x } }

// WithJournal makes the Deliverer record acknowledged pushes in j and skip
// the pushes j knows were acknowledged (journal.go).
func WithJournal(j *Journal) Option { return func(d *Deliverer) { d.journal = j } }

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(d *Deliverer) { d.log = l } }

// WithRegisterer registers delivery metrics.
func WithRegisterer(r prometheus.Registerer) Option {
	return func(d *Deliverer) { d.metrics = newMetrics(r) }
}

// NewDeliverer returns a Deliverer; systems answers who the destinations
// are and pseudo makes the events' recipients.
func NewDeliverer(cfg Config, systems Systems, pseudo *events.Pseudonymizer, opts ...Option) (*Deliverer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if systems == nil || pseudo == nil {
		return nil, errors.New("deliver: systems and pseudonymizer are required")
	}
	d := &Deliverer{
		cfg: cfg, systems: systems, pseudo: pseudo, now: time.Now, log: slog.Default(),
		gates:       newGates(cfg.PerSystem, cfg.BreakerFailures, cfg.BreakerCooldown),
		workers:     make(chan struct{}, cfg.Workers),
		deactivated: map[string]bool{},
	}
	for _, o := range opts {
		o(d)
	}
	if err := d.tr.init(cfg); err != nil {
		return nil, err
	}
	if d.client == nil {
		d.client = &http.Client{Transport: &http.Transport{
			MaxIdleConnsPerHost: cfg.PerSystem, IdleConnTimeout: 90 * time.Second, ForceAttemptHTTP2: true,
		}}
	}
	if d.metrics == nil {
		d.metrics = newMetrics(nil)
	}
	d.started = d.now()
	return d, nil
}

// item is one message of a batch and what its delivery produced.
type item struct {
	rec *kgo.Record
	env records.Envelope
	// first is the first failure (Unix ms) of a retried message, 0 before.
	first int64
	out   []*kgo.Record
	// err is set only when the delivery could not be decided (the context
	// ended): the batch must not commit.
	err error
	// retry: the item comes from a delay topic, so it may probe a
	// half-open circuit.
	retry bool
}

// decode makes items of records; a record that is no Envelope is returned
// in bad.
func decodeItems(recs []*kgo.Record) (items []*item, bad []*kgo.Record, errs []error) {
	items = make([]*item, 0, len(recs))
	for _, r := range recs {
		it := &item{rec: r, retry: strings.HasPrefix(r.Topic, RetryTopicPrefix)}
		if err := it.env.Decode(r.Value); err != nil {
			bad, errs = append(bad, r), append(errs, err)
			continue
		}
		for _, h := range r.Headers {
			if h.Key == HeaderFirstFailure {
				it.first, _ = strconv.ParseInt(string(h.Value), 10, 64)
			}
		}
		items = append(items, it)
	}
	return items, bad, errs
}

// run delivers items: per destination at most PerSystem at a time, over
// all at most Workers. A slow system only occupies its own PerSystem
// slots; its circuit opens after BreakerFailures failures, after which
// its messages are rescheduled without a call.
func (d *Deliverer) run(ctx context.Context, items []*item) {
	bySys := map[string][]*item{}
	var order []string
	for _, it := range items {
		k := it.env.Destination
		if _, ok := bySys[k]; !ok {
			order = append(order, k)
		}
		bySys[k] = append(bySys[k], it)
	}
	if d.journal != nil && len(items) > 0 {
		// Every acknowledgement written before this batch began (by a
		// process that held these records and died) must be known
		// before any of them is pushed.
		if err := d.journal.Sync(ctx, journalSyncWait); err != nil {
			d.log.Warn("push journal not in sync; this batch may repeat pushes a dead process made", "err", err)
		}
	}
	var wg sync.WaitGroup
	now := d.now()
	for _, k := range order {
		q := bySys[k]
		if d.cfg.SlowThreshold > 0 && d.gates.get(k).slow(d.cfg.SlowThreshold, now) {
			// Fresh messages of a slow system: to the slow lane, so
			// this batch does not wait for it (slow.go). Retries are
			// already in a delay consumer's batches.
			var fresh []*item
			for _, it := range q {
				if it.retry {
					fresh = append(fresh, it)
					continue
				}
				d.divert(it, now)
			}
			if q = fresh; len(q) == 0 {
				continue
			}
		}
		var mu sync.Mutex
		next := 0
		n := min(d.cfg.PerSystem, len(q))
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					mu.Lock()
					if next >= len(q) {
						mu.Unlock()
						return
					}
					it := q[next]
					next++
					mu.Unlock()
					d.deliver(ctx, it)
				}
			}()
		}
	}
	wg.Wait()
}

// deliver decides one message.
func (d *Deliverer) deliver(ctx context.Context, it *item) {
	if err := ctx.Err(); err != nil {
		it.err = err
		return
	}
	env := &it.env
	sys, ok := d.systems.System(env.Destination)
	if !ok {
		d.failed(ctx, it, nil, attemptErr(CodeUnknownSystem, "recipient system %q is not in the registry", env.Destination), false)
		return
	}
	if d.journal != nil {
		if at, ok := d.journal.Acked(env.MessageUUID, env.Attempt); ok {
			// Acknowledged by the system before this batch was redone
			// (even if the system changed since): the outcome as it
			// was, without a second push.
			d.journal.m.skips.Inc()
			d.delivered(it, &sys, at)
			return
		}
	}
	switch {
	case !sys.Active:
		// A deactivated system's post waits for pickup.
		d.toOutbox(it, &sys, events.MemoSendReadyForFetch, "")
		return
	case sys.Protocol == ProtoPull:
		d.toOutbox(it, &sys, events.MemoSendReadyForFetch, "")
		return
	case sys.Protocol == ProtoPubSub:
		d.toOutbox(it, &sys, events.MemoSendReadyForFetch, "")
		d.notify(ctx, it, &sys)
		return
	case sys.Protocol != ProtoPush && sys.Protocol != ProtoSFTP && sys.Protocol != ProtoSMTP:
		d.toOutbox(it, &sys, events.MemoSendReadyForFetch, CodeWrongProtocol)
		return
	case sys.Endpoint == "":
		d.failed(ctx, it, &sys, attemptErr(CodeNoEndpoint, "%s system %s has no endpoint", sys.Protocol, sys.ID), false)
		return
	}
	// SFTP and SMTP: a target from the registry entry. Without memoflow's
	// key or certificate, or with an unusable entry, no attempt can
	// succeed: fail now, without touching the system's circuit.
	var target any
	if sys.Protocol != ProtoPush {
		var terr *AttemptError
		if target, terr = d.tr.target(&sys); terr != nil {
			d.alert(&sys, terr)
			d.failed(ctx, it, &sys, terr, true)
			return
		}
	}
	body, aerr := d.body(ctx, env, sys.WantVersion)
	if aerr != nil {
		if ctx.Err() != nil {
			it.err = ctx.Err()
			return
		}
		d.failed(ctx, it, &sys, aerr, errors.Is(aerr, ErrPermanent))
		return
	}
	g := d.gates.get(sys.ID)
	for {
		ok, wait := g.allow(d.now(), it.retry)
		if ok {
			break
		}
		if wait == nil {
			d.metrics.circuitOpen.Inc()
			d.failed(ctx, it, &sys, attemptErr(CodeCircuitOpen, "circuit of %s is open after repeated failures", sys.ID), false)
			return
		}
		// Another call probes the half-open circuit: its outcome decides.
		select {
		case <-wait:
		case <-ctx.Done():
			it.err = ctx.Err()
			return
		}
	}
	select {
	case g.sem <- struct{}{}:
	case <-ctx.Done():
		g.release()
		it.err = ctx.Err()
		return
	}
	select {
	case d.workers <- struct{}{}:
	case <-ctx.Done():
		<-g.sem
		g.release()
		it.err = ctx.Err()
		return
	}
	start := time.Now()
	pctx, cancel := context.WithTimeout(ctx, d.cfg.Timeout)
	permanent := false
	if target == nil {
		aerr = push(pctx, d.client, &sys, env.MessageUUID, int(env.Attempt)+1, "application/xml", body)
	} else {
		aerr, permanent = d.tr.deliver(pctx, target, env.MessageUUID, body)
	}
	cancel()
	hanging, threshold := 0, d.cfg.BreakerFailures
	if aerr != nil && aerr.Code == CodeTimeout {
		hanging = len(g.sem) - 1 // the others in flight, not this one
		threshold = min(threshold, d.cfg.BreakerTimeouts)
	}
	<-d.workers
	<-g.sem
	took := time.Since(start)
	d.metrics.pushSeconds.Observe(took.Seconds())
	g.observe(took, d.now())
	if aerr != nil && ctx.Err() != nil {
		// Stopping: the push's outcome is unknown, so it is not decided;
		// the batch runs again after a restart with the same key.
		it.err = ctx.Err()
		return
	}
	now := d.now()
	if permanent {
		// The system answered, and no retry of this message can help:
		// neither a success nor a failure of the system for its circuit
		// (a wrong host key must not hold the messages a fixed entry
		// would deliver in an hour), but the end of a probe.
		g.release()
		d.alert(&sys, aerr)
		d.failed(ctx, it, &sys, aerr, true)
		return
	}
	g.result(aerr == nil, now, threshold, d.cfg.BreakerCooldown, hanging)
	if aerr != nil {
		d.failed(ctx, it, &sys, aerr, false)
		return
	}
	if d.journal != nil {
		d.journal.Record(env.MessageUUID, env.Attempt, now)
	}
	d.delivered(it, &sys, now)
}

// journalSyncWait bounds how long a batch waits for the push journal.
const journalSyncWait = 10 * time.Second

// alert counts a permanent failure that is a fault of the system's (or
// memoflow's) setup: it hits every message to the system, so operators
// alert on memoflow_deliver_transport_config_errors_total, not on the
// failed messages one by one.
func (d *Deliverer) alert(sys *System, aerr *AttemptError) {
	if !configCodes[aerr.Code] {
		return
	}
	d.metrics.configErrors.WithLabelValues(sys.ID, sys.Protocol.String(), aerr.Code).Inc()
	d.log.Error("recipient system unusable until its configuration is fixed", "system", sys.ID,
		"protocol", sys.Protocol.String(), "code", aerr.Code, "err", aerr.Err)
}

// body returns the MeMo as the system takes it.
func (d *Deliverer) body(ctx context.Context, env *records.Envelope, want uint8) ([]byte, *AttemptError) {
	src, aerr := d.original(ctx, env)
	if aerr != nil {
		return nil, aerr
	}
	return convert(src, env.MemoVersion, want)
}

// original returns the MeMo as submitted, from the envelope or the blob
// store.
func (d *Deliverer) original(ctx context.Context, env *records.Envelope) ([]byte, *AttemptError) {
	if env.BlobKey == "" {
		return env.Body, nil
	}
	if d.blobs == nil {
		return nil, attemptErr(CodeBlob, "message %s is claim-checked (%s) but no blob store is configured", env.MessageUUID, env.BlobKey)
	}
	ref := blob.Ref{Key: env.BlobKey, Size: int64(env.Size), SHA256: hex.EncodeToString(env.ContentSHA256[:])}
	rc, err := d.blobs.Get(ctx, ref)
	if err == nil {
		var buf bytes.Buffer
		buf.Grow(int(env.Size))
		_, err = io.Copy(&buf, rc)
		rc.Close()
		if err == nil {
			return buf.Bytes(), nil
		}
	}
	if errors.Is(err, blob.ErrNotFound) || errors.Is(err, blob.ErrCorrupt) {
		return nil, &AttemptError{Code: CodeBlob, Err: fmt.Errorf("%w: %v", ErrPermanent, err)}
	}
	return nil, attemptErr(CodeBlob, "%v", err)
}

// convert down-converts a 1.2 MeMo for a system that takes 1.1 (NgDP's
// default); everything else goes out byte for byte.
func convert(src []byte, have, want uint8) ([]byte, *AttemptError) {
	if want == 0 {
		want = 11
	}
	if want != 11 || have != 12 {
		return src, nil
	}
	m, err := memo.Parse(src)
	if err != nil {
		return nil, &AttemptError{Code: CodeTransformation, Err: fmt.Errorf("%w: parse for 1.1: %v", ErrPermanent, err)}
	}
	out, _, err := memo.ForRecipient(src, m, memo.Version11)
	if err != nil {
		return nil, &AttemptError{Code: CodeTransformation, Err: fmt.Errorf("%w: %v", ErrPermanent, err)}
	}
	return out, nil
}

// event is the step's event with the message's metadata.
func (d *Deliverer) event(env *records.Envelope, tag events.Tag, now time.Time) events.Event {
	return makeEvent(d.pseudo, env, tag, now)
}

func makeEvent(pseudo *events.Pseudonymizer, env *records.Envelope, tag events.Tag, now time.Time) events.Event {
	ev := events.Event{
		Time: now, Tag: tag, MessageUUID: env.MessageUUID, TransmissionID: env.TransmissionID,
		SenderOrg: env.SenderOrg, SenderSystem: env.SenderSystem, ContactPoint: env.ContactPointID,
		RecipientSystem: env.Destination, PostType: env.PostType, Size: env.Size, Attachments: env.Attachments,
		MessageType: "DIGITALPOST",
	}
	if env.MessageType == records.TypeNemSMS {
		ev.MessageType = "NEMSMS"
	}
	idt := events.CPR
	if env.RecipientType == records.IDCVR {
		idt = events.CVR
	}
	if env.RecipientID != "" {
		ev.Recipient = pseudo.Recipient(idt, env.RecipientID)
	}
	if env.ValueDate > 0 {
		ev.ValueDate = time.Unix(int64(env.ValueDate-1)*86400, 0).UTC()
	}
	return ev
}

// receipt is the sender's business receipt for env.
func receipt(env *records.Envelope, status, code, msg string, now time.Time) *kgo.Record {
	return records.NewReceiptRecord(pipeline.TopicReceipts, &records.Receipt{
		TransmissionID: env.TransmissionID, MessageUUID: env.MessageUUID,
		ErrorCode: code, ErrorMessage: msg, TimeStamp: records.TimeStampOf(now),
		ReceiptStatus: status, Kind: records.KindBusiness,
		SenderOrg: env.SenderOrg, SenderSystem: env.SenderSystem,
	})
}

// delivered: the system took it. Event, business receipt COMPLETED.
func (d *Deliverer) delivered(it *item, sys *System, now time.Time) {
	tag := events.MemoSendSentToRecipientSystem
	switch sys.Kind {
	case KindMailbox:
		tag = events.MemoAvailableToRecipient
	case KindSMS:
		tag = events.NemSMSSentSuccessfully
	case KindPrint:
		tag = events.PhysicalLetterSent
	}
	ev := d.event(&it.env, tag, now)
	ev.ReceiptStatus = records.StatusCompleted
	bc := d.event(&it.env, events.BusinessReceiptCreated, now)
	bc.ReceiptStatus = records.StatusCompleted
	it.out = append(it.out, events.NewRecord(pipeline.TopicEvents, ev, bc),
		receipt(&it.env, records.StatusCompleted, "", "", now))
	if sys.Protocol == ProtoSFTP && sys.ReceiptFolder != "" {
		// The system will write a receipt file naming only the
		// messageUUID; the pull API relays it from this marker (sender,
		// transmission), as it relays a pull system's receipt.
		it.out = append(it.out, deliveredMarker(&it.env, sys))
	}
	it.out = appendBlobDone(it.out, &it.env)
	d.metrics.outcomes.WithLabelValues("delivered").Inc()
}

// appendBlobDone adds the memo.blobs.done record of a claim-checked message
// that reached a final state (delivered, picked up, failed for good), in
// the same transaction or produce as that outcome (stages/blobgc).
func appendBlobDone(out []*kgo.Record, env *records.Envelope) []*kgo.Record {
	if env.BlobKey == "" {
		return out
	}
	return append(out, blobgc.Done(blob.Ref{Key: env.BlobKey, Size: int64(env.Size), SHA256: hex.EncodeToString(env.ContentSHA256[:])}))
}

// failed: the attempt failed. Schedule the next one, or give up.
func (d *Deliverer) failed(ctx context.Context, it *item, sys *System, aerr *AttemptError, permanent bool) {
	now := d.now()
	env := &it.env
	ev := d.event(env, events.MemoSendSentToRecipientSystemFailed, now)
	ev.ErrorCode = aerr.Code
	evs := []events.Event{ev}
	n := int(env.Attempt) // attempts before this one
	if !permanent && n < len(d.cfg.Schedule) {
		first := it.first
		if n == 0 || first == 0 {
			first = now.UnixMilli()
			if n > 0 {
				// A retry record without the header: anchor at its own time.
				first = env.NextAttemptMs - d.cfg.Schedule[n-1].Milliseconds()
			}
		}
		next := *env
		next.Attempt = uint16(n + 1)
		next.NextAttemptMs = first + d.cfg.Schedule[n].Milliseconds()
		it.out = append(it.out, events.NewRecord(pipeline.TopicEvents, evs...), &kgo.Record{
			Topic: RetryTopicPrefix + durName(d.cfg.gap(n)), Key: []byte(env.Destination),
			Value:   next.Append(make([]byte, 0, next.EncodedLen())),
			Headers: []kgo.RecordHeader{{Key: HeaderFirstFailure, Value: strconv.AppendInt(nil, first, 10)}},
		})
		d.metrics.outcomes.WithLabelValues("rescheduled").Inc()
		d.log.Debug("delivery failed; rescheduled", "uuid", env.MessageUUID, "system", env.Destination,
			"attempt", n+1, "code", aerr.Code, "err", aerr.Err, "next", time.UnixMilli(next.NextAttemptMs).UTC())
		return
	}
	// Given up: the sender gets a negative business receipt.
	code := CodeExhausted
	msg := fmt.Sprintf("not delivered to recipient system %s after %d attempts; last: %s", env.Destination, n+1, aerr.Error())
	if permanent {
		code = aerr.Code
		msg = aerr.Error()
		it.out = appendBlobDone(it.out, env)
		if aerr.Code == CodeTransformation {
			tf := d.event(env, events.MemoTransformationFailed, now)
			tf.ErrorCode = aerr.Code
			evs = append(evs, tf)
		}
	}
	fe := d.event(env, events.MemoSendFailed, now)
	fe.ErrorCode, fe.ReceiptStatus = code, records.StatusFailed
	bc := d.event(env, events.BusinessReceiptCreated, now)
	bc.ErrorCode, bc.ReceiptStatus = code, records.StatusFailed
	evs = append(evs, fe, bc)
	it.out = append(it.out, receipt(env, records.StatusFailed, code, msg, now))
	d.metrics.outcomes.WithLabelValues("failed").Inc()
	if !permanent && sys != nil {
		deact := d.maybeDeactivate(ctx, sys, now, &evs)
		it.out = append(it.out, notification(sys, env, it.first, now, aerr, deact))
		// Nothing is lost: the message waits in the system's outbox for
		// pickup (the pull API, or a system fetch after reactivation).
		d.outboxRecord(it, sys)
		rf := d.event(env, events.MemoSendReadyForFetch, now)
		rf.ErrorCode = CodeAwaitingPickup
		evs = append(evs, rf)
	}
	it.out = append(it.out, events.NewRecord(pipeline.TopicEvents, evs...))
}

// maybeDeactivate deactivates sys when it took nothing for
// DeactivateAfter. What this process has not seen counts from its start,
// so a restart never deactivates a system early.
func (d *Deliverer) maybeDeactivate(ctx context.Context, sys *System, now time.Time, evs *[]events.Event) bool {
	last := d.gates.get(sys.ID).last()
	if last.Before(d.started) {
		last = d.started
	}
	if now.Sub(last) < d.cfg.DeactivateAfter {
		return false
	}
	d.deactMu.Lock()
	done := d.deactivated[sys.ID]
	d.deactMu.Unlock()
	if done {
		return true
	}
	reason := fmt.Sprintf("received nothing since %s (%s)", last.UTC().Format(time.RFC3339), d.cfg.DeactivateAfter)
	if d.deact != nil {
		if err := d.deact.DeactivateSystem(ctx, sys.ID, reason, now); err != nil {
			// Tried again when the next message of the system gives up.
			d.log.Warn("deactivating recipient system failed", "system", sys.ID, "err", err)
			return false
		}
	}
	d.deactMu.Lock()
	d.deactivated[sys.ID] = true
	d.deactMu.Unlock()
	*evs = append(*evs, events.Event{
		Time: now, Tag: events.SystemChanged, RecipientSystem: sys.ID, SenderOrg: sys.Org,
		ErrorCode: CodeDeactivated, Actor: "memoflow-deliver",
	})
	d.metrics.deactivations.Inc()
	d.log.Warn("recipient system deactivated", "system", sys.ID, "reason", reason)
	return true
}

// Notification is the value of memo.notify records (key: system id): what
// the system's contact person is told. A mailer consumes the topic.
type Notification struct {
	Kind          string `json:"kind"` // REDELIVERY_EXHAUSTED
	System        string `json:"system"`
	Organisation  string `json:"organisation,omitempty"`
	Contact       string `json:"contact,omitempty"`
	MessageUUID   string `json:"messageUUID"`
	FirstFailure  string `json:"firstFailure,omitempty"`
	LastErrorCode string `json:"lastErrorCode"`
	LastError     string `json:"lastError"`
	Deactivated   bool   `json:"deactivated"`
	Time          string `json:"time"`
}

func notification(sys *System, env *records.Envelope, first int64, now time.Time, aerr *AttemptError, deact bool) *kgo.Record {
	n := Notification{
		Kind: "REDELIVERY_EXHAUSTED", System: sys.ID, Organisation: sys.Org, Contact: sys.Contact,
		MessageUUID: env.MessageUUID, LastErrorCode: aerr.Code, LastError: aerr.Error(),
		Deactivated: deact, Time: records.TimeStampOf(now),
	}
	if first > 0 {
		n.FirstFailure = records.TimeStampOf(time.UnixMilli(first))
	}
	b, _ := json.Marshal(n)
	return &kgo.Record{Topic: TopicNotify, Key: []byte(sys.ID), Value: b}
}

// toOutbox puts the message in the system's outbox for pull.
func (d *Deliverer) toOutbox(it *item, sys *System, tag events.Tag, code string) {
	d.outboxRecord(it, sys)
	ev := d.event(&it.env, tag, d.now())
	ev.ErrorCode = code
	it.out = append(it.out, events.NewRecord(pipeline.TopicEvents, ev))
	d.metrics.outcomes.WithLabelValues("outbox").Inc()
}

func (d *Deliverer) outboxRecord(it *item, sys *System) {
	e := it.env
	e.Destination = sys.ID
	e.WantVersion = sys.WantVersion
	it.out = append(it.out, OutboxRecord(&e))
}

// notify tells a publish/subscribe system that post is waiting. Best
// effort: the message is in the outbox whatever happens, and a system
// that missed a notification finds it at its next list.
func (d *Deliverer) notify(ctx context.Context, it *item, sys *System) {
	if sys.Endpoint == "" {
		return
	}
	body, _ := json.Marshal(map[string]string{
		"messageUUID": it.env.MessageUUID,
		"location":    d.cfg.PullBaseURL + "/apis/v1/memos/" + it.env.MessageUUID,
	})
	g := d.gates.get(sys.ID)
	if ok, _ := g.allow(d.now(), false); !ok {
		return
	}
	pctx, cancel := context.WithTimeout(ctx, d.cfg.Timeout)
	aerr := push(pctx, d.client, sys, it.env.MessageUUID, 1, "application/json", body)
	cancel()
	g.result(aerr == nil, d.now(), d.cfg.BreakerFailures, d.cfg.BreakerCooldown, 0)
	if aerr != nil {
		ev := d.event(&it.env, events.MemoSendSentToRecipientSystemFailed, d.now())
		ev.ErrorCode = CodeNotifyFailed
		it.out = append(it.out, events.NewRecord(pipeline.TopicEvents, ev))
	}
}

// Sink is the delivery stage over memo.routed: it delivers a batch and
// emits what follows. The runtime commits the batch's offsets together
// with those records (retries, events, receipts, outbox entries), so every
// message is either acknowledged or durably rescheduled before its offset
// moves.
type Sink struct{ d *Deliverer }

// NewSink returns the memo.routed stage.
func NewSink(d *Deliverer) *Sink { return &Sink{d: d} }

func (s *Sink) Name() string { return "deliver" }

// MaxBatchRecords implements pipeline.BatchLimiter: the pushes a crash
// may repeat are those of one batch.
func (s *Sink) MaxBatchRecords() int { return s.d.cfg.BatchRecords }

func (s *Sink) Write(ctx context.Context, b *pipeline.Batch) error {
	items, bad, errs := decodeItems(b.Records)
	for i, r := range bad {
		b.Reject(r, pipeline.Poison(CodeMalformed, errs[i]))
	}
	// First attempts route scheduled for later wait in the hold topic.
	now := s.d.now().UnixMilli()
	due := items[:0:0]
	for _, it := range items {
		if it.env.Attempt == 0 && it.env.NextAttemptMs > now {
			it.out = append(it.out, &kgo.Record{Topic: HoldTopic, Key: []byte(it.env.Destination), Value: it.rec.Value})
			continue
		}
		due = append(due, it)
	}
	s.d.run(ctx, due)
	for _, it := range due {
		if it.err != nil {
			return pipeline.Transient(it.err)
		}
	}
	for _, it := range items {
		for _, o := range it.out {
			b.Emit(o)
		}
	}
	return nil
}
