package deliver

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/memoflow/memoflow/schemas/events"
	"github.com/memoflow/memoflow/schemas/records"
)

// What stages/forward reuses of delivery: the push (same headers, same
// answer classification), the message event, and the pause-until-due
// delay consumer. Kept to wrappers so delivery's own code is unchanged.

// Push POSTs body to endpoint as delivery pushes a MeMo: Content-Type,
// Idempotency-Key and X-Memo-Message-UUID = key, X-Memo-Attempt, and
// `Authorization: Bearer credential` when credential is set. nil means a
// 2xx whose receipt (if any) is not negative.
func Push(ctx context.Context, cl *http.Client, endpoint, credential, key string, attempt int, contentType string, body []byte) *AttemptError {
	return push(ctx, cl, &System{Endpoint: endpoint, Credential: credential}, key, attempt, contentType, body)
}

// MessageEvent is the event delivery writes for a step of env's life: the
// message's metadata, the recipient pseudonymised, RecipientSystem =
// env.Destination.
func MessageEvent(pseudo *events.Pseudonymizer, env *records.Envelope, tag events.Tag, now time.Time) events.Event {
	return makeEvent(pseudo, env, tag, now)
}

// DelayHandler is what a delay consumer does with its records: DueAt says
// when a record falls due (Unix ms; records of one topic must fall due in
// their partition's order), Handle what follows from due records (produced
// before their offsets commit).
type DelayHandler interface {
	DueAt(r *kgo.Record) int64
	Handle(ctx context.Context, recs []*kgo.Record) ([]*kgo.Record, error)
}

type delayAdapter struct{ h DelayHandler }

func (a delayAdapter) dueAt(r *kgo.Record) int64 { return a.h.DueAt(r) }
func (a delayAdapter) handle(ctx context.Context, recs []*kgo.Record) ([]*kgo.Record, error) {
	return a.h.Handle(ctx, recs)
}

// NewDelayConsumer returns the redelivery schedule's consumer (pause a
// partition until its head is due, produce the outcomes, then commit)
// over topics with h in group.
func NewDelayConsumer(h DelayHandler, topics []string, opts []kgo.Opt, group string, now func() time.Time, maxIdle time.Duration, poll int, log *slog.Logger, dopts ...DelayOption) (*RetryConsumer, error) {
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.Default()
	}
	return newDelayConsumer(delayAdapter{h}, topics, opts, group, now, maxIdle, poll, noGauge{}, log, dopts...)
}
