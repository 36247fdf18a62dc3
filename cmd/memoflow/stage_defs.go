package main

import (
	"context"
	"time"

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
				tokens, err := a.tokenStore(a.generate)
				if err != nil {
					return err
				}
				prod, err := a.producerClient()
				if err != nil {
					return err
				}
				api, err := ingest.New(a.cfg.Ingest, tokens, prod, a.log.With("stage", "ingest"))
				if err != nil {
					return usageErr(err)
				}
				api.Register(a.http.Mux)
				return nil
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
				return validate.New(p, time.Now), nil
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
