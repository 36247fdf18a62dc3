package memo

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// The differential test: for every document, our XSD-level verdict (no
// error of level xml, limit or xsd) must equal xmllint --schema's, with the
// schema chosen by the document's memoVersion exactly as Validate chooses it.

// sharedDir locates the project's shared/ folder (MEMOFLOW_SHARED_DIR, else
// ../../../shared from this package) or skips.
func sharedDir(t testing.TB) string {
	dir := os.Getenv("MEMOFLOW_SHARED_DIR")
	if dir == "" {
		dir = filepath.Join("..", "..", "..", "shared")
	}
	if _, err := os.Stat(filepath.Join(dir, "memo-xsd")); err != nil {
		t.Skipf("shared folder with memo-xsd/ not found at %s (set MEMOFLOW_SHARED_DIR): %v", dir, err)
	}
	return dir
}

func xmllint(t testing.TB) string {
	p, err := exec.LookPath("xmllint")
	if err != nil {
		t.Skip("xmllint not installed (Debian package libxml2-utils); the differential test needs it")
	}
	return p
}

// schemaSet is a private copy of the XSDs, laid out so the relative imports
// of both cores resolve: v11/*.xsd and v12/*.xsd + v12/Version1.2/MeMo_core.xsd.
type schemaSet struct{ v11, v12 string }

func (s schemaSet) core(v Version) string {
	if v == Version12 {
		return s.v12
	}
	return s.v11
}

func copyXSDs(t testing.TB, shared string) schemaSet {
	tmp := t.TempDir()
	cp := func(fromDir, toDir string) {
		if err := os.MkdirAll(toDir, 0o755); err != nil {
			t.Fatal(err)
		}
		files, _ := filepath.Glob(filepath.Join(fromDir, "*.xsd"))
		if len(files) == 0 {
			t.Fatalf("no XSDs in %s", fromDir)
		}
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(toDir, filepath.Base(f)), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	x := filepath.Join(shared, "memo-xsd")
	cp(filepath.Join(x, "v1.1_python-serviceplatformen"), filepath.Join(tmp, "v11"))
	cp(filepath.Join(x, "mortenm12-memo", "schemas"), filepath.Join(tmp, "v12"))
	cp(filepath.Join(x, "mortenm12-memo", "schemas", "Version1.2"), filepath.Join(tmp, "v12", "Version1.2"))
	return schemaSet{
		v11: filepath.Join(tmp, "v11", "MeMo_core.xsd"),
		v12: filepath.Join(tmp, "v12", "Version1.2", "MeMo_core.xsd"),
	}
}

// lintBatch runs xmllint over files (many per invocation) and returns the
// set that validates. A file xmllint cannot parse gets no "validates" line.
func lintBatch(t testing.TB, bin, xsd string, files []string) map[string]bool {
	ok := make(map[string]bool, len(files))
	const chunk = 1000
	for i := 0; i < len(files); i += chunk {
		j := min(i+chunk, len(files))
		cmd := exec.Command(bin, append([]string{"--noout", "--nonet", "--schema", xsd}, files[i:j]...)...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		_ = cmd.Run() // exit status 3 when some fail to validate; the per-file lines tell
		for _, line := range strings.Split(stderr.String(), "\n") {
			if f, found := strings.CutSuffix(line, " validates"); found {
				ok[f] = true
			}
		}
		if len(ok) == 0 && stderr.Len() > 0 && strings.Contains(stderr.String(), "failed to compile") {
			t.Fatalf("xmllint could not compile %s: %s", xsd, firstLines(stderr.String(), 5))
		}
	}
	return ok
}

func firstLines(s string, n int) string {
	lines := strings.SplitN(s, "\n", n+1)
	if len(lines) > n {
		lines = lines[:n]
	}
	return strings.Join(lines, "\n")
}

type corpusDoc struct {
	name   string
	data   []byte
	origin string // what made it: "sample", "generated", "mutation:<kind>", "downconverted", "canonical"
}

type verdict struct {
	doc    corpusDoc
	file   string
	rules  Version
	ours   bool
	errs   ValidationErrors
	linted bool
}

// differential writes docs, validates them with both, and fails on any
// disagreement (listing up to 15 with both sides' reasons).
func differential(t *testing.T, bin string, xsds schemaSet, docs []corpusDoc) map[string]int {
	dir := t.TempDir()
	vs := make([]verdict, len(docs))
	byVer := map[Version][]string{}
	for i, d := range docs {
		f := filepath.Join(dir, fmt.Sprintf("%06d.xml", i))
		if err := os.WriteFile(f, d.data, 0o644); err != nil {
			t.Fatal(err)
		}
		m, errs := Check(d.data, ValidateOptions{SkipBusiness: true, MaxErrors: 1000})
		rules := Version12
		if m != nil {
			rules = m.Rules()
		}
		vs[i] = verdict{doc: d, file: f, rules: rules, ours: errs.SchemaValid(), errs: errs}
		byVer[rules] = append(byVer[rules], f)
	}
	valid := map[string]bool{}
	for v, files := range byVer {
		for f := range lintBatch(t, bin, xsds.core(v), files) {
			valid[f] = true
		}
	}
	counts := map[string]int{}
	var bad []string
	for _, v := range vs {
		theirs := valid[v.file]
		key := v.doc.origin
		if theirs {
			key += " valid"
		} else {
			key += " invalid"
		}
		counts[key]++
		if theirs != v.ours {
			if len(bad) < 15 {
				out, _ := exec.Command(bin, "--noout", "--nonet", "--schema", xsds.core(v.rules), v.file).CombinedOutput()
				bad = append(bad, fmt.Sprintf("%s (%s, rules %s): ours valid=%v %v\n  xmllint: %s\n  doc: %s",
					v.doc.name, v.doc.origin, v.rules, v.ours, v.errs, firstLines(string(out), 3), snippet(v.doc.data)))
			} else {
				bad = append(bad, "")
			}
		}
	}
	if len(bad) > 0 {
		t.Errorf("%d of %d documents: our XSD verdict differs from xmllint's:\n%s", len(bad), len(docs), strings.Join(bad[:min(15, len(bad))], "\n"))
	}
	return counts
}

func snippet(b []byte) string {
	if len(b) > 1500 {
		b = b[:1500]
	}
	return string(b)
}

func samplesCorpus(t testing.TB, shared string) []corpusDoc {
	files, _ := filepath.Glob(filepath.Join(shared, "memo-samples", "*.xml"))
	if len(files) == 0 {
		t.Fatalf("no samples in %s", filepath.Join(shared, "memo-samples"))
	}
	var docs []corpusDoc
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, corpusDoc{name: filepath.Base(f), data: b, origin: "sample"})
	}
	return docs
}

var testNow = time.Date(2025, 9, 12, 10, 30, 0, 0, time.UTC)

func conformanceSizes() (generated, mutated int) {
	if testing.Short() {
		return 500, 500
	}
	return 10_000, 10_000
}

func genConfig(seed uint64) GenConfig {
	return GenConfig{Seed: seed, Now: testNow, RichShare: 0.5, ActionShare: 0.5,
		AttachmentSize: SizeDist{Kind: SizeLogNormal, Bytes: 120, Sigma: 1, Max: 4096}, ExtraFiles: 2}
}

func TestConformanceXmllint(t *testing.T) {
	shared := sharedDir(t)
	bin := xmllint(t)
	xsds := copyXSDs(t, shared)
	nGen, nMut := conformanceSizes()

	docs := samplesCorpus(t, shared)
	g := NewGenerator(genConfig(7))
	var generated [][]byte
	for i := 0; i < nGen; i++ {
		b, _ := g.Next(nil)
		generated = append(generated, b)
		docs = append(docs, corpusDoc{name: fmt.Sprintf("gen-%d", i), data: b, origin: "generated"})
	}
	// Down-converted (every 1.2 message) and canonical re-serializations.
	for i, b := range generated {
		if i%4 != 0 && !bytes.Contains(b, []byte(`memoVersion="1.2"`)) {
			continue
		}
		m, err := Parse(b)
		if err != nil {
			t.Fatalf("generated %d does not parse: %v", i, err)
		}
		origin := "canonical"
		if m.Rules() == Version12 {
			m, _ = Downconvert(m)
			origin = "downconverted"
		}
		out, err := Serialize(nil, m)
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, corpusDoc{name: fmt.Sprintf("%s-%d", origin, i), data: out, origin: origin})
	}
	mg := NewGenerator(genConfig(99))
	rnd := rand.New(rand.NewPCG(99, 1))
	for i := 0; i < nMut; i++ {
		b, _ := mg.Next(nil)
		kind, mb := mutate(rnd, b)
		docs = append(docs, corpusDoc{name: fmt.Sprintf("mut-%d", i), data: mb, origin: "mutation:" + kind})
	}

	docs = append(docs, valueMatrix(t, generated)...)

	start := time.Now()
	counts := differential(t, bin, xsds, docs)
	t.Logf("differential: %d documents in %v (GOMAXPROCS %d)", len(docs), time.Since(start).Round(time.Millisecond), runtime.GOMAXPROCS(0))
	mustAllValid := []string{"generated", "downconverted", "canonical"}
	var summary []string
	for k, n := range counts {
		summary = append(summary, fmt.Sprintf("%s=%d", k, n))
		for _, o := range mustAllValid {
			if k == o+" invalid" {
				t.Errorf("%d %s documents fail xmllint; all must be valid", n, o)
			}
		}
	}
	t.Logf("verdict counts: %s", strings.Join(sortedStrings(summary), " "))
}

func sortedStrings(s []string) []string {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
	return s
}

// Mutations of generated messages. Generated messages are compact and never
// nest an element inside one of the same name, so a span is the text from a
// start tag to the next end tag of that name.

type span struct{ start, end int }

func spans(doc []byte, qname string) []span {
	var out []span
	open, closeTag := []byte("<"+qname+">"), []byte("</"+qname+">")
	for i := 0; ; {
		k := bytes.Index(doc[i:], open)
		if k < 0 {
			return out
		}
		s := i + k
		e := bytes.Index(doc[s:], closeTag)
		if e < 0 {
			return out
		}
		out = append(out, span{s, s + e + len(closeTag)})
		i = s + len(open)
	}
}

func splice(doc []byte, s, e int, repl string) []byte {
	out := make([]byte, 0, len(doc)+len(repl))
	out = append(out, doc[:s]...)
	out = append(out, repl...)
	return append(out, doc[e:]...)
}

// leafValues are replacement values per leaf: some valid, most not.
var leafValues = map[string][]string{
	"memo:messageUUID":           {"8C2EA15D-61FB-1BA9-9366-42F8B194C114", "8C2EA15D-61FB-4BA9-9366-42F8B194C11", " 8c2ea15d-61fb-4ba9-9366-42f8b194c114", "8C2EA15D-61FB-4BA9-9366-42F8B194C114", "8c2ea15d-61fb-4ba9-c366-42f8b194c114", "not-a-uuid"},
	"memo:messageType":           {"LETTER", "nemsms", " NEMSMS", "DIGITALPOST", ""},
	"memo:label":                 {strings.Repeat("x", 257), strings.Repeat("ø", 256), "a&amp;b &lt;c&gt;", "<![CDATA[x < y]]>", "", "a<!-- c -->b", strings.Repeat("a", 255) + "\r\nb", strings.Repeat("😀", 257)},
	"memo:notification":          {strings.Repeat("n", 151), strings.Repeat("n", 161), strings.Repeat("n", 150), strings.Repeat("æ", 160)},
	"memo:doNotDeliverUntilDate": {"2025-02-30", "2025-9-1", "2025-09-15Z", " 2025-09-15", "2025-09-15T00:00:00Z", "2024-02-29", "2023-02-29", "0000-01-01", "2025-09-15+14:00", "2025-09-15+14:30", ""},
	"memo:createdDateTime":       {"2025-09-12T10:00:00", "2025-09-12T10:00:00+01:00", " 2025-09-12T10:00:00Z ", "2025-13-01T00:00:00Z", "2025-09-12T24:00:00Z", "2025-09-12T24:00:01Z", "2025-09-12T10:00:00.5Z", "2025-09-12T10:00Z", "-2025-09-12T10:00:00Z", "12025-09-12T10:00:00Z"},
	"memo:mandatory":             {"yes", "TRUE", " true ", "", "1", "0", "  "},
	"memo:legalNotification":     {"no", "false", "", "2"},
	"memo:reply":                 {"true", "", "yes", "\ttrue\n"},
	"memo:language":              {"dan", "d", "DA", "", "d1", " da ", "en-GB"},
	"memo:content":               {"VGhpcyBpcyBhIHRlc3Q", "VGhp!cyBp*cyBhIHRlc3Q=", "QQ=", "QQ==", "QR==", "", "VGhp cyBp\n cyBh IHRl c3Q=", "QUJD=QUJD", "&#x51;Q==", "<![CDATA[QUJD]]>", "QUJ\r\nD"},
	"memo:url":                   {"http://x/%zz", "http://x/a b", "[x]", "http://x/" + strings.Repeat("a", 248), "http://[::1]/", "http://x:80a/", "a#b#c", "../rel?q#f", "", " http://x/ ", "http://x/?[a]", "#frag[1]", "http://x:/", "mailto:a@b.dk", "http://%zz/"},
	"memo:recipientID":           {strings.Repeat("1", 257), "", "0101011234"},
	"memo:reservationUUID":       {"x", "8C2EA15D-61FB-4BA9-9366-42F8B194C114"},
	"memo:comment":               {strings.Repeat("c", 513), strings.Repeat("c", 512)},
	"memo:startDateTime":         {"2025-09-12T10:00:00", "2025-09-12T10:00:00Z"},
	"memo:encodingFormat":        {strings.Repeat("e", 257), "pdf"},
	"memo:contactPointID":        {"", strings.Repeat("p", 257)},
	"grd:cprNumber":              {"12", strings.Repeat("9", 257)},
}

// removable elements (required ones make the document invalid).
var elementNames = []string{
	"memo:messageType", "memo:messageUUID", "memo:messageID", "memo:label", "memo:notification", "memo:reply",
	"memo:replyByDateTime", "memo:doNotDeliverUntilDate", "memo:mandatory", "memo:legalNotification", "memo:postType",
	"memo:Sender", "memo:Recipient", "memo:senderID", "memo:idType", "memo:recipientID", "memo:ContactPoint",
	"memo:contactPointID", "memo:AttentionData", "memo:ContentData", "memo:MessageBody", "memo:MainDocument",
	"memo:createdDateTime", "memo:File", "memo:content", "memo:filename", "memo:language", "memo:encodingFormat",
	"memo:Action", "memo:actionCode", "memo:EntryPoint", "memo:url", "memo:Reservation", "memo:reservationUUID",
	"memo:Representative", "memo:ReplyData", "memo:AdditionalReplyData", "memo:ForwardData", "grd:CPRdata",
	"grd:cprNumber", "memo:CaseID", "kle:KLEdata", "kle:label", "memo:AdditionalDocument", "memo:MessageHeader",
}

type mutator struct {
	name string
	fn   func(r *rand.Rand, doc []byte) ([]byte, bool)
}

func pickSpan(r *rand.Rand, doc []byte, names []string) (string, span, bool) {
	for tries := 0; tries < 8; tries++ {
		n := names[r.IntN(len(names))]
		if ss := spans(doc, n); len(ss) > 0 {
			return n, ss[r.IntN(len(ss))], true
		}
	}
	return "", span{}, false
}

func leafNames() []string {
	var out []string
	for k := range leafValues {
		out = append(out, k)
	}
	return sortedStrings(out)
}

var mutators = []mutator{
	{"remove", func(r *rand.Rand, doc []byte) ([]byte, bool) {
		_, s, ok := pickSpan(r, doc, elementNames)
		return splice(doc, s.start, s.end, ""), ok
	}},
	{"duplicate", func(r *rand.Rand, doc []byte) ([]byte, bool) {
		_, s, ok := pickSpan(r, doc, elementNames)
		return splice(doc, s.end, s.end, string(doc[s.start:s.end])), ok
	}},
	{"swap", func(r *rand.Rand, doc []byte) ([]byte, bool) {
		_, s, ok := pickSpan(r, doc, elementNames)
		if !ok || s.end >= len(doc) || doc[s.end] != '<' || doc[s.end+1] == '/' {
			return nil, false
		}
		k := bytes.IndexAny(doc[s.end+1:], " >")
		name := string(doc[s.end+1 : s.end+1+k])
		ss := spans(doc[s.end:], name)
		if len(ss) == 0 || ss[0].start != 0 {
			return nil, false
		}
		next := doc[s.end : s.end+ss[0].end]
		return splice(doc, s.start, s.end+ss[0].end, string(next)+string(doc[s.start:s.end])), true
	}},
	{"value", func(r *rand.Rand, doc []byte) ([]byte, bool) {
		names := leafNames()
		n, s, ok := pickSpan(r, doc, names)
		if !ok {
			return nil, false
		}
		vals := leafValues[n]
		return splice(doc, s.start, s.end, "<"+n+">"+vals[r.IntN(len(vals))]+"</"+n+">"), true
	}},
	{"empty-element", func(r *rand.Rand, doc []byte) ([]byte, bool) {
		n, s, ok := pickSpan(r, doc, leafNames())
		return splice(doc, s.start, s.end, "<"+n+"/>"), ok
	}},
	{"unknown-element", func(r *rand.Rand, doc []byte) ([]byte, bool) {
		_, s, ok := pickSpan(r, doc, elementNames)
		ins := []string{"<memo:foo>x</memo:foo>", "<memo:documentID>1</memo:documentID>", "<foo/>", "<memo:Label>x</memo:Label>"}
		return splice(doc, s.end, s.end, ins[r.IntN(len(ins))]), ok
	}},
	{"wrong-namespace", func(r *rand.Rand, doc []byte) ([]byte, bool) {
		switch r.IntN(3) {
		case 0:
			return bytes.Replace(doc, []byte(`xmlns:memo="https://DigitalPost.dk/MeMo-1"`), []byte(`xmlns:memo="https://DigitalPost.dk/MeMo-2"`), 1), true
		case 1:
			n, s, ok := pickSpan(r, doc, elementNames)
			if !ok {
				return nil, false
			}
			local := n[strings.IndexByte(n, ':')+1:]
			el := doc[s.start:s.end]
			el = bytes.Replace(el, []byte("<"+n+">"), []byte("<x:"+local+" xmlns:x=\"urn:other\">"), 1)
			el = bytes.Replace(el, []byte("</"+n+">"), []byte("</x:"+local+">"), 1)
			return splice(doc, s.start, s.end, string(el)), true
		default:
			n, s, ok := pickSpan(r, doc, []string{"memo:label", "memo:messageType", "memo:Sender", "grd:CPRdata"})
			if !ok {
				return nil, false
			}
			local := n[strings.IndexByte(n, ':')+1:]
			prefix := "grd"
			if strings.HasPrefix(n, "grd:") {
				prefix = "memo"
			}
			el := doc[s.start:s.end]
			el = bytes.Replace(el, []byte("<"+n+">"), []byte("<"+prefix+":"+local+" xmlns:grd=\"https://data.gov.dk/model/core/\">"), 1)
			el = bytes.Replace(el, []byte("</"+n+">"), []byte("</"+prefix+":"+local+">"), 1)
			return splice(doc, s.start, s.end, string(el)), true
		}
	}},
	{"default-namespace", func(r *rand.Rand, doc []byte) ([]byte, bool) {
		out := bytes.ReplaceAll(doc, []byte("<memo:"), []byte("<"))
		out = bytes.ReplaceAll(out, []byte("</memo:"), []byte("</"))
		return bytes.Replace(out, []byte("xmlns:memo="), []byte("xmlns="), 1), true
	}},
	{"attribute", func(r *rand.Rand, doc []byte) ([]byte, bool) {
		_, s, ok := pickSpan(r, doc, elementNames)
		if !ok {
			return nil, false
		}
		attrs := []string{` foo="1"`, ` xml:lang="da"`, ` xsi:schemaLocation="https://DigitalPost.dk/MeMo-1 MeMo_core.xsd" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"`, ` xsi:nil="false" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"`, ` xmlns:y="urn:y"`}
		k := bytes.IndexByte(doc[s.start:], '>')
		return splice(doc, s.start+k, s.start+k, attrs[r.IntN(len(attrs))]), true
	}},
	{"root-attribute", func(r *rand.Rand, doc []byte) ([]byte, bool) {
		switch r.IntN(6) {
		case 0:
			return bytes.Replace(doc, []byte(` memoSchVersion="1.1.0"`), nil, 1), true
		case 1:
			return bytes.Replace(doc, []byte(` memoVersion="1.2"`), []byte(` memoVersion="1.2" memoSchVersion="1.1.0"`), 1), true
		case 2:
			return bytes.Replace(doc, []byte(`memoVersion="1.1"`), []byte(`memoVersion="1.10"`), 1), true
		case 3:
			return bytes.Replace(doc, []byte(`memoVersion="1.2"`), []byte(`memoVersion=" 1.2 "`), 1), true
		case 4:
			return bytes.Replace(doc, []byte(` memoSchVersion="1.1.0"`), []byte(` memoSchVersion="`+strings.Repeat("v", 257)+`"`), 1), true
		default:
			return bytes.Replace(doc, []byte(`<memo:Message `), []byte(`<memo:Message bar="x" `), 1), true
		}
	}},
	{"version-element", func(r *rand.Rand, doc []byte) ([]byte, bool) {
		// 1.2-only elements in a document of either version.
		if r.IntN(2) == 0 {
			k := bytes.Index(doc, []byte("</memo:Sender>"))
			return splice(doc, k, k, "<memo:Representative><memo:label>R</memo:label></memo:Representative>"), k > 0
		}
		k := bytes.Index(doc, []byte("<memo:Recipient>"))
		return splice(doc, k, k, ""), k > 0
	}},
	{"text-in-element-only", func(r *rand.Rand, doc []byte) ([]byte, bool) {
		_, s, ok := pickSpan(r, doc, []string{"memo:MessageHeader", "memo:Sender", "memo:Recipient", "memo:MessageBody", "memo:File", "memo:MainDocument"})
		ins := []string{"x", " \n\t ", "<![CDATA[ ]]>", "<!-- note -->", "&#32;", "&#xA0;", "<?pi data?>", "&amp;"}
		k := bytes.IndexByte(doc[s.start:], '>')
		return splice(doc, s.start+k+1, s.start+k+1, ins[r.IntN(len(ins))]), ok
	}},
	{"too-many", func(r *rand.Rand, doc []byte) ([]byte, bool) {
		switch r.IntN(3) {
		case 0:
			_, s, ok := pickSpan(r, doc, []string{"memo:ContactPoint"})
			if !ok {
				return nil, false
			}
			ci := "<memo:ContactInfo><memo:label>L</memo:label><memo:value>V</memo:value></memo:ContactInfo>"
			n := 1 + r.IntN(3)
			return splice(doc, s.end-len("</memo:ContactPoint>"), s.end-len("</memo:ContactPoint>"), strings.Repeat(ci, n)), true
		case 1:
			_, s, ok := pickSpan(r, doc, []string{"memo:ReplyData"})
			if !ok {
				return nil, false
			}
			ard := "<memo:AdditionalReplyData><memo:label>L</memo:label><memo:value>V</memo:value></memo:AdditionalReplyData>"
			n := 3 + r.IntN(3)
			return splice(doc, s.end-len("</memo:ReplyData>"), s.end-len("</memo:ReplyData>"), strings.Repeat(ard, n)), true
		default:
			_, s, ok := pickSpan(r, doc, []string{"memo:ContentData"})
			if !ok {
				return nil, false
			}
			acd := "<memo:AdditionalContentData><memo:contentDataName>N</memo:contentDataName><memo:contentDataValue>V</memo:contentDataValue></memo:AdditionalContentData>"
			n := 9 + r.IntN(3)
			return splice(doc, s.end-len("</memo:ContentData>"), s.end-len("</memo:ContentData>"), strings.Repeat(acd, n)), true
		}
	}},
	{"numbers", func(r *rand.Rand, doc []byte) ([]byte, bool) {
		k := bytes.Index(doc, []byte("</kle:KLEdata>"))
		if k < 0 {
			return nil, false
		}
		k += len("</kle:KLEdata>")
		pn := []string{"1234567890", "-5", "+5", " 5", "5 ", "9999999999", "10000000000", "", "1.0", "000000000000000000000000000001", "-9223372036854775809"}
		mv := []string{"AB12345", "AB123456", ""}
		ins := "<grd:ProductionUnit><grd:productionUnitNumber>" + pn[r.IntN(len(pn))] + "</grd:productionUnitNumber></grd:ProductionUnit>"
		if r.IntN(2) == 0 {
			// MotorVehicle comes before CaseID.
			c := bytes.Index(doc, []byte("<memo:CaseID>"))
			if c < 0 {
				return nil, false
			}
			return splice(doc, c, c, `<dmv:MotorVehicle xmlns:dmv="https://motorregister.skat.dk/"><dmv:licenseNumber>`+mv[r.IntN(len(mv))]+"</dmv:licenseNumber></dmv:MotorVehicle>"), true
		}
		return splice(doc, k, k, ins), true
	}},
	{"gln", func(r *rand.Rand, doc []byte) ([]byte, bool) {
		k := bytes.Index(doc, []byte("</memo:AttentionPerson>"))
		if k < 0 {
			return nil, false
		}
		k += len("</memo:AttentionPerson>")
		vals := []string{"5798000012345", "9999999999999", "10000000000000", "-1", "x", "0"}
		return splice(doc, k, k, `<gln:GlobalLocationNumber xmlns:gln="https://www.gs1.dk/gs1-standarder/identifikation/gln-global-location-number/"><gln:globalLocationNumber>`+vals[r.IntN(len(vals))]+"</gln:globalLocationNumber></gln:GlobalLocationNumber>"), true
	}},
	{"choice", func(r *rand.Rand, doc []byte) ([]byte, bool) {
		_, s, ok := pickSpan(r, doc, []string{"memo:Reservation", "memo:EntryPoint"})
		if !ok {
			return nil, false
		}
		if r.IntN(2) == 0 {
			return splice(doc, s.end, s.end, "<memo:EntryPoint><memo:url>https://x.dk</memo:url></memo:EntryPoint>"), true
		}
		return splice(doc, s.start, s.start, "<memo:startDateTime>2025-09-12T10:00:00Z</memo:startDateTime>"), true
	}},
}

// valueMatrix puts every edge value of leafValues into every occurrence
// kind of its element, in a 1.1 and a 1.2 message, so each libxml2 quirk is
// compared on purpose and not only when the random mutator hits it.
func valueMatrix(t testing.TB, generated [][]byte) []corpusDoc {
	var docs []corpusDoc
	for _, name := range leafNames() {
		for _, ver := range []string{`memoVersion="1.1"`, `memoVersion="1.2"`} {
			var base []byte
			for _, b := range generated {
				if bytes.Contains(b, []byte(ver)) && len(spans(b, name)) > 0 {
					base = b
					break
				}
			}
			if base == nil {
				continue
			}
			s := spans(base, name)[0]
			for i, v := range leafValues[name] {
				docs = append(docs, corpusDoc{
					name:   fmt.Sprintf("matrix-%s-%s-%d", name, ver[13:16], i),
					data:   splice(base, s.start, s.end, "<"+name+">"+v+"</"+name+">"),
					origin: "value-matrix",
				})
			}
		}
	}
	if len(docs) < 100 {
		t.Fatalf("value matrix has only %d documents", len(docs))
	}
	return docs
}

// mutate applies one applicable mutation; it always changes the document.
func mutate(r *rand.Rand, doc []byte) (string, []byte) {
	for tries := 0; tries < 50; tries++ {
		m := mutators[r.IntN(len(mutators))]
		out, ok := m.fn(r, doc)
		if ok && !bytes.Equal(out, doc) {
			return m.name, out
		}
	}
	return "remove", splice(doc, 0, 0, "x")
}
