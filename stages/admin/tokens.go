package admin

import (
	"strings"
	"sync"
	"time"

	"github.com/memoflow/memoflow/internal/auth"
	"github.com/memoflow/memoflow/schemas/registry"
)

// RegistryTokens is an auth.Store over the registry: a token whose SHA-256
// is on an active sender system (issued by a rights administrator through
// POST .../tokens) authenticates as that system, with role sender; an API
// key whose SHA-256 is a recipient system's Credentials ("sha256:<hash>":
// a REST_PULL system, or an authority's selection of a supplier's
// standard system, whose supplier got the key from the authority)
// authenticates as that system, with role recipient-system. Other tokens
// are looked up in Next (the token file), so administrators and operators
// keep their file entries.
//
// The hash → system index is rebuilt from the View at most once per
// Refresh, on a miss; a hit is always checked against the system as the
// View holds it now, so a revoked token or a deactivated system stops
// working at once, and a new token works within Refresh.
type RegistryTokens struct {
	Reader  Reader
	Next    auth.Store    // may be nil
	Refresh time.Duration // 0: one second

	mu    sync.Mutex
	idx   map[string]string // token hash -> "snd/<id>" or "sys/<id>"
	built time.Time
	now   func() time.Time
}

var _ auth.Store = (*RegistryTokens)(nil)

// Lookup implements auth.Store.
func (t *RegistryTokens) Lookup(hash string) (*auth.Principal, bool) {
	if p, ok := t.lookup(hash, false); ok {
		return p, true
	}
	if t.Next != nil {
		if p, ok := t.Next.Lookup(hash); ok {
			return p, true
		}
	}
	return t.lookup(hash, true)
}

func (t *RegistryTokens) lookup(hash string, rebuild bool) (*auth.Principal, bool) {
	t.mu.Lock()
	now := time.Now
	if t.now != nil {
		now = t.now
	}
	refresh := t.Refresh
	if refresh <= 0 {
		refresh = time.Second
	}
	if t.idx == nil || (rebuild && now().Sub(t.built) >= refresh) {
		idx := map[string]string{}
		t.Reader.Each(registry.KindSenderSystem, "", func(e registry.Entity) bool {
			s := e.(*registry.SenderSystem)
			for _, h := range s.TokenSHA256 {
				idx[h] = s.Key()
			}
			return true
		})
		t.Reader.Each(registry.KindSystem, "", func(e registry.Entity) bool {
			if s := e.(*registry.System); s.SysKind == registry.SystemRecipient {
				if h, ok := strings.CutPrefix(s.Credentials, "sha256:"); ok {
					idx[h] = s.Key()
				}
			}
			return true
		})
		t.idx, t.built = idx, now()
	}
	key, ok := t.idx[hash]
	t.mu.Unlock()
	if !ok {
		return nil, false
	}
	// Checked against the registry as it is now: a revoked token, a
	// replaced key or a deactivated sender stops at once.
	switch e, _ := t.Reader.Get(key); s := e.(type) {
	case *registry.SenderSystem:
		if s.Active && containsString(s.TokenSHA256, hash) {
			return &auth.Principal{ID: s.ID, Org: s.Org, Roles: []auth.Role{auth.RoleSender}}, true
		}
	case *registry.System:
		if s.SysKind == registry.SystemRecipient && s.Credentials == "sha256:"+hash {
			return &auth.Principal{ID: s.ID, Org: s.Org, Roles: []auth.Role{auth.RoleRecipientSystem}}, true
		}
	}
	return nil, false
}

func containsString(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}
