package main

import (
	"context"

	"github.com/memoflow/memoflow/pipeline"
	"github.com/memoflow/memoflow/stages/blobgc"
)

// The claim-check blob collector: deletes blobs whose message reached a
// final state (memo.blobs.done), and sweeps blobs older than
// --blob-retention.
func init() {
	stageDefs = append(stageDefs, stageDef{
		name:   blobgc.Name,
		inputs: []string{pipeline.TopicBlobsDone},
		help:   "claim-check blob removal: deletes the blobs named on memo.blobs.done, and every --blob-sweep-interval those older than --blob-retention",
		build: func(ctx context.Context, a *app) (pipeline.Stage, error) {
			store, err := a.blobStore()
			if err != nil {
				return nil, err
			}
			s, err := blobgc.New(store, blobgc.WithRegisterer(a.reg))
			if err != nil {
				return nil, usageErr(err)
			}
			w := blobgc.NewSweeper(store, blobgc.SweepConfig{Retention: a.cfg.Blob.Retention, Interval: a.cfg.Blob.SweepInterval},
				a.log.With("stage", blobgc.Name), s)
			sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
			done := make(chan struct{})
			go func() {
				defer close(done)
				w.Run(sctx)
			}()
			a.closers = append(a.closers, func() { cancel(); <-done })
			go func() {
				<-ctx.Done()
				cancel()
			}()
			return s, nil
		},
	})
}
