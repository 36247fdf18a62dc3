package main

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/memoflow/memoflow/pipeline"
	"github.com/memoflow/memoflow/stages/eventlog"
	"github.com/memoflow/memoflow/stages/ingest"
	"github.com/memoflow/memoflow/stages/validate"
)

// The stage table. Consuming stages have inputs and build; API stages
// mount HTTP handlers with api.
func init() {
	stageDefs = append(stageDefs,
		stageDef{
			name: "ingest",
			help: "the NgDP sender API: POST /apis/v1/memos/ (one MeMo or a tar+LZMA batch) into memo.ingest",
			api: func(ctx context.Context, a *app) error {
				tokens, err := a.senderTokens(ctx)
				if err != nil {
					return err
				}
				prod, err := a.producerClient()
				if err != nil {
					return err
				}
				blobs, err := a.blobStore()
				if err != nil {
					return err
				}
				api, err := ingest.New(a.cfg.Ingest, tokens, prod, a.log.With("stage", "ingest"),
					ingest.WithBlobStore(blobs, a.cfg.Blob.ThresholdBytes))
				if err != nil {
					return usageErr(err)
				}
				api.Register(a.http.Mux)
				// Recall shares ingest's base URL (stage_schedule.go).
				return mountRecall(a, tokens, prod)
			},
		},
		stageDef{
			name:   "validate",
			inputs: []string{pipeline.TopicIngest},
			help:   "parse and validate every MeMo; valid ones to memo.valid, INVALID receipts, events",
			build: func(ctx context.Context, a *app) (pipeline.Stage, error) {
				p, err := a.pseudonymizer(a.generate)
				if err != nil {
					return nil, err
				}
				st := validate.New(p, time.Now)
				if st.Blobs, err = a.blobStore(); err != nil {
					return nil, err
				}
				if a.cfg.Validation.Dedup {
					opts, err := a.cfg.Kafka.ClientOpts()
					if err != nil {
						return nil, usageErr(err)
					}
					d, err := validate.NewDedup(append(opts, kgo.ClientID(a.cfg.Kafka.ClientID+"-dedup")),
						validate.DedupConfig{MaxEntries: a.cfg.Validation.DedupMaxEntries}, a.log.With("stage", "validate"))
					if err != nil {
						return nil, err
					}
					a.closers = append(a.closers, d.Close)
					st.Dedup = d
					dups := promauto.With(a.reg).NewCounterVec(prometheus.CounterOpts{
						Namespace: "memoflow", Name: "validate_duplicates_total",
						Help: "Resent messageUUIDs: same content dropped (kind=same), different content rejected (kind=conflict).",
					}, []string{"kind"})
					st.Duplicates = func(conflict bool) {
						if conflict {
							dups.WithLabelValues("conflict").Inc()
						} else {
							dups.WithLabelValues("same").Inc()
						}
					}
				}
				return st, nil
			},
		},
		stageDef{
			name:   "eventlog",
			inputs: []string{pipeline.TopicEvents},
			help:   "the event log: memo.events into ClickHouse, exactly once",
			build: func(ctx context.Context, a *app) (pipeline.Stage, error) {
				conn, err := a.clickhouse(ctx)
				if err != nil {
					return nil, err
				}
				cfg := a.cfg.EventLog
				cfg.Database = a.cfg.ClickHouse.Database
				s, err := eventlog.New(conn, cfg, eventlog.WithRegisterer(a.reg))
				if err != nil {
					return nil, err
				}
				return s, nil
			},
		},
	)
}
