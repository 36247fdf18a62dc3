package main

import (
	"context"

	"github.com/memoflow/memoflow/stages/eventquery"
)

// The event log's query APIs and its retention loop.
func init() {
	stageDefs = append(stageDefs, stageDef{
		name: "eventquery",
		help: "event log APIs: GET /apis/v1/events, /apis/v1/events/{messageUUID}/proof, /apis/v1/statistics (every search logged to memo.events); drops expired months daily",
		api: func(ctx context.Context, a *app) error {
			conn, err := a.clickhouse(ctx)
			if err != nil {
				return err
			}
			tokens, err := a.tokenStore(a.generate)
			if err != nil {
				return err
			}
			pseudo, err := a.pseudonymizer(a.generate)
			if err != nil {
				return err
			}
			prod, err := a.producerClient()
			if err != nil {
				return err
			}
			// Suppliers see their standard systems' selections' traffic.
			view, err := a.registryView(ctx)
			if err != nil {
				return err
			}
			db := a.cfg.ClickHouse.Database
			log := a.log.With("stage", "eventquery")
			err = eventquery.Register(a.http.Mux, eventquery.Deps{
				Conn: conn, Database: db, Tokens: tokens, Pseudonymizer: pseudo,
				Producer: prod, Log: log, Registerer: a.reg, Selections: eventquery.RegistrySelections{View: view},
			})
			if err != nil {
				return usageErr(err)
			}
			ret, err := eventquery.NewRetention(conn, eventquery.RetentionConfig{Database: db, Retention: a.cfg.Schema.Retention}, log, a.reg)
			if err != nil {
				return usageErr(err)
			}
			// The loop stops before the ClickHouse connection closes: closers
			// run in reverse order, and the connection's was added first.
			rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
			done := make(chan struct{})
			go func() {
				defer close(done)
				ret.Run(rctx)
			}()
			a.closers = append(a.closers, func() { cancel(); <-done })
			go func() {
				<-ctx.Done()
				cancel()
			}()
			return nil
		},
	})
}
