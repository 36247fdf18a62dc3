package admin

import (
	"bytes"
	"cmp"
	"encoding/csv"
	"fmt"
	"io"
	"maps"
	"slices"

	"github.com/xuri/excelize/v2"

	"github.com/memoflow/memoflow/schemas/registry"
)

// Structure is an organisation's contact structure in export order:
// groups parents first (then by ID), points by ID.
type Structure struct {
	Groups []*registry.ContactGroup
	Points []*registry.ContactPoint
}

// LoadStructure reads organisation org's groups and points from r.
func LoadStructure(r Reader, org string) Structure {
	var s Structure
	parentOf := map[string]string{}
	r.Each(registry.KindContactGroup, org, func(e registry.Entity) bool {
		g := e.(*registry.ContactGroup)
		s.Groups = append(s.Groups, g)
		parentOf[g.ID] = g.ParentID
		return true
	})
	r.Each(registry.KindContactPoint, org, func(e registry.Entity) bool {
		s.Points = append(s.Points, e.(*registry.ContactPoint))
		return true
	})
	depth := func(id string) int {
		d := 0
		for p := parentOf[id]; p != "" && d <= len(parentOf); p = parentOf[p] {
			d++
		}
		return d
	}
	depths := make(map[string]int, len(s.Groups))
	for _, g := range s.Groups {
		depths[g.ID] = depth(g.ID)
	}
	slices.SortFunc(s.Groups, func(a, b *registry.ContactGroup) int {
		return cmp.Or(cmp.Compare(depths[a.ID], depths[b.ID]), cmp.Compare(a.ID, b.ID))
	})
	slices.SortFunc(s.Points, func(a, b *registry.ContactPoint) int { return cmp.Compare(a.ID, b.ID) })
	return s
}

func rowCells(cols []column, e entityRow) []string {
	out := make([]string, len(cols))
	for i, c := range cols {
		out[i] = escapeCell(c.get(e))
	}
	return out
}

// WriteXLSX writes s as a workbook in the import layout: sheets
// Kontaktgrupper and Kontaktpunkter, a bold frozen header row, Ja/Nej
// drop-downs on the yes/no columns for the sheet's 2000 rows. Every cell
// is a text cell (never a formula), and text a spreadsheet would take for
// a formula is escaped (escapeCell), so the file can be opened safely and
// imported again unchanged.
func WriteXLSX(w io.Writer, s Structure) error {
	groups := make([]entityRow, len(s.Groups))
	for i, g := range s.Groups {
		groups[i] = entityRow{g: g}
	}
	points := make([]entityRow, len(s.Points))
	for i, p := range s.Points {
		points[i] = entityRow{p: p}
	}
	return writeWorkbook(w, []xlsxSheet{{SheetGroups, GroupColumns, groups}, {SheetPoints, PointColumns, points}}, nil)
}

// xlsxSheet is one sheet of an exported workbook.
type xlsxSheet struct {
	name string
	cols []column
	rows []entityRow
}

// yesNoFields are the columns that get a Ja/Nej drop-down.
var yesNoFields = map[string]bool{"visibility": true, "active": true}

// listsSheet holds drop-down lists too long to inline (Excel allows 255
// characters in a list validation); the import ignores it.
const listsSheet = "Lister"

// writeWorkbook writes sheets in the import layout; lists are further
// drop-downs by column field (values from listsSheet).
func writeWorkbook(w io.Writer, sheets []xlsxSheet, lists map[string][]string) error {
	f := excelize.NewFile()
	defer f.Close()
	bold, err := f.NewStyle(&excelize.Style{Font: &excelize.Font{Bold: true}, Fill: excelize.Fill{Type: "pattern", Pattern: 1, Color: []string{"DDEBF7"}}})
	if err != nil {
		return err
	}
	text, err := f.NewStyle(&excelize.Style{NumFmt: 49}) // "@": Excel keeps what is typed as text (KLE 01.02 stays 01.02)
	if err != nil {
		return err
	}
	listRef := map[string]string{}
	if len(lists) > 0 {
		if _, err := f.NewSheet(listsSheet); err != nil {
			return err
		}
		col := 0
		for _, field := range slices.Sorted(maps.Keys(lists)) {
			vals := lists[field]
			if len(vals) == 0 {
				continue
			}
			col++
			name, _ := excelize.ColumnNumberToName(col)
			for i, v := range vals {
				if err := f.SetCellStr(listsSheet, fmt.Sprintf("%s%d", name, i+1), escapeCell(v)); err != nil {
					return err
				}
			}
			listRef[field] = fmt.Sprintf("%s!$%s$1:$%s$%d", listsSheet, name, name, len(vals))
		}
		if err := f.SetSheetVisible(listsSheet, false); err != nil {
			return err
		}
	}
	for si, sh := range sheets {
		if si == 0 {
			if err := f.SetSheetName("Sheet1", sh.name); err != nil {
				return err
			}
		} else if _, err := f.NewSheet(sh.name); err != nil {
			return err
		}
		hdr := make([]any, len(sh.cols))
		for i, c := range sh.cols {
			hdr[i] = c.Header
		}
		if err := f.SetSheetRow(sh.name, "A1", &hdr); err != nil {
			return err
		}
		last, _ := excelize.ColumnNumberToName(len(sh.cols))
		if err := f.SetCellStyle(sh.name, "A1", last+"1", bold); err != nil {
			return err
		}
		if err := f.SetColStyle(sh.name, "A:"+last, text); err != nil {
			return err
		}
		if err := f.SetColWidth(sh.name, "A", last, 22); err != nil {
			return err
		}
		if err := f.SetPanes(sh.name, &excelize.Panes{Freeze: true, YSplit: 1, TopLeftCell: "A2", ActivePane: "bottomLeft"}); err != nil {
			return err
		}
		for i, row := range sh.rows {
			cells := rowCells(sh.cols, row)
			vals := make([]any, len(cells))
			for j, c := range cells {
				vals[j] = c
			}
			ref, _ := excelize.CoordinatesToCellName(1, i+2)
			if err := f.SetSheetRow(sh.name, ref, &vals); err != nil {
				return err
			}
		}
		for i, c := range sh.cols {
			ref, list := listRef[c.Field]
			if !yesNoFields[c.Field] && !list {
				continue
			}
			col, _ := excelize.ColumnNumberToName(i + 1)
			dv := excelize.NewDataValidation(true)
			dv.Sqref = fmt.Sprintf("%s2:%s%d", col, col, DefaultLimits().MaxRows+1)
			if list {
				dv.SetSqrefDropList(ref)
			} else if err := dv.SetDropList([]string{Yes, No}); err != nil {
				return err
			}
			if err := f.AddDataValidation(sh.name, dv); err != nil {
				return err
			}
		}
	}
	_, err = f.WriteTo(w)
	return err
}

// WriteCSV writes s as one CSV file: Type, then the point sheet's columns
// (a group row leaves the point-only cells empty). UTF-8 with a BOM, so
// Excel opens Danish letters right; ',' separated; cells escaped as in
// WriteXLSX.
func WriteCSV(w io.Writer, s Structure) error {
	var buf bytes.Buffer
	buf.WriteString("\xEF\xBB\xBF")
	cw := csv.NewWriter(&buf)
	hdr := []string{CSVTypeHeader}
	for _, c := range PointColumns {
		hdr = append(hdr, c.Header)
	}
	if err := cw.Write(hdr); err != nil {
		return err
	}
	gpos := make([]int, len(GroupColumns))
	for i, gc := range GroupColumns {
		gpos[i] = slices.IndexFunc(PointColumns, func(pc column) bool { return pc.Header == gc.Header })
	}
	for _, g := range s.Groups {
		rec := make([]string, 1+len(PointColumns))
		rec[0] = TypeGroup
		for i, c := range rowCells(GroupColumns, entityRow{g: g}) {
			rec[1+gpos[i]] = c
		}
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	for _, p := range s.Points {
		if err := cw.Write(append([]string{TypePoint}, rowCells(PointColumns, entityRow{p: p})...)); err != nil {
			return err
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return err
	}
	_, err := w.Write(buf.Bytes())
	return err
}

// Export writes organisation org's contact structure in format.
func Export(w io.Writer, r Reader, org string, format Format) error {
	s := LoadStructure(r, org)
	switch format {
	case FormatXLSX, "":
		return WriteXLSX(w, s)
	case FormatCSV:
		return WriteCSV(w, s)
	}
	return fieldErr(CodeBadParameter, "format", "%q is neither xlsx nor csv", format)
}
