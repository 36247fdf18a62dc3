package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/segmentio/encoding/json"

	"github.com/memoflow/memoflow/schemas/memo"
)

// Large is the large-messages scenario: Options.Messages messages (1000
// by default) each with an AttachmentBytes main document (10 MB), sent one
// by one as application/xml, so ingest puts each body in the claim-check
// blob store and Kafka carries references; validate and deliver read the
// blob, and the simulator receives the whole message.
//
// The messages are generated twice (once for the manifest, once while
// sending: a random 10 MB document costs about 30 ms), never compressed
// (LZMA of a thousand random 10 MB documents would take hours) and never
// kept in memory or on disk by the bench.
type Large struct {
	AttachmentBytes int

	set *MessageSet
}

func (l *Large) Name() string { return "large" }

func (l *Large) Prepare(ctx context.Context, env *Env) (*Manifest, error) {
	o := env.Opts
	if o.Messages <= 0 {
		return nil, errNoLoad
	}
	if o.Direct {
		return nil, errors.New("bench large: --direct would skip the claim check (ingest's); send through the API")
	}
	if l.AttachmentBytes <= 0 {
		l.AttachmentBytes = 10 << 20
	}
	mix := Mix{AttachmentShare: 1, Attachment: memo.SizeDist{Kind: memo.SizeFixed, Bytes: l.AttachmentBytes}}
	l.set = &MessageSet{Seed: o.Seed, Messages: o.Messages, BatchSize: 1, Mix: mix, SenderOrg: env.Target.SenderOrg,
		Day: time.Now().UTC().Truncate(24 * time.Hour), Tag: 3}
	if env.Target.Delivers() {
		l.set.Recipients = env.Target.Recipients
	}
	env.logf("large: generating the manifest of %d messages with %s documents...", o.Messages, human(l.AttachmentBytes))
	man := &Manifest{}
	for i := 0; i < l.set.Batches(); i++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		for _, it := range l.set.Batch(i) {
			man.add(it)
		}
	}
	if env.Report != nil {
		env.Report.Mix.Mix = mix
		env.Report.Setup.Sender = "ingest API, one application/xml POST per message (claim check: the body goes to the blob store)"
		env.Report.Setup.BatchSize = 1
	}
	return man, nil
}

// Check adds the body throughput: with 13 MB messages, bytes are the
// measure, not messages (the null pipeline carries only references).
func (l *Large) Check(r *Report) {
	if r.Seconds > 0 {
		r.AddDetail("body throughput", r.Mix.TotalMB*float64(r.Accepted)/float64(max(r.Messages, 1))/r.Seconds, "MB/s",
			"MeMo bytes accepted, stored, validated and delivered per second, end to end")
	}
	r.AddDetail("message size", float64(r.Mix.MedianB)/(1<<20), "MiB", "median MeMo (the document after base64)")
}

// Load posts every message on its own with Concurrency workers.
func (l *Large) Load(ctx context.Context, env *Env) error {
	client := &http.Client{Timeout: 10 * time.Minute}
	url := strings.TrimRight(env.Target.URL, "/") + "/apis/v1/memos/?memo-message-uuid="
	return parallel(ctx, l.set.Batches(), env.Opts.Concurrency, func(ctx context.Context, i int) error {
		return postOne(ctx, client, env, url, i, l.set.Batch(i)[0])
	})
}

// postOne submits one MeMo, retrying what ingest asks to retry.
func postOne(ctx context.Context, client *http.Client, env *Env, url string, i int, it Item) error {
	env.Sent(i, 1, time.Now())
	for attempt := 1; attempt <= 8; attempt++ {
		req, err := http.NewRequestWithContext(ctx, "POST", url+it.UUID, bytes.NewReader(it.Data))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/xml")
		req.Header.Set("Authorization", "Bearer "+env.Target.Token)
		resp, err := client.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			time.Sleep(time.Duration(attempt) * 200 * time.Millisecond)
			continue
		}
		answer, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		switch {
		case resp.StatusCode == http.StatusCreated || resp.StatusCode == http.StatusOK:
			env.Accept(i)
			return nil
		case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
			time.Sleep(time.Duration(attempt) * 500 * time.Millisecond)
			continue
		case resp.StatusCode == http.StatusUnauthorized:
			return fmt.Errorf("message %s: not authorised: %.300s", it.UUID, answer)
		}
		var rc struct {
			ErrorCode string `json:"errorCode"`
		}
		_ = json.Unmarshal(answer, &rc)
		env.Reject(rc.ErrorCode)
		return nil
	}
	return fmt.Errorf("message %s not accepted after 8 attempts", it.UUID)
}

func (l *Large) Arrival(env *Env) ArrivalSource { return defaultArrival(env, nil) }

func (l *Large) Expect(env *Env) Expectation {
	o := outcomeOf(env, 0, len(env.Manifest.UUIDs), false)
	o.Single = o.Accepted // one by one, not a mass send
	man := env.Manifest
	return Expectation{
		ShouldArrive: func(i int) bool { return man.Kinds[i] != KindInvalid && env.Accepted(i) },
		Arrivals:     o.Valid,
		Events:       ExpectedEvents(env.Target.Stages, o),
	}
}

// NullSizes: Kafka carries claim-check references (an envelope of about
// 1 KB), not the bodies.
func (l *Large) NullSizes(m *Manifest) []uint32 { return []uint32{1024} }
