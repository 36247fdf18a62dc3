package admin

import (
	"testing"
	"time"

	"github.com/memoflow/memoflow/internal/auth"
	"github.com/memoflow/memoflow/schemas/registry"
)

func TestRegistryTokens(t *testing.T) {
	r := baseRegistry()
	tok, fileTok := auth.NewToken(), auth.NewToken()
	r.m["snd/s1"] = &registry.SenderSystem{ID: "s1", Org: orgA, Name: "S1", Active: true, TokenSHA256: []string{auth.HashToken(tok)}}
	file := auth.NewMemStore()
	file.Put(auth.HashToken(fileTok), &auth.Principal{ID: "ann", Org: orgA, Roles: []auth.Role{auth.RoleContactAdmin}})
	clock := time.Unix(1_800_000_000, 0)
	ts := &RegistryTokens{Reader: r, Next: file, now: func() time.Time { return clock }}

	if p, ok := ts.Lookup(auth.HashToken(tok)); !ok || p.ID != "s1" || p.Org != orgA || !p.Has(auth.RoleSender) || len(p.Roles) != 1 {
		t.Fatalf("registry token: %+v %v", p, ok)
	}
	if p, ok := ts.Lookup(auth.HashToken(fileTok)); !ok || p.ID != "ann" {
		t.Fatalf("file token: %+v %v", p, ok)
	}
	if _, ok := ts.Lookup(auth.HashToken("nope")); ok {
		t.Fatal("unknown token accepted")
	}
	// A new token works once the index is older than Refresh.
	tok2 := auth.NewToken()
	r.m["snd/s1"] = &registry.SenderSystem{ID: "s1", Org: orgA, Name: "S1", Active: true, TokenSHA256: []string{auth.HashToken(tok), auth.HashToken(tok2)}}
	clock = clock.Add(2 * time.Second)
	if _, ok := ts.Lookup(auth.HashToken(tok2)); !ok {
		t.Fatal("new token not accepted after the refresh")
	}
	// Revocation and deactivation take effect at once (no refresh).
	r.m["snd/s1"] = &registry.SenderSystem{ID: "s1", Org: orgA, Name: "S1", Active: true, TokenSHA256: []string{auth.HashToken(tok2)}}
	if _, ok := ts.Lookup(auth.HashToken(tok)); ok {
		t.Fatal("revoked token still accepted")
	}
	r.m["snd/s1"] = &registry.SenderSystem{ID: "s1", Org: orgA, Name: "S1", Active: false, TokenSHA256: []string{auth.HashToken(tok2)}}
	if _, ok := ts.Lookup(auth.HashToken(tok2)); ok {
		t.Fatal("token of a deactivated system accepted")
	}
	delete(r.m, "snd/s1")
	if _, ok := ts.Lookup(auth.HashToken(tok2)); ok {
		t.Fatal("token of a deleted system accepted")
	}
}
