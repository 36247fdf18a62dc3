package memo

import (
	"os"
	"path/filepath"
	"testing"
)

func addSeeds(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("..", "..", "..", "shared", "memo-samples", "*.xml"))
	if dir := os.Getenv("MEMOFLOW_SHARED_DIR"); dir != "" {
		files, _ = filepath.Glob(filepath.Join(dir, "memo-samples", "*.xml"))
	}
	for _, file := range files {
		if b, err := os.ReadFile(file); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(minimal11))
	g := NewGenerator(GenConfig{Seed: 3, Now: testNow, RichShare: 1, ActionShare: 1})
	for i := 0; i < 8; i++ {
		b, _ := g.Next(nil)
		f.Add(b)
	}
}

// FuzzParse: no input panics, every failure has a catalogue code, and the
// recorded content spans lie inside the input.
func FuzzParse(f *testing.F) {
	addSeeds(f)
	p := NewParser()
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := p.Parse(data)
		if m == nil {
			t.Fatal("nil message")
		}
		if err != nil {
			e, ok := err.(*Error)
			if !ok || LookupCode(e.Code).Description == "" {
				t.Fatalf("error outside the catalogue: %v", err)
			}
			if lvl := LookupCode(e.Code).Level; lvl != LevelXML && lvl != LevelLimit {
				t.Fatalf("fatal error of level %s: %v", lvl, err)
			}
			return
		}
		m.Files(func(_ string, file *File) {
			c := file.Content
			if c.Offset < 0 || c.Length < 0 || c.Offset+c.Length > len(data) {
				t.Fatalf("content span %d+%d outside %d bytes", c.Offset, c.Length, len(data))
			}
		})
	})
}

// FuzzValidate: validation never panics, codes are catalogued, and a message
// we call schema-valid serializes to a message we again call schema-valid
// with the same model.
func FuzzValidate(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		m, errs := Check(data, ValidateOptions{Now: clock(testNow)})
		for _, e := range errs {
			if LookupCode(e.Code).Description == "" {
				t.Fatalf("code outside the catalogue: %v", e)
			}
		}
		if m == nil || !errs.SchemaValid() {
			return
		}
		out, err := Serialize(nil, m)
		if err != nil {
			t.Fatal(err)
		}
		m2, errs2 := Check(out, ValidateOptions{Now: clock(testNow)})
		if !errs2.SchemaValid() {
			t.Fatalf("re-serialized message is invalid: %v\n%s\nfrom\n%q", errs2, out, data)
		}
		if !sameModel(m, m2) {
			t.Fatalf("round trip changed the model:\n%s\nfrom\n%q", out, data)
		}
	})
}
