package admin

import (
	"bytes"
	"cmp"
	"encoding/csv"
	"fmt"
	"io"
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
	f := excelize.NewFile()
	defer f.Close()
	if err := f.SetSheetName("Sheet1", SheetGroups); err != nil {
		return err
	}
	if _, err := f.NewSheet(SheetPoints); err != nil {
		return err
	}
	bold, err := f.NewStyle(&excelize.Style{Font: &excelize.Font{Bold: true}, Fill: excelize.Fill{Type: "pattern", Pattern: 1, Color: []string{"DDEBF7"}}})
	if err != nil {
		return err
	}
	text, err := f.NewStyle(&excelize.Style{NumFmt: 49}) // "@": Excel keeps what is typed as text (KLE 01.02 stays 01.02)
	if err != nil {
		return err
	}
	write := func(sheet string, cols []column, n int, row func(i int) entityRow) error {
		hdr := make([]any, len(cols))
		for i, c := range cols {
			hdr[i] = c.Header
		}
		if err := f.SetSheetRow(sheet, "A1", &hdr); err != nil {
			return err
		}
		last, _ := excelize.ColumnNumberToName(len(cols))
		if err := f.SetCellStyle(sheet, "A1", last+"1", bold); err != nil {
			return err
		}
		if err := f.SetColStyle(sheet, "A:"+last, text); err != nil {
			return err
		}
		if err := f.SetColWidth(sheet, "A", last, 22); err != nil {
			return err
		}
		if err := f.SetPanes(sheet, &excelize.Panes{Freeze: true, YSplit: 1, TopLeftCell: "A2", ActivePane: "bottomLeft"}); err != nil {
			return err
		}
		for i := 0; i < n; i++ {
			cells := rowCells(cols, row(i))
			vals := make([]any, len(cells))
			for j, c := range cells {
				vals[j] = c
			}
			ref, _ := excelize.CoordinatesToCellName(1, i+2)
			if err := f.SetSheetRow(sheet, ref, &vals); err != nil {
				return err
			}
		}
		for i, c := range cols {
			if c.Field != "visibility" {
				continue
			}
			col, _ := excelize.ColumnNumberToName(i + 1)
			dv := excelize.NewDataValidation(true)
			dv.Sqref = fmt.Sprintf("%s2:%s%d", col, col, DefaultLimits().MaxRows+1)
			if err := dv.SetDropList([]string{Yes, No}); err != nil {
				return err
			}
			if err := f.AddDataValidation(sheet, dv); err != nil {
				return err
			}
		}
		return nil
	}
	if err := write(SheetGroups, GroupColumns, len(s.Groups), func(i int) entityRow { return entityRow{g: s.Groups[i]} }); err != nil {
		return err
	}
	if err := write(SheetPoints, PointColumns, len(s.Points), func(i int) entityRow { return entityRow{p: s.Points[i]} }); err != nil {
		return err
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
