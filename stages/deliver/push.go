package deliver

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/segmentio/encoding/json"

	"github.com/memoflow/memoflow/schemas/records"
)

// Headers of a push. The idempotency key is the messageUUID: a receiver
// that sees the same key twice (a push repeated after a crash mid-flight)
// keeps one copy.
const (
	HeaderIdempotencyKey = "Idempotency-Key"
	HeaderMessageUUID    = "X-Memo-Message-UUID"
	HeaderAttempt        = "X-Memo-Attempt"
)

// gate is one system's share of delivery: a concurrency limit, a circuit
// breaker and when it last took a message.
type gate struct {
	sem chan struct{}

	mu          sync.Mutex
	failures    int       // consecutive
	openUntil   time.Time // circuit open until then
	probing     bool      // one call is testing a half-open circuit
	probeDone   chan struct{}
	lastSuccess time.Time

	// The slow lane's view of the system (slow.go).
	meanMs       float64
	samples      int
	lastObserved time.Time
}

// gates holds a gate per system, created on first use. Systems are
// thousands, not millions, so the map is bounded by the registry.
type gates struct {
	perSystem int
	failures  int
	cooldown  time.Duration
	mu        sync.Mutex
	m         map[string]*gate
}

func newGates(perSystem, failures int, cooldown time.Duration) *gates {
	return &gates{perSystem: perSystem, failures: failures, cooldown: cooldown, m: map[string]*gate{}}
}

func (g *gates) get(id string) *gate {
	g.mu.Lock()
	defer g.mu.Unlock()
	x := g.m[id]
	if x == nil {
		x = &gate{sem: make(chan struct{}, g.perSystem)}
		g.m[id] = x
	}
	return x
}

// allow reports whether a call may go out now: the circuit is closed, or
// it is half-open and this call becomes the probe. While another call
// probes, wait is closed when the probe's outcome is known (ask again);
// with the circuit open, ok is false and wait nil.
//
// Only callers that may probe (the retry path) ever turn a half-open
// circuit into a call: a probe of a hanging system takes a whole timeout,
// and fresh messages must not wait for that. They are rescheduled until a
// retry proves the system healthy again.
func (x *gate) allow(now time.Time, mayProbe bool) (ok bool, wait <-chan struct{}) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.openUntil.IsZero() {
		return true, nil
	}
	if now.Before(x.openUntil) || !mayProbe {
		return false, nil
	}
	if x.probing {
		return false, x.probeDone
	}
	x.probing = true
	x.probeDone = make(chan struct{})
	return true, nil
}

// result records a call's outcome.
//
// hanging is the number of other calls to the system still in flight when
// this one timed out: they started about together and will most likely
// time out too, so they count now. Otherwise a worker would start another
// call (another whole timeout for the batch) before they come back.
func (x *gate) result(ok bool, now time.Time, threshold int, cooldown time.Duration, hanging int) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.endProbe()
	if ok {
		x.failures = 0
		x.openUntil = time.Time{}
		x.lastSuccess = now
		return
	}
	x.failures++
	if x.failures+hanging >= threshold {
		x.openUntil = now.Add(cooldown)
	}
}

// release ends a probe that never went out.
func (x *gate) release() {
	x.mu.Lock()
	x.endProbe()
	x.mu.Unlock()
}

func (x *gate) endProbe() {
	if x.probing {
		x.probing = false
		close(x.probeDone)
	}
}

func (x *gate) last() time.Time {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.lastSuccess
}

// push POSTs body to the system's endpoint and classifies the answer.
func push(ctx context.Context, cl *http.Client, sys *System, uuid string, attempt int, contentType string, body []byte) *AttemptError {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, sys.Endpoint, bytes.NewReader(body))
	if err != nil {
		return attemptErr(CodeNoEndpoint, "endpoint %q: %v", sys.Endpoint, err)
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set(HeaderIdempotencyKey, uuid)
	req.Header.Set(HeaderMessageUUID, uuid)
	req.Header.Set(HeaderAttempt, itoa(attempt))
	if sys.Credential != "" {
		req.Header.Set("Authorization", "Bearer "+sys.Credential)
	}
	resp, err := cl.Do(req)
	if err != nil {
		var ne net.Error
		if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
			return attemptErr(CodeTimeout, "%v", err)
		}
		return attemptErr(CodeConnect, "%v", err)
	}
	defer resp.Body.Close()
	// A receipt answer is small; more than 64 KB is not read.
	ans, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return &AttemptError{Code: CodeHTTPStatus, Status: resp.StatusCode, Err: errors.New(snippet(ans))}
	}
	// A 2xx may carry the system's business receipt; a negative one is a
	// failed delivery (the seeds: "a negative receipt from the recipient
	// system" means redelivery).
	if len(ans) > 0 && strings.Contains(resp.Header.Get("Content-Type"), "json") {
		var rc records.Receipt
		if json.Unmarshal(ans, &rc) == nil && rc.ReceiptStatus != "" &&
			rc.ReceiptStatus != records.StatusCompleted && rc.ReceiptStatus != records.StatusReceived {
			msg := rc.ReceiptStatus
			if rc.ErrorCode != "" {
				msg += " " + rc.ErrorCode
			}
			if rc.ErrorMessage != "" {
				msg += ": " + rc.ErrorMessage
			}
			return &AttemptError{Code: CodeNegative, Status: resp.StatusCode, Err: errors.New(msg)}
		}
	}
	return nil
}

func snippet(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	if s == "" {
		return "no body"
	}
	return s
}

func itoa(n int) string {
	var b [20]byte
	i := len(b)
	if n == 0 {
		return "0"
	}
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return string(b[i:])
}
