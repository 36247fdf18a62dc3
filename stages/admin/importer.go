package admin

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/memoflow/memoflow/schemas/registry"
)

// Importer reads contact-structure sheets (XLSX or CSV), validates every
// row against the sheet rules, the registry model and the organisation's
// registry, and only when no row has an error writes the changes through
// the Writer. Rows merge with the registry by ID: a row whose ID exists
// replaces that group or point, a new ID creates one, and groups and
// points the file does not mention stay as they are (a file never
// deletes). A row equal to what the registry holds writes nothing, so
// importing an export is a no-op.
type Importer struct {
	reader Reader
	writer Writer
	limits Limits
	now    func() time.Time
}

// NewImporter returns an Importer over the registry view r and writer w
// (w may be nil for validation only).
func NewImporter(r Reader, w Writer, lim Limits) (*Importer, error) {
	if r == nil {
		return nil, errors.New("admin importer: a registry Reader is required")
	}
	if err := lim.Validate(); err != nil {
		return nil, err
	}
	return &Importer{reader: r, writer: w, limits: lim, now: time.Now}, nil
}

// Counts are an import's rows of one kind by outcome.
type Counts struct {
	Rows      int `json:"rows"`
	Created   int `json:"created"`
	Updated   int `json:"updated"`
	Unchanged int `json:"unchanged"`
}

// Result is what an import did, or with DryRun what it would do.
type Result struct {
	Organisation string `json:"organisation"`
	Format       Format `json:"format"`
	DryRun       bool   `json:"dryRun"`
	Groups       Counts `json:"groups"`
	Points       Counts `json:"contactPoints"`
	// Written is the number of registry changes written (0 on a dry run).
	Written int `json:"written"`

	changes []registry.Change
	rows    []*parsedRow // rows[i] made changes[i]
}

// parsedRow is one row turned into an entity.
type parsedRow struct {
	sheet string
	line  int
	e     entityRow
	// where finds the column (header and A1 cell) of a registry field.
	cols []column
	idx  []int
	// bad lists the fields already refused, so the checks across rows
	// skip what the row lacks instead of piling errors on one fault.
	bad map[string]bool
}

func (r *parsedRow) fail(field string) {
	if r.bad == nil {
		r.bad = map[string]bool{}
	}
	r.bad[field] = true
}

func (r *parsedRow) fieldOf(header string) string {
	for _, c := range r.cols {
		if c.Header == header {
			return c.Field
		}
	}
	return ""
}

func (r *parsedRow) errAt(field, code, msg string) RowError {
	re := RowError{Sheet: r.sheet, Row: r.line, ID: r.e.id(), Code: code, Message: msg}
	for i, c := range r.cols {
		if c.Field == field {
			re.Column = c.Header
			if r.idx[i] >= 0 {
				re.Cell = cellName(r.idx[i], r.line)
			}
			break
		}
	}
	return re
}

// Validate reads and checks a file for organisation org without writing.
func (im *Importer) Validate(org string, data []byte, format Format) (*Result, error) {
	return im.plan(org, data, format)
}

// Import validates the file and, unless dryRun, writes its changes as
// actor. Any error means nothing was written; an *ImportError lists every
// row error.
func (im *Importer) Import(ctx context.Context, org, actor string, data []byte, format Format, dryRun bool) (*Result, error) {
	res, err := im.plan(org, data, format)
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
	now := im.now()
	for i := range res.changes {
		res.changes[i].Actor, res.changes[i].Time = actor, now
	}
	if err := im.writer.Write(ctx, res.changes...); err != nil {
		// The Writer checks the batch against its view before producing:
		// a refusal names the change, hence the row.
		var be *registry.BatchError
		var re *registry.Error
		if errors.As(err, &be) && errors.As(err, &re) && be.Index < len(res.rows) {
			return nil, &ImportError{Errors: []RowError{res.rows[be.Index].registryErr(re)}}
		}
		return nil, writeErr(err)
	}
	res.Written = len(res.changes)
	return res, nil
}

// writeErr maps a Writer failure: a validation refusal is the caller's
// (422), anything else the registry's (503, retry).
func writeErr(err error) error {
	var re *registry.Error
	if errors.As(err, &re) {
		return &Error{Code: CodeInvalid, Field: re.Field, Message: re.Code + ": " + re.Message, RegistryCode: re.Code}
	}
	if errors.Is(err, context.Canceled) {
		return err
	}
	return &Error{Code: CodeUnavailable, Message: "the registry did not take the change: " + err.Error()}
}

func (im *Importer) plan(org string, data []byte, format Format) (*Result, error) {
	if !registry.ValidCVR(org) {
		return nil, fieldErr(CodeBadParameter, "organisation", "%q is not a CVR number", org)
	}
	// Contact structures belong to authorities (the Writer refuses them
	// otherwise): say so once instead of on every row.
	if e, ok := im.reader.Get("org/" + org); !ok {
		return nil, fieldErr(CodeNotFound, "organisation", "organisation %s is not in the registry", org)
	} else if o := e.(*registry.Org); o.Type != registry.OrgAuthority {
		return nil, fieldErr(CodeInvalid, "organisation", "organisation %s is a company; contact structures belong to authorities", org)
	}
	if format == "" {
		f, err := DetectFormat(data)
		if err != nil {
			return nil, err
		}
		format = f
	}
	var groups, points []*parsedRow
	var ie ImportError
	switch format {
	case FormatXLSX:
		gt, pt, err := readXLSX(data, im.limits)
		if err != nil && !errors.As(err, new(*ImportError)) {
			return nil, err
		}
		if err != nil {
			ie.Errors = append(ie.Errors, err.(*ImportError).Errors...)
		}
		if gt != nil {
			rows, errs := parseSheet(gt, GroupColumns, org, true)
			groups, ie.Errors = rows, append(ie.Errors, errs...)
		}
		if pt != nil {
			rows, errs := parseSheet(pt, PointColumns, org, false)
			points, ie.Errors = rows, append(ie.Errors, errs...)
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
			var errs []RowError
			groups, points, errs = parseCSV(t, org, im.limits)
			ie.Errors = append(ie.Errors, errs...)
		}
	default:
		return nil, fileErr(CodeUnknownFormat, "format %q is neither xlsx nor csv", format)
	}
	ie.Errors = append(ie.Errors, im.crossCheck(org, groups, points)...)
	if len(ie.Errors) > 0 {
		sortRowErrors(ie.Errors)
		return nil, &ie
	}
	res := &Result{Organisation: org, Format: format}
	res.Groups.Rows, res.Points.Rows = len(groups), len(points)
	// Parents before children, so a Writer that checks references against
	// its view (and a reader of the topic) never sees a dangling parent.
	depth := im.groupDepths(org, groups)
	slices.SortStableFunc(groups, func(a, b *parsedRow) int { return cmp.Compare(depth[a.e.id()], depth[b.e.id()]) })
	for _, r := range groups {
		old, ok := im.reader.Get(r.e.g.Key())
		switch {
		case !ok:
			res.Groups.Created++
		case groupEqual(old.(*registry.ContactGroup), r.e.g):
			res.Groups.Unchanged++
			continue
		default:
			res.Groups.Updated++
		}
		res.changes = append(res.changes, registry.NewChange(r.e.g, "", time.Time{}))
		res.rows = append(res.rows, r)
	}
	for _, r := range points {
		old, ok := im.reader.Get(r.e.p.Key())
		switch {
		case !ok:
			res.Points.Created++
		case pointEqual(old.(*registry.ContactPoint), r.e.p):
			res.Points.Unchanged++
			continue
		default:
			res.Points.Updated++
		}
		res.changes = append(res.changes, registry.NewChange(r.e.p, "", time.Time{}))
		res.rows = append(res.rows, r)
	}
	return res, nil
}

// parseSheet turns a sheet's rows into entities of organisation org.
func parseSheet(t *table, cols []column, org string, group bool) ([]*parsedRow, []RowError) {
	if isBlank(t.header) && len(t.rows) == 0 {
		return nil, nil // an empty sheet: nothing of this kind to import
	}
	idx, _, errs := headerIndex(t.sheet, t.header, cols)
	if len(errs) > 0 {
		return nil, errs // the rows cannot be read without their columns
	}
	out := make([]*parsedRow, 0, len(t.rows))
	for _, tr := range t.rows {
		r, rerrs := parseRow(t.sheet, tr, cols, idx, org, group)
		out = append(out, r)
		errs = append(errs, rerrs...)
	}
	return out, errs
}

func newEntity(group bool, org string) entityRow {
	if group {
		return entityRow{g: &registry.ContactGroup{Org: org}}
	}
	return entityRow{p: &registry.ContactPoint{Org: org}}
}

func parseRow(sheet string, tr tableRow, cols []column, idx []int, org string, group bool) (*parsedRow, []RowError) {
	r := &parsedRow{sheet: sheet, line: tr.line, e: newEntity(group, org), cols: cols, idx: idx}
	errs := r.setCells(tr)
	if r.e.p != nil {
		// Two title/text pairs in the sheet, a list in the model: empty
		// pairs are no field.
		r.e.p.Info = slices.DeleteFunc(r.e.p.Info, func(f registry.InfoField) bool { return f == registry.InfoField{} })
		if len(r.e.p.Info) == 0 {
			r.e.p.Info = nil
		}
		for _, f := range r.e.p.Info {
			if f.Title == "" {
				r.fail("info")
				errs = append(errs, r.errAt("info", CodeMissingField, "an information field's text needs its title"))
			}
		}
	}
	errs = append(errs, r.validate(errs)...)
	for i := range errs {
		errs[i].ID = r.e.id()
	}
	return r, errs
}

// setCells sets the row's entity from its cells, column by column, and
// returns an error per missing required cell or refused value.
func (r *parsedRow) setCells(tr tableRow) []RowError {
	var errs []RowError
	for i, c := range r.cols {
		v := ""
		if r.idx[i] >= 0 && r.idx[i] < len(tr.cells) {
			v = unescapeCell(tr.cells[r.idx[i]])
		}
		if c.Required && v == "" {
			r.fail(c.Field)
			errs = append(errs, RowError{Sheet: r.sheet, Row: tr.line, Column: c.Header, Cell: cellName(max(r.idx[i], 0), tr.line),
				Code: CodeMissingField, Message: c.Header + " is required"})
			continue
		}
		if ce := c.set(r.e, v); ce != nil {
			r.fail(c.Field)
			errs = append(errs, RowError{Sheet: r.sheet, Row: tr.line, Column: c.Header, Cell: cellName(r.idx[i], tr.line), Code: ce.code, Message: ce.msg})
		}
	}
	return errs
}

// validate runs the model's Validate on the row. Validate stops at the
// first fault, but a user fixing a sheet wants every fault of a row at
// once: so it runs on a copy, and each field at fault (or already refused
// by its cell) is set to a neutral valid value before the next run.
func (r *parsedRow) validate(cellErrs []RowError) []RowError {
	var errs []RowError
	var g registry.ContactGroup
	var p registry.ContactPoint
	var ent registry.Entity
	if r.e.g != nil {
		g = *r.e.g
		ent = &g
	} else {
		p = *r.e.p
		ent = &p
	}
	done := map[string]bool{}
	for _, ce := range cellErrs {
		for _, c := range r.cols {
			if c.Header == ce.Column {
				done[c.Field] = true
				neutralize(&g, &p, c.Field)
			}
		}
	}
	for range 32 {
		err := ent.Validate()
		if err == nil {
			break
		}
		var re *registry.Error
		if !errors.As(err, &re) || done[re.Field] {
			if !errors.As(err, &re) {
				errs = append(errs, r.registryErr(err))
			}
			break
		}
		done[re.Field] = true
		r.fail(re.Field)
		errs = append(errs, r.registryErr(err))
		neutralize(&g, &p, re.Field)
	}
	return errs
}

func neutralize(g *registry.ContactGroup, p *registry.ContactPoint, field string) {
	switch field {
	case "id":
		g.ID, p.ID = "x", "x"
	case "parent_id":
		g.ParentID, p.ParentID = "", ""
	case "name":
		g.Name, p.Name = "x", "x"
	case "keywords":
		g.Keywords, p.Keywords = nil, nil
	case "visibility":
		g.Visibility, p.Visibility = 0, 0
	case "org":
		g.Org, p.Org = "10000000", "10000000"
	case "kle":
		p.KLE = nil
	case "form":
		p.FORM = nil
	case "ean":
		p.EAN = nil
	case "sor":
		p.SOR = nil
	case "info":
		p.Info = nil
	case "system":
		p.System = ""
	}
}

// registryCodes maps the model's codes onto the import's.
var registryCodes = map[string]string{
	registry.CodeBadKLE:  CodeBadCode,
	registry.CodeBadFORM: CodeBadCode,
	registry.CodeBadEAN:  CodeBadCode,
	registry.CodeBadSOR:  CodeBadCode,
	registry.CodeBadID:   CodeBadValue,
	// Empty names, keywords and titles are refused by the sheet's own
	// checks first, so what the model still refuses is too long (or too
	// many).
	registry.CodeBadName:       CodeTooLong,
	registry.CodeBadKeyword:    CodeTooLong,
	registry.CodeBadInfo:       CodeTooLong,
	registry.CodeBadVisibility: CodeBadValue,
	registry.CodeTooManyInfo:   CodeBadValue,
	registry.CodeSelfParent:    CodeCycle,
}

func (r *parsedRow) registryErr(err error) RowError {
	var re *registry.Error
	if !errors.As(err, &re) {
		return RowError{Sheet: r.sheet, Row: r.line, Code: CodeRegistryInvalid, Message: err.Error()}
	}
	code, ok := registryCodes[re.Code]
	if !ok {
		code = CodeRegistryInvalid
	}
	e := r.errAt(re.Field, code, re.Message+" ("+re.Code+")")
	e.RegistryCode = re.Code
	return e
}

// parseCSV splits a CSV table by its Type column and parses each row with
// its kind's columns.
func parseCSV(t *table, org string, lim Limits) (groups, points []*parsedRow, errs []RowError) {
	pidx, xidx, errs := headerIndex(t.sheet, t.header, PointColumns, CSVTypeHeader)
	if len(errs) > 0 {
		return nil, nil, errs
	}
	typeCol := xidx[0]
	// The group columns are a subset of the point columns, by header.
	gidx := make([]int, len(GroupColumns))
	for i, gc := range GroupColumns {
		gidx[i] = pidx[slices.IndexFunc(PointColumns, func(pc column) bool { return pc.Header == gc.Header })]
	}
	for _, tr := range t.rows {
		typ := ""
		if typeCol < len(tr.cells) {
			typ = tr.cells[typeCol]
		}
		switch strings.ToLower(typ) {
		case strings.ToLower(TypeGroup), "group", "contact group", "gruppe":
			if len(groups) == lim.MaxRows {
				errs = append(errs, RowError{Sheet: t.sheet, Row: tr.line, Code: CodeTooManyRows, Message: fmt.Sprintf("more than %d groups; split the file", lim.MaxRows)})
				return groups, points, errs
			}
			// Point-only columns must be empty on a group row.
			for i, pc := range PointColumns {
				if slices.IndexFunc(GroupColumns, func(gc column) bool { return gc.Header == pc.Header }) >= 0 || pidx[i] < 0 || pidx[i] >= len(tr.cells) {
					continue
				}
				if tr.cells[pidx[i]] != "" {
					errs = append(errs, RowError{Sheet: t.sheet, Row: tr.line, Column: pc.Header, Cell: cellName(pidx[i], tr.line),
						Code: CodeBadValue, Message: "a contact group has no " + pc.Header + "; leave the cell empty"})
				}
			}
			r, rerrs := parseRow(t.sheet, tr, GroupColumns, gidx, org, true)
			groups, errs = append(groups, r), append(errs, rerrs...)
		case strings.ToLower(TypePoint), "point", "contact point", "punkt":
			if len(points) == lim.MaxRows {
				errs = append(errs, RowError{Sheet: t.sheet, Row: tr.line, Code: CodeTooManyRows, Message: fmt.Sprintf("more than %d contact points; split the file", lim.MaxRows)})
				return groups, points, errs
			}
			r, rerrs := parseRow(t.sheet, tr, PointColumns, pidx, org, false)
			points, errs = append(points, r), append(errs, rerrs...)
		case "":
			errs = append(errs, RowError{Sheet: t.sheet, Row: tr.line, Column: CSVTypeHeader, Cell: cellName(typeCol, tr.line), Code: CodeMissingField,
				Message: "Type is required: " + TypeGroup + " or " + TypePoint})
		default:
			errs = append(errs, RowError{Sheet: t.sheet, Row: tr.line, Column: CSVTypeHeader, Cell: cellName(typeCol, tr.line), Code: CodeBadValue,
				Message: fmt.Sprintf("%q is neither %s nor %s", truncate(typ, 40), TypeGroup, TypePoint)})
		}
	}
	return groups, points, errs
}

// crossCheck applies the rules that span rows and the registry: unique
// ids, ids of other organisations, parents that exist and are groups, no
// cycles, recipient systems of the organisation.
func (im *Importer) crossCheck(org string, groups, points []*parsedRow) []RowError {
	var errs []RowError
	type seenAt struct {
		r     *parsedRow
		group bool
	}
	seen := map[string]seenAt{}
	check := func(r *parsedRow, group bool) {
		id := r.e.id()
		if r.bad["id"] {
			return
		}
		if first, dup := seen[id]; dup {
			what := "another row"
			if first.group != group {
				what = "a contact group row; a group is never a contact point"
				if !group {
					what = "a contact point row; a group is never a contact point"
				}
			}
			errs = append(errs, r.errAt("id", CodeDuplicateID, fmt.Sprintf("ID %s is also on %s row %d (%s)", id, first.r.sheet, first.r.line, what)))
			r.fail("id")
			return
		}
		seen[id] = seenAt{r, group}
		own, other := "cg/", "cp/"
		if !group {
			own, other = "cp/", "cg/"
		}
		if e, ok := im.reader.Get(other + id); ok {
			if o := entityOrg(e); o != org {
				errs = append(errs, r.errAt("id", CodeForeignID, fmt.Sprintf("ID %s belongs to another organisation", id)))
			} else {
				errs = append(errs, r.errAt("id", CodeDuplicateID, fmt.Sprintf("ID %s is a %s in the registry; a row cannot change a group into a point or back", id, e.Kind())))
			}
			r.fail("id")
			return
		}
		if e, ok := im.reader.Get(own + id); ok && entityOrg(e) != org {
			errs = append(errs, r.errAt("id", CodeForeignID, fmt.Sprintf("ID %s belongs to another organisation", id)))
			r.fail("id")
		}
	}
	for _, r := range groups {
		check(r, true)
	}
	for _, r := range points {
		check(r, false)
	}

	// The organisation's groups as they will be: the registry's, replaced
	// by the file's rows.
	parentOf := map[string]string{}
	im.reader.Each(registry.KindContactGroup, org, func(e registry.Entity) bool {
		g := e.(*registry.ContactGroup)
		parentOf[g.ID] = g.ParentID
		return true
	})
	fileGroup := map[string]*parsedRow{}
	for _, r := range groups {
		if !r.bad["id"] && !r.bad["parent_id"] {
			parentOf[r.e.g.ID] = r.e.g.ParentID
			fileGroup[r.e.g.ID] = r
		}
	}
	isPoint := func(id string) bool {
		if r, ok := seen[id]; ok && !r.group {
			return true
		}
		e, ok := im.reader.Get("cp/" + id)
		return ok && entityOrg(e) == org
	}
	checkParent := func(r *parsedRow) {
		p := r.e.parent()
		if p == "" || r.bad["parent_id"] {
			return
		}
		if _, ok := parentOf[p]; ok {
			return
		}
		switch {
		case isPoint(p):
			errs = append(errs, r.errAt("parent_id", CodeParentNotGroup, fmt.Sprintf("Parent ID %s is a contact point; only groups are parents", p)))
		default:
			msg := fmt.Sprintf("Parent ID %s is no group of this organisation, neither in the file nor in the registry", p)
			if e, ok := im.reader.Get("cg/" + p); ok && entityOrg(e) != org {
				msg = fmt.Sprintf("Parent ID %s is a group of another organisation", p)
			}
			errs = append(errs, r.errAt("parent_id", CodeParentUnknown, msg))
		}
		r.fail("parent_id")
	}
	for _, r := range groups {
		checkParent(r)
	}
	for _, r := range points {
		checkParent(r)
	}

	// Cycles: every group has at most one parent, so following parents
	// from any group either ends at the top or enters a cycle. Each cycle
	// is reported on every file row in it.
	const (
		white = iota
		grey
		black
	)
	color := map[string]int{}
	ids := make([]string, 0, len(parentOf))
	for id := range parentOf {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, start := range ids {
		var path []string
		id := start
		for {
			if color[id] == black {
				break
			}
			if color[id] == grey {
				// id starts the cycle within path.
				i := slices.Index(path, id)
				cycle := path[i:]
				desc := strings.Join(append(slices.Clone(cycle), id), " → ")
				for _, cid := range cycle {
					if r, ok := fileGroup[cid]; ok {
						errs = append(errs, r.errAt("parent_id", CodeCycle, "the groups' Parent IDs form a cycle: "+desc))
						r.fail("parent_id")
					}
				}
				break
			}
			color[id] = grey
			path = append(path, id)
			p, ok := parentOf[id]
			if !ok || p == "" {
				break
			}
			if _, known := parentOf[p]; !known {
				break // a dangling parent, reported above
			}
			id = p
		}
		for _, pid := range path {
			color[pid] = black
		}
	}

	// Recipient systems: the organisation's own.
	for _, r := range points {
		s := r.e.p.System
		if s == "" || r.bad["system"] {
			continue
		}
		e, ok := im.reader.Get("sys/" + s)
		sys, _ := e.(*registry.System)
		switch {
		case !ok || sys == nil:
			errs = append(errs, r.errAt("system", CodeUnknownSystem, fmt.Sprintf("recipient system %s does not exist", s)))
		case sys.Org != org || sys.SysKind != registry.SystemRecipient:
			errs = append(errs, r.errAt("system", CodeUnknownSystem, fmt.Sprintf("system %s is not a recipient system of organisation %s", s, org)))
		}
	}
	return errs
}

// groupDepths returns each file group's depth in the merged tree (top
// level 0), for writing parents first.
func (im *Importer) groupDepths(org string, groups []*parsedRow) map[string]int {
	parentOf := map[string]string{}
	im.reader.Each(registry.KindContactGroup, org, func(e registry.Entity) bool {
		g := e.(*registry.ContactGroup)
		parentOf[g.ID] = g.ParentID
		return true
	})
	for _, r := range groups {
		parentOf[r.e.g.ID] = r.e.g.ParentID
	}
	depth := map[string]int{}
	for _, r := range groups {
		d, id := 0, r.e.g.ID
		for p := parentOf[id]; p != "" && d <= len(parentOf); p = parentOf[p] {
			d++
		}
		depth[id] = d
	}
	return depth
}

func groupEqual(a, b *registry.ContactGroup) bool {
	return a.ID == b.ID && a.ParentID == b.ParentID && a.Org == b.Org && a.Name == b.Name &&
		slices.Equal(a.Keywords, b.Keywords) && a.Visibility == b.Visibility
}

func pointEqual(a, b *registry.ContactPoint) bool {
	return a.ID == b.ID && a.ParentID == b.ParentID && a.Org == b.Org && a.Name == b.Name &&
		slices.Equal(a.Keywords, b.Keywords) && slices.Equal(a.KLE, b.KLE) && slices.Equal(a.FORM, b.FORM) &&
		slices.Equal(a.EAN, b.EAN) && slices.Equal(a.SOR, b.SOR) && a.Visibility == b.Visibility &&
		slices.Equal(a.Info, b.Info) && a.System == b.System
}

var sheetOrder = map[string]int{"": 0, SheetGroups: 1, SheetPoints: 2, "CSV": 3}

func sortRowErrors(errs []RowError) {
	slices.SortStableFunc(errs, func(a, b RowError) int {
		return cmp.Or(cmp.Compare(sheetOrder[a.Sheet], sheetOrder[b.Sheet]), cmp.Compare(a.Row, b.Row), cmp.Compare(a.Cell, b.Cell))
	})
}
