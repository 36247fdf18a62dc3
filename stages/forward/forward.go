// Package forward is the forwarding stage: it carries out the forward
// requests route emits for company mailbox post (memo.forward). A copy for
// a trusted third party's secure mailbox is routed to that party's
// destination (memo.routed, delivered by deliver); a pickup system gets
// the MeMo by HTTP POST with an Idempotency-Key. Size limits (seed 001:
// 10 MB secure mailbox, 99.5 MB pickup) are checked first; a message not
// forwarded stays in the mailbox, with an event saying why. See DESIGN.md.
package forward

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/memoflow/memoflow/internal/blob"
	"github.com/memoflow/memoflow/pipeline"
	"github.com/memoflow/memoflow/schemas/events"
	"github.com/memoflow/memoflow/schemas/records"
	"github.com/memoflow/memoflow/schemas/registry"
	"github.com/memoflow/memoflow/stages/blobgc"
	"github.com/memoflow/memoflow/stages/deliver"
	"github.com/memoflow/memoflow/stages/route"
)

// Stable codes. Final ones are the ErrorCode of MESSAGE_FORWARD_FAILED
// (the letter stays in the mailbox); attempt codes of
// MESSAGE_FORWARD_ATTEMPT_FAILED are deliver's push codes
// (DELIVER_CONNECT_FAILED, DELIVER_TIMEOUT, DELIVER_HTTP_STATUS,
// DELIVER_NEGATIVE_RECEIPT) or the two below.
const (
	CodeTooLargeSecureMailbox = "FORWARD_TOO_LARGE_FOR_SECURE_MAILBOX" // above 10 MB
	CodeTooLargePickup        = "FORWARD_TOO_LARGE_FOR_PICKUP"         // above 99.5 MB
	CodeTrustedNotRegistered  = "FORWARD_TRUSTED_NOT_REGISTERED"       // the third party is not signed up for Digital Post (or exempt)
	CodeTrustedNoDestination  = "FORWARD_TRUSTED_NO_DESTINATION"       // its mailbox or recipient system is not a system in the registry
	CodeBodyUnreadable        = "FORWARD_BODY_UNREADABLE"              // the claim-checked MeMo is missing or corrupt
	CodePickupRejected        = "FORWARD_PICKUP_REJECTED"              // the pickup system answered 4xx (not 408/429): no retry
	CodePickupExhausted       = "FORWARD_PICKUP_EXHAUSTED"             // MaxAttempts failed attempts
	CodeMalformed             = "FORWARD_MALFORMED"                    // DLQ: not a forward request

	CodeCooling            = "FORWARD_TARGET_COOLING"      // attempt: the URL failed to connect or timed out within Cooldown; no call
	CodeCredentialsMissing = "FORWARD_CREDENTIALS_MISSING" // attempt: the credential reference resolves to nothing (fix the secret; retried)
)

// SenderSystemForward is the sender system of a secure-mailbox copy: the
// forwarding company sends it (SenderOrg = its CVR) through memoflow's
// forwarding, not through a sender system of its own. Receipts of copies
// go to this id, which no token has, so no sender sees them.
const SenderSystemForward = "memoflow-forward"

// copyNamespace makes copies' messageUUIDs (UUID v5).
var copyNamespace = uuid.MustParse("2b0c8f35-5a53-4a77-9f0e-6d656d6f6677")

// CopyUUID is the messageUUID of the copy of message uuid forwarded to
// the trusted third party to: deterministic, so a repeated batch makes the
// same copy, and distinct from the original, so the copy has its own
// Idempotency-Key (the third party may use the same mailbox provider as
// the company) and its own events and receipt.
func CopyUUID(uuidStr, to string) string {
	return uuid.NewSHA1(copyNamespace, []byte(uuidStr+"/"+to)).String()
}

// Directory answers who a trusted third party is; *registry.View
// implements it.
type Directory interface {
	Company(cvr string) (registry.CompanyInfo, bool)
	Effective(s *registry.System) *registry.System
}

// Stage is the forward Sink over memo.forward.
type Stage struct {
	cfg     Config
	dir     Directory
	pseudo  *events.Pseudonymizer
	blobs   blob.Store
	client  *http.Client
	secrets func(string) string
	now     func() time.Time
	log     *slog.Logger
	metrics *metrics

	workers chan struct{}
	bytes   *byteBudget

	mu      sync.Mutex
	cooling map[string]time.Time // pickup URL → no calls until
	seen    map[string]seenAt    // uuid/attempt → where first seen (timer duplicates)
}

type seenAt struct {
	partition int32
	offset    int64
}

// Option configures a Stage.
type Option func(*Stage)

// WithClock injects time.
func WithClock(now func() time.Time) Option { return func(s *Stage) { s.now = now } }

// WithHTTPClient replaces the HTTP client (each POST has its own deadline).
func WithHTTPClient(c *http.Client) Option { return func(s *Stage) { s.client = c } }

// WithBlobStore lets the stage read claim-checked bodies.
func WithBlobStore(b blob.Store) Option { return func(s *Stage) { s.blobs = b } }

// WithSecrets resolves credential references (default deliver.EnvSecrets).
func WithSecrets(f func(string) string) Option { return func(s *Stage) { s.secrets = f } }

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(s *Stage) { s.log = l } }

// WithRegisterer registers the stage's metrics.
func WithRegisterer(r prometheus.Registerer) Option {
	return func(s *Stage) { s.metrics = newMetrics(r) }
}

// New returns the stage.
func New(cfg Config, dir Directory, pseudo *events.Pseudonymizer, opts ...Option) (*Stage, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if dir == nil || pseudo == nil {
		return nil, errors.New("forward: a directory (registry view) and a pseudonymizer are required")
	}
	s := &Stage{
		cfg: cfg, dir: dir, pseudo: pseudo, secrets: deliver.EnvSecrets, now: time.Now, log: slog.Default(),
		workers: make(chan struct{}, cfg.Workers), bytes: newByteBudget(cfg.MaxInflightBytes),
		cooling: map[string]time.Time{}, seen: map[string]seenAt{},
	}
	for _, o := range opts {
		o(s)
	}
	if s.client == nil {
		s.client = &http.Client{Transport: &http.Transport{
			MaxIdleConnsPerHost: cfg.PerTarget, IdleConnTimeout: 90 * time.Second, ForceAttemptHTTP2: true,
		}}
	}
	if s.metrics == nil {
		s.metrics = newMetrics(nil)
	}
	return s, nil
}

func (s *Stage) Name() string { return "forward" }

// MaxBatchRecords implements pipeline.BatchLimiter: a crash repeats at
// most the POSTs of one batch.
func (s *Stage) MaxBatchRecords() int { return s.cfg.BatchRecords }

// PartitionsRevoked implements pipeline.RevokeListener: what was seen on
// a partition is forgotten with it.
func (s *Stage) PartitionsRevoked(map[string][]int32) {
	s.mu.Lock()
	clear(s.seen)
	s.mu.Unlock()
}

// item is one request of a batch and what follows from it.
type item struct {
	rec *kgo.Record
	q   route.ForwardRequest
	out []*kgo.Record
	err error // undecided (the context ended): the batch must not commit
}

// Write carries out a batch. Outputs (copies, events, retries, blob
// releases) commit with the offsets in the runtime's transaction; a pickup
// POST happens before, so a crash repeats it with the same key.
func (s *Stage) Write(ctx context.Context, b *pipeline.Batch) error {
	start := time.Now()
	items := make([]*item, 0, len(b.Records))
	for _, r := range b.Records {
		it := &item{rec: r}
		if err := route.DecodeForward(r, &it.q); err != nil {
			b.Reject(r, pipeline.Poison(CodeMalformed, err))
			continue
		}
		if s.duplicate(r, &it.q) {
			s.metrics.outcomes.WithLabelValues("duplicate").Inc()
			continue
		}
		items = append(items, it)
	}
	var pickups []*item
	for _, it := range items {
		if s.refuseOversize(it) {
			continue
		}
		switch it.q.Forward.Kind {
		case registry.ForwardSecureMailbox:
			s.secureMailbox(it)
		case registry.ForwardPickup:
			pickups = append(pickups, it)
		}
	}
	s.pickups(ctx, pickups, start)
	for _, it := range items {
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

// duplicate reports whether r repeats a retry already seen at another
// offset: the timer (at-least-once) may move a due retry twice when it
// crashes between its produce and its commit. The same record again (an
// aborted batch) is not a duplicate. In memory, bounded, per process: a
// duplicate after a restart of this stage passes (same Idempotency-Key).
func (s *Stage) duplicate(r *kgo.Record, q *route.ForwardRequest) bool {
	if q.Attempt == 0 {
		return false
	}
	k := q.Env.MessageUUID + "/" + strconv.Itoa(q.Attempt)
	s.mu.Lock()
	defer s.mu.Unlock()
	if at, ok := s.seen[k]; ok {
		return at.partition != r.Partition || at.offset != r.Offset
	}
	if len(s.seen) >= 100_000 {
		clear(s.seen)
	}
	s.seen[k] = seenAt{r.Partition, r.Offset}
	return false
}

// forget drops what duplicate remembered of q.
func (s *Stage) forget(q *route.ForwardRequest) {
	if q.Attempt == 0 {
		return
	}
	s.mu.Lock()
	delete(s.seen, q.Env.MessageUUID+"/"+strconv.Itoa(q.Attempt))
	s.mu.Unlock()
}

// refuseOversize applies seed 001's limits before anything else.
func (s *Stage) refuseOversize(it *item) bool {
	limit := route.ForwardLimit(it.q.Forward.Kind)
	if it.q.Env.Size <= limit {
		return false
	}
	code := CodeTooLargeSecureMailbox
	if it.q.Forward.Kind == registry.ForwardPickup {
		code = CodeTooLargePickup
	}
	s.notForwarded(it, code, s.targetName(&it.q))
	s.metrics.outcomes.WithLabelValues("too_large").Inc()
	return true
}

// targetName is what events name as RecipientSystem of a forward: the
// pickup system's host ("pickup:<host>", never the path or a query that
// could carry a token), or the trusted third party ("trusted:<cvr>")
// before its destination is known.
func (s *Stage) targetName(q *route.ForwardRequest) string {
	if q.Forward.Kind == registry.ForwardPickup {
		if u, err := url.Parse(q.Forward.To); err == nil && u.Host != "" {
			return "pickup:" + u.Host
		}
		return "pickup"
	}
	return "trusted:" + q.Forward.To
}

// event is a forward event of the original message.
func (s *Stage) event(q *route.ForwardRequest, tag events.Tag, target string) events.Event {
	ev := deliver.MessageEvent(s.pseudo, &q.Env, tag, s.now())
	ev.RecipientSystem = target
	return ev
}

// notForwarded: final, the letter stays in the mailbox.
func (s *Stage) notForwarded(it *item, code, target string) {
	ev := s.event(&it.q, events.MessageForwardFailed, target)
	ev.ErrorCode = code
	it.out = append(it.out, events.NewRecord(pipeline.TopicEvents, ev))
	it.out = s.releaseBlob(it.out, &it.q.Env)
}

// releaseBlob frees the forward's own copy of a claim-checked body once
// the forward reached a final state here (never the original: the mailbox
// delivery releases that).
func (s *Stage) releaseBlob(out []*kgo.Record, e *records.Envelope) []*kgo.Record {
	if !route.IsForwardBlob(e.BlobKey) {
		return out
	}
	return append(out, blobgc.Done(blob.Ref{Key: e.BlobKey, Size: int64(e.Size), SHA256: hex.EncodeToString(e.ContentSHA256[:])}))
}

// secureMailbox routes a copy to the trusted third party's destination, as
// route routes company post: its own recipient system for
// VIRKSOMHEDSPOST, else its mailbox. The copy is never forwarded again
// (it goes to memo.routed, not through route), so forwarding cannot loop.
func (s *Stage) secureMailbox(it *item) {
	q := &it.q
	to := q.Forward.To
	c, ok := s.dir.Company(to)
	if !ok || c.Status != registry.Registered {
		s.notForwarded(it, CodeTrustedNotRegistered, s.targetName(q))
		s.metrics.outcomes.WithLabelValues("refused").Inc()
		return
	}
	sys := c.Mailbox
	if c.SystemID != "" && q.Env.PostType == route.PostVirksomhed {
		sys = c.System
	}
	var eff *registry.System
	if sys != nil {
		eff = s.dir.Effective(sys)
	}
	if eff == nil {
		s.notForwarded(it, CodeTrustedNoDestination, s.targetName(q))
		s.metrics.outcomes.WithLabelValues("refused").Inc()
		return
	}
	cp := q.Env
	cp.MessageUUID = CopyUUID(q.Env.MessageUUID, to)
	cp.TransmissionID = q.Env.MessageUUID // the copy's events lead back to the original
	cp.SenderOrg, cp.SenderSystem = q.Env.RecipientID, SenderSystemForward
	cp.RecipientType, cp.RecipientID, cp.ContactPointID = records.IDCVR, to, ""
	cp.Destination, cp.DestinationProtocol, cp.WantVersion = sys.ID, uint8(eff.Protocol), eff.MemoVersion
	cp.Attempt, cp.NextAttemptMs = 0, 0
	now := s.now()
	routed := deliver.MessageEvent(s.pseudo, &cp, events.MemoSendRouted, now)
	fwd := s.event(q, events.MessageForwardedToTrusted, sys.ID)
	it.out = append(it.out,
		events.NewRecord(pipeline.TopicEvents, fwd),
		events.NewRecord(pipeline.TopicEvents, routed),
		&kgo.Record{Topic: pipeline.TopicRouted, Key: route.KeyFor(nil, sys, to, s.cfg.Spread), Value: cp.Append(make([]byte, 0, cp.EncodedLen()))})
	s.metrics.outcomes.WithLabelValues("forwarded").Inc()
}

// pickups POSTs the pickup requests: per URL at most PerTarget at a
// time, over all at most Workers, and none started after CallBudget.
func (s *Stage) pickups(ctx context.Context, items []*item, start time.Time) {
	byURL := map[string][]*item{}
	var order []string
	for _, it := range items {
		k := it.q.Forward.To
		if _, ok := byURL[k]; !ok {
			order = append(order, k)
		}
		byURL[k] = append(byURL[k], it)
	}
	var wg sync.WaitGroup
	for _, k := range order {
		q := byURL[k]
		var mu sync.Mutex
		next := 0
		for range min(s.cfg.PerTarget, len(q)) {
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
					s.pickup(ctx, it, start)
				}
			}()
		}
	}
	wg.Wait()
}

// pickup POSTs one MeMo to its pickup system and decides what follows.
func (s *Stage) pickup(ctx context.Context, it *item, start time.Time) {
	if err := ctx.Err(); err != nil {
		it.err = err
		return
	}
	q := &it.q
	target := s.targetName(q)
	if time.Since(start) > s.cfg.CallBudget {
		// Not reached in this batch: back to the topic unchanged, in the
		// same transaction (not an attempt). Its copy at the new offset is
		// the one to carry out, not a duplicate of this one.
		it.out = append(it.out, &kgo.Record{Topic: pipeline.TopicForward, Key: it.rec.Key, Value: it.rec.Value, Headers: it.rec.Headers})
		s.forget(q)
		s.metrics.outcomes.WithLabelValues("deferred").Inc()
		return
	}
	if s.coolingDown(q.Forward.To) {
		s.attemptFailed(it, &deliver.AttemptError{Code: CodeCooling, Err: errors.New("the pickup system failed to connect or timed out a moment ago")}, target)
		return
	}
	cred := ""
	if q.Forward.Credentials != "" {
		if cred = s.secrets(q.Forward.Credentials); cred == "" {
			s.attemptFailed(it, &deliver.AttemptError{Code: CodeCredentialsMissing, Err: fmt.Errorf("credential reference %q resolves to nothing", q.Forward.Credentials)}, target)
			return
		}
	}
	release, err := s.bytes.acquire(ctx, int64(q.Env.Size))
	if err != nil {
		it.err = err
		return
	}
	defer release()
	body, err := s.body(ctx, &q.Env)
	switch {
	case errors.Is(err, blob.ErrNotFound), errors.Is(err, blob.ErrCorrupt), errors.Is(err, errNoBlobStore):
		s.notForwarded(it, CodeBodyUnreadable, target)
		s.metrics.outcomes.WithLabelValues("refused").Inc()
		return
	case err != nil:
		// A blob store outage: the batch is retried (it holds the partition,
		// as delivery does).
		it.err = err
		return
	}
	select {
	case s.workers <- struct{}{}:
	case <-ctx.Done():
		it.err = ctx.Err()
		return
	}
	t0 := time.Now()
	pctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	aerr := deliver.Push(pctx, s.client, q.Forward.To, cred, q.Env.MessageUUID, q.Attempt+1, "application/xml", body)
	cancel()
	<-s.workers
	s.metrics.postSeconds.Observe(time.Since(t0).Seconds())
	if aerr != nil && ctx.Err() != nil {
		it.err = ctx.Err() // stopping: outcome unknown, not decided
		return
	}
	if aerr == nil {
		ev := s.event(q, events.MessageForwardedToTrusted, target)
		it.out = append(it.out, events.NewRecord(pipeline.TopicEvents, ev))
		it.out = s.releaseBlob(it.out, &q.Env)
		s.metrics.outcomes.WithLabelValues("forwarded").Inc()
		return
	}
	if aerr.Code == deliver.CodeConnect || aerr.Code == deliver.CodeTimeout {
		s.cool(q.Forward.To)
	}
	if permanent(aerr) {
		ev := s.event(q, events.MessageForwardAttemptFailed, target)
		ev.ErrorCode = aerr.Code
		it.out = append(it.out, events.NewRecord(pipeline.TopicEvents, ev))
		s.notForwarded(it, CodePickupRejected, target)
		s.metrics.outcomes.WithLabelValues("rejected").Inc()
		s.log.Warn("pickup system rejected a forward", "uuid", q.Env.MessageUUID, "target", target, "err", aerr)
		return
	}
	s.attemptFailed(it, aerr, target)
}

// permanent: the pickup system refused the request itself (4xx), which no
// retry changes; 408 and 429 ask for a retry.
func permanent(e *deliver.AttemptError) bool {
	return e.Code == deliver.CodeHTTPStatus && e.Status >= 400 && e.Status < 500 &&
		e.Status != http.StatusRequestTimeout && e.Status != http.StatusTooManyRequests
}

// attemptFailed schedules the next attempt, or gives up after MaxAttempts.
func (s *Stage) attemptFailed(it *item, aerr *deliver.AttemptError, target string) {
	q := &it.q
	now := s.now()
	ev := s.event(q, events.MessageForwardAttemptFailed, target)
	ev.ErrorCode = aerr.Code
	it.out = append(it.out, events.NewRecord(pipeline.TopicEvents, ev))
	n := q.Attempt + 1
	if n >= s.cfg.MaxAttempts {
		s.notForwarded(it, CodePickupExhausted, target)
		s.metrics.outcomes.WithLabelValues("given_up").Inc()
		s.log.Warn("forward to pickup system given up", "uuid", q.Env.MessageUUID, "target", target, "attempts", n, "err", aerr)
		return
	}
	first := q.FirstFailMs
	if first == 0 {
		first = now.UnixMilli()
	}
	h := make([]kgo.RecordHeader, 0, len(it.rec.Headers)+3)
	for _, x := range it.rec.Headers {
		switch x.Key {
		case route.HeaderForwardAttempt, route.HeaderForwardFirstFail, route.HeaderForwardDue:
		default:
			h = append(h, x)
		}
	}
	h = append(h,
		kgo.RecordHeader{Key: route.HeaderForwardAttempt, Value: strconv.AppendInt(nil, int64(n), 10)},
		kgo.RecordHeader{Key: route.HeaderForwardFirstFail, Value: strconv.AppendInt(nil, first, 10)},
		kgo.RecordHeader{Key: route.HeaderForwardDue, Value: strconv.AppendInt(nil, now.Add(s.cfg.RetryGap).UnixMilli(), 10)},
	)
	it.out = append(it.out, &kgo.Record{Topic: pipeline.TopicForwardRetry, Key: it.rec.Key, Value: it.rec.Value, Headers: h})
	s.metrics.outcomes.WithLabelValues("rescheduled").Inc()
}

func (s *Stage) coolingDown(target string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	until, ok := s.cooling[target]
	if !ok {
		return false
	}
	if s.now().Before(until) {
		return true
	}
	delete(s.cooling, target)
	return false
}

func (s *Stage) cool(target string) {
	if s.cfg.Cooldown == 0 {
		return
	}
	s.mu.Lock()
	s.cooling[target] = s.now().Add(s.cfg.Cooldown)
	s.mu.Unlock()
}

var errNoBlobStore = errors.New("forward: the message is claim-checked but no blob store is configured")

// body is the MeMo as submitted (pickup systems get it unaltered).
func (s *Stage) body(ctx context.Context, e *records.Envelope) ([]byte, error) {
	if e.BlobKey == "" {
		return e.Body, nil
	}
	if s.blobs == nil {
		return nil, errNoBlobStore
	}
	rc, err := s.blobs.Get(ctx, blob.Ref{Key: e.BlobKey, Size: int64(e.Size), SHA256: hex.EncodeToString(e.ContentSHA256[:])})
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	var buf bytes.Buffer
	buf.Grow(int(e.Size))
	if _, err := io.Copy(&buf, rc); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// byteBudget bounds the body bytes held for POSTs in flight.
type byteBudget struct {
	max  int64
	mu   sync.Mutex
	used int64
	wake chan struct{}
}

func newByteBudget(max int64) *byteBudget { return &byteBudget{max: max, wake: make(chan struct{})} }

// acquire waits until n bytes (at most the whole budget) are free.
func (b *byteBudget) acquire(ctx context.Context, n int64) (func(), error) {
	n = min(max(n, 1), b.max)
	for {
		b.mu.Lock()
		if b.used+n <= b.max {
			b.used += n
			b.mu.Unlock()
			return func() {
				b.mu.Lock()
				b.used -= n
				close(b.wake)
				b.wake = make(chan struct{})
				b.mu.Unlock()
			}, nil
		}
		w := b.wake
		b.mu.Unlock()
		select {
		case <-w:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}
