package auth

import (
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
)

func TestAuthenticate(t *testing.T) {
	s := NewMemStore()
	tok := NewToken()
	s.Put(HashToken(tok), &Principal{ID: "sys-1", Org: "12345678", Roles: []Role{RoleSender}})
	basic := func(id, tok string) string { return "Basic " + base64.StdEncoding.EncodeToString([]byte(id+":"+tok)) }
	for _, tc := range []struct {
		name, header, code string
	}{
		{"bearer", "Bearer " + tok, ""},
		{"basic", basic("sys-1", tok), ""},
		{"missing", "", CodeMissing},
		{"no credentials", "Bearer", CodeMalformed},
		{"unknown scheme", "Digest abc", CodeMalformed},
		{"bad base64", "Basic !!!", CodeMalformed},
		{"basic without colon", "Basic " + base64.StdEncoding.EncodeToString([]byte("x")), CodeMalformed},
		{"wrong token", "Bearer mf_nope", CodeInvalid},
		{"token of another system", basic("sys-2", tok), CodeInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			if tc.header != "" {
				r.Header.Set("Authorization", tc.header)
			}
			p, err := Authenticate(s, r)
			if tc.code == "" {
				if err != nil || p.ID != "sys-1" {
					t.Fatalf("got %v, %v", p, err)
				}
				return
			}
			ae, ok := err.(*Error)
			if !ok || ae.Code != tc.code {
				t.Fatalf("err = %v, want code %s", err, tc.code)
			}
		})
	}
}

func TestRequireRoles(t *testing.T) {
	s := NewMemStore()
	sender, admin := NewToken(), NewToken()
	s.Put(HashToken(sender), &Principal{ID: "sys", Org: "12345678", Roles: []Role{RoleSender}})
	s.Put(HashToken(admin), &Principal{ID: "ann", Org: "12345678", Roles: []Role{RoleSystemAdmin}})
	h := Require(s, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(FromContext(r.Context()).ID))
	}), RoleSystemAdmin)
	for _, tc := range []struct {
		tok    string
		status int
	}{{admin, 200}, {sender, 403}, {"", 401}} {
		r := httptest.NewRequest("GET", "/", nil)
		if tc.tok != "" {
			r.Header.Set("Authorization", "Bearer "+tc.tok)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != tc.status {
			t.Errorf("status %d, want %d (%s)", w.Code, tc.status, w.Body)
		}
		if tc.status != 200 && !strings.Contains(w.Body.String(), `"errorCode"`) {
			t.Errorf("error body lacks errorCode: %s", w.Body)
		}
	}
}

func TestTokenFile(t *testing.T) {
	dir := t.TempDir()
	tok := NewToken()
	good := filepath.Join(dir, "good.yaml")
	if err := WriteFile(good, []TokenEntry{{TokenSHA256: HashToken(tok), Principal: Principal{ID: "s", Org: "12345678", Roles: []Role{RoleSender}}}}); err != nil {
		t.Fatal(err)
	}
	s := NewMemStore()
	if n, err := LoadFile(good, s); err != nil || n != 1 {
		t.Fatalf("LoadFile = %d, %v", n, err)
	}
	if _, ok := s.Lookup(HashToken(tok)); !ok {
		t.Fatal("token not loaded")
	}
	for name, e := range map[string]TokenEntry{
		"hash":  {TokenSHA256: "xyz", Principal: Principal{ID: "s", Org: "12345678", Roles: []Role{RoleSender}}},
		"org":   {TokenSHA256: HashToken("a"), Principal: Principal{ID: "s", Org: "123", Roles: []Role{RoleSender}}},
		"role":  {TokenSHA256: HashToken("a"), Principal: Principal{ID: "s", Org: "12345678", Roles: []Role{"king"}}},
		"empty": {TokenSHA256: HashToken("a"), Principal: Principal{Org: "12345678", Roles: []Role{RoleSender}}},
	} {
		p := filepath.Join(dir, name+".yaml")
		WriteFile(p, []TokenEntry{e})
		if _, err := LoadFile(p, NewMemStore()); err == nil {
			t.Errorf("%s: bad entry accepted", name)
		}
	}
}
