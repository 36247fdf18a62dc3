package main

import (
	"context"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/memoflow/memoflow/pipeline"
	"github.com/memoflow/memoflow/stages/forward"
)

// The forward stage: company mailbox post that route marked for
// forwarding (memo.forward) goes on to a trusted third party's secure
// mailbox (a copy routed to memo.routed) or to a pickup system (HTTP
// POST). Failed POSTs wait in memo.forward.retry; the stage's timer (group
// memoflow-forward-timer) moves them back when due.
func init() {
	stageDefs = append(stageDefs, stageDef{
		name:   "forward",
		inputs: []string{pipeline.TopicForward},
		help:   "forwarding of company mailbox post: a copy to a trusted third party's secure mailbox (max 10 MB) or a POST to a pickup system (max 99.5 MB), retried through memo.forward.retry",
		build: func(ctx context.Context, a *app) (pipeline.Stage, error) {
			view, err := a.registryView(ctx)
			if err != nil {
				return nil, err
			}
			pseudo, err := a.pseudonymizer(a.generate)
			if err != nil {
				return nil, err
			}
			blobs, err := a.blobStore()
			if err != nil {
				return nil, err
			}
			cfg := a.cfg.Forward
			cfg.Spread = a.cfg.Route.Spread // copies are keyed as route keys its post
			if a.cfg.Runner.Transactions {
				if err := cfg.CheckTransactionTimeout(a.cfg.Runner.TxnTimeout); err != nil {
					return nil, usageErr(err)
				}
			}
			fopts := []forward.Option{forward.WithBlobStore(blobs),
				forward.WithLogger(a.log.With("stage", "forward")), forward.WithRegisterer(a.reg)}
			if a.demoForwardClient != nil {
				fopts = append(fopts, forward.WithHTTPClient(a.demoForwardClient))
			}
			st, err := forward.New(cfg, view, pseudo, fopts...)
			if err != nil {
				return nil, usageErr(err)
			}
			opts, err := a.cfg.Kafka.ClientOpts()
			if err != nil {
				return nil, usageErr(err)
			}
			const group = "memoflow-forward-timer"
			tm, err := forward.NewTimer(st, append(opts, kgo.ClientID(a.cfg.Kafka.ClientID+"-forward-timer")), group, a.delayOptions(group)...)
			if err != nil {
				return nil, err
			}
			a.runDelayConsumer(ctx, tm, a.log, "forward timer stopped")
			return st, nil
		},
	})
}
