package admin

import (
	"fmt"
	"slices"
	"strings"

	"github.com/memoflow/memoflow/schemas/registry"
)

// The sheet layout follows NgDP's contact-structure workbook: one sheet of
// contact groups and one of contact points, a header row, one entity per
// row, nesting by Parent ID. Lists (keywords, codes) are separated by ';'.
// Yes/no columns take Ja/Nej (also Yes/No, True/False, 1/0, X/empty).
// Headers are matched case-insensitively, in any order, Danish or English.

// column is one column of a sheet: its header, what it means and how a
// cell becomes a field of the entity and back.
type column struct {
	Header   string   // Danish header, as exported
	Aliases  []string // also accepted on import (English)
	Field    string   // the registry field (registry.Error.Field) it fills
	Required bool
	Doc      string
	get      func(e entityRow) string
	set      func(e entityRow, v string) *cellErr
}

// cellErr is a column's complaint about one cell.
type cellErr struct{ code, msg string }

// entityRow is the entity of a row being read or written: a group or a
// point (contact-structure sheet), a system or a company's forwarding
// (systems workbook, systems_sheet.go).
type entityRow struct {
	g *registry.ContactGroup
	p *registry.ContactPoint
	s *registry.System
	c *registry.Company
}

func (e entityRow) id() string {
	switch {
	case e.g != nil:
		return e.g.ID
	case e.s != nil:
		return e.s.ID
	case e.c != nil:
		return e.c.CVR
	}
	return e.p.ID
}

func (e entityRow) parent() string {
	switch {
	case e.g != nil:
		return e.g.ParentID
	case e.p != nil:
		return e.p.ParentID
	}
	return ""
}

func (e entityRow) node() (id, parent, name *string, kw *[]string, vis *registry.Visibility) {
	if e.g != nil {
		return &e.g.ID, &e.g.ParentID, &e.g.Name, &e.g.Keywords, &e.g.Visibility
	}
	return &e.p.ID, &e.p.ParentID, &e.p.Name, &e.p.Keywords, &e.p.Visibility
}

// ListSep separates the values of a list cell.
const ListSep = ";"

func splitList(v string) []string {
	if v == "" {
		return nil
	}
	parts := strings.Split(v, ListSep)
	out := parts[:0]
	for _, p := range parts {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

func joinList(vs []string) string { return strings.Join(vs, ListSep+" ") }

// Yes/no cells: exported as Ja/Nej.
const (
	Yes = "Ja"
	No  = "Nej"
)

func parseBool(v string) (bool, bool) {
	switch strings.ToLower(v) {
	case "ja", "j", "yes", "y", "true", "sand", "1", "x":
		return true, true
	case "nej", "n", "no", "false", "falsk", "0", "":
		return false, true
	}
	return false, false
}

func boolCell(b bool) string {
	if b {
		return Yes
	}
	return No
}

func idColumn() column {
	return column{Header: "ID", Field: "id", Required: true,
		Doc: "Unique id of the group or point (1-64 of A-Z a-z 0-9 . _ : -). Rows merge with the registry by this id.",
		get: func(e entityRow) string { return e.id() },
		set: func(e entityRow, v string) *cellErr { id, _, _, _, _ := e.node(); *id = v; return nil }}
}

func parentColumn(doc string) column {
	return column{Header: "Parent ID", Aliases: []string{"Parent", "Kontaktgruppe ID", "Overordnet ID"}, Field: "parent_id",
		Doc: doc,
		get: func(e entityRow) string { return e.parent() },
		set: func(e entityRow, v string) *cellErr { _, p, _, _, _ := e.node(); *p = v; return nil }}
}

func nameColumn() column {
	return column{Header: "Navn", Aliases: []string{"Name"}, Field: "name", Required: true,
		Doc: "Name shown to citizens, companies and authorities (1-256 bytes); searched like a keyword.",
		get: func(e entityRow) string { _, _, n, _, _ := e.node(); return *n },
		set: func(e entityRow, v string) *cellErr { _, _, n, _, _ := e.node(); *n = v; return nil }}
}

func keywordsColumn() column {
	return column{Header: "Søgeord", Aliases: []string{"Keywords", "Soegeord"}, Field: "keywords",
		Doc: "Search words separated by ';' (at most 64, each 1-256 bytes); search is case-insensitive and includes the name.",
		get: func(e entityRow) string { _, _, _, kw, _ := e.node(); return joinList(*kw) },
		set: func(e entityRow, v string) *cellErr { _, _, _, kw, _ := e.node(); *kw = splitList(v); return nil }}
}

func visColumn(header, alias string, bit registry.Visibility, who string) column {
	return column{Header: header, Aliases: []string{alias}, Field: "visibility",
		Doc: "Ja if " + who + " find it when they search; Nej (or empty) hides it from them (a hidden point can still be addressed by its ID).",
		get: func(e entityRow) string { _, _, _, _, vis := e.node(); return boolCell(*vis&bit != 0) },
		set: func(e entityRow, v string) *cellErr {
			b, ok := parseBool(v)
			if !ok {
				return &cellErr{CodeBadValue, "\"" + truncate(v, 40) + "\" is not Ja or Nej"}
			}
			_, _, _, _, vis := e.node()
			if b {
				*vis |= bit
			} else {
				*vis &^= bit
			}
			return nil
		}}
}

func listColumn(header string, aliases []string, field, doc string, ptr func(*registry.ContactPoint) *[]string) column {
	return column{Header: header, Aliases: aliases, Field: field, Doc: doc,
		get: func(e entityRow) string { return joinList(*ptr(e.p)) },
		set: func(e entityRow, v string) *cellErr { *ptr(e.p) = splitList(v); return nil }}
}

// Information-field limits, as schemas/registry checks them (its
// constants are unexported).
const (
	maxInfoTitle = 256
	maxInfoText  = 4000
)

// info fields: the sheet has two title/text pairs; the entity a list of
// at most two. A text without a title is an error; two empty cells are no
// field.
func infoColumn(n int, title bool) column {
	h := "Informationsfelt " + string(rune('0'+n))
	alias := "Information field " + string(rune('0'+n))
	c := column{Field: "info"}
	if title {
		c.Header, c.Aliases = h+" titel", []string{alias + " title"}
		c.Doc = "Title of information field " + string(rune('0'+n)) + " (an input the sender fills in, e.g. \"Barnets CPR-nummer\"; 1-256 bytes)."
	} else {
		c.Header, c.Aliases = h+" tekst", []string{alias + " text"}
		c.Doc = "Help text of information field " + string(rune('0'+n)) + " (at most 4000 bytes; needs a title)."
	}
	c.get = func(e entityRow) string {
		if len(e.p.Info) < n {
			return ""
		}
		if title {
			return e.p.Info[n-1].Title
		}
		return e.p.Info[n-1].Text
	}
	c.set = func(e entityRow, v string) *cellErr {
		if v == "" {
			return nil
		}
		// The model refuses these too, but for the list as a whole; here
		// the error names the very cell.
		if title && len(v) > maxInfoTitle {
			return &cellErr{CodeTooLong, fmt.Sprintf("the title is %d bytes; at most %d", len(v), maxInfoTitle)}
		}
		if !title && len(v) > maxInfoText {
			return &cellErr{CodeTooLong, fmt.Sprintf("the text is %d bytes; at most %d", len(v), maxInfoText)}
		}
		for len(e.p.Info) < n {
			e.p.Info = append(e.p.Info, registry.InfoField{})
		}
		if title {
			e.p.Info[n-1].Title = v
		} else {
			e.p.Info[n-1].Text = v
		}
		return nil
	}
	return c
}

// GroupColumns and PointColumns are the two sheets' columns in export
// order. docs/admin-api.md lists them (generated, see docs_test.go).
var (
	GroupColumns = []column{
		idColumn(),
		parentColumn("ID of the enclosing group (empty: top level). Nesting by Parent ID; cycles are refused."),
		nameColumn(),
		keywordsColumn(),
		visColumn("Synlig for borgere", "Visible to citizens", registry.VisibleCitizens, "citizens"),
		visColumn("Synlig for virksomheder", "Visible to companies", registry.VisibleCompanies, "companies"),
		visColumn("Synlig for myndigheder", "Visible to authorities", registry.VisibleAuthorities, "authorities"),
	}
	PointColumns = []column{
		idColumn(),
		parentColumn("ID of the group the point is in (empty: top level); a point is never a parent."),
		nameColumn(),
		keywordsColumn(),
		listColumn("KLE", nil, "kle", "KLE subject codes separated by ';' (dd, dd.dd or dd.dd.dd).", func(p *registry.ContactPoint) *[]string { return &p.KLE }),
		listColumn("FORM", nil, "form", "FORM codes separated by ';' (1-32 of A-Z, 0-9 and '.').", func(p *registry.ContactPoint) *[]string { return &p.FORM }),
		listColumn("EAN/GLN", []string{"EAN", "GLN", "Lokationskode"}, "ean", "EAN/GLN location numbers separated by ';' (13 digits).", func(p *registry.ContactPoint) *[]string { return &p.EAN }),
		listColumn("SOR", []string{"SOR-kode"}, "sor", "SOR codes separated by ';' (1-18 digits).", func(p *registry.ContactPoint) *[]string { return &p.SOR }),
		visColumn("Synlig for borgere", "Visible to citizens", registry.VisibleCitizens, "citizens"),
		visColumn("Synlig for virksomheder", "Visible to companies", registry.VisibleCompanies, "companies"),
		visColumn("Synlig for myndigheder", "Visible to authorities", registry.VisibleAuthorities, "authorities"),
		infoColumn(1, true), infoColumn(1, false),
		infoColumn(2, true), infoColumn(2, false),
		{Header: "Modtagersystem", Aliases: []string{"Recipient system", "Modtagersystem ID"}, Field: "system",
			Doc: "ID of the organisation's recipient system that receives the point's post (empty: the default system).",
			get: func(e entityRow) string { return e.p.System },
			set: func(e entityRow, v string) *cellErr { e.p.System = v; return nil }},
	}
)

// CSV files hold both kinds: a Type column, then the union of the two
// sheets' columns (the point sheet's, which include every group column).
const (
	CSVTypeHeader = "Type"
	TypeGroup     = "Kontaktgruppe"
	TypePoint     = "Kontaktpunkt"
)

// headerIndex maps a sheet's header row onto cols: index i of the result is
// the column number of cols[i] (-1: absent). Unknown headers are refused
// (a misspelt "Søgord" would otherwise drop every keyword in silence), as
// are repeated ones and missing required ones.
func headerIndex(sheet string, header []string, cols []column, extra ...string) ([]int, []int, []RowError) {
	idx := make([]int, len(cols))
	for i := range idx {
		idx[i] = -1
	}
	extraIdx := make([]int, len(extra))
	for i := range extraIdx {
		extraIdx[i] = -1
	}
	var errs []RowError
	for ci, h := range header {
		if h == "" {
			continue
		}
		ref := cellName(ci, 1)
		match := -1
		for i, c := range cols {
			if strings.EqualFold(h, c.Header) || slices.ContainsFunc(c.Aliases, func(a string) bool { return strings.EqualFold(h, a) }) {
				match = i
				break
			}
		}
		if match < 0 {
			if xi := slices.IndexFunc(extra, func(x string) bool { return strings.EqualFold(x, h) }); xi >= 0 {
				if extraIdx[xi] >= 0 {
					errs = append(errs, RowError{Sheet: sheet, Row: 1, Cell: ref, Column: h, Code: CodeBadHeader, Message: "the column " + h + " appears twice"})
				}
				extraIdx[xi] = ci
				continue
			}
			errs = append(errs, RowError{Sheet: sheet, Row: 1, Cell: ref, Column: h, Code: CodeBadHeader,
				Message: "unknown column \"" + truncate(h, 60) + "\"; the columns are: " + headerList(cols, extra)})
			continue
		}
		if idx[match] >= 0 {
			errs = append(errs, RowError{Sheet: sheet, Row: 1, Cell: ref, Column: cols[match].Header, Code: CodeBadHeader, Message: "the column " + cols[match].Header + " appears twice"})
			continue
		}
		idx[match] = ci
	}
	for i, c := range cols {
		if c.Required && idx[i] < 0 {
			errs = append(errs, RowError{Sheet: sheet, Row: 1, Column: c.Header, Code: CodeBadHeader, Message: "the required column " + c.Header + " is missing"})
		}
	}
	for i, x := range extra {
		if extraIdx[i] < 0 {
			errs = append(errs, RowError{Sheet: sheet, Row: 1, Column: x, Code: CodeBadHeader, Message: "the required column " + x + " is missing"})
		}
	}
	return idx, extraIdx, errs
}

func headerList(cols []column, extra []string) string {
	hs := append([]string{}, extra...)
	for _, c := range cols {
		hs = append(hs, c.Header)
	}
	return strings.Join(hs, ", ")
}

func cellName(col0, line int) string {
	// A1 names without excelize's error path: columns are bounded by
	// Limits.MaxColumns.
	n := col0 + 1
	var b []byte
	for n > 0 {
		n--
		b = append([]byte{byte('A' + n%26)}, b...)
		n /= 26
	}
	return string(b) + itoa(line)
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return string(b[i:])
}
