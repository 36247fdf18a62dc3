// Package sendclient is the mass-send client behind `memoflow send`: it
// cuts messages into tar+LZMA batches, posts them concurrently to the ingest
// API, retries what the server asks to retry, and keeps a journal of
// accepted messageUUIDs so a rerun after a crash sends nothing twice.
package sendclient

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/segmentio/encoding/json"

	"github.com/memoflow/memoflow/stages/ingest"
	"github.com/memoflow/memoflow/stages/ingest/archive"
)

// Options of a send.
type Options struct {
	URL         string // ingest base URL, e.g. http://127.0.0.1:8080
	Token       string
	BatchSize   int    // messages per batch
	Concurrency int    // batches in flight
	Journal     string // file of accepted messageUUIDs ("" = no resume)
	SaveDir     string // keep a copy of every batch sent ("" = none)
	MaxAttempts int    // per batch, for retryable answers (429, 503, network)
	HTTP        *http.Client
	// OnProgress is called after each batch with messages done so far.
	OnProgress func(done int)
}

// Result is the outcome for one message.
type Result struct {
	MessageUUID    string `json:"messageUUID"`
	File           string `json:"file"`
	Status         string `json:"status"` // RECEIVED, INVALID, NOT_ALLOWED, SKIPPED (already in the journal)
	ErrorCode      string `json:"errorCode,omitempty"`
	ErrorMessage   string `json:"errorMessage,omitempty"`
	TransmissionID string `json:"transmissionId,omitempty"`
}

// Summary of a send.
type Summary struct {
	Accepted       int            `json:"accepted"`
	Rejected       int            `json:"rejected"`
	Skipped        int            `json:"skipped"`
	RejectedByCode map[string]int `json:"rejected_by_code"`
	Batches        int            `json:"batches"`
	Seconds        float64        `json:"seconds"`
	MsgsPerSec     float64        `json:"msgs_per_s"`
	Results        []Result       `json:"-"`
}

type batch struct {
	seq   int
	items []Item
}

// Send sends everything src yields.
func Send(ctx context.Context, src Source, o Options) (*Summary, error) {
	if o.BatchSize <= 0 {
		o.BatchSize = 10000
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 2
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 8
	}
	if o.HTTP == nil {
		o.HTTP = &http.Client{Timeout: 10 * time.Minute}
	}
	sum := &Summary{RejectedByCode: map[string]int{}}
	start := time.Now()
	done, jw, err := openJournal(o.Journal)
	if err != nil {
		return nil, err
	}
	if jw != nil {
		defer jw.Close()
	}
	if o.SaveDir != "" {
		if err := os.MkdirAll(o.SaveDir, 0o755); err != nil {
			return nil, err
		}
	}
	work := make(chan batch)
	var mu sync.Mutex
	var firstErr error
	var wg sync.WaitGroup
	processed := 0
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for w := 0; w < o.Concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range work {
				res, err := sendBatch(ctx, o, b)
				mu.Lock()
				if err != nil {
					if firstErr == nil {
						firstErr = err
						cancel()
					}
					mu.Unlock()
					continue
				}
				var accepted []string
				for _, r := range res {
					switch r.Status {
					case "RECEIVED":
						sum.Accepted++
						accepted = append(accepted, r.MessageUUID)
					default:
						sum.Rejected++
						sum.RejectedByCode[r.ErrorCode]++
					}
				}
				sum.Results = append(sum.Results, res...)
				sum.Batches++
				processed += len(b.items)
				if jw != nil {
					if err := jw.add(accepted); err != nil && firstErr == nil {
						firstErr = fmt.Errorf("journal: %w", err)
						cancel()
					}
				}
				if o.OnProgress != nil {
					o.OnProgress(processed + sum.Skipped)
				}
				mu.Unlock()
			}
		}()
	}
	seq := 0
	cur := batch{}
	var readErr error
	for ctx.Err() == nil {
		it, err := src.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			readErr = err
			break
		}
		if _, ok := done[it.UUID]; ok {
			mu.Lock()
			sum.Skipped++
			sum.Results = append(sum.Results, Result{MessageUUID: it.UUID, File: it.Name, Status: "SKIPPED"})
			mu.Unlock()
			continue
		}
		cur.items = append(cur.items, it)
		if len(cur.items) >= o.BatchSize {
			cur.seq = seq
			seq++
			select {
			case work <- cur:
			case <-ctx.Done():
			}
			cur = batch{}
		}
	}
	if len(cur.items) > 0 && ctx.Err() == nil {
		cur.seq = seq
		work <- cur
	}
	close(work)
	wg.Wait()
	sum.Seconds = time.Since(start).Seconds()
	if sum.Seconds > 0 {
		sum.MsgsPerSec = float64(sum.Accepted+sum.Rejected) / sum.Seconds
	}
	if readErr != nil {
		return sum, fmt.Errorf("reading messages: %w", readErr)
	}
	if firstErr != nil {
		return sum, firstErr
	}
	return sum, ctx.Err()
}

// sendBatch posts one batch, retrying what the server asks to retry.
func sendBatch(ctx context.Context, o Options, b batch) ([]Result, error) {
	var buf bytes.Buffer
	w := archive.NewWriter(&buf, true)
	for _, it := range b.items {
		if err := w.Add(it.Name, it.Data); err != nil {
			return nil, err
		}
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	if o.SaveDir != "" {
		if err := os.WriteFile(filepath.Join(o.SaveDir, fmt.Sprintf("batch-%06d.tar.lzma", b.seq)), buf.Bytes(), 0o644); err != nil {
			return nil, err
		}
	}
	url := strings.TrimRight(o.URL, "/") + "/apis/v1/memos/"
	var lastErr error
	for attempt := 1; attempt <= o.MaxAttempts; attempt++ {
		req, err := http.NewRequestWithContext(ctx, "POST", url, bytes.NewReader(buf.Bytes()))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/x-lzma")
		req.Header.Set("Authorization", "Bearer "+o.Token)
		resp, err := o.HTTP.Do(req)
		if err != nil {
			lastErr = err
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			sleep(ctx, backoff(attempt, ""))
			continue
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
		resp.Body.Close()
		switch {
		case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable || resp.StatusCode >= 500:
			lastErr = fmt.Errorf("server answered %d: %s", resp.StatusCode, truncate(body))
			sleep(ctx, backoff(attempt, resp.Header.Get("Retry-After")))
			continue
		case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden && !bytes.Contains(body, []byte("rejections")):
			return nil, fmt.Errorf("not authorised (%d): %s; check --token / MEMOFLOW_TOKEN", resp.StatusCode, truncate(body))
		}
		var br ingest.BatchReceipt
		if err := json.Unmarshal(body, &br); err != nil {
			return nil, fmt.Errorf("server answered %d with %q", resp.StatusCode, truncate(body))
		}
		return results(b, &br, resp.StatusCode), nil
	}
	return nil, fmt.Errorf("batch %d not accepted after %d attempts: %v", b.seq, o.MaxAttempts, lastErr)
}

// results maps a batch answer onto its messages: named rejections are
// rejected, a batch-level error rejects what was not accepted before it.
func results(b batch, br *ingest.BatchReceipt, status int) []Result {
	rej := map[string]ingest.Rejection{}
	for _, r := range br.Rejections {
		rej[r.File] = r
	}
	out := make([]Result, 0, len(b.items))
	accepted := 0
	for _, it := range b.items {
		r := Result{MessageUUID: it.UUID, File: it.Name, TransmissionID: br.TransmissionID}
		if x, ok := rej[it.Name]; ok {
			r.Status, r.ErrorCode, r.ErrorMessage = "INVALID", x.ErrorCode, x.ErrorMessage
			if x.ErrorCode == ingest.CodeSenderNotAllowed {
				r.Status = "NOT_ALLOWED"
			}
		} else if status == http.StatusCreated || accepted < br.Accepted {
			r.Status = "RECEIVED"
			accepted++
		} else {
			r.Status, r.ErrorCode, r.ErrorMessage = "INVALID", br.ErrorCode, br.ErrorMessage
		}
		out = append(out, r)
	}
	return out
}

func backoff(attempt int, retryAfter string) time.Duration {
	if s, err := strconv.Atoi(retryAfter); err == nil && s > 0 {
		return time.Duration(s) * time.Second
	}
	return min(time.Duration(1<<min(attempt, 6))*100*time.Millisecond, 10*time.Second)
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

func truncate(b []byte) string {
	if len(b) > 300 {
		b = b[:300]
	}
	return string(b)
}

// journal is an append-only file of accepted messageUUIDs, synced after
// every batch, so a rerun skips them.
type journal struct{ f *os.File }

func openJournal(path string) (map[string]struct{}, *journal, error) {
	done := map[string]struct{}{}
	if path == "" {
		return done, nil, nil
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR|os.O_APPEND, 0o644)
	if err != nil {
		return nil, nil, fmt.Errorf("journal: %w", err)
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if u := strings.TrimSpace(sc.Text()); u != "" {
			done[u] = struct{}{}
		}
	}
	if err := sc.Err(); err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("journal %s: %w", path, err)
	}
	return done, &journal{f: f}, nil
}

func (j *journal) add(uuids []string) error {
	if len(uuids) == 0 {
		return nil
	}
	var b strings.Builder
	for _, u := range uuids {
		b.WriteString(u)
		b.WriteByte('\n')
	}
	if _, err := j.f.WriteString(b.String()); err != nil {
		return err
	}
	return j.f.Sync()
}

func (j *journal) Close() error { return j.f.Close() }
