package eventquery

import (
	"github.com/memoflow/memoflow/schemas/registry"
)

// Selections finds what a supplier may see of other organisations'
// traffic (seed 001, 6.2: standard systems).
type Selections interface {
	// SupplierSelections returns the recipient systems that selected one
	// of organisation org's standard systems (none: it sees none).
	SupplierSelections(org string) []string
}

// RegistrySelections is Selections over the registry view: the systems
// whose Template is one of org's standard systems, as the view holds them
// now. A selection that is deleted, or that its authority moved to
// another supplier under a new id, is no longer shown to the old supplier
// (the admin API never gives a selection an id that carried other
// traffic, so a supplier never sees what came before it was selected).
type RegistrySelections struct {
	View *registry.View
}

func (r RegistrySelections) SupplierSelections(org string) []string {
	var out []string
	r.View.Each(registry.KindSystem, org, func(e registry.Entity) bool {
		if s := e.(*registry.System); s.SysKind == registry.SystemStandard {
			out = append(out, r.View.Selections(s.ID)...)
		}
		return true
	})
	return out
}
