package admin

import (
	"net/http"

	"github.com/memoflow/memoflow/internal/auth"
	"github.com/memoflow/memoflow/schemas/registry"
)

// Forwarding of a company's mailbox post (seed 001, "Videresendelse fra
// Virk.dk"): the company's Digital Post registration (com/<cvr>) holds
// it. Only a company without its own recipient system forwards; the model
// says so (REGISTRY_BAD_FORWARD).

func (a *API) company(r *http.Request) (*registry.Company, error) {
	c, _ := a.get("com/" + orgOf(r)).(*registry.Company)
	if c == nil {
		return nil, errorf(CodeNotFound, "organisation %s has no Digital Post registration as a company", orgOf(r))
	}
	return c, nil
}

func (a *API) getForwarding(w http.ResponseWriter, r *http.Request, p *auth.Principal) error {
	if _, err := query(r); err != nil {
		return err
	}
	c, err := a.company(r)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, forwardingJSON(c.CVR, c.Forward))
	return nil
}

func (a *API) putForwarding(w http.ResponseWriter, r *http.Request, p *auth.Principal) error {
	var j ForwardingJSON
	if err := decodeJSON(w, r, &j); err != nil {
		return err
	}
	if err := checkPathID(j.Organisation, orgOf(r), "organisation"); err != nil {
		return err
	}
	c, err := a.company(r)
	if err != nil {
		return err
	}
	f, aerr := j.forwarding()
	if aerr != nil {
		return aerr
	}
	nc := *c
	nc.Forward = f
	if err := a.write(r.Context(), p, put(&nc)); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, forwardingJSON(nc.CVR, nc.Forward))
	return nil
}

func (a *API) deleteForwarding(w http.ResponseWriter, r *http.Request, p *auth.Principal) error {
	c, err := a.company(r)
	if err != nil {
		return err
	}
	if c.Forward.Set() {
		nc := *c
		nc.Forward = registry.Forwarding{}
		if err := a.write(r.Context(), p, put(&nc)); err != nil {
			return err
		}
	}
	noContent(w)
	return nil
}
