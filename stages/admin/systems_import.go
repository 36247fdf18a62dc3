package admin

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/memoflow/memoflow/internal/auth"
	"github.com/memoflow/memoflow/schemas/registry"
)

// SystemsResult is what a systems import did, or with DryRun would do.
type SystemsResult struct {
	Organisation     string `json:"organisation"`
	Format           Format `json:"format"`
	DryRun           bool   `json:"dryRun"`
	RecipientSystems Counts `json:"recipientSystems"`
	StandardSystems  Counts `json:"standardSystems"`
	Forwarding       Counts `json:"forwarding"`
	// Written is the number of registry changes written (0 on a dry run).
	Written int `json:"written"`
	// APIKeys are the keys issued for new selections of standard systems
	// without credentials: shown here once (none on a dry run).
	APIKeys []APIKeyJSON `json:"apiKeys,omitempty"`

	changes []registry.Change
	rows    []*parsedRow
	newKeys []*parsedRow // rows of new selections that get a key
}

// SystemsAccess says which rows the caller may change: recipient systems
// and forwarding (system-admin), standard systems (supplier). Rows equal
// to the registry are allowed either way, so a supplier can import the
// export that also lists the organisation's recipient systems.
type SystemsAccess struct {
	Recipient, Standard bool
}

// checker is the Writer's dry check (registry.Writer.Check): references,
// the 4 + 1 limit and the standard-system guard against the view, without
// writing. A dry run uses it when the Writer has it.
type checker interface {
	Check(cs ...registry.Change) error
}

// ImportSystems validates a systems workbook for organisation org and,
// unless dryRun, writes its changes as actor (all or nothing, as Import).
func (im *Importer) ImportSystems(ctx context.Context, org, actor string, data []byte, format Format, dryRun bool, may SystemsAccess) (*SystemsResult, error) {
	res, err := im.planSystems(org, data, format, may)
	if err != nil {
		return nil, err
	}
	res.DryRun = dryRun
	if dryRun || len(res.changes) == 0 {
		return res, nil
	}
	if im.writer == nil {
		return nil, errors.New("admin importer: no registry Writer (validation only)")
	}
	keys := map[*parsedRow]string{}
	for _, r := range res.newKeys {
		k := auth.NewToken()
		keys[r] = k
		r.e.s.Credentials = keyCredentials(k)
	}
	now := im.now()
	for i := range res.changes {
		res.changes[i].Actor, res.changes[i].Time = actor, now
	}
	if err := im.writer.Write(ctx, res.changes...); err != nil {
		var be *registry.BatchError
		var re *registry.Error
		if errors.As(err, &be) && errors.As(err, &re) && be.Index < len(res.rows) {
			return nil, &ImportError{Errors: []RowError{res.rows[be.Index].registryErr(re)}}
		}
		return nil, writeErr(err)
	}
	for _, r := range res.newKeys {
		res.APIKeys = append(res.APIKeys, APIKeyJSON{System: systemJSON(r.e.s), APIKey: keys[r], APIKeySHA256: auth.HashToken(keys[r])})
	}
	res.Written = len(res.changes)
	return res, nil
}

// sysRow is a parsed row of the systems workbook with its kind.
type sysRow struct {
	*parsedRow
	kind string // TypeSystem, TypeStandard or TypeForwarding
}

func (im *Importer) planSystems(org string, data []byte, format Format, may SystemsAccess) (*SystemsResult, error) {
	if !registry.ValidCVR(org) {
		return nil, fieldErr(CodeBadParameter, "organisation", "%q is not a CVR number", org)
	}
	if _, ok := im.reader.Get("org/" + org); !ok {
		return nil, fieldErr(CodeNotFound, "organisation", "organisation %s is not in the registry", org)
	}
	if format == "" {
		f, err := DetectFormat(data)
		if err != nil {
			return nil, err
		}
		format = f
	}
	var rows []sysRow
	var ie ImportError
	switch format {
	case FormatXLSX:
		ts, err := readWorkbook(data, im.limits, systemSheetAliases, "a "+SheetSystems+", a "+SheetStandard+" nor a "+SheetForwarding+" sheet")
		if err != nil {
			var fe *ImportError
			if !errors.As(err, &fe) {
				return nil, err
			}
			ie.Errors = append(ie.Errors, fe.Errors...)
		}
		for _, sh := range []struct {
			name, kind string
			cols       []column
		}{{SheetStandard, TypeStandard, StandardColumns}, {SheetSystems, TypeSystem, SystemColumns}, {SheetForwarding, TypeForwarding, ForwardingColumns}} {
			t := ts[sh.name]
			if t == nil || (isBlank(t.header) && len(t.rows) == 0) {
				continue
			}
			idx, _, errs := headerIndex(t.sheet, t.header, sh.cols)
			if len(errs) > 0 {
				ie.Errors = append(ie.Errors, errs...)
				continue
			}
			for _, tr := range t.rows {
				r, errs := im.parseSysRow(t.sheet, tr, sh.cols, idx, org, sh.kind)
				rows, ie.Errors = append(rows, r), append(ie.Errors, errs...)
			}
		}
	case FormatCSV:
		t, err := readCSV(data, im.limits)
		if err != nil {
			var fe *ImportError
			if !errors.As(err, &fe) {
				return nil, err
			}
			ie.Errors = append(ie.Errors, fe.Errors...)
		}
		if t != nil && t.header != nil {
			rs, errs := im.parseSystemsCSV(t, org)
			rows, ie.Errors = rs, append(ie.Errors, errs...)
		}
	default:
		return nil, fileErr(CodeUnknownFormat, "format %q is neither xlsx nor csv", format)
	}
	ie.Errors = append(ie.Errors, im.crossCheckSystems(org, rows)...)
	res := &SystemsResult{Organisation: org, Format: format}
	if len(ie.Errors) == 0 {
		ie.Errors = append(ie.Errors, im.planChanges(res, rows, may)...)
	}
	if len(ie.Errors) > 0 {
		sortSystemRowErrors(ie.Errors)
		return nil, &ie
	}
	return res, nil
}

// parseSysRow reads one row into a system (of org, kind per sheet) or the
// organisation's company registration with the row's forwarding.
func (im *Importer) parseSysRow(sheet string, tr tableRow, cols []column, idx []int, org, kind string) (sysRow, []RowError) {
	var e entityRow
	registered := true
	switch kind {
	case TypeForwarding:
		c := &registry.Company{CVR: org}
		if old, ok := im.reader.Get("com/" + org); ok {
			cp := *old.(*registry.Company)
			c = &cp
		} else {
			registered = false // crossCheckSystems says so, once
		}
		c.Forward = registry.Forwarding{}
		e.c = c
	case TypeStandard:
		e.s = &registry.System{Org: org, SysKind: registry.SystemStandard}
	default:
		e.s = &registry.System{Org: org, SysKind: registry.SystemRecipient}
	}
	r := &parsedRow{sheet: sheet, line: tr.line, e: e, cols: cols, idx: idx}
	errs := r.setCells(tr)
	if s := r.e.s; s != nil && s.Template == "" && s.MemoVersion == 0 && !r.bad["memo_version"] {
		s.MemoVersion = 11 // as the API: 1.1 unless asked for 1.2
	}
	if registered {
		errs = append(errs, r.validateSystem()...)
	}
	for i := range errs {
		errs[i].ID = r.e.id()
	}
	return sysRow{r, kind}, errs
}

// validateSystem runs the model's Validate. As for contact points, a fault
// of a simple field is neutralised and Validate runs again, so a row's
// independent faults are reported at once; the transport fields depend on
// each other (protocol, endpoint, keys), and the first of their faults
// ends the row's checks.
func (r *parsedRow) validateSystem() []RowError {
	var ent registry.Entity
	var s registry.System
	var c registry.Company
	if r.e.s != nil {
		s = *r.e.s
		ent = &s
	} else {
		c = *r.e.c
		ent = &c
	}
	var errs []RowError
	done := map[string]bool{}
	for f := range r.bad {
		done[f] = true
		neutralizeSystem(&s, f)
	}
	for range 16 {
		err := ent.Validate()
		if err == nil {
			break
		}
		var re *registry.Error
		if !errors.As(err, &re) {
			errs = append(errs, r.registryErr(err))
			break
		}
		if done[re.Field] {
			break
		}
		done[re.Field] = true
		r.fail(re.Field)
		errs = append(errs, r.registryErr(err))
		if !neutralizeSystem(&s, re.Field) {
			break
		}
	}
	return errs
}

// neutralizeSystem sets a faulty field to a value the model accepts;
// false when there is none independent of the other fields.
func neutralizeSystem(s *registry.System, field string) bool {
	switch field {
	case "id":
		s.ID = "x"
	case "name":
		s.Name = "x"
	case "credentials":
		s.Credentials = ""
	case "receipt_endpoint":
		s.ReceiptEndpoint = ""
	case "contact.name", "contact.email":
		s.Contact = registry.Contact{}
	case "role":
		if s.SysKind == registry.SystemRecipient {
			s.Role = registry.RoleRegular
		} else {
			s.Role = 0
		}
	case "memo_version":
		if s.Template == "" {
			s.MemoVersion = 11
		} else {
			s.MemoVersion = 0
		}
	default:
		return false
	}
	return true
}

// parseSystemsCSV splits a CSV by its Type column.
func (im *Importer) parseSystemsCSV(t *table, org string) ([]sysRow, []RowError) {
	all := csvSystemColumns()
	aidx, xidx, errs := headerIndex(t.sheet, t.header, all, CSVTypeHeader)
	if len(errs) > 0 {
		return nil, errs
	}
	typeCol := xidx[0]
	sub := func(cols []column) []int {
		idx := make([]int, len(cols))
		for i, c := range cols {
			idx[i] = aidx[slices.IndexFunc(all, func(x column) bool { return x.Header == c.Header })]
		}
		return idx
	}
	sysIdx, fwdIdx := sub(SystemColumns), sub(ForwardingColumns)
	var rows []sysRow
	for _, tr := range t.rows {
		typ := ""
		if typeCol < len(tr.cells) {
			typ = tr.cells[typeCol]
		}
		// Cells of the other kind's columns must be empty.
		other := func(cols []column, idx []int, what string) {
			for i, c := range cols {
				if idx[i] >= 0 && idx[i] < len(tr.cells) && tr.cells[idx[i]] != "" {
					errs = append(errs, RowError{Sheet: t.sheet, Row: tr.line, Column: c.Header, Cell: cellName(idx[i], tr.line),
						Code: CodeBadValue, Message: what + " has no " + c.Header + "; leave the cell empty"})
				}
			}
		}
		switch strings.ToLower(typ) {
		case strings.ToLower(TypeSystem), "recipient system", "recipient":
			other(ForwardingColumns, fwdIdx, "a system row")
			r, rerrs := im.parseSysRow(t.sheet, tr, SystemColumns, sysIdx, org, TypeSystem)
			rows, errs = append(rows, r), append(errs, rerrs...)
		case strings.ToLower(TypeStandard), "standard system", "standard":
			other(ForwardingColumns, fwdIdx, "a system row")
			r, rerrs := im.parseSysRow(t.sheet, tr, SystemColumns, sysIdx, org, TypeStandard)
			rows, errs = append(rows, r), append(errs, rerrs...)
		case strings.ToLower(TypeForwarding), "forwarding":
			other(SystemColumns, sysIdx, "a forwarding row")
			r, rerrs := im.parseSysRow(t.sheet, tr, ForwardingColumns, fwdIdx, org, TypeForwarding)
			rows, errs = append(rows, r), append(errs, rerrs...)
		case "":
			errs = append(errs, RowError{Sheet: t.sheet, Row: tr.line, Column: CSVTypeHeader, Cell: cellName(typeCol, tr.line), Code: CodeMissingField,
				Message: "Type is required: " + TypeSystem + ", " + TypeStandard + " or " + TypeForwarding})
		default:
			errs = append(errs, RowError{Sheet: t.sheet, Row: tr.line, Column: CSVTypeHeader, Cell: cellName(typeCol, tr.line), Code: CodeBadValue,
				Message: fmt.Sprintf("%q is not %s, %s or %s", truncate(typ, 40), TypeSystem, TypeStandard, TypeForwarding)})
		}
	}
	return rows, errs
}

// crossCheckSystems: unique ids in the file, ids of other organisations or
// of another kind of system, the fresh-id rule of selections, one
// forwarding row for a registered company, and row limits.
func (im *Importer) crossCheckSystems(org string, rows []sysRow) []RowError {
	var errs []RowError
	seen := map[string]*parsedRow{}
	fwd := 0
	perKind := map[string]int{}
	for _, r := range rows {
		perKind[r.kind]++
		if perKind[r.kind] == im.limits.MaxRows+1 {
			errs = append(errs, RowError{Sheet: r.sheet, Row: r.line, Code: CodeTooManyRows, Message: fmt.Sprintf("more than %d rows of %s; split the file", im.limits.MaxRows, r.kind)})
		}
		if r.kind == TypeForwarding {
			fwd++
			if fwd > 1 {
				errs = append(errs, r.errAt("forward.kind", CodeDuplicateID, "a company has one forwarding setting; the file has more than one row"))
				continue
			}
			if _, ok := im.reader.Get("com/" + org); !ok {
				errs = append(errs, r.errAt("forward.kind", CodeNotACompany, fmt.Sprintf("organisation %s has no Digital Post registration as a company; only companies forward their mailbox post", org)))
			}
			continue
		}
		s := r.e.s
		if r.bad["id"] {
			continue
		}
		if first, dup := seen[s.ID]; dup {
			errs = append(errs, r.errAt("id", CodeDuplicateID, fmt.Sprintf("ID %s is also on %s row %d", s.ID, first.sheet, first.line)))
			r.fail("id")
			continue
		}
		seen[s.ID] = r.parsedRow
		e, ok := im.reader.Get("sys/" + s.ID)
		if !ok {
			continue
		}
		old := e.(*registry.System)
		switch {
		case old.Org != org:
			errs = append(errs, r.errAt("id", CodeForeignID, fmt.Sprintf("ID %s belongs to another organisation (or a provider)", s.ID)))
			r.fail("id")
		case old.SysKind != s.SysKind:
			errs = append(errs, r.errAt("id", CodeDuplicateID, fmt.Sprintf("ID %s is a %s system in the registry; a row cannot change a system's kind", s.ID, old.SysKind)))
			r.fail("id")
		default:
			if err := checkSelectionID(old, s.Template); err != nil && !r.bad["template"] {
				errs = append(errs, r.errAt("template", CodeSelectionID, err.Message))
				r.fail("template")
			}
		}
	}
	return errs
}

// planChanges turns the rows into changes (standard systems first, so a
// selection in the same file finds its template; then recipient systems;
// then forwarding), skips unchanged rows, checks the caller's access and,
// when the Writer can, runs its checks against the registry.
func (im *Importer) planChanges(res *SystemsResult, rows []sysRow, may SystemsAccess) []RowError {
	var errs []RowError
	for _, kind := range []string{TypeStandard, TypeSystem, TypeForwarding} {
		for _, r := range rows {
			if r.kind != kind {
				continue
			}
			counts := &res.RecipientSystems
			switch kind {
			case TypeStandard:
				counts = &res.StandardSystems
			case TypeForwarding:
				counts = &res.Forwarding
			}
			counts.Rows++
			var ent registry.Entity
			var newKey bool
			if kind == TypeForwarding {
				old, _ := im.reader.Get("com/" + r.e.c.CVR)
				if oc, _ := old.(*registry.Company); oc != nil && oc.Forward == r.e.c.Forward {
					counts.Unchanged++
					continue
				}
				counts.Updated++
				ent = r.e.c
			} else {
				s := r.e.s
				e, ok := im.reader.Get(s.Key())
				old, _ := e.(*registry.System)
				if old != nil && s.Template != "" && s.Credentials == "" && old.Template == s.Template {
					s.Credentials = old.Credentials // the API key changes through .../api-key only
				}
				switch {
				case !ok:
					counts.Created++
					newKey = s.Template != "" && s.Credentials == ""
				case *old == *s:
					counts.Unchanged++
					continue
				default:
					counts.Updated++
				}
				ent = s
			}
			allowed := may.Recipient
			if kind == TypeStandard {
				allowed = may.Standard
			}
			if !allowed {
				need := auth.RoleSystemAdmin
				if kind == TypeStandard {
					need = auth.RoleSupplier
				}
				errs = append(errs, RowError{Sheet: r.sheet, Row: r.line, ID: r.e.id(), Code: CodeNotAllowed,
					Message: fmt.Sprintf("changing a %s needs the role %s (or operator); rows equal to the registry may stay", strings.ToLower(kind), need)})
				continue
			}
			res.changes = append(res.changes, registry.NewChange(ent, "", time.Time{}))
			res.rows = append(res.rows, r.parsedRow)
			if newKey {
				res.newKeys = append(res.newKeys, r.parsedRow)
			}
		}
	}
	if len(errs) > 0 || len(res.changes) == 0 {
		return errs
	}
	if c, ok := im.writer.(checker); ok {
		// Check wants what Write gets; the actor is filled in at Import.
		cs := slices.Clone(res.changes)
		for i := range cs {
			cs[i].Actor, cs[i].Time = "admin-import-check", im.now()
		}
		if err := c.Check(cs...); err != nil {
			var be *registry.BatchError
			var re *registry.Error
			if errors.As(err, &be) && errors.As(err, &re) && be.Index < len(res.rows) {
				return []RowError{res.rows[be.Index].registryErr(re)}
			}
			return []RowError{{Code: CodeRegistryInvalid, Message: err.Error()}}
		}
	}
	return nil
}

var systemSheetOrder = map[string]int{"": 0, SheetStandard: 1, SheetSystems: 2, SheetForwarding: 3, "CSV": 4}

func sortSystemRowErrors(errs []RowError) {
	slices.SortStableFunc(errs, func(a, b RowError) int {
		return cmp.Or(cmp.Compare(systemSheetOrder[a.Sheet], systemSheetOrder[b.Sheet]), cmp.Compare(a.Row, b.Row), cmp.Compare(a.Cell, b.Cell))
	})
}
