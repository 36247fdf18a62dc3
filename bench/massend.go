package bench

import (
	"bytes"
	"context"

	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/segmentio/encoding/json"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/memoflow/memoflow/internal/sendclient"
	"github.com/memoflow/memoflow/pipeline"
	"github.com/memoflow/memoflow/schemas/records"
	"github.com/memoflow/memoflow/stages/ingest"
)

// MassSend is the mass-send scenario: Options.Messages of a realistic mix
// as fast as the pipeline takes them, through the ingest API in tar+LZMA
// batches (or straight into memo.ingest with Direct).
type MassSend struct {
	// ArrivalAt overrides the measuring point (nil: memo.valid). When the
	// deliver stage and the recipient simulator land, set it to the
	// simulator's ArrivalSource.
	ArrivalAt func(env *Env) ArrivalSource

	set      *MessageSet
	prepared *Prepared
}

func (m *MassSend) Name() string { return "mass-send" }

func (m *MassSend) Prepare(ctx context.Context, env *Env) (*Manifest, error) {
	o := env.Opts
	if o.Messages <= 0 {
		return nil, errNoLoad
	}
	m.set = &MessageSet{Seed: o.Seed, Messages: o.Messages, BatchSize: o.BatchSize, Mix: o.Mix,
		SenderOrg: env.Target.SenderOrg, Day: time.Now().UTC().Truncate(24 * time.Hour)}
	if env.Target.Delivers() {
		m.set.Recipients = env.Target.Recipients
	}
	return prepareSet(ctx, env, m.set, &m.prepared)
}

// prepareSet builds set's manifest, and its tar+LZMA batch files unless
// the load is generated while sending (--direct, --live).
func prepareSet(ctx context.Context, env *Env, set *MessageSet, prepared **Prepared) (*Manifest, error) {
	o := env.Opts
	if o.Direct || o.Live {
		// Generated while sending: only the manifest is needed now.
		man := &Manifest{}
		for i := 0; i < set.Batches(); i++ {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			for _, it := range set.Batch(i) {
				man.add(it)
			}
		}
		return man, nil
	}
	last := time.Now()
	p, err := set.Prepare(ctx, o.CacheDir, func(done, total int) {
		if time.Since(last) > 5*time.Second || done == total {
			last = time.Now()
			env.logf("  prepared %d/%d batches", done, total)
		}
	})
	if err != nil {
		return nil, err
	}
	*prepared = p
	if p.Cached {
		env.logf("prepared batches reused from %s", p.Dir)
	} else {
		env.logf("prepared %d batches (%.0f MB, %.0f MB tar+LZMA) in %.1fs into %s", len(p.Files), float64(p.Bytes)/1e6, float64(p.LZMA)/1e6, p.Seconds, p.Dir)
	}
	if env.Report != nil {
		env.Report.SetPrepared(p)
	}
	return p.Manifest, nil
}

func (m *MassSend) Load(ctx context.Context, env *Env) error {
	return loadSet(ctx, env, m.set, m.prepared)
}

// loadSet sends set as fast as ingest takes it: prepared batch files,
// compressed while sending (--live) or produced directly (--direct).
func loadSet(ctx context.Context, env *Env, set *MessageSet, prepared *Prepared) error {
	switch {
	case env.Opts.Direct:
		return loadDirect(ctx, env, set)
	case env.Opts.Live:
		return loadLive(ctx, env, set)
	}
	return loadPrepared(ctx, env, set, prepared)
}

func (m *MassSend) Arrival(env *Env) ArrivalSource {
	if m.ArrivalAt != nil {
		return m.ArrivalAt(env)
	}
	return defaultArrival(env, nil)
}

// defaultArrival is the recipient simulator when the run delivers to it,
// else memo.valid (a run of the stages up to validate).
func defaultArrival(env *Env, observe func(Arrival)) ArrivalSource {
	if env.Target.Delivers() {
		a := &SimArrival{Sim: env.Target.Sim, Observe: observe}
		if env.Target.Transports != nil {
			// A --protocol-mix run: the SFTP and SMTP recipients'
			// messages arrive too, and the report says how many went
			// over each protocol.
			a.Others = append(a.Others, env.Target.Transports)
			var byProto [3]int64 // rest, sftp, smtp (arrivals are serial)
			a.Observe = func(ar Arrival) {
				switch ar.System {
				case "sftp":
					byProto[1]++
				case "smtp":
					byProto[2]++
				default:
					byProto[0]++
				}
				if observe != nil {
					observe(ar)
				}
			}
			a.OnStop = func() {
				mix := env.Target.Transports.Mix.String()
				for i, p := range []string{"REST push", "SFTP", "SMTP"} {
					env.Report.AddDetail("arrivals over "+p, float64(byProto[i]), "messages", "--protocol-mix "+mix)
				}
			}
		}
		return a
	}
	opts, _ := env.Target.Kafka.ClientOpts()
	return &TopicArrival{Brokers: env.Target.Kafka.Brokers, Topic: pipeline.TopicValid, Opts: opts}
}

func (m *MassSend) Expect(env *Env) Expectation {
	o := outcomeOf(env, 0, len(env.Manifest.Kinds), false)
	man := env.Manifest
	return Expectation{
		ShouldArrive: func(i int) bool { return man.Kinds[i] != KindInvalid && env.Accepted(i) },
		Arrivals:     o.Valid,
		Events:       ExpectedEvents(env.Target.Stages, o),
	}
}

// outcomeOf counts manifest messages [from, to) (held: they carry a value
// date and are released during the run). With delivery, a valid NEMSMS
// goes to the SMS provider and every other valid message to a mailbox
// provider: the bench's registry and recipients make it so.
func outcomeOf(env *Env, from, to int, held bool) Outcome {
	var o Outcome
	deliver := env.Target.Delivers()
	for i := from; i < to; i++ {
		if !env.Accepted(i) {
			continue
		}
		o.Accepted++
		k := env.Manifest.Kinds[i]
		if k == KindInvalid {
			o.Invalid++
			continue
		}
		o.Valid++
		if held {
			o.Held++
			o.Released++
		}
		if deliver {
			if k == KindNemSMS {
				o.ToSMS++
			} else {
				o.ToMailbox++
			}
		}
	}
	return o
}

// Add sums two outcomes.
func (o Outcome) Add(p Outcome) Outcome {
	return Outcome{Accepted: o.Accepted + p.Accepted, Valid: o.Valid + p.Valid, Invalid: o.Invalid + p.Invalid, Single: o.Single + p.Single,
		Held: o.Held + p.Held, Released: o.Released + p.Released,
		ToMailbox: o.ToMailbox + p.ToMailbox, ToSMS: o.ToSMS + p.ToSMS, ToSystem: o.ToSystem + p.ToSystem}
}

// loadPrepared posts the prepared batch files with Concurrency workers,
// answering retryable statuses as internal/sendclient does.
func loadPrepared(ctx context.Context, env *Env, set *MessageSet, p *Prepared) error {
	client := &http.Client{Timeout: 10 * time.Minute}
	return parallel(ctx, len(p.Files), env.Opts.Concurrency, func(ctx context.Context, i int) error {
		return postBatch(ctx, client, env, set, i, p.Files[i])
	})
}

func postBatch(ctx context.Context, client *http.Client, env *Env, set *MessageSet, i int, path string) error {
	body, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	url := strings.TrimRight(env.Target.URL, "/") + "/apis/v1/memos/"
	first := set.Offset + i*set.BatchSize
	n := set.batchLen(i)
	env.Sent(first, n, time.Now())
	for attempt := 1; attempt <= 8; attempt++ {
		req, err := http.NewRequestWithContext(ctx, "POST", url, bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/x-lzma")
		req.Header.Set("Authorization", "Bearer "+env.Target.Token)
		resp, err := client.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			time.Sleep(time.Duration(attempt) * 200 * time.Millisecond)
			continue
		}
		answer, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
		resp.Body.Close()
		if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500 {
			wait := time.Duration(attempt) * 200 * time.Millisecond
			if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
				wait = time.Duration(s) * time.Second
			}
			time.Sleep(wait)
			continue
		}
		if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden && !bytes.Contains(answer, []byte("rejections")) {
			return fmt.Errorf("batch %d: not authorised (%d): %.300s", i, resp.StatusCode, answer)
		}
		var br ingest.BatchReceipt
		if err := json.Unmarshal(answer, &br); err != nil {
			return fmt.Errorf("batch %d: answer %d: %.300s", i, resp.StatusCode, answer)
		}
		rejected := map[string]string{}
		for _, r := range br.Rejections {
			rejected[strings.TrimSuffix(r.File, ".xml")] = r.ErrorCode
		}
		accepted := 0
		for j := 0; j < n; j++ {
			u := formatUUID(env.Manifest.UUIDs[first+j])
			if code, ok := rejected[u]; ok {
				env.Reject(code)
				continue
			}
			// A batch-level refusal rejects what ingest had not accepted
			// before it (as internal/sendclient reads the answer).
			if resp.StatusCode == http.StatusCreated || accepted < br.Accepted {
				accepted++
				env.Accept(first + j)
				continue
			}
			env.Reject(br.ErrorCode)
		}
		return nil
	}
	return fmt.Errorf("batch %d not accepted after 8 attempts", i)
}

// loadLive sends with internal/sendclient, which compresses each batch as
// it sends it: what `memoflow send --generate` does, in this process.
func loadLive(ctx context.Context, env *Env, set *MessageSet) error {
	src := &setSource{set: set}
	ix := newUUIDIndex(env.Manifest.UUIDs)
	sum, err := sendclient.Send(ctx, src, sendclient.Options{URL: env.Target.URL, Token: env.Target.Token,
		BatchSize: set.BatchSize, Concurrency: env.Opts.Concurrency,
		OnProgress: func(int) {}})
	if sum != nil {
		for _, r := range sum.Results {
			i := ix.find(parseUUID(r.MessageUUID))
			if i < 0 {
				continue
			}
			if r.Status == "RECEIVED" {
				env.Accept(i)
			} else {
				env.Reject(r.ErrorCode)
			}
		}
	}
	return err
}

// setSource is a sendclient.Source over a MessageSet.
type setSource struct {
	set   *MessageSet
	batch int
	items []Item
}

func (s *setSource) Total() int { return s.set.Messages }

func (s *setSource) Next() (sendclient.Item, error) {
	for len(s.items) == 0 {
		if s.batch >= s.set.Batches() {
			return sendclient.Item{}, io.EOF
		}
		s.items = s.set.Batch(s.batch)
		s.batch++
	}
	it := s.items[0]
	s.items = s.items[1:]
	return sendclient.Item{Name: it.UUID + ".xml", UUID: it.UUID, Data: it.Data}, nil
}

// loadDirect produces the messages into memo.ingest as ingest would
// (same headers, a transmission id per batch), skipping HTTP and LZMA.
func loadDirect(ctx context.Context, env *Env, set *MessageSet) error {
	d, err := newDirectProducer(env)
	if err != nil {
		return err
	}
	defer d.close()
	for b := 0; b < set.Batches(); b++ {
		if err := d.batch(ctx, env, set, b); err != nil {
			return err
		}
	}
	return d.flush(ctx)
}

type directProducer struct {
	cl   *kgo.Client
	perr atomic.Value
}

func newDirectProducer(env *Env) (*directProducer, error) {
	opts, err := env.Target.Kafka.ClientOpts()
	if err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(append(opts, kgo.MaxBufferedBytes(256<<20), kgo.ProducerLinger(2*time.Millisecond))...)
	if err != nil {
		return nil, err
	}
	return &directProducer{cl: cl}, nil
}

func (d *directProducer) close() { d.cl.Close() }

// batch produces batch b without waiting for its acknowledgements.
func (d *directProducer) batch(ctx context.Context, env *Env, set *MessageSet, b int) error {
	tid := fmt.Sprintf("bench-direct-%d-%d", set.Seed, b)
	now := time.Now()
	items := set.Batch(b)
	env.Sent(set.Offset+b*set.BatchSize, len(items), now)
	for j, it := range items {
		idx := set.Offset + b*set.BatchSize + j
		rec := records.NewIngestRecord(pipeline.TopicIngest, records.IngestMeta{MessageUUID: it.UUID, TransmissionID: tid,
			SenderOrg: set.SenderOrg, SenderSystem: "bench", ReceivedAt: now, MassSend: true,
			ContentSHA256: contentHash(it.Data), Size: len(it.Data)}, it.Data)
		d.cl.Produce(ctx, rec, func(_ *kgo.Record, err error) {
			if err != nil {
				d.perr.CompareAndSwap(nil, err)
				return
			}
			env.Accept(idx)
		})
	}
	if e := d.perr.Load(); e != nil {
		return fmt.Errorf("direct produce: %w", e.(error))
	}
	return nil
}

func (d *directProducer) flush(ctx context.Context) error {
	if err := d.cl.Flush(ctx); err != nil {
		return err
	}
	if e := d.perr.Load(); e != nil {
		return fmt.Errorf("direct produce: %w", e.(error))
	}
	return nil
}
