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
// now. A deleted selection is no longer shown to its supplier. The admin
// API refuses to turn a system with traffic of its own into a selection
// and to move a selection to another supplier (a new selection gets a new
// id), so a supplier does not see what came before it was selected; an id
// deleted and later reused for a selection is the exception (the view
// keeps no history of ids).
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
