package main

import (
	"context"
	"net/http"
	"path/filepath"
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/memoflow/memoflow/internal/auth"
	"github.com/memoflow/memoflow/pipeline"
	"github.com/memoflow/memoflow/stages/schedule"
)

// The value-date stage: memo.valid (and the recall commands and release
// ticks on memo.schedule) → memo.ready, holding future-dated messages in
// memo.held until 00:00 Europe/Copenhagen on their date. Its recall API is
// mounted by the ingest stage (mountRecall), so senders use one base URL.
func init() {
	stageDefs = append(stageDefs, stageDef{
		name:   "schedule",
		inputs: []string{pipeline.TopicValid, pipeline.TopicSchedule},
		help:   "the value-date stage: hold messages until doNotDeliverUntilDate (00:00 Europe/Copenhagen), release them in submission order at a bounded rate, decide recalls; memo.valid → memo.ready",
		build: func(ctx context.Context, a *app) (pipeline.Stage, error) {
			p, err := a.pseudonymizer(a.generate)
			if err != nil {
				return nil, err
			}
			opts, err := a.cfg.Kafka.ClientOpts()
			if err != nil {
				return nil, usageErr(err)
			}
			cfg := a.cfg.Schedule
			if cfg.Dir == "" {
				cfg.Dir = filepath.Join(a.cfg.VarDir, "schedule", a.cfg.Runner.ReplicaID)
			}
			sopts := []schedule.Option{schedule.WithLogger(a.log.With("stage", "schedule")), schedule.WithRegisterer(a.reg)}
			if c, ok := benchScheduleClocks.Load(a); ok {
				sopts = append(sopts, schedule.WithClock(c.(schedule.Clock))) // memoflow bench value-date-release
			}
			st, err := schedule.New(cfg, append(opts, kgo.ClientID(a.cfg.Kafka.ClientID+"-schedule-aux")), p, sopts...)
			if err != nil {
				return nil, usageErr(err)
			}
			a.closers = append(a.closers, st.Close)
			if err := st.StartTicker(); err != nil {
				return nil, err
			}
			return st, nil
		},
	})
}

// mountRecall adds DELETE /apis/v1/memos/{messageUUID}, POST
// .../{messageUUID}/recall and the recall status URL to the ingest API's
// mux. prod is ingest's producer: it partitions keys as validate does, so a
// recall lands in its message's partition.
func mountRecall(a *app, tokens auth.Store, prod *kgo.Client) error {
	opts, err := a.cfg.Kafka.ClientOpts()
	if err != nil {
		return usageErr(err)
	}
	api, err := schedule.NewAPI(tokens, prod, append(opts, kgo.ClientID(a.cfg.Kafka.ClientID+"-recall-results")),
		schedule.APIConfig{Wait: a.cfg.Schedule.RecallWait, MaxResults: 100000}, a.log.With("stage", "ingest"))
	if err != nil {
		return usageErr(err)
	}
	a.closers = append(a.closers, api.Close)
	api.RegisterShared(a.http.Mux)
	shareMemosDelete(a, tokens, api.RecallHandler(), nil)
	return nil
}

// memosDelete is a process's one DELETE /apis/v1/memos/{id}: the sender's
// recall (mounted with ingest) and the REST-pull API's delete (pull-api)
// share the path, and a ServeMux takes one handler per pattern. The first
// API to mount registers it; each fills in its handler;
// schedule.DispatchDelete picks by the caller's role at request time.
type memosDelete struct {
	mu           sync.Mutex
	tokens       auth.Store
	recall, pull http.Handler
}

var memosDeletes sync.Map // *app → *memosDelete

// shareMemosDelete adds recall or pull (the other nil) to a's DELETE
// /apis/v1/memos/{id}, registering the pattern on the first call.
func shareMemosDelete(a *app, tokens auth.Store, recall, pull http.Handler) {
	v, loaded := memosDeletes.LoadOrStore(a, &memosDelete{tokens: tokens})
	md := v.(*memosDelete)
	md.mu.Lock()
	if recall != nil {
		md.recall = recall
	}
	if pull != nil {
		md.pull = pull
	}
	md.mu.Unlock()
	if loaded {
		return
	}
	a.closers = append(a.closers, func() { memosDeletes.Delete(a) })
	a.http.Mux.Handle("DELETE /apis/v1/memos/{id}", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		md.mu.Lock()
		h := schedule.DispatchDelete(md.tokens, md.recall, md.pull)
		md.mu.Unlock()
		h.ServeHTTP(w, r)
	}))
}
