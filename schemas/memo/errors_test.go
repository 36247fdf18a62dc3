package memo

import (
	"bytes"
	"flag"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite docs/memo-errors.md from the catalogue")

// TestCatalogueComplete: every Code constant has one catalogue row, every
// row is a declared constant used by the package, and no code is made up
// on the fly with Code("...").
func TestCatalogueComplete(t *testing.T) {
	fset := token.NewFileSet()
	files, _ := filepath.Glob("*.go")
	declared := map[string]string{} // const name -> value
	used := map[string]int{}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(af, func(n ast.Node) bool {
			switch x := n.(type) {
			case *ast.ValueSpec:
				if id, ok := x.Type.(*ast.Ident); ok && id.Name == "Code" {
					for i, name := range x.Names {
						lit, ok := x.Values[i].(*ast.BasicLit)
						if !ok {
							t.Errorf("%s: Code constant %s is not a string literal", f, name.Name)
							continue
						}
						v, _ := strconv.Unquote(lit.Value)
						declared[name.Name] = v
					}
					return false
				}
			case *ast.CallExpr:
				if id, ok := x.Fun.(*ast.Ident); ok && id.Name == "Code" {
					t.Errorf("%s: %s: codes must be catalogue constants, not Code(...) conversions", f, fset.Position(x.Pos()))
				}
			case *ast.Ident:
				if strings.HasPrefix(x.Name, "Code") && x.Name != "Code" && x.Name != "CodeInfo" {
					used[x.Name]++
				}
			}
			return true
		})
	}
	inCatalogue := map[Code]int{}
	for _, c := range Catalogue {
		inCatalogue[c.Code]++
		switch c.Level {
		case LevelXML, LevelLimit, LevelXSD, LevelBusiness:
		default:
			t.Errorf("%s: bad level %q", c.Code, c.Level)
		}
		if c.HTTPStatus < 400 || c.HTTPStatus > 499 || c.Meaning == "" || c.Description == "" {
			t.Errorf("%s: incomplete row %+v", c.Code, c)
		}
	}
	if len(declared) < 50 {
		t.Fatalf("found only %d Code constants; is the scan broken?", len(declared))
	}
	for name, v := range declared {
		if inCatalogue[Code(v)] != 1 {
			t.Errorf("%s (%s) appears %d times in Catalogue, want 1", name, v, inCatalogue[Code(v)])
		}
		// One use is the catalogue row itself; a code nothing reports is dead.
		if used[name] < 2 {
			t.Errorf("%s is declared but never reported", name)
		}
	}
	if len(Catalogue) != len(declared) {
		t.Errorf("Catalogue has %d rows for %d constants", len(Catalogue), len(declared))
	}
}

func renderErrorDocs() []byte {
	var b bytes.Buffer
	esc := func(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
	b.WriteString("# MeMo error codes\n\n")
	b.WriteString("Generated from `schemas/memo/errors.go` by `go test ./schemas/memo -run TestErrorDocs -update`; do not edit by hand.\n\n")
	b.WriteString("Every failure memoflow reports about a MeMo message has one of these codes, the element path where it was found ")
	b.WriteString("(for example `/Message/MessageHeader/Recipient/recipientID`) and a message. Levels: `xml` (not well-formed, or refused XML features), ")
	b.WriteString("`limit` (a parser resource limit), `xsd` (the MeMo schema of the declared version; what `xmllint --schema` would say) and ")
	b.WriteString("`business` (NgDP/memoflow rules beyond the schema). A message is schema-valid when it has no error of the first three levels.\n\n")
	b.WriteString("| Code | Level | HTTP | Meaning | Description |\n|---|---|---|---|---|\n")
	for _, c := range Catalogue {
		b.WriteString("| `" + string(c.Code) + "` | " + string(c.Level) + " | " + strconv.Itoa(c.HTTPStatus) + " | " + esc(c.Meaning) + " | " + esc(c.Description) + " |\n")
	}
	b.WriteString("\n## Down-conversion losses (MeMo 1.2 to 1.1)\n\n")
	b.WriteString("`Downconvert` never drops data silently: each item 1.1 cannot express is returned as a `Loss` with one of these codes, and the caller decides.\n\n")
	b.WriteString("| Code | Description |\n|---|---|\n")
	for _, l := range LossCatalogue {
		b.WriteString("| `" + string(l.Code) + "` | " + esc(l.Description) + " |\n")
	}
	return b.Bytes()
}

// TestErrorDocs keeps docs/memo-errors.md in sync with the catalogue.
func TestErrorDocs(t *testing.T) {
	path := filepath.Join("..", "..", "docs", "memo-errors.md")
	want := renderErrorDocs()
	if *update {
		if err := os.WriteFile(path, want, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run: go test ./schemas/memo -run TestErrorDocs -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s is stale; run: go test ./schemas/memo -run TestErrorDocs -update", path)
	}
}
