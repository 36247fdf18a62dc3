package admin

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/xuri/excelize/v2"

	"github.com/memoflow/memoflow/schemas/registry"
)

const (
	orgA = "12345678"
	orgB = "87654321"
)

var pointHeader = []string{"ID", "Parent ID", "Navn", "Søgeord", "KLE", "FORM", "EAN/GLN", "SOR",
	"Synlig for borgere", "Synlig for virksomheder", "Synlig for myndigheder",
	"Informationsfelt 1 titel", "Informationsfelt 1 tekst", "Informationsfelt 2 titel", "Informationsfelt 2 tekst", "Modtagersystem"}

var groupHeader = []string{"ID", "Parent ID", "Navn", "Søgeord", "Synlig for borgere", "Synlig for virksomheder", "Synlig for myndigheder"}

// xlsx builds a workbook: sheet name -> rows (the first is the header).
func xlsx(t testing.TB, sheets map[string][][]string) []byte {
	t.Helper()
	f := excelize.NewFile()
	first := true
	names := make([]string, 0, len(sheets))
	for n := range sheets {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, name := range names {
		if first {
			if err := f.SetSheetName("Sheet1", name); err != nil {
				t.Fatal(err)
			}
			first = false
		} else if _, err := f.NewSheet(name); err != nil {
			t.Fatal(err)
		}
		for i, row := range sheets[name] {
			vals := make([]any, len(row))
			for j, c := range row {
				vals[j] = c
			}
			ref, _ := excelize.CoordinatesToCellName(1, i+1)
			if err := f.SetSheetRow(name, ref, &vals); err != nil {
				t.Fatal(err)
			}
		}
	}
	var buf bytes.Buffer
	if _, err := f.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// point returns a point row with the header's 16 columns.
func point(id, parent, name string, more ...string) []string {
	r := make([]string, len(pointHeader))
	r[0], r[1], r[2] = id, parent, name
	for i := 0; i+1 < len(more); i += 2 {
		r[slices.Index(pointHeader, more[i])] = more[i+1]
	}
	return r
}

func group(id, parent, name string) []string {
	return []string{id, parent, name, "", "Ja", "Nej", "Ja"}
}

func baseRegistry() *memRegistry {
	return newMemRegistry(
		&registry.Org{CVR: orgA, Name: "Kommune A", Type: registry.OrgAuthority, Setup: 1},
		&registry.Org{CVR: orgB, Name: "Styrelse B", Type: registry.OrgAuthority, Setup: 1},
		&registry.System{ID: "sysA", Org: orgA, Name: "Fagsystem A", SysKind: registry.SystemRecipient, Protocol: registry.RestPull, MemoVersion: 11, Role: registry.RoleRegular},
		&registry.System{ID: "sysB", Org: orgB, Name: "Fagsystem B", SysKind: registry.SystemRecipient, Protocol: registry.RestPull, MemoVersion: 11, Role: registry.RoleRegular},
		&registry.System{ID: "mailbox", Name: "Mailbox provider", SysKind: registry.SystemMailbox, Protocol: registry.RestPull, MemoVersion: 12},
		&registry.ContactGroup{ID: "gB", Org: orgB, Name: "B's group"},
		&registry.ContactPoint{ID: "pB", Org: orgB, Name: "B's point"},
	)
}

func newTestImporter(t testing.TB, r *memRegistry) *Importer {
	t.Helper()
	im, err := NewImporter(r, r, DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	return im
}

type wantErr struct {
	sheet  string
	row    int
	column string
	code   string
}

func importErrors(t *testing.T, err error) []wantErr {
	t.Helper()
	var ie *ImportError
	if !errors.As(err, &ie) {
		t.Fatalf("err = %v, want an *ImportError", err)
	}
	out := make([]wantErr, len(ie.Errors))
	for i, e := range ie.Errors {
		if e.Message == "" {
			t.Errorf("error %+v has no message", e)
		}
		out[i] = wantErr{e.Sheet, e.Row, e.Column, e.Code}
	}
	return out
}

func sameErrors(t *testing.T, got, want []wantErr) {
	t.Helper()
	key := func(w wantErr) string { return fmt.Sprintf("%s|%03d|%s|%s", w.sheet, w.row, w.column, w.code) }
	g := make([]string, len(got))
	for i, e := range got {
		g[i] = key(e)
	}
	w := make([]string, len(want))
	for i, e := range want {
		w[i] = key(e)
	}
	slices.Sort(g)
	slices.Sort(w)
	if !slices.Equal(g, w) {
		t.Errorf("errors:\n got  %q\n want %q", g, w)
	}
}

// TestImportBadRows: a sheet with good and bad rows imports nothing and
// reports every error with its sheet, row, column and code.
func TestImportBadRows(t *testing.T) {
	r := baseRegistry()
	before := r.len()
	data := xlsx(t, map[string][][]string{
		SheetGroups: {
			groupHeader,
			group("g1", "", "Børn og unge"),
			group("g2", "g1", ""),                           // row 3: no name
			group("g 3", "", "Bad id"),                      // row 4: bad id
			group("g1", "", "Twice"),                        // row 5: duplicate id
			{"g5", "", "Bad vis", "", "Måske", "Nej", "Ja"}, // row 6: bad yes/no
		},
		SheetPoints: {
			pointHeader,
			point("p1", "g1", "Pas", "KLE", "01.02", "Modtagersystem", "sysA"),
			point("p2", "g1", "Bad KLE", "KLE", "1.2"),               // row 3
			point("p3", "g1", "Bad EAN", "EAN/GLN", "123"),           // row 4
			point("p4", "nope", "Dangling"),                          // row 5
			point("p5", "p1", "Parent is a point"),                   // row 6
			point("p6", "", "Unknown system", "Modtagersystem", "x"), // row 7
			point("p7", "", "Other org's system", "Modtagersystem", "sysB"),
			point("pB", "", "Other org's id"),                     // row 9
			point("g1", "", "A group's id"),                       // row 10
			point("p10", "", "", "Informationsfelt 1 tekst", "x"), // row 11: no name, text without title
			point("p11", "gB", "Other org's group"),               // row 12
			point("p12", "", "Bad FORM", "FORM", "abc"),           // row 13
			point("p13", "", "Bad SOR", "SOR", "12x"),             // row 14
		},
	})
	_, err := newTestImporter(t, r).Import(context.Background(), orgA, "ann", data, "", false)
	sameErrors(t, importErrors(t, err), []wantErr{
		{SheetGroups, 3, "Navn", CodeMissingField},
		{SheetGroups, 4, "ID", CodeBadValue},
		{SheetGroups, 5, "ID", CodeDuplicateID},
		{SheetGroups, 6, "Synlig for borgere", CodeBadValue},
		{SheetPoints, 3, "KLE", CodeBadCode},
		{SheetPoints, 4, "EAN/GLN", CodeBadCode},
		{SheetPoints, 5, "Parent ID", CodeParentUnknown},
		{SheetPoints, 6, "Parent ID", CodeParentNotGroup},
		{SheetPoints, 7, "Modtagersystem", CodeUnknownSystem},
		{SheetPoints, 8, "Modtagersystem", CodeUnknownSystem},
		{SheetPoints, 9, "ID", CodeForeignID},
		{SheetPoints, 10, "ID", CodeDuplicateID},
		{SheetPoints, 11, "Navn", CodeMissingField},
		{SheetPoints, 11, "Informationsfelt 1 titel", CodeMissingField},
		{SheetPoints, 12, "Parent ID", CodeParentUnknown},
		{SheetPoints, 13, "FORM", CodeBadCode},
		{SheetPoints, 14, "SOR", CodeBadCode},
	})
	if len(r.applied) != 0 || r.len() != before {
		t.Fatalf("a rejected import wrote %d batches", len(r.applied))
	}
	// Cells are named so a user finds them in Excel.
	var ie *ImportError
	errors.As(err, &ie)
	for _, e := range ie.Errors {
		if e.Sheet == SheetPoints && e.Row == 3 && e.Cell != "E3" {
			t.Errorf("KLE error cell = %q, want E3", e.Cell)
		}
	}
}

func TestImportCycles(t *testing.T) {
	r := baseRegistry()
	// An existing group of orgA whose parent the file points into a cycle.
	r.m["cg/top"] = &registry.ContactGroup{ID: "top", Org: orgA, Name: "Top"}
	data := xlsx(t, map[string][][]string{
		SheetGroups: {
			groupHeader,
			group("a", "b", "A"),                   // 2
			group("b", "c", "B"),                   // 3
			group("c", "a", "C"),                   // 4
			group("d", "d", "Self"),                // 5
			group("e", "top", "Fine"),              // 6
			group("top", "e", "Top moved under e"), // 7: e -> top -> e
		},
	})
	_, err := newTestImporter(t, r).Import(context.Background(), orgA, "ann", data, "", false)
	sameErrors(t, importErrors(t, err), []wantErr{
		{SheetGroups, 2, "Parent ID", CodeCycle},
		{SheetGroups, 3, "Parent ID", CodeCycle},
		{SheetGroups, 4, "Parent ID", CodeCycle},
		{SheetGroups, 5, "Parent ID", CodeCycle},
		{SheetGroups, 6, "Parent ID", CodeCycle},
		{SheetGroups, 7, "Parent ID", CodeCycle},
	})
	var ie *ImportError
	errors.As(err, &ie)
	if !strings.Contains(ie.Errors[0].Message, "a → b → c → a") {
		t.Errorf("cycle message %q does not spell the cycle", ie.Errors[0].Message)
	}
}

func TestImportRowLimit(t *testing.T) {
	for _, n := range []int{2000, 2001} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			r := baseRegistry()
			points := [][]string{pointHeader}
			groups := [][]string{groupHeader}
			for i := range n {
				points = append(points, point(fmt.Sprintf("p%05d", i), "", fmt.Sprintf("Punkt %d", i)))
				groups = append(groups, group(fmt.Sprintf("g%05d", i), "", fmt.Sprintf("Gruppe %d", i)))
			}
			data := xlsx(t, map[string][][]string{SheetPoints: points, SheetGroups: groups})
			res, err := newTestImporter(t, r).Import(context.Background(), orgA, "ann", data, "", false)
			if n == 2000 {
				if err != nil {
					t.Fatal(err)
				}
				if res.Points.Created != 2000 || res.Groups.Created != 2000 || res.Written != 4000 {
					t.Fatalf("result %+v", res)
				}
				return
			}
			sameErrors(t, importErrors(t, err), []wantErr{
				{SheetGroups, 2002, "", CodeTooManyRows},
				{SheetPoints, 2002, "", CodeTooManyRows},
			})
			if len(r.applied) != 0 {
				t.Fatal("over-limit import wrote")
			}
		})
	}
}

func TestImportMergeByID(t *testing.T) {
	r := baseRegistry()
	r.m["cg/g1"] = &registry.ContactGroup{ID: "g1", Org: orgA, Name: "Old group", Visibility: registry.VisibleAll}
	r.m["cp/p1"] = &registry.ContactPoint{ID: "p1", ParentID: "g1", Org: orgA, Name: "Old name", Visibility: registry.VisibleCitizens}
	r.m["cp/p2"] = &registry.ContactPoint{ID: "p2", Org: orgA, Name: "Not in the file"}
	r.m["cp/p3"] = &registry.ContactPoint{ID: "p3", Org: orgA, Name: "Same", Keywords: []string{"a", "b"}, Visibility: registry.VisibleCitizens}
	data := xlsx(t, map[string][][]string{
		SheetGroups: {groupHeader, {"g1", "", "Old group", "", "Ja", "Ja", "Ja"}},
		SheetPoints: {
			pointHeader,
			point("p1", "g1", "New name", "Synlig for borgere", "Ja"),
			point("p3", "", "Same", "Søgeord", "a; b", "Synlig for borgere", "ja"),
			point("p4", "g1", "New point", "Søgeord", "Pas;Kørekort", "Modtagersystem", "sysA"),
		},
	})
	res, err := newTestImporter(t, r).Import(context.Background(), orgA, "ann", data, "", false)
	if err != nil {
		t.Fatal(err)
	}
	want := Result{Organisation: orgA, Format: FormatXLSX, Groups: Counts{Rows: 1, Unchanged: 1}, Points: Counts{Rows: 3, Created: 1, Updated: 1, Unchanged: 1}, Written: 2}
	res.changes, res.rows = nil, nil
	if fmt.Sprint(*res) != fmt.Sprint(want) {
		t.Fatalf("result %+v, want %+v", *res, want)
	}
	p1, _ := r.Get("cp/p1")
	if p1.(*registry.ContactPoint).Name != "New name" {
		t.Errorf("p1 not updated: %+v", p1)
	}
	if _, ok := r.Get("cp/p2"); !ok {
		t.Error("a point the file does not mention was deleted")
	}
	p4, _ := r.Get("cp/p4")
	if got := p4.(*registry.ContactPoint); !slices.Equal(got.Keywords, []string{"Pas", "Kørekort"}) || got.System != "sysA" || got.Org != orgA {
		t.Errorf("p4 = %+v", got)
	}
	for _, c := range r.applied[0] {
		if c.Actor != "ann" || c.Time.IsZero() {
			t.Errorf("change %s: actor %q time %v", c.Key, c.Actor, c.Time)
		}
	}
}

// TestImportParentsFirst: groups are written parents before children
// whatever the sheet's order.
func TestImportParentsFirst(t *testing.T) {
	r := baseRegistry()
	data := xlsx(t, map[string][][]string{SheetGroups: {groupHeader, group("c", "b", "C"), group("b", "a", "B"), group("a", "", "A")}})
	if _, err := newTestImporter(t, r).Import(context.Background(), orgA, "ann", data, "", false); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, c := range r.applied[0] {
		keys = append(keys, c.Key)
	}
	if !slices.Equal(keys, []string{"cg/a", "cg/b", "cg/c"}) {
		t.Fatalf("write order %v", keys)
	}
}

func TestImportDryRun(t *testing.T) {
	r := baseRegistry()
	data := xlsx(t, map[string][][]string{SheetPoints: {pointHeader, point("p1", "", "Pas")}})
	res, err := newTestImporter(t, r).Import(context.Background(), orgA, "ann", data, "", true)
	if err != nil {
		t.Fatal(err)
	}
	if !res.DryRun || res.Points.Created != 1 || res.Written != 0 || len(r.applied) != 0 {
		t.Fatalf("dry run %+v wrote %d", res, len(r.applied))
	}
}

// tricky are values that survive export -> import only if escaping and
// lists are right.
func trickyRegistry() *memRegistry {
	r := baseRegistry()
	r.m["cg/top"] = &registry.ContactGroup{ID: "top", Org: orgA, Name: "=HYPERLINK(\"http://x\")", Keywords: []string{"+45", "@home"}, Visibility: registry.VisibleCitizens | registry.VisibleAuthorities}
	r.m["cg/sub"] = &registry.ContactGroup{ID: "sub", ParentID: "top", Org: orgA, Name: "Æblegrød og ørreder", Visibility: registry.VisibleAll}
	r.m["cp/p1"] = &registry.ContactPoint{ID: "p1", ParentID: "sub", Org: orgA, Name: "'=already quoted", Keywords: []string{"-minus", "Pas", "kørekort"},
		KLE: []string{"01", "01.02", "01.02.03"}, FORM: []string{"G01.02", "A1"}, EAN: []string{"5798000000001"}, SOR: []string{"123456789012345678"},
		Visibility: registry.VisibleCompanies, Info: []registry.InfoField{{Title: "Barnets CPR-nummer", Text: "Skriv\nbarnets CPR"}, {Title: "@title", Text: "\ttab first"}}, System: "sysA"}
	r.m["cp/p2"] = &registry.ContactPoint{ID: "p2", Org: orgA, Name: "Plain"}
	return r
}

func TestExportImportRoundTrip(t *testing.T) {
	for _, format := range []Format{FormatXLSX, FormatCSV} {
		t.Run(string(format), func(t *testing.T) {
			r := trickyRegistry()
			var buf bytes.Buffer
			if err := Export(&buf, r, orgA, format); err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(buf.Bytes(), []byte("B's")) {
				t.Fatal("export holds another organisation's structure")
			}
			res, err := newTestImporter(t, r).Import(context.Background(), orgA, "ann", buf.Bytes(), "", false)
			if err != nil {
				t.Fatal(err)
			}
			if res.Written != 0 || res.Groups.Unchanged != 2 || res.Points.Unchanged != 2 {
				t.Fatalf("export -> import is not a no-op: %+v", res)
			}
			// Into an empty registry (with the systems) the same file
			// recreates the same structure.
			empty := baseRegistry()
			if _, err := newTestImporter(t, empty).Import(context.Background(), orgA, "ann", buf.Bytes(), "", false); err != nil {
				t.Fatal(err)
			}
			for _, key := range []string{"cg/top", "cg/sub", "cp/p1", "cp/p2"} {
				a, _ := r.Get(key)
				b, ok := empty.Get(key)
				if !ok {
					t.Fatalf("%s not imported", key)
				}
				switch x := a.(type) {
				case *registry.ContactGroup:
					if !groupEqual(x, b.(*registry.ContactGroup)) {
						t.Errorf("%s: %+v != %+v", key, x, b)
					}
				case *registry.ContactPoint:
					if !pointEqual(x, b.(*registry.ContactPoint)) {
						t.Errorf("%s: %+v != %+v", key, x, b)
					}
				}
			}
		})
	}
}

// TestExportEscapesFormulas: no exported cell starts with a formula
// trigger, and XLSX cells are text, never formulas.
func TestExportEscapesFormulas(t *testing.T) {
	r := trickyRegistry()
	var buf bytes.Buffer
	if err := Export(&buf, r, orgA, FormatXLSX); err != nil {
		t.Fatal(err)
	}
	f, err := excelize.OpenReader(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, sheet := range []string{SheetGroups, SheetPoints} {
		rows, _ := f.GetRows(sheet)
		for i, row := range rows {
			for j, c := range row {
				ref, _ := excelize.CoordinatesToCellName(j+1, i+1)
				if fml, _ := f.GetCellFormula(sheet, ref); fml != "" {
					t.Errorf("%s %s is a formula %q", sheet, ref, fml)
				}
				if c != "" && strings.ContainsRune("=+-@\t\r", rune(c[0])) {
					t.Errorf("%s %s = %q starts with a formula trigger", sheet, ref, c)
				}
			}
		}
	}
	buf.Reset()
	if err := Export(&buf, r, orgA, FormatCSV); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(buf.Bytes(), []byte(`"'=HYPERLINK(""http://x"")"`)) || !bytes.Contains(buf.Bytes(), []byte("''=already quoted")) {
		t.Errorf("CSV not escaped:\n%s", buf.String())
	}
}

func TestEscapeInverse(t *testing.T) {
	for _, s := range []string{"", "a", "'", "''", "=", "'=", "''=x", "-1", "'-1", "@", "+", "\tx", "'a", "a=b"} {
		if got := unescapeCell(escapeCell(s)); got != s {
			t.Errorf("unescape(escape(%q)) = %q", s, got)
		}
		if e := escapeCell(s); e != "" && strings.ContainsRune(formulaTriggers, rune(e[0])) {
			t.Errorf("escape(%q) = %q starts with a trigger", s, e)
		}
	}
}

func TestImportFormula(t *testing.T) {
	r := baseRegistry()
	data := xlsx(t, map[string][][]string{SheetPoints: {pointHeader, point("p1", "", "Pas")}})
	f, _ := excelize.OpenReader(bytes.NewReader(data))
	if err := f.SetCellFormula(SheetPoints, "C2", `CONCAT("P","as")`); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	f.WriteTo(&buf)
	_, err := newTestImporter(t, r).Import(context.Background(), orgA, "ann", buf.Bytes(), "", false)
	got := importErrors(t, err)
	if !slices.Contains(got, wantErr{SheetPoints, 2, "Navn", CodeFormula}) {
		t.Fatalf("errors %v lack the formula", got)
	}
}

func TestImportHostileFiles(t *testing.T) {
	lim := DefaultLimits()
	// A zip bomb: one part of 100 MB of zeros compresses to ~100 kB.
	var bomb bytes.Buffer
	zw := zip.NewWriter(&bomb)
	w, _ := zw.Create("xl/worksheets/sheet1.xml")
	zeros := make([]byte, 1<<20)
	for range 100 {
		w.Write(zeros)
	}
	zw.Close()
	// A row far below the sheet's end.
	far := func() []byte {
		// The stream writer writes the two rows only (the plain API would
		// materialise a million empty ones).
		f := excelize.NewFile()
		f.SetSheetName("Sheet1", SheetPoints)
		sw, err := f.NewStreamWriter(SheetPoints)
		if err != nil {
			t.Fatal(err)
		}
		h := make([]any, len(pointHeader))
		for i, c := range pointHeader {
			h[i] = c
		}
		sw.SetRow("A1", h)
		sw.SetRow("A1000000", []any{"p1"})
		if err := sw.Flush(); err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		f.WriteTo(&b)
		return b.Bytes()
	}()
	csvHeader := "Type," + strings.Join(pointHeader, ",") + "\n"
	for _, tc := range []struct {
		name string
		data []byte
		code string
	}{
		{"zip bomb", bomb.Bytes(), CodeFileTooLarge},
		{"too big", append([]byte("PK\x03\x04"), make([]byte, lim.MaxFileBytes)...), CodeFileTooLarge},
		{"row 1000000", far, CodeFileTooLarge},
		{"not a zip", []byte("PK\x03\x04garbage"), CodeBadFile},
		{"xls", []byte{0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1}, CodeUnknownFormat},
		{"empty", nil, CodeBadFile},
		{"latin-1 csv", []byte(csvHeader + "Kontaktpunkt,p1,,K\xf8benhavn\n"), CodeBadUTF8},
		{"control char", []byte(csvHeader + "Kontaktpunkt,p1,,A\x01B\n"), CodeBadUTF8},
		{"huge cell", []byte(csvHeader + "Kontaktpunkt,p1,," + strings.Repeat("x", lim.MaxCellBytes+1) + "\n"), CodeFileTooLarge},
		{"unknown header", []byte("Type,ID,Navn,Søgord\n"), CodeBadHeader},
		{"missing header", []byte("Type,Navn\n"), CodeBadHeader},
		{"bad quote", []byte(csvHeader + "Kontaktpunkt,\"p1\n"), CodeBadFile},
		{"no sheets", xlsx(t, map[string][][]string{"Vejledning": {{"hello"}}}), CodeSheetMissing},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := baseRegistry()
			_, err := newTestImporter(t, r).Import(context.Background(), orgA, "ann", tc.data, "", false)
			var ie *ImportError
			if !errors.As(err, &ie) || !ie.Has(tc.code) {
				t.Fatalf("err = %v, want code %s", err, tc.code)
			}
			if len(r.applied) != 0 {
				t.Fatal("a hostile file wrote")
			}
		})
	}
}

func TestImportCSV(t *testing.T) {
	r := baseRegistry()
	// Danish Excel's CSV: ';' separated, with a BOM; English headers work too.
	data := "\xEF\xBB\xBFType;ID;Parent ID;Name;Keywords;KLE;Visible to citizens;Recipient system\n" +
		"Kontaktgruppe;g1;;Børn;;;Ja;\n" +
		"Kontaktpunkt;p1;g1;Pas;pas, kørekort;01.02;ja;sysA\n" +
		"Kontaktgruppe;g2;;Bad;;01.02;Ja;\n" + // a group with a KLE code
		"Gruppe?;g3;;X;;;;\n"
	_, err := newTestImporter(t, r).Import(context.Background(), orgA, "ann", []byte(data), "", false)
	sameErrors(t, importErrors(t, err), []wantErr{
		{"CSV", 4, "KLE", CodeBadValue},
		{"CSV", 5, "Type", CodeBadValue},
	})
	good := strings.Join(strings.Split(data, "\n")[:3], "\n") + "\n"
	res, err := newTestImporter(t, r).Import(context.Background(), orgA, "ann", []byte(good), "", false)
	if err != nil {
		t.Fatal(err)
	}
	if res.Format != FormatCSV || res.Groups.Created != 1 || res.Points.Created != 1 {
		t.Fatalf("result %+v", res)
	}
	p1, _ := r.Get("cp/p1")
	if p := p1.(*registry.ContactPoint); p.Visibility != registry.VisibleCitizens || !slices.Equal(p.Keywords, []string{"pas, kørekort"}) {
		t.Errorf("p1 = %+v", p)
	}
}

func TestImportWriterFailure(t *testing.T) {
	r := baseRegistry()
	r.fail = errors.New("broker gone")
	data := xlsx(t, map[string][][]string{SheetPoints: {pointHeader, point("p1", "", "Pas")}})
	_, err := newTestImporter(t, r).Import(context.Background(), orgA, "ann", data, "", false)
	var e *Error
	if !errors.As(err, &e) || e.Code != CodeUnavailable {
		t.Fatalf("err = %v, want %s", err, CodeUnavailable)
	}
}

func TestImportTooLong(t *testing.T) {
	r := baseRegistry()
	many := strings.TrimSuffix(strings.Repeat("k;", 65), ";")
	data := xlsx(t, map[string][][]string{SheetPoints: {
		pointHeader,
		point("p1", "", strings.Repeat("x", 257)),
		point("p2", "", "ok", "Søgeord", many),
		point("p3", "", "ok", "Informationsfelt 1 titel", "t", "Informationsfelt 1 tekst", strings.Repeat("y", 4001)),
		// three faults, all reported
		point("p4", "", strings.Repeat("z", 300), "KLE", "x", "SOR", "1234567890123456789"),
		// at the limits: fine
		point("p5", "", strings.Repeat("n", 256), "Informationsfelt 2 titel", strings.Repeat("t", 256), "Informationsfelt 2 tekst", strings.Repeat("y", 4000)),
	}})
	_, err := newTestImporter(t, r).Import(context.Background(), orgA, "ann", data, "", false)
	sameErrors(t, importErrors(t, err), []wantErr{
		{SheetPoints, 2, "Navn", CodeTooLong},
		{SheetPoints, 3, "Søgeord", CodeTooLong},
		{SheetPoints, 4, "Informationsfelt 1 tekst", CodeTooLong},
		{SheetPoints, 5, "Navn", CodeTooLong},
		{SheetPoints, 5, "KLE", CodeBadCode},
		{SheetPoints, 5, "SOR", CodeBadCode},
	})
}

// batchRefuser refuses the second change as the registry Writer does.
type batchRefuser struct{ *memRegistry }

func (b batchRefuser) Write(ctx context.Context, cs ...registry.Change) error {
	return &registry.BatchError{Index: 1, Key: cs[1].Key, Err: &registry.Error{Code: registry.CodeUnknownEntity, Field: "system", Message: "gone meanwhile"}}
}

// TestImportWriterRefusal: a refusal of the Writer's own checks (the
// registry changed between validation and write) names the row.
func TestImportWriterRefusal(t *testing.T) {
	r := baseRegistry()
	im, _ := NewImporter(r, batchRefuser{r}, DefaultLimits())
	data := xlsx(t, map[string][][]string{SheetPoints: {pointHeader, point("p1", "", "A"), point("p2", "", "B", "Modtagersystem", "sysA")}})
	_, err := im.Import(context.Background(), orgA, "ann", data, "", false)
	sameErrors(t, importErrors(t, err), []wantErr{{SheetPoints, 3, "Modtagersystem", CodeRegistryInvalid}})
}

func TestHasFormulaElement(t *testing.T) {
	for s, want := range map[string]bool{
		`<c r="A1"><f>SUM(A2)</f><v>1</v></c>`:             true,
		`<c r="A1"><f t="shared" ref="A1:A3" si="0"/></c>`: true,
		`<x:c><x:f>1+1</x:f></x:c>`:                        true,
		`<c r="A1" t="s"><v>0</v></c><font/><fill>`:        false,
		`<c><is><t>&lt;f&gt; is text</t></is></c>`:         false,
		``: false, `<`: false, `<f`: true,
	} {
		if got := hasFormulaElement([]byte(s)); got != want {
			t.Errorf("%q: %v, want %v", s, got, want)
		}
	}
}

// TestImportEmptySheet: an empty sheet (no header, no rows) is no error;
// the other sheet imports.
func TestImportEmptySheet(t *testing.T) {
	r := baseRegistry()
	data := xlsx(t, map[string][][]string{SheetGroups: {}, SheetPoints: {pointHeader, point("p1", "", "Pas")}})
	res, err := newTestImporter(t, r).Import(context.Background(), orgA, "ann", data, "", false)
	if err != nil || res.Points.Created != 1 || res.Groups.Rows != 0 {
		t.Fatalf("%+v %v", res, err)
	}
}

// TestImportTypedCells: cells Excel stores as numbers or booleans read as
// their digits and as yes/no (an EAN typed as a number is not 5.798E+12).
func TestImportTypedCells(t *testing.T) {
	r := baseRegistry()
	data := xlsx(t, map[string][][]string{SheetPoints: {pointHeader, point("p1", "", "Pas")}})
	f, _ := excelize.OpenReader(bytes.NewReader(data))
	f.SetCellInt(SheetPoints, "G2", 5798000000001) // EAN/GLN
	f.SetCellInt(SheetPoints, "H2", 123456)        // SOR
	f.SetCellBool(SheetPoints, "I2", true)         // Synlig for borgere
	f.SetCellBool(SheetPoints, "J2", false)        // Synlig for virksomheder
	var buf bytes.Buffer
	f.WriteTo(&buf)
	if _, err := newTestImporter(t, r).Import(context.Background(), orgA, "ann", buf.Bytes(), "", false); err != nil {
		t.Fatal(err)
	}
	e, _ := r.Get("cp/p1")
	p := e.(*registry.ContactPoint)
	if !slices.Equal(p.EAN, []string{"5798000000001"}) || !slices.Equal(p.SOR, []string{"123456"}) || p.Visibility != registry.VisibleCitizens {
		t.Fatalf("typed cells read as %+v", p)
	}
}
