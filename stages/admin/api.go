package admin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/encoding/json"

	"github.com/memoflow/memoflow/internal/auth"
	"github.com/memoflow/memoflow/schemas/registry"
)

// Prefix is the admin API's path prefix.
const Prefix = "/apis/v1/admin"

// Body limits.
const (
	maxJSONBody     = 1 << 20
	DefaultPageSize = 20
	MaxPageSize     = 1000
)

// API is the registry's admin API: CRUD and search of organisations,
// sender systems, recipient systems (and, for operators, provider
// systems), contact groups and points, legacy mailbox mappings; sheet
// import and export; sender-system tokens. Every change goes through the
// registry Writer, so it is on memo.registry and its event (with the
// actor) on memo.events before the answer.
type API struct {
	reader   Reader
	writer   Writer
	tokens   auth.Store
	importer *Importer
	search   *searcher
	log      *slog.Logger
	now      func() time.Time
	requests *prometheus.CounterVec
	seconds  *prometheus.HistogramVec
}

// Deps are what the API needs.
type Deps struct {
	Reader Reader     // the registry view (*registry.View)
	Writer Writer     // the registry writer (*registry.Writer)
	Tokens auth.Store // who the callers are
	Log    *slog.Logger
	// Registerer takes the API's metrics (nil: prometheus.DefaultRegisterer).
	Registerer prometheus.Registerer
	// Limits bound sheet imports (zero: DefaultLimits).
	Limits Limits
}

// Validate names the missing dependency.
func (d Deps) Validate() error {
	switch {
	case d.Reader == nil:
		return errors.New("admin API: Deps.Reader (the registry view) is required")
	case d.Writer == nil:
		return errors.New("admin API: Deps.Writer (the registry writer) is required")
	case d.Tokens == nil:
		return errors.New("admin API: Deps.Tokens (the token store) is required")
	}
	return nil
}

// NewAPI returns the API.
func NewAPI(d Deps) (*API, error) {
	if err := d.Validate(); err != nil {
		return nil, err
	}
	if d.Limits == (Limits{}) {
		d.Limits = DefaultLimits()
	}
	im, err := NewImporter(d.Reader, d.Writer, d.Limits)
	if err != nil {
		return nil, err
	}
	if d.Log == nil {
		d.Log = slog.Default()
	}
	if d.Registerer == nil {
		d.Registerer = prometheus.DefaultRegisterer
	}
	a := &API{reader: d.Reader, writer: d.Writer, tokens: d.Tokens, importer: im, search: newSearcher(d.Reader), log: d.Log, now: time.Now,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "memoflow_admin_requests_total",
			Help: "Admin API answers by endpoint and code (OK or the error code).",
		}, []string{"endpoint", "code"}),
		seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "memoflow_admin_request_seconds",
			Help:    "Admin API request time by endpoint (imports include the registry write).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16), // 0.5 ms .. 16 s
		}, []string{"endpoint"}),
	}
	for _, c := range []prometheus.Collector{a.requests, a.seconds} {
		if err := d.Registerer.Register(c); err != nil {
			return nil, fmt.Errorf("admin API metrics: %w", err)
		}
	}
	return a, nil
}

// Role sets of the endpoints. Operators may do everything, in every
// organisation; the others act in their own organisation only.
var (
	rolesAny     = []auth.Role{auth.RoleSystemAdmin, auth.RoleContactAdmin, auth.RoleRightsAdmin}
	rolesSystems = []auth.Role{auth.RoleSystemAdmin}
	rolesContact = []auth.Role{auth.RoleContactAdmin}
	rolesRights  = []auth.Role{auth.RoleRightsAdmin}
	rolesOp      = []auth.Role{}
	// Suppliers manage their standard systems; system administrators pick
	// from them.
	rolesSupplier     = []auth.Role{auth.RoleSupplier}
	rolesSelect       = []auth.Role{auth.RoleSystemAdmin, auth.RoleSupplier}
	rolesSheetSystems = []auth.Role{auth.RoleSystemAdmin, auth.RoleSupplier}
)

// Endpoint is one route of the API. docs/admin-api.md's endpoint table is
// generated from Endpoints, and the role tests run over it.
type Endpoint struct {
	Method, Path string
	// Roles that may call it besides operator (empty: operators only).
	Roles []auth.Role
	// Org: the path has {org}, and non-operators must be of it.
	Org bool
	Doc string
	h   func(a *API, w http.ResponseWriter, r *http.Request, p *auth.Principal) error
}

// Endpoints is the route table.
var Endpoints = []Endpoint{
	{"GET", "/organisations", rolesAny, false, "Organisations: an administrator's own, every one for operators.", (*API).listOrgs},
	{"GET", "/organisations/{org}", rolesAny, true, "One organisation.", (*API).getOrg},
	{"PUT", "/organisations/{org}", rolesOp, true, "Create or replace an organisation (OrgJSON).", (*API).putOrg},
	{"DELETE", "/organisations/{org}", rolesOp, true, "Delete an organisation that has no systems, contact structure or mappings left.", (*API).deleteOrg},
	{"GET", "/organisations/{org}/sender-systems", append(slices.Clone(rolesSystems), rolesRights...), true, "The organisation's sender systems.", (*API).listSenders},
	{"GET", "/organisations/{org}/sender-systems/{id}", append(slices.Clone(rolesSystems), rolesRights...), true, "One sender system.", (*API).getSender},
	{"PUT", "/organisations/{org}/sender-systems/{id}", rolesSystems, true, "Create or replace a sender system (SenderSystemJSON; its tokens are kept).", (*API).putSender},
	{"DELETE", "/organisations/{org}/sender-systems/{id}", rolesSystems, true, "Delete a sender system (with its token hashes).", (*API).deleteSender},
	{"POST", "/organisations/{org}/sender-systems/{id}/tokens", rolesRights, true, "Issue an API token for the sender system: the answer shows it once; only its SHA-256 is stored (at most 4 per system).", (*API).issueToken},
	{"DELETE", "/organisations/{org}/sender-systems/{id}/tokens/{sha256}", rolesRights, true, "Revoke a token by its SHA-256.", (*API).revokeToken},
	{"GET", "/organisations/{org}/recipient-systems", append(slices.Clone(rolesSystems), rolesContact...), true, "The organisation's recipient systems (contact administrators read them to link contact points).", (*API).listRecipients},
	{"GET", "/organisations/{org}/recipient-systems/{id}", append(slices.Clone(rolesSystems), rolesContact...), true, "One recipient system.", (*API).getRecipient},
	{"PUT", "/organisations/{org}/recipient-systems/{id}", rolesSystems, true, "Create or replace a recipient system (SystemJSON, kind recipient; at most 4 + 1 CVR-post per authority, 1 per company).", (*API).putRecipient},
	{"DELETE", "/organisations/{org}/recipient-systems/{id}", rolesSystems, true, "Delete a recipient system no contact point uses.", (*API).deleteRecipient},
	{"POST", "/organisations/{org}/recipient-systems/{id}/api-key", rolesSystems, true, "Issue a new API key for a selection of a standard system or a REST_PULL system: shown once, its SHA-256 kept as the system's credentials; the previous key stops working.", (*API).issueSystemKey},
	{"POST", "/organisations/{org}/standard-system-selections", rolesSystems, true, "Select a supplier's standard system (SelectionJSON): creates the organisation's recipient system under a new id with the standard system as template (limits 4 + 1 apply) and issues its API key, shown once, for the supplier.", (*API).selectStandard},
	{"GET", "/standard-systems", rolesSelect, false, "The standard systems an authority can select (the drop-down): id, supplier, name, protocol, MeMo version.", (*API).listStandardCatalogue},
	{"GET", "/organisations/{org}/standard-systems", rolesSupplier, true, "The supplier's standard systems, with the authorities' systems that selected them.", (*API).listOwnStandard},
	{"GET", "/organisations/{org}/standard-systems/{id}", rolesSupplier, true, "One standard system of the supplier.", (*API).getOwnStandard},
	{"PUT", "/organisations/{org}/standard-systems/{id}", rolesSupplier, true, "Create or replace a standard system (SystemJSON, kind standard, no role); a change applies to every selection at once.", (*API).putStandard},
	{"DELETE", "/organisations/{org}/standard-systems/{id}", rolesSupplier, true, "Delete a standard system no authority selects (else 409, registryCode REGISTRY_BAD_TEMPLATE).", (*API).deleteStandard},
	{"GET", "/organisations/{org}/forwarding", rolesSystems, true, "The company's forwarding of its mailbox post (ForwardingJSON; kind none when off).", (*API).getForwarding},
	{"PUT", "/organisations/{org}/forwarding", rolesSystems, true, "Set the company's forwarding: secure-mailbox (to: the trusted third party's CVR, at most 10 MB per message) or pickup (to: https URL, credentials: secret:/file: reference; at most 99.5 MB).", (*API).putForwarding},
	{"DELETE", "/organisations/{org}/forwarding", rolesSystems, true, "Turn the company's forwarding off.", (*API).deleteForwarding},
	{"POST", "/organisations/{org}/systems/import", rolesSheetSystems, true, "Import a systems workbook (XLSX sheets Modtagersystemer, Standardsystemer, Videresendelse, or CSV with a Type column); ?dryRun=true only validates. New selections without credentials get an API key, listed once in the answer.", (*API).importSystems},
	{"GET", "/organisations/{org}/systems/export", rolesSheetSystems, true, "Export the organisation's recipient systems, standard systems and forwarding (?format=xlsx|csv) in the import layout.", (*API).exportSystems},
	{"GET", "/organisations/{org}/contact-groups", rolesContact, true, "The organisation's contact groups (parents first).", (*API).listGroups},
	{"GET", "/organisations/{org}/contact-groups/{id}", rolesContact, true, "One contact group.", (*API).getGroup},
	{"PUT", "/organisations/{org}/contact-groups/{id}", rolesContact, true, "Create or replace a contact group (ContactGroupJSON; the parent must be a group of the organisation, no cycles).", (*API).putGroup},
	{"DELETE", "/organisations/{org}/contact-groups/{id}", rolesContact, true, "Delete a contact group with no groups or points in it.", (*API).deleteGroup},
	{"GET", "/organisations/{org}/contact-points", rolesContact, true, "Search the organisation's contact points (q, kle, form, ean, sor, visibleTo, page, size).", (*API).searchOrgPoints},
	{"GET", "/organisations/{org}/contact-points/{id}", rolesContact, true, "One contact point.", (*API).getPoint},
	{"PUT", "/organisations/{org}/contact-points/{id}", rolesContact, true, "Create or replace a contact point (ContactPointJSON; parent a group and recipient system a recipient system of the organisation).", (*API).putPoint},
	{"DELETE", "/organisations/{org}/contact-points/{id}", rolesContact, true, "Delete a contact point no legacy mailbox maps to.", (*API).deletePoint},
	{"GET", "/organisations/{org}/legacy-mailboxes", rolesContact, true, "The organisation's DP/DP2 mailbox mappings.", (*API).listLegacy},
	{"PUT", "/organisations/{org}/legacy-mailboxes", rolesContact, true, "Create or replace a mapping (LegacyMailboxJSON: mailbox, subject, contactPoint).", (*API).putLegacy},
	{"DELETE", "/organisations/{org}/legacy-mailboxes", rolesContact, true, "Delete the mapping ?mailbox=&subject=.", (*API).deleteLegacy},
	{"POST", "/organisations/{org}/contact-structure/import", rolesContact, true, "Import a contact-structure sheet (XLSX or CSV, raw body or multipart part `file`); ?dryRun=true only validates; ?format=xlsx|csv overrides detection.", (*API).importSheet},
	{"GET", "/organisations/{org}/contact-structure/export", rolesContact, true, "Export the contact structure (?format=xlsx|csv) in the import layout.", (*API).exportSheet},
	{"GET", "/contact-points", append(slices.Clone(rolesContact), rolesSystems...), false, "Search contact points (as above, plus ?organisation=; non-operators search their own organisation).", (*API).searchPoints},
	{"GET", "/systems", rolesOp, false, "Every system, providers and standard systems included (?kind=recipient|standard|mailbox|sms|print).", (*API).listSystems},
	{"GET", "/systems/{id}", rolesOp, false, "One system.", (*API).getSystem},
	{"PUT", "/systems/{id}", rolesOp, false, "Create or replace a provider system (mailbox, sms, print) or a standard system.", (*API).putSystem},
	{"DELETE", "/systems/{id}", rolesOp, false, "Delete a provider system.", (*API).deleteSystem},
}

// Register mounts the endpoints on mux.
func (a *API) Register(mux *http.ServeMux) {
	for _, e := range Endpoints {
		mux.Handle(e.Method+" "+Prefix+e.Path, a.handle(e))
	}
	// Anything else under the prefix answers in the API's error shape.
	mux.Handle(Prefix+"/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, errorf(CodeNotFound, "no endpoint %s %s; see docs/admin-api.md", r.Method, r.URL.Path))
	}))
}

// endpointName is the metrics label: method and path pattern.
func endpointName(e Endpoint) string { return e.Method + " " + e.Path }

// handle authenticates, checks the endpoint's roles and organisation, runs
// the handler and writes its error.
func (a *API) handle(e Endpoint) http.Handler {
	name := endpointName(e)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		code := "OK"
		p, err := auth.Authenticate(a.tokens, r)
		if err == nil {
			err = allowed(e, p, r)
		}
		if err == nil {
			err = e.h(a, w, r, p)
		}
		if err != nil {
			ae := toAPIError(err)
			if ae.Status() >= 500 {
				a.log.Warn("admin API failed", "endpoint", name, "code", ae.Code, "err", err)
			}
			writeError(w, ae)
			code = ae.Code
		}
		a.requests.WithLabelValues(name, code).Inc()
		a.seconds.WithLabelValues(name).Observe(time.Since(start).Seconds())
	})
}

// allowed is the role and organisation check of one endpoint.
func allowed(e Endpoint, p *auth.Principal, r *http.Request) error {
	if p.Has(auth.RoleOperator) {
		return nil
	}
	if !slices.ContainsFunc(e.Roles, p.Has) {
		need := []string{string(auth.RoleOperator)}
		for _, r := range e.Roles {
			need = append(need, string(r))
		}
		return &auth.Error{Status: http.StatusForbidden, Code: auth.CodeForbidden, Message: "this needs one of the roles " + strings.Join(need, ", ")}
	}
	if e.Org && r.PathValue("org") != p.Org {
		return errorf(CodeOrgForbidden, "you administer organisation %s, not %s", p.Org, r.PathValue("org"))
	}
	return nil
}

func toAPIError(err error) *Error {
	var ae *auth.Error
	if errors.As(err, &ae) {
		return &Error{Code: ae.Code, Message: ae.Message, status: ae.Status}
	}
	var ie *ImportError
	if errors.As(err, &ie) {
		// A file-level refusal (too large, not a workbook) is the answer's
		// code; row errors are listed under IMPORT_REJECTED.
		if len(ie.Errors) == 1 && ie.Errors[0].Row == 0 {
			e := ie.Errors[0]
			return &Error{Code: e.Code, Message: e.Message, Errors: ie.Errors}
		}
		return &Error{Code: CodeImportRejected, Message: fmt.Sprintf("the file has %d errors; nothing was imported", len(ie.Errors)), Errors: ie.Errors}
	}
	var me *http.MaxBytesError
	if errors.As(err, &me) {
		return errorf(CodeTooLarge, "the body is above %d bytes", me.Limit)
	}
	return asAPIError(err)
}

// writeError answers {code, message, field[, errors]}.
func writeError(w http.ResponseWriter, e *Error) {
	if e.Status() == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="memoflow"`)
	}
	if e.Status() == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "5")
	}
	writeJSON(w, e.Status(), e)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"code":"` + CodeInternal + `","message":"encoding the answer failed"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// decodeJSON reads a JSON object into v: at most 1 MiB, no unknown fields.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxJSONBody))
	if err != nil {
		return err
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return fieldErr(CodeBadRequest, te.Field, "expected %s, got a JSON %s", te.Type, te.Value)
		}
		msg := err.Error()
		if f, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
			return fieldErr(CodeBadRequest, strings.Trim(f, `"`), "unknown field")
		}
		return errorf(CodeBadRequest, "the body is not a JSON object of this endpoint: %v", err)
	}
	return nil
}

// jsonFields maps the model's field names (registry.Error.Field) to the
// API's.
var jsonFields = map[string]string{
	"parent_id": "parentId", "system": "recipientSystem", "receipt_endpoint": "receiptEndpoint", "memo_version": "memoVersion",
	"org": "organisation", "info": "infoFields", "visibility": "visibleTo", "token_sha256": "tokens", "contact_point": "contactPoint",
	"kle": "kle", "form": "form", "ean": "ean", "sor": "sor",
	"sftp_user": "sftpUser", "ssh_host_key": "sshHostKey", "folder": "folder", "receipt_folder": "receiptFolder",
	"smtp_address": "smtpAddress", "certificate": "certificate", "template": "standardSystem",
	"contact.name": "contact.name", "contact.email": "contact.email",
	"forward.kind": "kind", "forward.to": "to", "forward.credentials": "credentials",
}

// write puts changes as the caller, mapping the Writer's refusals: a
// registry rule is 422 ADMIN_INVALID with the registry's code in
// registryCode; the Writer's guard on a standard system that authorities
// still select (deleting it, or turning it into another kind) is 409
// ADMIN_CONFLICT with registryCode REGISTRY_BAD_TEMPLATE.
func (a *API) write(ctx context.Context, p *auth.Principal, cs ...registry.Change) error {
	now := a.now().UTC()
	for i := range cs {
		cs[i].Actor, cs[i].Time = actor(p), now
	}
	if err := a.writer.Write(ctx, cs...); err != nil {
		var re *registry.Error
		if errors.As(err, &re) {
			f := re.Field
			if j, ok := jsonFields[f]; ok {
				f = j
			}
			code := CodeInvalid
			if re.Code == registry.CodeBadTemplate && a.removesStandard(cs) {
				code = CodeConflict
			}
			return &Error{Code: code, Field: f, Message: re.Message + " (" + re.Code + ")", RegistryCode: re.Code}
		}
		if errors.Is(err, context.Canceled) {
			return err
		}
		return errorf(CodeUnavailable, "the registry did not take the change: %v", err)
	}
	return nil
}

// removesStandard reports whether cs delete a standard system or turn one
// into another kind: what the Writer refuses while it is selected.
func (a *API) removesStandard(cs []registry.Change) bool {
	for _, c := range cs {
		old, _ := a.get(c.Key).(*registry.System)
		if old == nil || old.SysKind != registry.SystemStandard {
			continue
		}
		if s, _ := c.Entity.(*registry.System); s == nil || s.SysKind != registry.SystemStandard {
			return true
		}
	}
	return false
}

func put(e registry.Entity) registry.Change { return registry.NewChange(e, "", time.Time{}) }
func del(key string) registry.Change        { return registry.NewDelete(key, "", time.Time{}) }
func actor(p *auth.Principal) string        { return p.ID }
func notFound(what, id string) *Error {
	return errorf(CodeNotFound, "no %s %s in this organisation", what, id)
}
func idOf(r *http.Request) string             { return r.PathValue("id") }
func orgOf(r *http.Request) string            { return r.PathValue("org") }
func noContent(w http.ResponseWriter)         { w.WriteHeader(http.StatusNoContent) }
func isOp(p *auth.Principal) bool             { return p.Has(auth.RoleOperator) }
func (a *API) get(key string) registry.Entity { e, _ := a.reader.Get(key); return e }

// created is a PUT's status: 201 for a new entity, 200 for a replaced one.
func created(existed bool) int {
	if existed {
		return http.StatusOK
	}
	return http.StatusCreated
}

// checkPathID: a body id, when given, must be the path's.
func checkPathID(body, path, field string) error {
	if body != "" && body != path {
		return fieldErr(CodeConflict, field, "the body's %s %q differs from the path's %q", field, body, path)
	}
	return nil
}

// query returns the request's query, refusing unknown parameters.
func query(r *http.Request, known ...string) (url.Values, error) {
	q := r.URL.Query()
	for k := range q {
		if !slices.Contains(known, k) {
			return nil, fieldErr(CodeBadParameter, k, "unknown parameter; this endpoint takes %s", strings.Join(known, ", "))
		}
	}
	return q, nil
}

func paging(q url.Values) (page, size int, err error) {
	page, size = 0, DefaultPageSize
	if v := q.Get("page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 1_000_000 {
			return 0, 0, fieldErr(CodeBadParameter, "page", "page is a number from 0 (the first page)")
		}
		page = n
	}
	if v := q.Get("size"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxPageSize {
			return 0, 0, fieldErr(CodeBadParameter, "size", "size is 1 to %d", MaxPageSize)
		}
		size = n
	}
	return page, size, nil
}

func pageOf[T any](content []T, page, size, total int) Page[T] {
	if content == nil {
		content = []T{}
	}
	return Page[T]{Content: content, Number: page, Size: size, TotalElements: total, TotalPages: (total + size - 1) / size}
}

// --- organisations ---

func (a *API) listOrgs(w http.ResponseWriter, r *http.Request, p *auth.Principal) error {
	if _, err := query(r); err != nil {
		return err
	}
	org := p.Org
	if isOp(p) {
		org = ""
	}
	var out []OrgJSON
	a.reader.Each(registry.KindOrg, org, func(e registry.Entity) bool {
		out = append(out, orgJSON(e.(*registry.Org)))
		return true
	})
	slices.SortFunc(out, func(x, y OrgJSON) int { return strings.Compare(x.CVR, y.CVR) })
	writeJSON(w, http.StatusOK, pageOf(out, 0, max(len(out), 1), len(out)))
	return nil
}

func (a *API) getOrg(w http.ResponseWriter, r *http.Request, p *auth.Principal) error {
	o, _ := a.get("org/" + orgOf(r)).(*registry.Org)
	if o == nil {
		return errorf(CodeNotFound, "no organisation %s", orgOf(r))
	}
	writeJSON(w, http.StatusOK, orgJSON(o))
	return nil
}

func (a *API) putOrg(w http.ResponseWriter, r *http.Request, p *auth.Principal) error {
	var j OrgJSON
	if err := decodeJSON(w, r, &j); err != nil {
		return err
	}
	if err := checkPathID(j.CVR, orgOf(r), "cvr"); err != nil {
		return err
	}
	j.CVR = orgOf(r)
	o, aerr := j.entity()
	if aerr != nil {
		return aerr
	}
	old := a.get(o.Key())
	if err := a.write(r.Context(), p, put(o)); err != nil {
		return err
	}
	writeJSON(w, created(old != nil), orgJSON(o))
	return nil
}

func (a *API) deleteOrg(w http.ResponseWriter, r *http.Request, p *auth.Principal) error {
	org := orgOf(r)
	if a.get("org/"+org) == nil {
		return errorf(CodeNotFound, "no organisation %s", org)
	}
	for _, k := range []registry.Kind{registry.KindSenderSystem, registry.KindSystem, registry.KindContactGroup, registry.KindContactPoint, registry.KindLegacyMailbox} {
		n := 0
		a.reader.Each(k, org, func(registry.Entity) bool { n++; return false })
		if n > 0 {
			return errorf(CodeConflict, "organisation %s still has %ss; delete them first", org, k)
		}
	}
	if err := a.write(r.Context(), p, del("org/"+org)); err != nil {
		return err
	}
	noContent(w)
	return nil
}

// --- sender systems and tokens ---

func (a *API) sender(r *http.Request) (*registry.SenderSystem, error) {
	s, _ := a.get("snd/" + idOf(r)).(*registry.SenderSystem)
	if s == nil || s.Org != orgOf(r) {
		return nil, notFound("sender system", idOf(r))
	}
	return s, nil
}

func (a *API) listSenders(w http.ResponseWriter, r *http.Request, p *auth.Principal) error {
	var out []SenderSystemJSON
	a.reader.Each(registry.KindSenderSystem, orgOf(r), func(e registry.Entity) bool {
		out = append(out, senderJSON(e.(*registry.SenderSystem)))
		return true
	})
	slices.SortFunc(out, func(x, y SenderSystemJSON) int { return strings.Compare(x.ID, y.ID) })
	writeJSON(w, http.StatusOK, pageOf(out, 0, max(len(out), 1), len(out)))
	return nil
}

func (a *API) getSender(w http.ResponseWriter, r *http.Request, p *auth.Principal) error {
	s, err := a.sender(r)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, senderJSON(s))
	return nil
}

func (a *API) putSender(w http.ResponseWriter, r *http.Request, p *auth.Principal) error {
	var j SenderSystemJSON
	if err := decodeJSON(w, r, &j); err != nil {
		return err
	}
	if err := cmpErr(checkPathID(j.ID, idOf(r), "id"), checkPathID(j.Organisation, orgOf(r), "organisation")); err != nil {
		return err
	}
	s := &registry.SenderSystem{ID: idOf(r), Org: orgOf(r), Name: strings.TrimSpace(j.Name), ReceiptEndpoint: j.ReceiptEndpoint, Active: j.Active}
	old, _ := a.get(s.Key()).(*registry.SenderSystem)
	if old != nil {
		if old.Org != s.Org {
			return fieldErr(CodeConflict, "id", "sender system id %s is taken", s.ID)
		}
		s.TokenSHA256 = old.TokenSHA256 // tokens change through .../tokens only
	}
	if err := a.write(r.Context(), p, put(s)); err != nil {
		return err
	}
	writeJSON(w, created(old != nil), senderJSON(s))
	return nil
}

func (a *API) deleteSender(w http.ResponseWriter, r *http.Request, p *auth.Principal) error {
	s, err := a.sender(r)
	if err != nil {
		return err
	}
	if err := a.write(r.Context(), p, del(s.Key())); err != nil {
		return err
	}
	noContent(w)
	return nil
}

// TokenJSON is an issued token: shown once, stored as its hash.
type TokenJSON struct {
	SenderSystem string `json:"senderSystem"`
	Token        string `json:"token"`
	TokenSHA256  string `json:"tokenSha256"`
}

func (a *API) issueToken(w http.ResponseWriter, r *http.Request, p *auth.Principal) error {
	s, err := a.sender(r)
	if err != nil {
		return err
	}
	if len(s.TokenSHA256) >= registry.MaxTokenHashes {
		return fieldErr(CodeConflict, "tokens", "sender system %s has %d tokens, the most it may have; revoke one first", s.ID, len(s.TokenSHA256))
	}
	tok := auth.NewToken()
	h := auth.HashToken(tok)
	ns := *s
	ns.TokenSHA256 = append(slices.Clone(s.TokenSHA256), h)
	if err := a.write(r.Context(), p, put(&ns)); err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, TokenJSON{SenderSystem: s.ID, Token: tok, TokenSHA256: h})
	return nil
}

func (a *API) revokeToken(w http.ResponseWriter, r *http.Request, p *auth.Principal) error {
	s, err := a.sender(r)
	if err != nil {
		return err
	}
	h := r.PathValue("sha256")
	i := slices.Index(s.TokenSHA256, h)
	if i < 0 {
		return errorf(CodeNotFound, "sender system %s has no token with that SHA-256", s.ID)
	}
	ns := *s
	ns.TokenSHA256 = slices.Delete(slices.Clone(s.TokenSHA256), i, i+1)
	if err := a.write(r.Context(), p, put(&ns)); err != nil {
		return err
	}
	noContent(w)
	return nil
}

func cmpErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// --- systems ---

func (a *API) recipient(r *http.Request) (*registry.System, error) {
	s, _ := a.get("sys/" + idOf(r)).(*registry.System)
	if s == nil || s.Org != orgOf(r) || s.SysKind != registry.SystemRecipient {
		return nil, notFound("recipient system", idOf(r))
	}
	return s, nil
}

func (a *API) listRecipients(w http.ResponseWriter, r *http.Request, p *auth.Principal) error {
	var out []SystemJSON
	a.reader.Each(registry.KindSystem, orgOf(r), func(e registry.Entity) bool {
		if s := e.(*registry.System); s.SysKind == registry.SystemRecipient {
			out = append(out, systemJSON(s))
		}
		return true
	})
	slices.SortFunc(out, func(x, y SystemJSON) int { return strings.Compare(x.ID, y.ID) })
	writeJSON(w, http.StatusOK, pageOf(out, 0, max(len(out), 1), len(out)))
	return nil
}

func (a *API) getRecipient(w http.ResponseWriter, r *http.Request, p *auth.Principal) error {
	s, err := a.recipient(r)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, systemJSON(s))
	return nil
}

func (a *API) putRecipient(w http.ResponseWriter, r *http.Request, p *auth.Principal) error {
	var j SystemJSON
	if err := decodeJSON(w, r, &j); err != nil {
		return err
	}
	if err := cmpErr(checkPathID(j.ID, idOf(r), "id"), checkPathID(j.Organisation, orgOf(r), "organisation")); err != nil {
		return err
	}
	if j.Kind == "" {
		j.Kind = "recipient"
	}
	if j.Kind != "recipient" {
		return fieldErr(CodeInvalid, "kind", "an organisation's systems are recipient systems; providers are set up by operators under %s/systems", Prefix)
	}
	j.ID, j.Organisation = idOf(r), orgOf(r)
	s, aerr := j.entity()
	if aerr != nil {
		return aerr
	}
	old, _ := a.get(s.Key()).(*registry.System)
	if old != nil && (old.Org != s.Org || old.SysKind != registry.SystemRecipient) {
		return fieldErr(CodeConflict, "id", "system id %s is taken", s.ID)
	}
	if err := checkSelectionID(old, s.Template); err != nil {
		return err
	}
	if s.Template != "" && s.Credentials == "" && old != nil && old.Template == s.Template {
		s.Credentials = old.Credentials // the API key changes through .../api-key only
	}
	if err := a.write(r.Context(), p, put(s)); err != nil {
		return err
	}
	writeJSON(w, created(old != nil), systemJSON(s))
	return nil
}

func (a *API) deleteRecipient(w http.ResponseWriter, r *http.Request, p *auth.Principal) error {
	s, err := a.recipient(r)
	if err != nil {
		return err
	}
	if err := a.systemUnused(s); err != nil {
		return err
	}
	if err := a.write(r.Context(), p, del(s.Key())); err != nil {
		return err
	}
	noContent(w)
	return nil
}

// systemUnused refuses deleting a system contact points still send to.
func (a *API) systemUnused(s *registry.System) error {
	var user string
	a.reader.Each(registry.KindContactPoint, s.Org, func(e registry.Entity) bool {
		if cp := e.(*registry.ContactPoint); cp.System == s.ID {
			user = cp.ID
			return false
		}
		return true
	})
	if user != "" {
		return errorf(CodeConflict, "contact point %s (and maybe others) uses system %s; link them elsewhere first", user, s.ID)
	}
	return nil
}

func (a *API) listSystems(w http.ResponseWriter, r *http.Request, p *auth.Principal) error {
	q, err := query(r, "kind")
	if err != nil {
		return err
	}
	kind := q.Get("kind")
	if _, ok := systemKinds[kind]; kind != "" && !ok {
		return fieldErr(CodeBadParameter, "kind", "kind is recipient, standard, mailbox, sms or print")
	}
	var out []SystemJSON
	a.reader.Each(registry.KindSystem, "", func(e registry.Entity) bool {
		if s := e.(*registry.System); kind == "" || s.SysKind.String() == kind {
			out = append(out, systemJSON(s))
		}
		return true
	})
	slices.SortFunc(out, func(x, y SystemJSON) int { return strings.Compare(x.ID, y.ID) })
	writeJSON(w, http.StatusOK, pageOf(out, 0, max(len(out), 1), len(out)))
	return nil
}

func (a *API) getSystem(w http.ResponseWriter, r *http.Request, p *auth.Principal) error {
	s, _ := a.get("sys/" + idOf(r)).(*registry.System)
	if s == nil {
		return errorf(CodeNotFound, "no system %s", idOf(r))
	}
	writeJSON(w, http.StatusOK, systemJSON(s))
	return nil
}

func (a *API) putSystem(w http.ResponseWriter, r *http.Request, p *auth.Principal) error {
	var j SystemJSON
	if err := decodeJSON(w, r, &j); err != nil {
		return err
	}
	if err := checkPathID(j.ID, idOf(r), "id"); err != nil {
		return err
	}
	if j.Kind == "recipient" {
		return fieldErr(CodeInvalid, "kind", "recipient systems are set up under %s/organisations/{org}/recipient-systems", Prefix)
	}
	j.ID = idOf(r)
	s, aerr := j.entity()
	if aerr != nil {
		return aerr
	}
	old, _ := a.get(s.Key()).(*registry.System)
	if old != nil && old.SysKind == registry.SystemRecipient {
		return fieldErr(CodeConflict, "id", "system id %s is a recipient system", s.ID)
	}
	if err := a.write(r.Context(), p, put(s)); err != nil {
		return err
	}
	writeJSON(w, created(old != nil), systemJSON(s))
	return nil
}

func (a *API) deleteSystem(w http.ResponseWriter, r *http.Request, p *auth.Principal) error {
	s, _ := a.get("sys/" + idOf(r)).(*registry.System)
	if s == nil {
		return errorf(CodeNotFound, "no system %s", idOf(r))
	}
	if err := a.systemUnused(s); err != nil {
		return err
	}
	if err := a.write(r.Context(), p, del(s.Key())); err != nil {
		return err
	}
	noContent(w)
	return nil
}

// --- contact groups and points ---

// checkParent: a parent is a group of the organisation, and (for a group)
// not the group itself or one below it.
func (a *API) checkParent(org, id, parent string, group bool) error {
	if parent == "" {
		return nil
	}
	g, _ := a.get("cg/" + parent).(*registry.ContactGroup)
	if g == nil || g.Org != org {
		if cp, _ := a.get("cp/" + parent).(*registry.ContactPoint); cp != nil && cp.Org == org {
			return fieldErr(CodeInvalid, "parentId", "%s is a contact point; only groups are parents", parent)
		}
		return fieldErr(CodeInvalid, "parentId", "%s is no contact group of organisation %s", parent, org)
	}
	if !group {
		return nil
	}
	seen := map[string]bool{}
	for cur := parent; cur != ""; {
		if cur == id {
			return fieldErr(CodeInvalid, "parentId", "group %s would be inside itself (a cycle through %s)", id, parent)
		}
		if seen[cur] {
			break
		}
		seen[cur] = true
		next, _ := a.get("cg/" + cur).(*registry.ContactGroup)
		if next == nil {
			break
		}
		cur = next.ParentID
	}
	return nil
}

func (a *API) listGroups(w http.ResponseWriter, r *http.Request, p *auth.Principal) error {
	if _, err := query(r); err != nil {
		return err
	}
	s := LoadStructure(a.reader, orgOf(r))
	out := make([]ContactGroupJSON, len(s.Groups))
	for i, g := range s.Groups {
		out[i] = groupJSON(g)
	}
	writeJSON(w, http.StatusOK, pageOf(out, 0, max(len(out), 1), len(out)))
	return nil
}

func (a *API) group(r *http.Request) (*registry.ContactGroup, error) {
	g, _ := a.get("cg/" + idOf(r)).(*registry.ContactGroup)
	if g == nil || g.Org != orgOf(r) {
		return nil, notFound("contact group", idOf(r))
	}
	return g, nil
}

func (a *API) getGroup(w http.ResponseWriter, r *http.Request, p *auth.Principal) error {
	g, err := a.group(r)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, groupJSON(g))
	return nil
}

func (a *API) putGroup(w http.ResponseWriter, r *http.Request, p *auth.Principal) error {
	var j ContactGroupJSON
	if err := decodeJSON(w, r, &j); err != nil {
		return err
	}
	if err := cmpErr(checkPathID(j.ID, idOf(r), "id"), checkPathID(j.Organisation, orgOf(r), "organisation")); err != nil {
		return err
	}
	j.ID, j.Organisation = idOf(r), orgOf(r)
	g, aerr := j.entity()
	if aerr != nil {
		return aerr
	}
	if err := a.checkNodeID(g.Org, g.ID, true); err != nil {
		return err
	}
	if err := a.checkParent(g.Org, g.ID, g.ParentID, true); err != nil {
		return err
	}
	old := a.get(g.Key())
	if err := a.write(r.Context(), p, put(g)); err != nil {
		return err
	}
	writeJSON(w, created(old != nil), groupJSON(g))
	return nil
}

// checkNodeID: ids are global; a group's id is no point's and no other
// organisation's.
func (a *API) checkNodeID(org, id string, group bool) error {
	own, other := "cg/", "cp/"
	if !group {
		own, other = "cp/", "cg/"
	}
	if e := a.get(other + id); e != nil {
		return fieldErr(CodeConflict, "id", "id %s is a %s; a group is never a contact point", id, e.Kind())
	}
	if e := a.get(own + id); e != nil && entityOrg(e) != org {
		return fieldErr(CodeConflict, "id", "id %s is taken by another organisation", id)
	}
	return nil
}

func (a *API) deleteGroup(w http.ResponseWriter, r *http.Request, p *auth.Principal) error {
	g, err := a.group(r)
	if err != nil {
		return err
	}
	var child string
	for _, k := range []registry.Kind{registry.KindContactGroup, registry.KindContactPoint} {
		a.reader.Each(k, g.Org, func(e registry.Entity) bool {
			var parent string
			switch x := e.(type) {
			case *registry.ContactGroup:
				parent = x.ParentID
			case *registry.ContactPoint:
				parent = x.ParentID
			}
			if parent == g.ID {
				child = e.Key()
				return false
			}
			return true
		})
	}
	if child != "" {
		return errorf(CodeConflict, "group %s is not empty (%s is in it); move or delete what it holds first", g.ID, child)
	}
	if err := a.write(r.Context(), p, del(g.Key())); err != nil {
		return err
	}
	noContent(w)
	return nil
}

func (a *API) point(r *http.Request) (*registry.ContactPoint, error) {
	cp, _ := a.get("cp/" + idOf(r)).(*registry.ContactPoint)
	if cp == nil || cp.Org != orgOf(r) {
		return nil, notFound("contact point", idOf(r))
	}
	return cp, nil
}

func (a *API) getPoint(w http.ResponseWriter, r *http.Request, p *auth.Principal) error {
	cp, err := a.point(r)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, pointJSON(cp))
	return nil
}

func (a *API) putPoint(w http.ResponseWriter, r *http.Request, p *auth.Principal) error {
	var j ContactPointJSON
	if err := decodeJSON(w, r, &j); err != nil {
		return err
	}
	if err := cmpErr(checkPathID(j.ID, idOf(r), "id"), checkPathID(j.Organisation, orgOf(r), "organisation")); err != nil {
		return err
	}
	j.ID, j.Organisation = idOf(r), orgOf(r)
	cp, aerr := j.entity()
	if aerr != nil {
		return aerr
	}
	if err := cmpErr(a.checkNodeID(cp.Org, cp.ID, false), a.checkParent(cp.Org, cp.ID, cp.ParentID, false)); err != nil {
		return err
	}
	if cp.System != "" {
		s, _ := a.get("sys/" + cp.System).(*registry.System)
		if s == nil || s.Org != cp.Org || s.SysKind != registry.SystemRecipient {
			return fieldErr(CodeInvalid, "recipientSystem", "%s is no recipient system of organisation %s", cp.System, cp.Org)
		}
	}
	old := a.get(cp.Key())
	if err := a.write(r.Context(), p, put(cp)); err != nil {
		return err
	}
	writeJSON(w, created(old != nil), pointJSON(cp))
	return nil
}

func (a *API) deletePoint(w http.ResponseWriter, r *http.Request, p *auth.Principal) error {
	cp, err := a.point(r)
	if err != nil {
		return err
	}
	var mapped *registry.LegacyMailbox
	a.reader.Each(registry.KindLegacyMailbox, cp.Org, func(e registry.Entity) bool {
		if l := e.(*registry.LegacyMailbox); l.ContactPoint == cp.ID {
			mapped = l
			return false
		}
		return true
	})
	if mapped != nil {
		return errorf(CodeConflict, "legacy mailbox %s/%s maps to contact point %s; change the mapping first", mapped.Mailbox, mapped.Subject, cp.ID)
	}
	if err := a.write(r.Context(), p, del(cp.Key())); err != nil {
		return err
	}
	noContent(w)
	return nil
}

// --- search ---

func (a *API) parseSearch(r *http.Request, extra ...string) (SearchQuery, error) {
	known := append([]string{"q", "kle", "form", "ean", "sor", "visibleTo", "page", "size"}, extra...)
	q, err := query(r, known...)
	if err != nil {
		return SearchQuery{}, err
	}
	page, size, err := paging(q)
	if err != nil {
		return SearchQuery{}, err
	}
	sq := SearchQuery{Text: q.Get("q"), KLE: q.Get("kle"), FORM: q.Get("form"), EAN: q.Get("ean"), SOR: q.Get("sor"), Page: page, Size: size}
	for _, k := range []string{"q", "kle", "form", "ean", "sor"} {
		if len(q.Get(k)) > 256 {
			return SearchQuery{}, fieldErr(CodeBadParameter, k, "at most 256 bytes")
		}
	}
	if v := q.Get("visibleTo"); v != "" {
		vis, aerr := parseVis("visibleTo", strings.Split(v, ","))
		if aerr != nil {
			aerr.Code = CodeBadParameter
			return SearchQuery{}, aerr
		}
		sq.VisibleTo = vis
	}
	return sq, nil
}

func (a *API) answerSearch(w http.ResponseWriter, sq SearchQuery) {
	pts, total := a.search.Search(sq)
	out := make([]ContactPointJSON, len(pts))
	for i, cp := range pts {
		out[i] = pointJSON(cp)
	}
	writeJSON(w, http.StatusOK, pageOf(out, sq.Page, sq.Size, total))
}

func (a *API) searchOrgPoints(w http.ResponseWriter, r *http.Request, p *auth.Principal) error {
	sq, err := a.parseSearch(r)
	if err != nil {
		return err
	}
	sq.Org = orgOf(r)
	a.answerSearch(w, sq)
	return nil
}

func (a *API) searchPoints(w http.ResponseWriter, r *http.Request, p *auth.Principal) error {
	sq, err := a.parseSearch(r, "organisation")
	if err != nil {
		return err
	}
	sq.Org = r.URL.Query().Get("organisation")
	if !isOp(p) {
		if sq.Org != "" && sq.Org != p.Org {
			return errorf(CodeOrgForbidden, "you administer organisation %s, not %s", p.Org, sq.Org)
		}
		sq.Org = p.Org
	}
	a.answerSearch(w, sq)
	return nil
}

// --- legacy mailboxes ---

func (a *API) listLegacy(w http.ResponseWriter, r *http.Request, p *auth.Principal) error {
	if _, err := query(r); err != nil {
		return err
	}
	var out []LegacyMailboxJSON
	a.reader.Each(registry.KindLegacyMailbox, orgOf(r), func(e registry.Entity) bool {
		out = append(out, legacyJSON(e.(*registry.LegacyMailbox)))
		return true
	})
	slices.SortFunc(out, func(x, y LegacyMailboxJSON) int {
		return strings.Compare(x.Mailbox+"/"+x.Subject, y.Mailbox+"/"+y.Subject)
	})
	writeJSON(w, http.StatusOK, pageOf(out, 0, max(len(out), 1), len(out)))
	return nil
}

func (a *API) putLegacy(w http.ResponseWriter, r *http.Request, p *auth.Principal) error {
	var j LegacyMailboxJSON
	if err := decodeJSON(w, r, &j); err != nil {
		return err
	}
	if err := checkPathID(j.Organisation, orgOf(r), "organisation"); err != nil {
		return err
	}
	l := &registry.LegacyMailbox{Org: orgOf(r), Mailbox: strings.TrimSpace(j.Mailbox), Subject: strings.TrimSpace(j.Subject), ContactPoint: j.ContactPoint}
	if l.ContactPoint != "" {
		cp, _ := a.get("cp/" + l.ContactPoint).(*registry.ContactPoint)
		if cp == nil || cp.Org != l.Org {
			return fieldErr(CodeInvalid, "contactPoint", "%s is no contact point of organisation %s", l.ContactPoint, l.Org)
		}
	}
	old := a.get(l.Key())
	if err := a.write(r.Context(), p, put(l)); err != nil {
		return err
	}
	writeJSON(w, created(old != nil), legacyJSON(l))
	return nil
}

func (a *API) deleteLegacy(w http.ResponseWriter, r *http.Request, p *auth.Principal) error {
	q, err := query(r, "mailbox", "subject")
	if err != nil {
		return err
	}
	key := registry.LegacyKey(orgOf(r), q.Get("mailbox"), q.Get("subject"))
	if a.get(key) == nil {
		return errorf(CodeNotFound, "no mapping of mailbox %q subject %q", q.Get("mailbox"), q.Get("subject"))
	}
	if err := a.write(r.Context(), p, del(key)); err != nil {
		return err
	}
	noContent(w)
	return nil
}

// --- sheets ---

// importSheet takes the file as the raw body or as the multipart part
// "file" (as NgDP's batch upload does).
func (a *API) importSheet(w http.ResponseWriter, r *http.Request, p *auth.Principal) error {
	data, format, dry, err := a.readUpload(w, r)
	if err != nil {
		return err
	}
	res, err := a.importer.Import(r.Context(), orgOf(r), actor(p), data, format, dry)
	if err != nil {
		return err
	}
	a.log.Info("contact structure imported", "org", orgOf(r), "actor", actor(p), "dry_run", dry, "written", res.Written,
		"groups", res.Groups, "points", res.Points)
	writeJSON(w, http.StatusOK, res)
	return nil
}

// readUpload reads an import's file (raw body or multipart part "file")
// and its dryRun and format parameters.
func (a *API) readUpload(w http.ResponseWriter, r *http.Request) (data []byte, format Format, dry bool, err error) {
	q, err := query(r, "dryRun", "format")
	if err != nil {
		return nil, "", false, err
	}
	switch q.Get("dryRun") {
	case "", "false":
	case "true":
		dry = true
	default:
		return nil, "", false, fieldErr(CodeBadParameter, "dryRun", "dryRun is true or false")
	}
	format = Format(q.Get("format"))
	if format != "" && format != FormatXLSX && format != FormatCSV {
		return nil, "", false, fieldErr(CodeBadParameter, "format", "format is xlsx or csv")
	}
	limit := a.importer.limits.MaxFileBytes
	body := http.MaxBytesReader(w, r.Body, limit+64<<10) // room for multipart framing
	mt, params, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt == "multipart/form-data" {
		mr := multipart.NewReader(body, params["boundary"])
		for {
			part, err := mr.NextPart()
			if err == io.EOF {
				return nil, "", false, fieldErr(CodeBadRequest, "file", "the multipart body has no part named file")
			}
			if err != nil {
				return nil, "", false, toAPIErrorOr(err, fieldErr(CodeBadRequest, "file", "the multipart body is malformed: %v", err))
			}
			if part.FormName() == "file" {
				data, err = io.ReadAll(io.LimitReader(part, limit+1))
				if err != nil {
					return nil, "", false, toAPIErrorOr(err, fieldErr(CodeBadRequest, "file", "reading the file: %v", err))
				}
				if format == "" && strings.HasSuffix(strings.ToLower(part.FileName()), ".csv") {
					format = FormatCSV
				}
				break
			}
		}
	} else {
		data, err = io.ReadAll(body)
		if err != nil {
			return nil, "", false, toAPIErrorOr(err, errorf(CodeBadRequest, "reading the body: %v", err))
		}
		if format == "" && strings.HasPrefix(mt, "text/csv") {
			format = FormatCSV
		}
	}
	if int64(len(data)) > limit {
		return nil, "", false, errorf(CodeFileTooLarge, "the file is above %d bytes", limit)
	}
	return data, format, dry, nil
}

func toAPIErrorOr(err error, fallback *Error) error {
	var me *http.MaxBytesError
	if errors.As(err, &me) {
		return errorf(CodeFileTooLarge, "the upload is above %d bytes", me.Limit)
	}
	return fallback
}

func (a *API) exportSheet(w http.ResponseWriter, r *http.Request, p *auth.Principal) error {
	q, err := query(r, "format")
	if err != nil {
		return err
	}
	format := Format(q.Get("format"))
	if format == "" {
		format = FormatXLSX
	}
	var buf bytes.Buffer
	if err := Export(&buf, a.reader, orgOf(r), format); err != nil {
		return err
	}
	writeFile(w, "kontaktstruktur-"+orgOf(r), format, buf.Bytes())
	return nil
}

// writeFile answers an exported workbook or CSV file as an attachment.
func writeFile(w http.ResponseWriter, base string, format Format, b []byte) {
	ct := "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
	if format == FormatCSV {
		ct = "text/csv; charset=utf-8"
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Content-Disposition", `attachment; filename="`+base+"."+string(format)+`"`)
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}
