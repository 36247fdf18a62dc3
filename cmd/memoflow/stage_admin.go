package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/memoflow/memoflow/schemas/registry"
	"github.com/memoflow/memoflow/stages/admin"
)

// The registry's admin API: CRUD and search of organisations, systems and
// contact structures, sheet import and export, sender-system tokens. It
// reads a registry View and writes through the registry Writer, so every
// change is on memo.registry with its event (and actor) on memo.events.
func init() {
	stageDefs = append(stageDefs, stageDef{
		name: "admin-api",
		help: "registry admin API: /apis/v1/admin/organisations/{org}/... (systems, contact groups and points, search, legacy mailboxes, XLSX/CSV import and export, tokens), with roles",
		api: func(ctx context.Context, a *app) error {
			tokens, err := a.tokenStore(a.generate)
			if err != nil {
				return err
			}
			view, err := a.adminRegistryView(ctx)
			if err != nil {
				return err
			}
			prod, err := a.producerClient()
			if err != nil {
				return err
			}
			api, err := admin.NewAPI(admin.Deps{
				Reader: view, Writer: registry.NewWriter(prod, view), Tokens: tokens,
				Log: a.log.With("stage", "admin-api"), Registerer: a.reg,
			})
			if err != nil {
				return usageErr(err)
			}
			api.Register(a.http.Mux)
			return nil
		},
	})
}

// adminViews: one registry View per app for the admin API.
var adminViews = struct {
	sync.Mutex
	m map[*app]*registry.View
}{m: map[*app]*registry.View{}}

// adminRegistryView opens a registry View and waits until it has caught up,
// so the API never answers from a partial registry.
func (a *app) adminRegistryView(ctx context.Context) (*registry.View, error) {
	adminViews.Lock()
	defer adminViews.Unlock()
	if v := adminViews.m[a]; v != nil {
		return v, nil
	}
	opts, err := a.cfg.Kafka.ClientOpts()
	if err != nil {
		return nil, usageErr(err)
	}
	v, err := registry.NewView(ctx, append(opts, kgo.ClientID(a.cfg.Kafka.ClientID+"-admin-registry")),
		registry.WithLogger(a.log.With("component", "admin-registry")))
	if err != nil {
		return nil, err
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	if err := v.WaitCaughtUp(wctx); err != nil {
		v.Close()
		return nil, fmt.Errorf("registry view did not catch up with memo.registry: %w", err)
	}
	a.closers = append(a.closers, v.Close)
	adminViews.m[a] = v
	return v, nil
}
