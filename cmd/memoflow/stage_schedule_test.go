package main

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/memoflow/memoflow/internal/auth"
	"github.com/memoflow/memoflow/internal/httpserver"
)

// DELETE /apis/v1/memos/{id} is mounted once, whichever of recall and
// pull mounts first, and dispatched by the caller's role.
func TestShareMemosDelete(t *testing.T) {
	tokens := auth.NewMemStore()
	tok := map[auth.Role]string{}
	for _, role := range []auth.Role{auth.RoleSender, auth.RoleRecipientSystem} {
		tok[role] = auth.NewToken()
		tokens.Put(auth.HashToken(tok[role]), &auth.Principal{ID: string(role), Org: "12345678", Roles: []auth.Role{role}})
	}
	stub := func(name string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Header().Set("X-Served-By", name) })
	}
	for _, tc := range []struct {
		name        string
		mount       func(a *app)
		sender, rcp string // who serves each; "" = refused
	}{
		{"recall then pull", func(a *app) {
			shareMemosDelete(a, tokens, stub("recall"), nil)
			shareMemosDelete(a, tokens, nil, stub("pull"))
		}, "recall", "pull"},
		{"pull then recall", func(a *app) {
			shareMemosDelete(a, tokens, nil, stub("pull"))
			shareMemosDelete(a, tokens, stub("recall"), nil)
		}, "recall", "pull"},
		{"recall only", func(a *app) { shareMemosDelete(a, tokens, stub("recall"), nil) }, "recall", ""},
		{"pull only", func(a *app) { shareMemosDelete(a, tokens, nil, stub("pull")) }, "", "pull"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := &app{http: httpserver.New(prometheus.NewRegistry())}
			defer a.close()
			tc.mount(a) // a second registration of the pattern would panic
			for role, want := range map[auth.Role]string{auth.RoleSender: tc.sender, auth.RoleRecipientSystem: tc.rcp} {
				req := httptest.NewRequest(http.MethodDelete, "/apis/v1/memos/9c87889d-39a0-44df-94c0-2b0c3ceee9af", nil)
				req.Header.Set("Authorization", "Bearer "+tok[role])
				rec := httptest.NewRecorder()
				a.http.Mux.ServeHTTP(rec, req)
				got := rec.Header().Get("X-Served-By")
				if got != want || want == "" && rec.Code != http.StatusForbidden {
					t.Errorf("%s: served by %q (%d), want %q", role, got, rec.Code, want)
				}
			}
		})
	}
}
