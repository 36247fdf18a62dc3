package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/ulikunitz/xz/lzma"

	"github.com/memoflow/memoflow/internal/auth"
	"github.com/memoflow/memoflow/pipeline"
	"github.com/memoflow/memoflow/schemas/memo"
	"github.com/memoflow/memoflow/schemas/records"
	"github.com/memoflow/memoflow/stages/ingest"
	"github.com/memoflow/memoflow/stages/ingest/archive"
)

// IngestOptions configure the ingest benchmark: tar+LZMA batches through
// the real HTTP API into Kafka, against raw franz-go producing the same
// records, in the same run on the same broker.
type IngestOptions struct {
	Brokers     string
	Messages    int // total, rounded down to a multiple of BatchSize
	BatchSize   int
	Concurrency int
	Partitions  int
	Log         io.Writer
}

// IngestReport is the result.
type IngestReport struct {
	Messages       int     `json:"messages"`
	BatchSize      int     `json:"batch_size"`
	MeanMessageB   int     `json:"mean_message_bytes"`
	BatchLZMABytes int     `json:"batch_lzma_bytes"`
	APIMsgsPerSec  float64 `json:"api_msgs_per_s"`
	APIMBPerSec    float64 `json:"api_mb_per_s"`
	RawMsgsPerSec  float64 `json:"raw_msgs_per_s"`
	RawMBPerSec    float64 `json:"raw_mb_per_s"`
	Ratio          float64 `json:"ratio"`
	LZMADecodeMBps float64 `json:"lzma_decode_mb_per_s"`
	MaxRSSMB       float64 `json:"max_rss_mb"`
	APISeconds     float64 `json:"api_seconds"`
	RawSeconds     float64 `json:"raw_seconds"`
}

// RunIngest generates one batch of distinct minimal messages and posts it
// Messages/BatchSize times (ingest does not deduplicate across batches;
// the validate stage does), then produces the same records raw.
func RunIngest(ctx context.Context, o IngestOptions) (*IngestReport, error) {
	if o.BatchSize <= 0 || o.Messages < o.BatchSize {
		return nil, fmt.Errorf("bench ingest: need messages >= batch size > 0")
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 2
	}
	if o.Partitions <= 0 {
		o.Partitions = 12
	}
	logf := func(format string, a ...any) {
		if o.Log != nil {
			fmt.Fprintf(o.Log, format+"\n", a...)
		}
	}
	const org = "12345678"
	g := memo.NewGenerator(memo.GenConfig{Seed: 1, Now: time.Now().UTC().Truncate(24 * time.Hour), SenderCVRs: []string{org},
		NemSMSShare: -1, ActionShare: -1, RichShare: -1, ValueDateShare: -1})
	msgs := make([][]byte, o.BatchSize)
	uuids := make([]string, o.BatchSize)
	total := 0
	var tarBuf bytes.Buffer
	aw := archive.NewWriter(&tarBuf, true)
	for i := range msgs {
		b, u := g.Next(nil)
		msgs[i], uuids[i] = b, u.String()
		total += len(b)
		if err := aw.Add(uuids[i]+".xml", b); err != nil {
			return nil, err
		}
	}
	if err := aw.Close(); err != nil {
		return nil, err
	}
	batch := tarBuf.Bytes()
	batches := o.Messages / o.BatchSize
	rep := &IngestReport{Messages: batches * o.BatchSize, BatchSize: o.BatchSize, MeanMessageB: total / o.BatchSize, BatchLZMABytes: len(batch)}
	logf("one batch: %d messages, %d B mean, %.1f MB uncompressed, %.2f MB tar+LZMA; %d batches", o.BatchSize, rep.MeanMessageB, float64(total)/1e6, float64(len(batch))/1e6, batches)

	start := time.Now()
	var decoded int64
	for i := 0; i < 3; i++ {
		zr, err := lzma.NewReader(bytes.NewReader(batch))
		if err != nil {
			return nil, err
		}
		n, err := io.Copy(io.Discard, zr)
		if err != nil {
			return nil, err
		}
		decoded += n
	}
	rep.LZMADecodeMBps = float64(decoded) / time.Since(start).Seconds() / 1e6
	logf("LZMA decode alone: %.1f MB/s", rep.LZMADecodeMBps)

	cl, err := kgo.NewClient(kgo.SeedBrokers(o.Brokers), kgo.MaxBufferedBytes(256<<20), kgo.ProducerLinger(2*time.Millisecond))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	run := fmt.Sprint(time.Now().UnixNano())
	apiTopic, rawTopic := "bench.ingest.api."+run, "bench.ingest.raw."+run
	if _, err := adm.CreateTopics(ctx, int32(o.Partitions), 1, nil, apiTopic, rawTopic); err != nil {
		return nil, err
	}
	_, _ = adm.CreateTopics(ctx, int32(o.Partitions), 1, nil, pipeline.TopicReceipts)
	defer func() { _, _ = adm.DeleteTopics(context.Background(), apiTopic, rawTopic) }()

	store := auth.NewMemStore()
	tok := auth.NewToken()
	store.Put(auth.HashToken(tok), &auth.Principal{ID: "bench", Org: org, Roles: []auth.Role{auth.RoleSender}})
	api, err := ingest.New(ingest.Config{MaxShipmentBytes: memo.DefaultMaxBytes, RatePerSecond: 1e6, RateBurst: 1 << 20, OverloadBytes: 1 << 30, AckTimeout: time.Minute},
		store, cl, slog.New(slog.NewTextHandler(io.Discard, nil)), ingest.WithTopic(apiTopic))
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	api.Register(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()

	// Through the API.
	var next atomic.Int64
	var wg sync.WaitGroup
	var firstErr atomic.Value
	start = time.Now()
	for w := 0; w < o.Concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(batches) {
				req, _ := http.NewRequestWithContext(ctx, "POST", srv.URL+"/apis/v1/memos/", bytes.NewReader(batch))
				req.Header.Set("Content-Type", "application/x-lzma")
				req.Header.Set("Authorization", "Bearer "+tok)
				resp, err := srv.Client().Do(req)
				if err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusCreated {
					firstErr.CompareAndSwap(nil, fmt.Errorf("batch answered %d: %s", resp.StatusCode, body))
					return
				}
			}
		}()
	}
	wg.Wait()
	if e := firstErr.Load(); e != nil {
		return nil, e.(error)
	}
	rep.APISeconds = time.Since(start).Seconds()
	rep.APIMsgsPerSec = float64(rep.Messages) / rep.APISeconds
	rep.APIMBPerSec = float64(total) * float64(batches) / rep.APISeconds / 1e6
	logf("through the API: %.0f msgs/s, %.1f MB/s (%.2fs)", rep.APIMsgsPerSec, rep.APIMBPerSec, rep.APISeconds)

	// Raw: the same records (same headers and bytes) produced directly.
	start = time.Now()
	var perr atomic.Value
	now := time.Now()
	for b := 0; b < batches; b++ {
		for i, m := range msgs {
			rec := records.NewIngestRecord(rawTopic, records.IngestMeta{MessageUUID: uuids[i], TransmissionID: "raw", SenderOrg: org,
				SenderSystem: "bench", ReceivedAt: now, MassSend: true, Size: len(m)}, m)
			cl.Produce(ctx, rec, func(_ *kgo.Record, err error) {
				if err != nil {
					perr.CompareAndSwap(nil, err)
				}
			})
		}
	}
	if err := cl.Flush(ctx); err != nil {
		return nil, err
	}
	if e := perr.Load(); e != nil {
		return nil, e.(error)
	}
	rep.RawSeconds = time.Since(start).Seconds()
	rep.RawMsgsPerSec = float64(rep.Messages) / rep.RawSeconds
	rep.RawMBPerSec = float64(total) * float64(batches) / rep.RawSeconds / 1e6
	rep.Ratio = rep.APIMsgsPerSec / rep.RawMsgsPerSec
	logf("raw produce:     %.0f msgs/s, %.1f MB/s (%.2fs)", rep.RawMsgsPerSec, rep.RawMBPerSec, rep.RawSeconds)
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		rep.MaxRSSMB = float64(ru.Maxrss) / 1024
	}
	return rep, nil
}
