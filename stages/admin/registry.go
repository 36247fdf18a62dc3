package admin

import (
	"context"

	"github.com/memoflow/memoflow/schemas/registry"
)

// Reader is the registry as the admin API reads it: the materialised view
// of memo.registry. Entities returned are shared and never modified; the
// API copies before it changes one.
type Reader interface {
	// Get returns the entity under a compact key ("cp/<id>", "org/<cvr>").
	Get(key string) (registry.Entity, bool)
	// Each calls fn for every entity of kind that belongs to organisation
	// org (every organisation's when org is ""), until fn returns false.
	Each(kind registry.Kind, org string, fn func(registry.Entity) bool)
}

// Writer puts changes on memo.registry: *registry.Writer. Write validates
// the whole batch (against the view as well: references, system limits)
// before it produces anything, produces the changes and their events
// (CONTACT_POINT_CHANGED, SYSTEM_CHANGED with the actor), and returns when
// the broker acknowledged them and the view has read them.
type Writer interface {
	Write(ctx context.Context, changes ...registry.Change) error
}

// entityOrg is the organisation an entity belongs to ("" for providers).
func entityOrg(e registry.Entity) string {
	switch x := e.(type) {
	case *registry.Org:
		return x.CVR
	case *registry.SenderSystem:
		return x.Org
	case *registry.System:
		return x.Org
	case *registry.ContactGroup:
		return x.Org
	case *registry.ContactPoint:
		return x.Org
	case *registry.LegacyMailbox:
		return x.Org
	case *registry.Company:
		return x.CVR
	}
	return ""
}
