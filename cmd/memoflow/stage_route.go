package main

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/memoflow/memoflow/pipeline"
	"github.com/memoflow/memoflow/schemas/registry"
	"github.com/memoflow/memoflow/stages/route"
)

// The routing stage: memo.ready -> memo.routed by the registry View, which
// must have caught up with memo.registry before the stage consumes.
func init() {
	stageDefs = append(stageDefs, stageDef{
		name:   "route",
		inputs: []string{pipeline.TopicReady},
		help:   "route every message to its destination system by the registry (memo.ready -> memo.routed), INVALID receipts for bad addressing, routing events",
		build: func(ctx context.Context, a *app) (pipeline.Stage, error) {
			view, err := a.registryView(ctx)
			if err != nil {
				return nil, err
			}
			p, err := a.pseudonymizer(a.generate)
			if err != nil {
				return nil, err
			}
			// Route copies the claim-checked body of a message it forwards
			// (stages/route/forward.go).
			blobs, err := a.blobStore()
			if err != nil {
				return nil, err
			}
			st, err := route.New(view, p, a.cfg.Route, route.WithBlobStore(blobs))
			if err != nil {
				return nil, usageErr(err)
			}
			return st, nil
		},
	})
}

// registryViews holds one registry View per app (route, the demo seed
// and later deliver and ingest share it: it is the largest structure in
// the process).
var registryViews = struct {
	sync.Mutex
	m map[*app]*registry.View
}{m: map[*app]*registry.View{}}

// registryView opens the process's registry View and waits until it has
// caught up with memo.registry. Readiness (/readyz) fails until then.
func (a *app) registryView(ctx context.Context) (*registry.View, error) {
	registryViews.Lock()
	defer registryViews.Unlock()
	if v := registryViews.m[a]; v != nil {
		return v, nil
	}
	opts, err := a.cfg.Kafka.ClientOpts()
	if err != nil {
		return nil, usageErr(err)
	}
	start := time.Now()
	v, err := registry.NewView(ctx, append(opts, kgo.WithHooks(a.kafkaMetrics()), kgo.ClientID(a.cfg.Kafka.ClientID+"-registry")),
		registry.WithLogger(a.log.With("component", "registry")))
	if err != nil {
		return nil, err
	}
	a.closers = append(a.closers, v.Close)
	a.http.AddCheck("registry", func(context.Context) error {
		select {
		case <-v.CaughtUp():
			return nil
		default:
			return errors.New("registry view has not caught up with memo.registry yet")
		}
	})
	promauto.With(a.reg).NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "memoflow", Name: "registry_records_applied",
		Help: "memo.registry records the registry view has applied since start.",
	}, func() float64 { return float64(v.Applied()) })
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-v.CaughtUp():
			st := v.Stats()
			a.log.Info("registry view caught up", "took", time.Since(start).Round(time.Millisecond), "records", v.Applied(),
				"citizens", st.Citizens, "companies", st.Companies, "contact_points", st.ContactPoints, "systems", st.Systems)
			registryViews.m[a] = v
			return v, nil
		case <-tick.C:
			a.log.Info("registry view loading", "records", v.Applied())
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}
