package main

import (
	"context"

	"github.com/memoflow/memoflow/schemas/registry"
	"github.com/memoflow/memoflow/stages/admin"
)

// The registry's admin API: CRUD and search of organisations, systems and
// contact structures, sheet import and export, sender-system tokens. It
// reads the process's registry View (shared with route and the demo seed;
// registryView waits until it has caught up, so the API never answers from
// a partial registry) and writes through the registry Writer, so every
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
			view, err := a.registryView(ctx)
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
