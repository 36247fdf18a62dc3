// Package auth authenticates API callers by token and checks their roles.
//
// Every caller is a Principal: a sender system, a recipient system or an
// administrator, always of one organisation (CVR). Tokens are stored only as
// SHA-256 hashes. A caller sends its token as `Authorization: Bearer <token>`
// or, as NgDP does, `Authorization: Basic base64(<id>:<token>)`, where the id
// must be the principal's own.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/segmentio/encoding/json"
)

// Role is a permission. Administration roles follow the NgDP roles in
// domain.md; every admin action is logged by the caller with the actor.
type Role string

const (
	RoleSender          Role = "sender"           // submit MeMo as its own organisation, read its receipts
	RoleRecipientSystem Role = "recipient-system" // pull its own post, send business receipts
	RoleSystemAdmin     Role = "system-admin"     // set up sender and recipient systems
	RoleContactAdmin    Role = "contact-admin"    // contact structure
	RoleRightsAdmin     Role = "rights-admin"     // grant roles
	RoleLogMessages     Role = "log-messages"     // event log: message metadata, no content
	RoleLogSearches     Role = "log-searches"     // event log: search by a person's CPR
	RoleOperator        Role = "operator"         // memoflow's own operators (all organisations)
	// RoleSupplier is a supplier's administrator (seed 001, 6.2): it
	// registers its organisation's standard systems, and reads the event
	// log of the authorities that selected them (and nothing else of theirs).
	RoleSupplier Role = "supplier"
)

// AllRoles lists the known roles.
var AllRoles = []Role{RoleSender, RoleRecipientSystem, RoleSystemAdmin, RoleContactAdmin, RoleRightsAdmin, RoleLogMessages, RoleLogSearches, RoleOperator, RoleSupplier}

// Principal is an authenticated caller.
type Principal struct {
	ID    string `json:"id" yaml:"id"`       // system id or admin user name
	Org   string `json:"org" yaml:"org"`     // organisation CVR (8 digits)
	Roles []Role `json:"roles" yaml:"roles"` // what it may do
}

// Has reports whether p holds role r.
func (p *Principal) Has(r Role) bool { return p != nil && slices.Contains(p.Roles, r) }

// Store finds the principal of a token hash.
type Store interface {
	Lookup(tokenHash string) (*Principal, bool)
}

// MemStore is a Store in memory, fed by the registry or a token file.
type MemStore struct {
	mu sync.RWMutex
	m  map[string]*Principal
}

func NewMemStore() *MemStore { return &MemStore{m: map[string]*Principal{}} }

// Put binds a token hash (HashToken) to p, replacing an earlier binding.
func (s *MemStore) Put(tokenHash string, p *Principal) {
	s.mu.Lock()
	s.m[tokenHash] = p
	s.mu.Unlock()
}

// Delete revokes a token hash.
func (s *MemStore) Delete(tokenHash string) {
	s.mu.Lock()
	delete(s.m, tokenHash)
	s.mu.Unlock()
}

func (s *MemStore) Lookup(h string) (*Principal, bool) {
	s.mu.RLock()
	p, ok := s.m[h]
	s.mu.RUnlock()
	return p, ok
}

// HashToken is how tokens are stored: hex SHA-256. Tokens are 256-bit
// random, so a plain hash is enough (no password stretching needed).
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// NewToken returns a fresh random API token.
func NewToken() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("crypto/rand failed: " + err.Error())
	}
	return "mf_" + base64.RawURLEncoding.EncodeToString(b[:])
}

// Error codes of authentication and authorisation failures.
const (
	CodeMissing   = "AUTH_MISSING"
	CodeMalformed = "AUTH_MALFORMED"
	CodeInvalid   = "AUTH_INVALID_TOKEN"
	CodeForbidden = "AUTH_FORBIDDEN"
	// CodeCertMismatch: the client certificate (mutual TLS) names another
	// organisation than the token.
	CodeCertMismatch = "AUTH_CERT_MISMATCH"
)

// Error is an authentication or authorisation failure.
type Error struct {
	Status  int
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

var errMissing = &Error{http.StatusUnauthorized, CodeMissing, "no Authorization header; send `Authorization: Bearer <token>`"}

// Authenticate returns the request's principal.
func Authenticate(s Store, r *http.Request) (*Principal, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return nil, errMissing
	}
	scheme, cred, ok := strings.Cut(h, " ")
	if !ok || cred == "" {
		return nil, &Error{http.StatusUnauthorized, CodeMalformed, "Authorization header is not `<scheme> <credentials>`"}
	}
	var id, token string
	switch strings.ToLower(scheme) {
	case "bearer":
		token = strings.TrimSpace(cred)
	case "basic":
		raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(cred))
		if err != nil {
			return nil, &Error{http.StatusUnauthorized, CodeMalformed, "Basic credentials are not base64"}
		}
		id, token, ok = strings.Cut(string(raw), ":")
		if !ok || id == "" {
			return nil, &Error{http.StatusUnauthorized, CodeMalformed, "Basic credentials are not <systemId>:<token>"}
		}
	default:
		return nil, &Error{http.StatusUnauthorized, CodeMalformed, "unsupported Authorization scheme " + scheme + "; use Bearer or Basic"}
	}
	p, ok := s.Lookup(HashToken(token))
	if !ok {
		return nil, &Error{http.StatusUnauthorized, CodeInvalid, "unknown or revoked token"}
	}
	if id != "" && subtle.ConstantTimeCompare([]byte(id), []byte(p.ID)) != 1 {
		return nil, &Error{http.StatusUnauthorized, CodeInvalid, "the token does not belong to system " + id}
	}
	// With mutual TLS the organisation certificate must be the token's
	// organisation: NgDP's OCES certificates carry "CVR:<cvr>" in the
	// subject's serialNumber.
	if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 {
		if cvr, ok := CertCVR(r.TLS.VerifiedChains[0][0].Subject.SerialNumber); ok && cvr != p.Org {
			return nil, &Error{http.StatusUnauthorized, CodeCertMismatch, "the client certificate is organisation " + cvr + ", the token " + p.Org}
		}
	}
	return p, nil
}

// CertCVR finds the CVR number in an OCES subject serialNumber such as
// "CVR:12345678-UID:1234" (or a plain "12345678").
func CertCVR(serial string) (string, bool) {
	if i := strings.Index(serial, "CVR:"); i >= 0 {
		serial = serial[i+4:]
	}
	if len(serial) >= 8 {
		cvr := serial[:8]
		for _, c := range cvr {
			if c < '0' || c > '9' {
				return "", false
			}
		}
		if len(serial) == 8 || serial[8] == '-' {
			return cvr, true
		}
	}
	return "", false
}

type ctxKey struct{}

// WithPrincipal stores p in ctx.
func WithPrincipal(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, ctxKey{}, p)
}

// FromContext returns the principal Require stored, or nil.
func FromContext(ctx context.Context) *Principal {
	p, _ := ctx.Value(ctxKey{}).(*Principal)
	return p
}

// Require wraps h: the caller must authenticate and hold at least one of
// roles (any role when none are given).
func Require(s Store, h http.Handler, roles ...Role) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := Authenticate(s, r)
		if err != nil {
			WriteError(w, err)
			return
		}
		if len(roles) > 0 && !slices.ContainsFunc(roles, p.Has) {
			WriteError(w, &Error{http.StatusForbidden, CodeForbidden, "this needs one of the roles " + joinRoles(roles)})
			return
		}
		h.ServeHTTP(w, r.WithContext(WithPrincipal(r.Context(), p)))
	})
}

func joinRoles(rs []Role) string {
	s := make([]string, len(rs))
	for i, r := range rs {
		s[i] = string(r)
	}
	return strings.Join(s, ", ")
}

// WriteError answers with the NgDP error shape {errorCode, errorMessage}.
func WriteError(w http.ResponseWriter, err error) {
	var ae *Error
	if !errors.As(err, &ae) {
		ae = &Error{http.StatusInternalServerError, "INTERNAL", err.Error()}
	}
	if ae.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="memoflow"`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(ae.Status)
	b, _ := json.Marshal(struct {
		ErrorCode    string `json:"errorCode"`
		ErrorMessage string `json:"errorMessage"`
	}{ae.Code, ae.Message})
	_, _ = w.Write(b)
}
