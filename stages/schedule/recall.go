package schedule

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/memoflow/memoflow/internal/auth"
	"github.com/memoflow/memoflow/pipeline"
	"github.com/memoflow/memoflow/schemas/memo"
)

// APIConfig configures the recall API.
type APIConfig struct {
	// Wait is how long a request waits for the stage's decision before
	// it answers 202 with a status URL.
	Wait time.Duration
	// MaxResults bounds the outcomes kept in memory for status URLs.
	MaxResults int
}

// Validate names the field and the fix.
func (c APIConfig) Validate() error {
	if c.Wait <= 0 || c.Wait > time.Minute {
		return fmt.Errorf("recall wait: %s is out of range; use 1ms..1m (5s is the default)", c.Wait)
	}
	if c.MaxResults < 1 {
		return fmt.Errorf("recall max results: %d; give a positive number, e.g. 100000", c.MaxResults)
	}
	return nil
}

// API is the sender's recall endpoint. A recall is a command on
// memo.schedule keyed by messageUUID, so it lands in the partition of the
// message itself and the schedule stage decides it serially with that
// partition's releases: a recall racing the release has exactly one
// outcome. The API then waits for the outcome on memo.recalls.
type API struct {
	tokens  auth.Store
	prod    *kgo.Client
	cfg     APIConfig
	log     *slog.Logger
	results *results
}

// NewAPI returns the API. prod produces the commands: it must partition
// keys as the producer of memo.valid does (franz-go's default
// partitioner). consume are the client options for tailing memo.recalls.
func NewAPI(tokens auth.Store, prod *kgo.Client, consume []kgo.Opt, cfg APIConfig, log *slog.Logger) (*API, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	res, err := newResults(consume, cfg.MaxResults, log)
	if err != nil {
		return nil, err
	}
	return &API{tokens: tokens, prod: prod, cfg: cfg, log: log, results: res}, nil
}

// Close stops the results tail.
func (a *API) Close() { a.results.close() }

// Register mounts the endpoints (beside ingest's POST /apis/v1/memos/).
func (a *API) Register(mux *http.ServeMux) {
	a.RegisterShared(mux)
	mux.Handle("DELETE /apis/v1/memos/{messageUUID}", a.RecallHandler())
}

// RegisterShared mounts POST /apis/v1/memos/{messageUUID}/recall and the
// status URL, but not DELETE /apis/v1/memos/{messageUUID}: a process that
// also serves the REST-pull API (DELETE /apis/v1/memos/{id} for recipient
// systems) mounts one DispatchDelete for both.
func (a *API) RegisterShared(mux *http.ServeMux) {
	mux.Handle("POST /apis/v1/memos/{messageUUID}/recall", a.RecallHandler())
	mux.Handle("GET /apis/v1/memos/{messageUUID}/recall/{requestID}", auth.Require(a.tokens, http.HandlerFunc(a.status), auth.RoleSender))
}

// RecallHandler is the recall (role sender; the path value messageUUID).
func (a *API) RecallHandler() http.Handler {
	return auth.Require(a.tokens, http.HandlerFunc(a.recall), auth.RoleSender)
}

// DispatchDelete serves DELETE /apis/v1/memos/{id} where two APIs share the
// path: a sender's call is a recall (the path value is read as
// messageUUID), a recipient system's goes to pull (deleting a fetched
// message). A principal with both roles is a recipient system here: the
// pull API's DELETE is the one NgDP defines. A nil handler is an API this
// process does not serve. Others get 401/403.
func DispatchDelete(tokens auth.Store, recall, pull http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := auth.Authenticate(tokens, r)
		if err != nil {
			auth.WriteError(w, err)
			return
		}
		switch {
		case p.Has(auth.RoleRecipientSystem) && pull != nil:
			pull.ServeHTTP(w, r)
		case p.Has(auth.RoleSender) && recall != nil:
			if r.PathValue("messageUUID") == "" {
				r.SetPathValue("messageUUID", r.PathValue("id"))
			}
			recall.ServeHTTP(w, r)
		default:
			auth.WriteError(w, &auth.Error{Status: http.StatusForbidden, Code: auth.CodeForbidden, Message: "this needs one of the roles sender, recipient-system"})
		}
	})
}

// answer is the body of every recall answer: the outcome, or an NgDP
// error shape with the request's identity beside it.
type answer struct {
	MessageUUID  string  `json:"messageUUID"`
	RequestID    string  `json:"requestId,omitempty"`
	Outcome      Outcome `json:"outcome,omitempty"`
	DecidedAt    string  `json:"decidedAt,omitempty"`
	ReleasedAt   string  `json:"releasedAt,omitempty"`
	StatusURL    string  `json:"statusUrl,omitempty"`
	ErrorCode    string  `json:"errorCode,omitempty"`
	ErrorMessage string  `json:"errorMessage,omitempty"`
}

func (a *API) recall(w http.ResponseWriter, r *http.Request) {
	p := auth.FromContext(r.Context())
	uuid := r.PathValue("messageUUID")
	if !memo.IsUUID(uuid) {
		writeAnswer(w, http.StatusBadRequest, answer{MessageUUID: uuid, ErrorCode: CodeRecallBadUUID, ErrorMessage: "messageUUID " + quote(uuid) + " is not a UUID"})
		return
	}
	reqID := newRequestID()
	wait := a.results.wait(reqID)
	defer a.results.unwait(reqID)
	v, _ := json.Marshal(command{Kind: cmdRecall, RequestID: reqID, Org: p.Org, System: p.ID, AtMs: time.Now().UnixMilli()})
	pctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	err := a.prod.ProduceSync(pctx, &kgo.Record{Topic: pipeline.TopicSchedule, Key: []byte(uuid), Value: v}).FirstErr()
	cancel()
	if err != nil {
		a.log.Warn("recall: command not acknowledged", "messageUUID", uuid, "err", err)
		writeAnswer(w, http.StatusServiceUnavailable, answer{MessageUUID: uuid, ErrorCode: CodeRecallUnavailable, ErrorMessage: "the recall request was not acknowledged by Kafka; nothing was recalled; retry"})
		return
	}
	t := time.NewTimer(a.cfg.Wait)
	defer t.Stop()
	select {
	case res := <-wait:
		writeResult(w, res)
	case <-t.C:
		a.pending(w, uuid, reqID)
	case <-r.Context().Done():
	}
}

func (a *API) pending(w http.ResponseWriter, uuid, reqID string) {
	url := "/apis/v1/memos/" + uuid + "/recall/" + reqID
	w.Header().Set("Location", url)
	w.Header().Set("Retry-After", "1")
	writeAnswer(w, http.StatusAccepted, answer{MessageUUID: uuid, RequestID: reqID, StatusURL: url,
		ErrorCode: CodeRecallPending, ErrorMessage: "the recall is queued and will be decided before any release of the message; poll the status URL"})
}

func (a *API) status(w http.ResponseWriter, r *http.Request) {
	p := auth.FromContext(r.Context())
	uuid, reqID := r.PathValue("messageUUID"), r.PathValue("requestID")
	res, ok := a.results.get(reqID)
	if !ok || res.Org != p.Org || res.MessageUUID != uuid {
		if ok || !isRequestID(reqID) {
			writeAnswer(w, http.StatusNotFound, answer{MessageUUID: uuid, RequestID: reqID, ErrorCode: CodeRecallNoRequest, ErrorMessage: "no recall request " + quote(reqID) + " of this organisation for this message"})
			return
		}
		// Not decided yet (or decided before this replica started
		// reading; it reads memo.recalls from its start, so only briefly).
		a.pending(w, uuid, reqID)
		return
	}
	writeResult(w, res)
}

func writeResult(w http.ResponseWriter, res Result) {
	ans := answer{MessageUUID: res.MessageUUID, RequestID: res.RequestID, Outcome: res.Outcome, DecidedAt: res.DecidedAt, ReleasedAt: res.ReleasedAt}
	switch res.Outcome {
	case OutcomeRecalled, OutcomeAlreadyRecalled:
		writeAnswer(w, http.StatusOK, ans)
	case OutcomeTooLate:
		ans.ErrorCode, ans.ErrorMessage = CodeRecallTooLate, "the message was released for delivery at "+res.ReleasedAt+", before the recall; it can no longer be recalled"
		writeAnswer(w, http.StatusConflict, ans)
	default:
		ans.ErrorCode, ans.ErrorMessage = CodeRecallNotFound, "no held message "+res.MessageUUID+" of this organisation (unknown, another sender's, or sent without a future doNotDeliverUntilDate)"
		writeAnswer(w, http.StatusNotFound, ans)
	}
}

func writeAnswer(w http.ResponseWriter, status int, a answer) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(a)
}

func quote(s string) string {
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	return fmt.Sprintf("%q", s)
}

func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func isRequestID(s string) bool {
	if len(s) != 32 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

// results tails memo.recalls (read_committed, from its start: recalls are
// few) and hands outcomes to waiting requests; it keeps the newest
// MaxResults for status URLs.
type results struct {
	cl     *kgo.Client
	log    *slog.Logger
	max    int
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	byID    map[string]Result
	ring    []string
	head    int
	waiters map[string]chan Result
}

func newResults(opts []kgo.Opt, max int, log *slog.Logger) (*results, error) {
	cl, err := kgo.NewClient(append(opts,
		kgo.ConsumeTopics(pipeline.TopicRecalls),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.FetchMaxWait(200*time.Millisecond),
	)...)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	rs := &results{cl: cl, log: log, max: max, cancel: cancel, done: make(chan struct{}),
		byID: map[string]Result{}, waiters: map[string]chan Result{}}
	go rs.tail(ctx)
	return rs, nil
}

func (rs *results) close() {
	rs.cancel()
	<-rs.done
	rs.cl.Close()
}

func (rs *results) tail(ctx context.Context) {
	defer close(rs.done)
	for ctx.Err() == nil {
		f := rs.cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return
		}
		f.EachError(func(_ string, p int32, err error) {
			if !errors.Is(err, context.Canceled) {
				rs.log.Warn("recall: memo.recalls fetch error", "partition", p, "err", err)
			}
		})
		f.EachRecord(func(r *kgo.Record) {
			var res Result
			if r.Value == nil || json.Unmarshal(r.Value, &res) != nil || res.RequestID == "" {
				return
			}
			rs.put(res)
		})
	}
}

func (rs *results) put(res Result) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if _, ok := rs.byID[res.RequestID]; !ok {
		if len(rs.ring) < rs.max {
			rs.ring = append(rs.ring, res.RequestID)
		} else {
			delete(rs.byID, rs.ring[rs.head])
			rs.ring[rs.head] = res.RequestID
			rs.head = (rs.head + 1) % rs.max
		}
	}
	rs.byID[res.RequestID] = res
	if ch, ok := rs.waiters[res.RequestID]; ok {
		select {
		case ch <- res:
		default:
		}
	}
}

func (rs *results) wait(id string) <-chan Result {
	ch := make(chan Result, 1)
	rs.mu.Lock()
	rs.waiters[id] = ch
	rs.mu.Unlock()
	return ch
}

func (rs *results) unwait(id string) {
	rs.mu.Lock()
	delete(rs.waiters, id)
	rs.mu.Unlock()
}

func (rs *results) get(id string) (Result, bool) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	r, ok := rs.byID[id]
	return r, ok
}
