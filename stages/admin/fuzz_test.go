package admin

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
)

// checkImport is the fuzzers' oracle: an import never panics, refuses only
// with the package's codes, and when it succeeds, exporting and importing
// again changes nothing (in both formats).
func checkImport(t *testing.T, data []byte, format Format) {
	r := baseRegistry()
	im := newTestImporter(t, r)
	res, err := im.Import(context.Background(), orgA, "fuzz", data, format, false)
	if err != nil {
		var ie *ImportError
		var ae *Error
		switch {
		case errors.As(err, &ie):
			if len(ie.Errors) == 0 {
				t.Fatal("ImportError without errors")
			}
			for _, e := range ie.Errors {
				if _, ok := codeStatus[e.Code]; !ok {
					t.Fatalf("row error with an unlisted code: %+v", e)
				}
			}
		case errors.As(err, &ae):
			if _, ok := codeStatus[ae.Code]; !ok {
				t.Fatalf("error with an unlisted code: %+v", ae)
			}
		default:
			t.Fatalf("untyped error: %v", err)
		}
		if len(r.applied) != 0 {
			t.Fatal("a refused import wrote")
		}
		return
	}
	if res.Written != res.Groups.Created+res.Groups.Updated+res.Points.Created+res.Points.Updated {
		t.Fatalf("counts do not add up: %+v", res)
	}
	for _, f := range []Format{FormatXLSX, FormatCSV} {
		var buf bytes.Buffer
		if err := Export(&buf, r, orgA, f); err != nil {
			t.Fatal(err)
		}
		again, err := im.Import(context.Background(), orgA, "fuzz", buf.Bytes(), "", false)
		if err != nil {
			t.Fatalf("re-import of the %s export: %v", f, err)
		}
		if again.Written != 0 {
			t.Fatalf("export (%s) -> import is not a no-op: %+v", f, again)
		}
	}
}

func FuzzImportCSV(f *testing.F) {
	hdr := "Type," + strings.Join(pointHeader, ",") + "\n"
	f.Add([]byte(hdr + "Kontaktgruppe,g1,,Børn,a;b,,,,,Ja,Nej,Ja,,,,,\nKontaktpunkt,p1,g1,=Pas,'=x;-y,01.02,A1,5798000000001,12,ja,,x,T,\"multi\nline\",,,sysA\n"))
	f.Add([]byte("Type;ID;Navn\nKontaktpunkt;p1;'''@\n"))
	f.Add([]byte(hdr + "Kontaktgruppe,a,b,A\nKontaktgruppe,b,a,B\n"))
	f.Add([]byte("\xEF\xBB\xBFType,ID,Navn,Søgeord\nKontaktpunkt,p1,\"a\"\"b\",\" x ; ;y\"\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		checkImport(t, data, FormatCSV)
	})
}

func FuzzImportXLSX(f *testing.F) {
	f.Add(xlsx(f, map[string][][]string{
		SheetGroups: {groupHeader, group("g1", "", "Børn")},
		SheetPoints: {pointHeader, point("p1", "g1", "Pas", "Søgeord", "-a;@b", "KLE", "01.02", "Modtagersystem", "sysA")},
	}))
	f.Add(xlsx(f, map[string][][]string{SheetPoints: {{"ID", "Navn"}, {"p1", "'=x"}}}))
	f.Fuzz(func(t *testing.T, data []byte) {
		checkImport(t, data, "")
	})
}
