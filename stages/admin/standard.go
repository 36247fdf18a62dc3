package admin

import (
	"cmp"
	"net/http"
	"slices"
	"strings"

	"github.com/memoflow/memoflow/internal/auth"
	"github.com/memoflow/memoflow/schemas/registry"
)

// Standard systems (seed 001, 6.2): a supplier sets its system up once as
// a standard system (kind standard, the supplier's CVR as organisation,
// with protocol, endpoint, certificates and MeMo version); an authority
// picks it from a drop-down (GET /standard-systems) and selects it: the
// API creates the authority's recipient system with Template = the
// standard system and an API key whose SHA-256 is the selection's
// Credentials. The key is shown once; the authority hands it back to its
// supplier, whose system then authenticates as the selection (pull, and
// business receipts) with role recipient-system (RegistryTokens).
//
// A selection always gets an id that has never carried traffic of another
// system: the supplier sees the event log of recipient_system = the
// selection's id (stages/eventquery), so turning an authority's own system
// into a selection, or moving a selection to another supplier's template,
// would show the new supplier the old traffic. Both are refused (409);
// the authority creates a new selection and moves its contact points.

// StandardSystemJSON is one entry of the drop-down: what an authority
// needs to choose, not the supplier's endpoint or credentials.
type StandardSystemJSON struct {
	ID           string `json:"id"`
	Organisation string `json:"organisation"` // the supplier's CVR
	SupplierName string `json:"supplierName,omitempty"`
	Name         string `json:"name"`
	Protocol     string `json:"protocol"`
	MemoVersion  string `json:"memoVersion"`
	Active       bool   `json:"active"`
}

// SelectionJSON is the body of a selection: the authority's system id and
// its own identity (name, role, contact); the rest comes from the
// standard system.
type SelectionJSON struct {
	ID             string       `json:"id"`
	StandardSystem string       `json:"standardSystem"`
	Name           string       `json:"name"`
	Role           string       `json:"role"`
	Active         *bool        `json:"active,omitempty"` // default true
	Contact        *ContactJSON `json:"contact,omitempty"`
}

// APIKeyJSON is an issued API key of a recipient system: shown once; the
// registry keeps "sha256:" + its SHA-256 as the system's Credentials.
type APIKeyJSON struct {
	System       SystemJSON `json:"system"`
	APIKey       string     `json:"apiKey"`
	APIKeySHA256 string     `json:"apiKeySha256"`
}

// keyCredentials is how an API key is kept in the registry.
func keyCredentials(key string) string { return "sha256:" + auth.HashToken(key) }

// standardOf returns the standard system id if it is one, else nil.
func (a *API) standardOf(id string) *registry.System {
	s, _ := a.get("sys/" + id).(*registry.System)
	if s == nil || s.SysKind != registry.SystemStandard {
		return nil
	}
	return s
}

// selectedBy lists the systems that selected standard system id.
func (a *API) selectedBy(id string) []SelectionRefJSON {
	var out []SelectionRefJSON
	a.reader.Each(registry.KindSystem, "", func(e registry.Entity) bool {
		if s := e.(*registry.System); s.Template == id {
			out = append(out, SelectionRefJSON{Organisation: s.Org, System: s.ID})
		}
		return true
	})
	slices.SortFunc(out, func(x, y SelectionRefJSON) int {
		return cmp.Or(cmp.Compare(x.Organisation, y.Organisation), cmp.Compare(x.System, y.System))
	})
	return out
}

func (a *API) standardJSON(s *registry.System) SystemJSON {
	j := systemJSON(s)
	j.SelectedBy = a.selectedBy(s.ID)
	return j
}

// listStandardCatalogue is the drop-down: every standard system, active
// ones first, by supplier and name.
func (a *API) listStandardCatalogue(w http.ResponseWriter, r *http.Request, p *auth.Principal) error {
	if _, err := query(r); err != nil {
		return err
	}
	var out []StandardSystemJSON
	a.reader.Each(registry.KindSystem, "", func(e registry.Entity) bool {
		s := e.(*registry.System)
		if s.SysKind != registry.SystemStandard {
			return true
		}
		j := StandardSystemJSON{ID: s.ID, Organisation: s.Org, Name: s.Name, Protocol: s.Protocol.String(),
			MemoVersion: memoVersionString(s.MemoVersion), Active: !s.Deactivated}
		if o, _ := a.get("org/" + s.Org).(*registry.Org); o != nil {
			j.SupplierName = o.Name
		}
		out = append(out, j)
		return true
	})
	slices.SortFunc(out, func(x, y StandardSystemJSON) int {
		if x.Active != y.Active {
			if x.Active {
				return -1
			}
			return 1
		}
		return cmp.Or(strings.Compare(x.SupplierName, y.SupplierName), strings.Compare(x.Name, y.Name), strings.Compare(x.ID, y.ID))
	})
	writeJSON(w, http.StatusOK, pageOf(out, 0, max(len(out), 1), len(out)))
	return nil
}

func (a *API) listOwnStandard(w http.ResponseWriter, r *http.Request, p *auth.Principal) error {
	if _, err := query(r); err != nil {
		return err
	}
	var out []SystemJSON
	a.reader.Each(registry.KindSystem, orgOf(r), func(e registry.Entity) bool {
		if s := e.(*registry.System); s.SysKind == registry.SystemStandard {
			out = append(out, a.standardJSON(s))
		}
		return true
	})
	slices.SortFunc(out, func(x, y SystemJSON) int { return strings.Compare(x.ID, y.ID) })
	writeJSON(w, http.StatusOK, pageOf(out, 0, max(len(out), 1), len(out)))
	return nil
}

func (a *API) ownStandard(r *http.Request) (*registry.System, error) {
	s := a.standardOf(idOf(r))
	if s == nil || s.Org != orgOf(r) {
		return nil, notFound("standard system", idOf(r))
	}
	return s, nil
}

func (a *API) getOwnStandard(w http.ResponseWriter, r *http.Request, p *auth.Principal) error {
	s, err := a.ownStandard(r)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, a.standardJSON(s))
	return nil
}

func (a *API) putStandard(w http.ResponseWriter, r *http.Request, p *auth.Principal) error {
	var j SystemJSON
	if err := decodeJSON(w, r, &j); err != nil {
		return err
	}
	if err := cmpErr(checkPathID(j.ID, idOf(r), "id"), checkPathID(j.Organisation, orgOf(r), "organisation")); err != nil {
		return err
	}
	if j.Kind == "" {
		j.Kind = "standard"
	}
	if j.Kind != "standard" {
		return fieldErr(CodeInvalid, "kind", "a supplier's systems here are standard systems (kind standard); recipient systems are under %s/organisations/{org}/recipient-systems", Prefix)
	}
	if j.StandardSystem != "" {
		return fieldErr(CodeInvalid, "standardSystem", "a standard system does not select another one")
	}
	j.ID, j.Organisation, j.SelectedBy = idOf(r), orgOf(r), nil
	s, aerr := j.entity()
	if aerr != nil {
		return aerr
	}
	old, _ := a.get(s.Key()).(*registry.System)
	if old != nil && (old.Org != s.Org || old.SysKind != registry.SystemStandard) {
		return fieldErr(CodeConflict, "id", "system id %s is taken", s.ID)
	}
	if err := a.write(r.Context(), p, put(s)); err != nil {
		return err
	}
	writeJSON(w, created(old != nil), a.standardJSON(s))
	return nil
}

func (a *API) deleteStandard(w http.ResponseWriter, r *http.Request, p *auth.Principal) error {
	s, err := a.ownStandard(r)
	if err != nil {
		return err
	}
	// The Writer refuses while an authority selects it (409 with
	// registryCode REGISTRY_BAD_TEMPLATE).
	if err := a.write(r.Context(), p, del(s.Key())); err != nil {
		return err
	}
	noContent(w)
	return nil
}

// checkSelectionID enforces the fresh-id rule for a system that will
// select template t: a new id, or an existing selection of t.
func checkSelectionID(old *registry.System, t string) *Error {
	if old == nil || t == "" || old.Template == t {
		return nil
	}
	if old.Template == "" {
		return fieldErr(CodeConflict, "standardSystem", "system %s is the organisation's own system; a standard system is selected under a new id (its supplier sees that id's traffic), then contact points move to it", old.ID)
	}
	return fieldErr(CodeConflict, "standardSystem", "system %s selects standard system %s; to change supplier select the new one under a new id (its supplier sees that id's traffic), move the contact points, then delete this one", old.ID, old.Template)
}

func (a *API) selectStandard(w http.ResponseWriter, r *http.Request, p *auth.Principal) error {
	var j SelectionJSON
	if err := decodeJSON(w, r, &j); err != nil {
		return err
	}
	if j.StandardSystem == "" {
		return fieldErr(CodeInvalid, "standardSystem", "name the standard system to select (GET %s/standard-systems lists them)", Prefix)
	}
	if j.ID == "" {
		return fieldErr(CodeInvalid, "id", "the id of the organisation's new recipient system is required")
	}
	if a.standardOf(j.StandardSystem) == nil {
		return fieldErr(CodeInvalid, "standardSystem", "%s is not a standard system; GET %s/standard-systems lists them", j.StandardSystem, Prefix)
	}
	active := j.Active == nil || *j.Active
	sj := SystemJSON{ID: j.ID, Organisation: orgOf(r), Name: j.Name, Kind: "recipient", Role: j.Role, Active: active,
		Contact: j.Contact, StandardSystem: j.StandardSystem}
	s, aerr := sj.entity()
	if aerr != nil {
		return aerr
	}
	if old := a.get(s.Key()); old != nil {
		return fieldErr(CodeConflict, "id", "system id %s exists; a selection gets a new id (change an existing selection with PUT .../recipient-systems/%s, a new key with POST .../recipient-systems/%s/api-key)", s.ID, s.ID, s.ID)
	}
	key := auth.NewToken()
	s.Credentials = keyCredentials(key)
	if err := a.write(r.Context(), p, put(s)); err != nil {
		return err
	}
	a.log.Info("standard system selected", "org", s.Org, "system", s.ID, "standard_system", s.Template, "actor", actor(p))
	writeJSON(w, http.StatusCreated, APIKeyJSON{System: systemJSON(s), APIKey: key, APIKeySHA256: auth.HashToken(key)})
	return nil
}

// issueSystemKey gives a recipient system that authenticates to memoflow
// (a selection of a standard system, or an own REST_PULL system) a new API
// key; the previous one stops working at once.
func (a *API) issueSystemKey(w http.ResponseWriter, r *http.Request, p *auth.Principal) error {
	s, err := a.recipient(r)
	if err != nil {
		return err
	}
	if s.Template == "" && s.Protocol != registry.RestPull {
		return fieldErr(CodeConflict, "credentials", "system %s is %s: memoflow calls it with its credentials reference; API keys are for REST_PULL systems and selections of standard systems", s.ID, s.Protocol)
	}
	if s.Credentials != "" && !strings.HasPrefix(s.Credentials, "sha256:") {
		return fieldErr(CodeConflict, "credentials", "system %s has credentials %s, not an API key hash; clear them with PUT first", s.ID, s.Credentials)
	}
	key := auth.NewToken()
	ns := *s
	ns.Credentials = keyCredentials(key)
	if err := a.write(r.Context(), p, put(&ns)); err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, APIKeyJSON{System: systemJSON(&ns), APIKey: key, APIKeySHA256: auth.HashToken(key)})
	return nil
}
