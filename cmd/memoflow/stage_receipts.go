package main

import (
	"context"

	"github.com/memoflow/memoflow/pipeline"
	"github.com/memoflow/memoflow/stages/deliver"
	"github.com/memoflow/memoflow/stages/receipts"
)

// The receipts stages: the sink that stores memo.receipts in ClickHouse,
// and the NgDP receipts API that serves them. Separate entries, so the API
// scales with HTTP load and the sink with the topic's partitions.
func init() {
	stageDefs = append(stageDefs,
		stageDef{
			name:   "receipts",
			inputs: []string{pipeline.TopicReceipts},
			help:   "the receipts store: memo.receipts into ClickHouse, every record and every receipt id once",
			build: func(ctx context.Context, a *app) (pipeline.Stage, error) {
				conn, err := a.clickhouse(ctx)
				if err != nil {
					return nil, err
				}
				// Receipts for sender systems with a receipt endpoint in the
				// registry are queued on memo.receipts.push after ClickHouse
				// took them; the receipt-push stage delivers them.
				v, err := a.registryView(ctx)
				if err != nil {
					return nil, err
				}
				prod, err := a.producerClient()
				if err != nil {
					return nil, err
				}
				s, err := receipts.New(conn, receipts.Config{Database: a.cfg.ClickHouse.Database}, receipts.WithRegisterer(a.reg),
					receipts.WithPusher(deliver.NewReceiptPusher(&deliver.RegistrySenders{View: v}, prod)))
				if err != nil {
					return nil, usageErr(err)
				}
				return s, nil
			},
		},
		stageDef{
			name: "receipts-api",
			help: "the NgDP receipts API for sender systems: GET /apis/v1/receipts/, GET and DELETE /apis/v1/receipts/{id}, GET /apis/v1/receipts-bulk/",
			api: func(ctx context.Context, a *app) error {
				tokens, err := a.senderTokens(ctx)
				if err != nil {
					return err
				}
				conn, err := a.clickhouse(ctx)
				if err != nil {
					return err
				}
				store, err := receipts.NewStore(conn, receipts.StoreConfig{Database: a.cfg.ClickHouse.Database})
				if err != nil {
					return usageErr(err)
				}
				a.closers = append(a.closers, store.Close)
				api, err := receipts.NewAPI(store, tokens, a.log.With("stage", "receipts-api"), receipts.WithRegisterer(a.reg))
				if err != nil {
					return err
				}
				api.Register(a.http.Mux)
				return nil
			},
		},
	)
}
