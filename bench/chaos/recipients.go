package chaos

import (
	"bytes"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/encoding/json"

	"github.com/memoflow/memoflow/internal/recipientsim"
	"github.com/memoflow/memoflow/schemas/records"
)

// The scenario's outside observers besides the event log: a check on every
// push the simulator gets (its idempotency key must be the message's own
// UUID, so a repeated push is recognisable as the same message), and the
// sender system's receipt endpoint, which counts the business receipts
// that reach the sender.

// KeyCheck wraps the simulator's handler and checks every push before the
// simulator sees it: the Idempotency-Key header must equal the
// X-Memo-Message-UUID header and occur in the MeMo body (the message's
// MessageUUID element). A duplicate the simulator counts is then known to
// carry the same key as the first delivery: the simulator counts by key,
// and the key is the message's UUID.
type KeyCheck struct {
	next     http.Handler
	pushes   atomic.Int64
	mismatch atomic.Int64
	mu       sync.Mutex
	examples []string
}

// NewKeyCheck returns the checking handler in front of next.
func NewKeyCheck(next http.Handler) *KeyCheck { return &KeyCheck{next: next} }

func (k *KeyCheck) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost && strings.HasPrefix(r.URL.Path, "/push/") {
		body, err := io.ReadAll(r.Body)
		r.Body.Close()
		if err != nil {
			http.Error(w, "read body: "+err.Error(), http.StatusBadRequest)
			return
		}
		k.pushes.Add(1)
		key := r.Header.Get("Idempotency-Key")
		uuid := r.Header.Get("X-Memo-Message-UUID")
		if key == "" || key != uuid || !bytes.Contains(body, []byte(key)) {
			k.mismatch.Add(1)
			k.mu.Lock()
			if len(k.examples) < 10 {
				k.examples = append(k.examples, "key "+key+" uuid header "+uuid)
			}
			k.mu.Unlock()
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
	}
	k.next.ServeHTTP(w, r)
}

// KeyStats is what KeyCheck saw.
type KeyStats struct {
	Pushes     int64    `json:"pushes"`
	Mismatches int64    `json:"key_mismatches"`
	Examples   []string `json:"examples,omitempty"`
}

// Stats returns the counts.
func (k *KeyCheck) Stats() KeyStats {
	k.mu.Lock()
	defer k.mu.Unlock()
	return KeyStats{Pushes: k.pushes.Load(), Mismatches: k.mismatch.Load(), Examples: append([]string(nil), k.examples...)}
}

// ReceiptSink is the sender system's receipt endpoint (registry
// SenderSystem.ReceiptEndpoint): it accepts every POST and counts the
// receipts by kind, status and messageUUID, and the repeats by receipt id.
type ReceiptSink struct {
	mu sync.Mutex
	// final: messageUUID → distinct receipt ids of BUSINESS receipts
	// with a final status (COMPLETED or FAILED).
	final    map[string][]string
	ids      map[string]int // receipt id → POSTs
	byStatus map[string]int // "BUSINESS COMPLETED" → receipts (first POST of each id)
	posts    int
	bad      int
}

// NewReceiptSink returns an empty endpoint.
func NewReceiptSink() *ReceiptSink {
	return &ReceiptSink{final: map[string][]string{}, ids: map[string]int{}, byStatus: map[string]int{}}
}

// ReceiptPath is where the sink takes POSTs.
const ReceiptPath = "/receipts"

func (s *ReceiptSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != ReceiptPath {
		http.NotFound(w, r)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	var rc records.Receipt
	if err == nil {
		err = json.Unmarshal(body, &rc)
	}
	id := r.Header.Get("X-Memo-Receipt-Id")
	s.mu.Lock()
	defer s.mu.Unlock()
	s.posts++
	if err != nil || id == "" {
		// Answered 400: the pusher retries, and the count shows it.
		s.bad++
		http.Error(w, "bad receipt", http.StatusBadRequest)
		return
	}
	s.ids[id]++
	if s.ids[id] == 1 {
		s.byStatus[rc.Kind+" "+rc.ReceiptStatus]++
		if rc.Kind == records.KindBusiness && (rc.ReceiptStatus == records.StatusCompleted || rc.ReceiptStatus == records.StatusFailed) {
			s.final[rc.MessageUUID] = append(s.final[rc.MessageUUID], id)
		}
	}
	w.WriteHeader(http.StatusOK)
}

// ReceiptStats is what reached the sender.
type ReceiptStats struct {
	Posts int `json:"posts"`
	// Receipts are distinct receipt ids; Repeats the POSTs beyond the
	// first of an id (at-least-once delivery, same id).
	Receipts int            `json:"receipts"`
	Repeats  int            `json:"repeats"`
	Bad      int            `json:"bad"`
	ByStatus map[string]int `json:"by_kind_status"`
	// Final is the number of messages with a final business receipt;
	// MoreThanOne those with two or more distinct final receipt ids.
	Final       int `json:"messages_with_final_receipt"`
	MoreThanOne int `json:"messages_with_several_final_receipts"`
}

// Stats returns the counts.
func (s *ReceiptSink) Stats() ReceiptStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := ReceiptStats{Posts: s.posts, Receipts: len(s.ids), Bad: s.bad, ByStatus: map[string]int{}, Final: len(s.final)}
	for _, n := range s.ids {
		st.Repeats += n - 1
	}
	for k, v := range s.byStatus {
		st.ByStatus[k] = v
	}
	for _, ids := range s.final {
		if len(ids) > 1 {
			st.MoreThanOne++
		}
	}
	return st
}

// Missing returns up to n accepted messageUUIDs without a final receipt.
func (s *ReceiptSink) Missing(accepted []string, n int) (count int, some []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, u := range accepted {
		if len(s.final[u]) == 0 {
			count++
			if len(some) < n {
				some = append(some, u)
			}
		}
	}
	sort.Strings(some)
	return count, some
}

// RecipientControl is what the recipient faults need of the simulator.
type RecipientControl interface {
	SetDown(system string, down bool)
	SetLatency(system string, d time.Duration)
	Accepted(system string) int64
}

var _ RecipientControl = (*recipientsim.Sim)(nil)
