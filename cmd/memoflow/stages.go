package main

import (
	"context"
	"fmt"
	"runtime/pprof"
	"sort"
	"strings"
	"sync"

	"github.com/memoflow/memoflow/pipeline"
)

// stageDef is one entry of the stage table: the one place that says which
// stages exist, what they read and how they are built.
type stageDef struct {
	name   string
	inputs []string
	help   string
	build  func(ctx context.Context, a *app) (pipeline.Stage, error)
	// api mounts the stage's HTTP handlers (stages that serve requests
	// instead of consuming a topic).
	api func(ctx context.Context, a *app) error
}

// stageDefs is filled by the stage_*.go files of this package.
var stageDefs []stageDef

func lookupStage(name string) (stageDef, bool) {
	for _, d := range stageDefs {
		if d.name == name {
			return d, true
		}
	}
	return stageDef{}, false
}

func stageNames() []string {
	names := make([]string, 0, len(stageDefs))
	for _, d := range stageDefs {
		names = append(names, d.name)
	}
	sort.Strings(names)
	return names
}

// runStages builds and runs the named stages until ctx ends or one fails
// fatally; a fatal error stops the others too.
func runStages(ctx context.Context, a *app, defs []stageDef) (wait func() error, err error) {
	ctx, cancel := context.WithCancel(ctx)
	type built struct {
		def    stageDef
		runner *pipeline.Runner
	}
	var runners []built
	for _, d := range defs {
		if d.api != nil {
			if err := d.api(ctx, a); err != nil {
				cancel()
				return nil, fmt.Errorf("stage %s: %w", d.name, err)
			}
			continue
		}
		st, err := d.build(ctx, a)
		if err != nil {
			cancel()
			return nil, fmt.Errorf("stage %s: %w", d.name, err)
		}
		r, err := pipeline.NewRunner(st, d.inputs, a.cfg.Kafka, a.cfg.Runner,
			pipeline.WithLogger(a.log), pipeline.WithMetrics(a.metrics), pipeline.WithHooks(a.kafkaMetrics()))
		if err != nil {
			cancel()
			return nil, usageErr(fmt.Errorf("stage %s: %w", d.name, err))
		}
		runners = append(runners, built{d, r})
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for _, b := range runners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// The pprof label becomes pyroscope's per-stage tag.
			pprof.Do(ctx, pprof.Labels("stage", b.def.name), func(ctx context.Context) {
				if err := b.runner.Run(ctx); err != nil {
					mu.Lock()
					if first == nil {
						first = fmt.Errorf("stage %s: %w", b.def.name, err)
					}
					mu.Unlock()
					cancel()
				}
			})
		}()
	}
	return func() error {
		defer cancel()
		// Until a signal or a fatal stage error ends ctx.
		<-ctx.Done()
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		return first
	}, nil
}

func parseStageList(s string) ([]stageDef, error) {
	if s == "" || s == "all" {
		return stageDefs, nil
	}
	var out []stageDef
	for _, n := range strings.Split(s, ",") {
		d, ok := lookupStage(strings.TrimSpace(n))
		if !ok {
			return nil, usageErr(fmt.Errorf("unknown stage %q; known stages: %s", n, strings.Join(stageNames(), ", ")))
		}
		out = append(out, d)
	}
	return out, nil
}
