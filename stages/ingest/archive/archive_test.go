package archive

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/ulikunitz/xz/lzma"
)

// file is one tar entry for tarOf.
type file struct {
	name string
	data string
	typ  byte // tar.TypeReg when zero
	link string
}

// tarOf writes a plain tar with archive/tar, which (unlike Writer) writes
// whatever it is given: the hostile archives the tests need.
func tarOf(t testing.TB, format tar.Format, files ...file) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		typ := f.typ
		if typ == 0 {
			typ = tar.TypeReg
		}
		h := &tar.Header{Typeflag: typ, Name: f.name, Linkname: f.link, Mode: 0o644, Format: format}
		if typ == tar.TypeXGlobalHeader {
			h = &tar.Header{Typeflag: typ, Name: f.name, PAXRecords: map[string]string{"comment": "global"}}
		}
		if typ == tar.TypeReg {
			h.Size = int64(len(f.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatalf("tar header %q: %v", f.name, err)
		}
		if _, err := io.WriteString(tw, f.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// lzmaOf compresses raw as LZMA-alone with an end marker, as Writer does.
func lzmaOf(t testing.TB, raw []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := lzma.WriterConfig{EOSMarker: true}.NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(raw); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// build writes an archive with Writer.
func build(t testing.TB, compressed bool, files ...file) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := NewWriter(&buf, compressed)
	for _, f := range files {
		if err := w.Add(f.name, []byte(f.data)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

type read struct {
	names []string
	data  map[string]string
}

// readAll reads every entry with Bytes. It returns what was read before an
// error along with the error (nil on io.EOF).
func readAll(in io.Reader, lim Limits, compressed bool) (read, error) {
	got := read{data: map[string]string{}}
	r := NewReader(in, lim, compressed)
	for {
		e, err := r.Next()
		if err == io.EOF {
			return got, nil
		}
		if err != nil {
			return got, err
		}
		b, err := e.Bytes()
		if err != nil {
			return got, err
		}
		if int64(len(b)) != e.Size {
			return got, fmt.Errorf("entry %q: %d bytes, header says %d", e.Name, len(b), e.Size)
		}
		got.names = append(got.names, e.Name)
		got.data[e.Name] = string(b)
	}
}

// setLZMAHeader rewrites the dictionary size and declared size of an LZMA
// stream (size -1: unknown).
func setLZMAHeader(b []byte, dict uint32, size int64) []byte {
	b = bytes.Clone(b)
	binary.LittleEndian.PutUint32(b[1:5], dict)
	binary.LittleEndian.PutUint64(b[5:13], uint64(size))
	return b
}

func TestRoundTrip(t *testing.T) {
	big := strings.Repeat("<p>Kære borger, dette er et brev.</p>\n", 30_000) // ~1.1 MB
	files := []file{
		{name: "0001.xml", data: "<Message/>"},
		{name: "./0002.xml", data: "<Message>to</Message>"},
		{name: "sub/dir/0003.xml", data: big},
		{name: "empty.xml", data: ""},
		{name: "brev-æøå.xml", data: "ÆØÅ"},
		{name: strings.Repeat("n", 200) + ".xml", data: "long name: pax header"},
	}
	want := []string{"0001.xml", "0002.xml", "sub/dir/0003.xml", "empty.xml", "brev-æøå.xml", strings.Repeat("n", 200) + ".xml"}
	for _, compressed := range []bool{true, false} {
		t.Run(fmt.Sprint("compressed=", compressed), func(t *testing.T) {
			data := build(t, compressed, files...)
			// One byte per Read: the reader must not depend on how the
			// body arrives.
			for _, in := range []io.Reader{bytes.NewReader(data), iotest.OneByteReader(bytes.NewReader(data))} {
				got, err := readAll(in, Limits{}, compressed)
				if err != nil {
					t.Fatal(err)
				}
				if strings.Join(got.names, ",") != strings.Join(want, ",") {
					t.Fatalf("names %q, want %q", got.names, want)
				}
				for i, f := range files {
					if got.data[want[i]] != f.data {
						t.Errorf("%s: content differs (%d bytes, want %d)", want[i], len(got.data[want[i]]), len(f.data))
					}
				}
			}
		})
	}
}

// Skipped directories and global headers, and bodies left unread or read
// in part, must not disturb the entries after them.
func TestReaderSkips(t *testing.T) {
	raw := tarOf(t, tar.FormatPAX,
		file{name: "./", typ: tar.TypeDir},
		file{name: "pax_global_header", typ: tar.TypeXGlobalHeader},
		file{name: "a/", typ: tar.TypeDir},
		file{name: "a/1.xml", data: strings.Repeat("x", 5000)},
		file{name: "a/2.xml", data: "two"},
		file{name: "a/3.xml", data: "three"},
	)
	r := NewReader(bytes.NewReader(lzmaOf(t, raw)), Limits{}, true)
	e, err := r.Next()
	if err != nil || e.Name != "a/1.xml" || e.Size != 5000 {
		t.Fatalf("first: %+v, %v", e, err)
	}
	stale := e.Body
	if _, err := io.ReadFull(e.Body, make([]byte, 100)); err != nil { // partial read
		t.Fatal(err)
	}
	if e, err = r.Next(); err != nil || e.Name != "a/2.xml" {
		t.Fatalf("second: %+v, %v", e, err)
	}
	if _, err := stale.Read(make([]byte, 1)); !errors.Is(err, errStaleBody) {
		t.Fatalf("stale body read: %v", err)
	}
	if e, err = r.Next(); err != nil || e.Name != "a/3.xml" { // a/2.xml unread
		t.Fatalf("third: %+v, %v", e, err)
	}
	if b, err := e.Bytes(); err != nil || string(b) != "three" {
		t.Fatalf("third body %q, %v", b, err)
	}
	for range 2 { // io.EOF is sticky
		if _, err := r.Next(); err != io.EOF {
			t.Fatalf("end: %v", err)
		}
	}
	if files, dec, comp := r.Stats(); files != 3 || dec < int64(len(raw)) || comp == 0 {
		t.Fatalf("Stats = %d, %d, %d", files, dec, comp)
	}
}

func TestReaderRejects(t *testing.T) {
	one := build(t, true, file{name: "a.xml", data: strings.Repeat("<Message>hej</Message>\n", 2000)})
	oneRaw := build(t, false, file{name: "a.xml", data: strings.Repeat("<Message>hej</Message>\n", 2000)})
	three := build(t, false, file{name: "1.xml", data: "1"}, file{name: "2.xml", data: "2"}, file{name: "3.xml", data: "3"})
	gz := func() []byte {
		var b bytes.Buffer
		zw := gzip.NewWriter(&b)
		zw.Write(oneRaw)
		zw.Close()
		return b.Bytes()
	}()
	// A ustar header written by hand, for a name archive/tar's writer
	// would not produce.
	rawHeader := func(name string) []byte {
		blk := tarOf(t, tar.FormatUSTAR, file{name: "placeholder", data: ""})
		copy(blk[0:100], append([]byte(name), make([]byte, 100-len(name))...))
		copy(blk[148:156], "        ")
		var sum int64
		for _, c := range blk[:512] {
			sum += int64(c)
		}
		copy(blk[148:156], fmt.Sprintf("%06o\x00 ", sum))
		return blk
	}

	tests := []struct {
		name       string
		in         []byte
		compressed bool
		lim        Limits
		code       Code
		entry      string // want Error.Entry, when set
		files      int    // files returned before the error
	}{
		// LZMA damage
		{name: "lzma truncated in half", in: one[:len(one)/2], compressed: true, code: CodeLZMATruncated},
		// The decoder runs ahead of the tar reader, so a small batch fails
		// before its first file is returned.
		{name: "lzma truncated by one byte", in: one[:len(one)-1], compressed: true, code: CodeLZMATruncated},
		{name: "lzma header only", in: one[:13], compressed: true, code: CodeLZMATruncated},
		{name: "lzma header cut", in: one[:7], compressed: true, code: CodeLZMATruncated},
		{name: "lzma bad properties byte", in: append([]byte{0xe1}, one[1:]...), compressed: true, code: CodeLZMACorrupt},
		{name: "lzma first range byte not zero", in: append(append(bytes.Clone(one[:13]), 0x42), one[14:]...), compressed: true, code: CodeLZMACorrupt},
		{name: "lzma declared size too small", in: setLZMAHeader(one, 8<<20, 1000), compressed: true, code: CodeLZMACorrupt},
		{name: "lzma trailing garbage", in: append(bytes.Clone(one), "garbage"...), compressed: true, code: CodeLZMACorrupt, files: 1},
		{name: "lzma declared size over limit", in: setLZMAHeader(one, 8<<20, 100_000_000), compressed: true, code: CodeTooLarge},
		{name: "lzma declared size zero", in: setLZMAHeader(one, 8<<20, 0), compressed: true, code: CodeEmpty},
		{name: "lzma dictionary 1 GiB", in: setLZMAHeader(one, 1<<30, -1), compressed: true, code: CodeDictTooLarge},
		{name: "lzma dictionary over a lower limit", in: one, compressed: true, lim: Limits{MaxDictBytes: 1 << 20}, code: CodeDictTooLarge},

		// wrong formats
		{name: "gzip", in: gz, compressed: true, code: CodeFormatGzip},
		{name: "gzip as plain tar", in: gz, code: CodeFormatGzip},
		{name: "xz", in: append([]byte{0xfd, '7', 'z', 'X', 'Z', 0, 0, 4}, make([]byte, 40)...), compressed: true, code: CodeFormatXZ},
		{name: "zstd", in: []byte{0x28, 0xb5, 0x2f, 0xfd, 0, 0, 0, 0}, compressed: true, code: CodeFormatUnsupported},
		{name: "bzip2", in: []byte("BZh91AY&SY...."), compressed: true, code: CodeFormatUnsupported},
		{name: "zip", in: []byte("PK\x03\x04\x14\x00\x00\x00"), compressed: true, code: CodeFormatUnsupported},
		{name: "plain tar sent as lzma", in: oneRaw, compressed: true, code: CodeFormatUnsupported},

		// tar damage
		{name: "tar garbage", in: bytes.Repeat([]byte("not a tar archive "), 100), code: CodeTarCorrupt},
		{name: "tar truncated in a header", in: oneRaw[:300], code: CodeTarTruncated},
		{name: "tar truncated in a file", in: oneRaw[:2000], code: CodeTarTruncated, entry: "a.xml"},
		{name: "tar without trailer", in: three[:3*1024], code: CodeTarTruncated, files: 3},
		{name: "tar without trailer, lzma", in: lzmaOf(t, three[:3*1024]), compressed: true, code: CodeTarTruncated, files: 3},
		{name: "tar with half a trailer", in: three[:3*1024+512], code: CodeTarTruncated, files: 3},

		// names
		{name: "dot-dot", in: tarOf(t, 0, file{name: "../x"}), code: CodePathUnsafe, entry: "../x"},
		{name: "absolute", in: tarOf(t, 0, file{name: "/etc/passwd"}), code: CodePathUnsafe, entry: "/etc/passwd"},
		{name: "dot-dot inside", in: tarOf(t, 0, file{name: "a/../../b"}), code: CodePathUnsafe, entry: "a/../../b"},
		{name: "harmless dot-dot", in: tarOf(t, 0, file{name: "a/../b"}), code: CodePathUnsafe},
		{name: "backslash", in: tarOf(t, 0, file{name: `..\..\x.xml`}), code: CodePathUnsafe},
		{name: "drive letter", in: tarOf(t, 0, file{name: "C:/x.xml"}), code: CodePathUnsafe},
		{name: "control character", in: tarOf(t, tar.FormatPAX, file{name: "a\x1b[31m.xml"}), code: CodePathUnsafe},
		{name: "non-UTF-8", in: tarOf(t, tar.FormatGNU, file{name: "brev-\xe6\xf8\xe5.xml"}), code: CodePathUnsafe, entry: "brev-\xe6\xf8\xe5.xml"},
		{name: "non-UTF-8 ustar by hand", in: rawHeader("\xff\xfe.xml"), code: CodePathUnsafe},
		{name: "too long", in: tarOf(t, tar.FormatPAX, file{name: strings.Repeat("x", 256)}), code: CodePathUnsafe},
		{name: "file ending in a slash", in: rawHeader("a.xml/"), code: CodePathUnsafe},
		{name: "unsafe directory", in: tarOf(t, 0, file{name: "../d/", typ: tar.TypeDir}), code: CodePathUnsafe},
		{name: "unsafe name, lzma", in: lzmaOf(t, tarOf(t, 0, file{name: "ok.xml", data: "x"}, file{name: "/etc/passwd"})), compressed: true, code: CodePathUnsafe, files: 1},

		// entry types
		{name: "symlink", in: tarOf(t, 0, file{name: "l.xml", typ: tar.TypeSymlink, link: "/etc/passwd"}), code: CodeEntryType, entry: "l.xml"},
		{name: "hard link", in: tarOf(t, 0, file{name: "a.xml", data: "x"}, file{name: "h.xml", typ: tar.TypeLink, link: "a.xml"}), code: CodeEntryType, entry: "h.xml", files: 1},
		{name: "char device", in: tarOf(t, 0, file{name: "null", typ: tar.TypeChar}), code: CodeEntryType},
		{name: "block device", in: tarOf(t, 0, file{name: "sda", typ: tar.TypeBlock}), code: CodeEntryType},
		{name: "fifo", in: tarOf(t, 0, file{name: "p", typ: tar.TypeFifo}), code: CodeEntryType},
		{name: "contiguous file", in: tarOf(t, tar.FormatUSTAR, file{name: "c", typ: tar.TypeCont}), code: CodeEntryType},

		// limits
		{name: "entries at the limit pass", in: three, lim: Limits{MaxEntryBytes: 1, MaxEntries: 3, MaxTotalBytes: int64(len(three))}, files: 3},
		{name: "entry too large by one", in: oneRaw, lim: Limits{MaxEntryBytes: 45_999}, code: CodeEntryTooLarge, entry: "a.xml"},
		{name: "file larger than the total, from its header", in: oneRaw, lim: Limits{MaxTotalBytes: 10_000}, code: CodeTooLarge, entry: "a.xml"},
		{name: "stream too large", in: one, compressed: true, lim: Limits{MaxTotalBytes: 46_500}, code: CodeTooLarge, entry: "a.xml"},
		{name: "stream too large, plain", in: oneRaw, lim: Limits{MaxTotalBytes: 46_500}, code: CodeTooLarge, entry: "a.xml"},
		{name: "too many entries", in: three, lim: Limits{MaxEntries: 2}, code: CodeTooManyEntries, entry: "3.xml", files: 2},
		{name: "directories count as entries", in: tarOf(t, 0, file{name: "d1/", typ: tar.TypeDir}, file{name: "d2/", typ: tar.TypeDir}, file{name: "d3/", typ: tar.TypeDir}), lim: Limits{MaxEntries: 2}, code: CodeTooManyEntries},
		{name: "ratio", in: lzmaOf(t, tarOf(t, 0, file{name: "z.xml", data: strings.Repeat("\x00", 200_000)})), compressed: true, lim: Limits{MaxRatio: 10, RatioGraceBytes: 1000}, code: CodeRatio, entry: "z.xml"},

		// duplicates and empties
		{name: "duplicate", in: tarOf(t, 0, file{name: "a.xml"}, file{name: "a.xml"}), code: CodeDuplicateName, entry: "a.xml", files: 1},
		{name: "duplicate after cleaning", in: tarOf(t, 0, file{name: "d/a.xml"}, file{name: "./d//a.xml"}), code: CodeDuplicateName, entry: "./d//a.xml", files: 1},
		{name: "empty body", in: nil, compressed: true, code: CodeEmpty},
		{name: "empty body, plain", in: nil, code: CodeEmpty},
		{name: "empty archive", in: build(t, true), compressed: true, code: CodeEmpty},
		{name: "empty archive, plain", in: build(t, false), code: CodeEmpty},
		{name: "only directories", in: tarOf(t, 0, file{name: "d/", typ: tar.TypeDir}), code: CodeEmpty},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := readAll(bytes.NewReader(tc.in), tc.lim, tc.compressed)
			if tc.code == "" {
				if err != nil || len(got.names) != tc.files {
					t.Fatalf("read %d files, %v; want %d, no error", len(got.names), err, tc.files)
				}
				return
			}
			var ae *Error
			if !errors.As(err, &ae) {
				t.Fatalf("error %v (%T), want *Error %s", err, err, tc.code)
			}
			if ae.Code != tc.code {
				t.Fatalf("code %s, want %s (%v)", ae.Code, tc.code, err)
			}
			if !errors.Is(err, &Error{Code: tc.code}) || CodeOf(err) != tc.code {
				t.Fatal("errors.Is / CodeOf do not match the code")
			}
			if tc.entry != "" && ae.Entry != tc.entry {
				t.Errorf("entry %q, want %q", ae.Entry, tc.entry)
			}
			if len(got.names) != tc.files {
				t.Errorf("%d files before the error (%q), want %d", len(got.names), got.names, tc.files)
			}
		})
	}
}

// Errors are final: after one, Next keeps returning it.
func TestReaderErrorSticky(t *testing.T) {
	in := tarOf(t, 0, file{name: "a.xml"}, file{name: "a.xml"}, file{name: "b.xml"})
	r := NewReader(bytes.NewReader(in), Limits{}, false)
	if _, err := r.Next(); err != nil {
		t.Fatal(err)
	}
	_, err1 := r.Next()
	_, err2 := r.Next()
	if CodeOf(err1) != CodeDuplicateName || err1 != err2 {
		t.Fatalf("errors %v, %v", err1, err2)
	}
}

// A failing body is a read error, not an archive code, so the API can tell
// a client that went away (or http.MaxBytesError) from a bad batch.
func TestReaderReadError(t *testing.T) {
	boom := errors.New("connection reset")
	noise := make([]byte, 50_000)
	rand.NewChaCha8([32]byte{1}).Read(noise)
	data := build(t, true, file{name: "a.xml", data: string(noise)})
	for _, at := range []int{0, 5, 200, len(data) / 2, len(data)} {
		in := io.MultiReader(bytes.NewReader(data[:at]), iotest.ErrReader(boom))
		_, err := readAll(in, Limits{}, true)
		if !errors.Is(err, boom) || CodeOf(err) != "" {
			t.Errorf("cut at %d: %v, want the read error and no code", at, err)
		}
	}
	in := io.MultiReader(bytes.NewReader(build(t, false, file{name: "a.xml", data: "x"})[:700]), iotest.ErrReader(boom))
	if _, err := readAll(in, Limits{}, false); !errors.Is(err, boom) {
		t.Errorf("plain: %v", err)
	}
}

// The LZMA header's declared size is refused before any data is read: the
// reader after the header fails the test if touched.
func TestReaderDeclaredSizeEarly(t *testing.T) {
	hdr := setLZMAHeader(lzmaOf(t, []byte("x"))[:13], 1<<23, 1<<40)
	in := io.MultiReader(bytes.NewReader(hdr), iotest.ErrReader(errors.New("read past the header")))
	_, err := NewReader(in, Limits{}, true).Next()
	if CodeOf(err) != CodeTooLarge {
		t.Fatalf("%v, want %s", err, CodeTooLarge)
	}
}

func TestCleanName(t *testing.T) {
	tests := []struct {
		in, want string
		dir      bool
	}{
		{in: "a.xml", want: "a.xml"},
		{in: "./a.xml", want: "a.xml"},
		{in: "././a//b/./c.xml", want: "a/b/c.xml"},
		{in: "æøå/ü.xml", want: "æøå/ü.xml"},
		{in: "d/", want: "d", dir: true},
		{in: "./", want: ".", dir: true},
		{in: ""},
		{in: "."},
		{in: "./"},
		{in: "a/"},
		{in: "/a"},
		{in: "//a"},
		{in: "../a"},
		{in: "a/.."},
		{in: "a/../b"},
		{in: "..", dir: true},
		{in: `a\b`},
		{in: "a\x00b"},
		{in: "a\nb"},
		{in: "a\u0085b"}, // C1 control
		{in: "\xc3\x28"},
		{in: "c:x"},
		{in: strings.Repeat("a", 256)},
	}
	for _, tc := range tests {
		got, reason := cleanName(tc.in, DefaultMaxNameBytes, tc.dir)
		if got != tc.want || (tc.want == "") != (reason != "") {
			t.Errorf("cleanName(%q, dir=%v) = %q, %q; want %q", tc.in, tc.dir, got, reason, tc.want)
		}
	}
}

func TestWriter(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf, true)
	if err := w.Add("a.xml", []byte("a")); err != nil {
		t.Fatal(err)
	}
	// Refusals leave the archive usable.
	for name, code := range map[string]Code{"../x.xml": CodePathUnsafe, "/abs.xml": CodePathUnsafe, "./a.xml": CodeDuplicateName} {
		if err := w.Add(name, nil); CodeOf(err) != code {
			t.Errorf("Add(%q) = %v, want %s", name, err, code)
		}
	}
	if err := w.AddReader("b.xml", 3, strings.NewReader("bbb")); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := w.Add("c.xml", nil); err == nil {
		t.Fatal("Add after Close succeeded")
	}
	got, err := readAll(&buf, Limits{}, true)
	if err != nil || strings.Join(got.names, ",") != "a.xml,b.xml" {
		t.Fatalf("read back %q, %v", got.names, err)
	}

	// Short data is a final error.
	w = NewWriter(io.Discard, false)
	if err := w.AddReader("s.xml", 10, strings.NewReader("abc")); err == nil {
		t.Fatal("short AddReader succeeded")
	}
	if err := w.Add("t.xml", nil); err == nil {
		t.Fatal("Add after a write error succeeded")
	}

	// Same input, same bytes.
	a := build(t, true, file{name: "x.xml", data: "x"})
	b := build(t, true, file{name: "x.xml", data: "x"})
	if !bytes.Equal(a, b) {
		t.Error("Writer output is not reproducible")
	}
}

// Interoperability with the tools senders use: GNU tar piped into
// xz --format=lzma (what `tar --lzma` does), at the default and the largest
// preset, and our Writer's output read back by them.
func TestInteropXZ(t *testing.T) {
	for _, tool := range []string{"tar", "xz"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	want := map[string]string{}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 50 {
		name := fmt.Sprintf("batch/%04d.xml", i)
		data := fmt.Sprintf("<Message><id>%d</id><n>%d</n></Message>", i, rng.Uint64())
		want[name] = data
		if err := os.MkdirAll(filepath.Join(src, "batch"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(src, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, args := range [][]string{{"--format=lzma"}, {"--format=lzma", "-9"}, {"--format=lzma", "-0"}} {
		for _, tarFormat := range []string{"gnu", "pax"} {
			t.Run(strings.Join(args, " ")+" "+tarFormat, func(t *testing.T) {
				cmd := exec.Command("sh", "-c", fmt.Sprintf("tar --format=%s -cf - -C %s . | xz -c %s", tarFormat, src, strings.Join(args, " ")))
				out, err := cmd.Output()
				if err != nil {
					t.Fatal(err)
				}
				got, err := readAll(bytes.NewReader(out), Limits{}, true)
				if err != nil {
					t.Fatal(err)
				}
				if len(got.data) != len(want) {
					t.Fatalf("%d files, want %d", len(got.data), len(want))
				}
				for name, data := range want {
					if got.data[name] != data {
						t.Errorf("%s: %q, want %q", name, got.data[name], data)
					}
				}
			})
		}
	}
	t.Run("xz reads Writer", func(t *testing.T) {
		data := build(t, true, file{name: "a.xml", data: "aaa"}, file{name: "d/b.xml", data: "bbb"})
		cmd := exec.Command("sh", "-c", "xz --format=lzma -dc | tar -tf -")
		cmd.Stdin = bytes.NewReader(data)
		out, err := cmd.CombinedOutput()
		if err != nil || string(out) != "a.xml\nd/b.xml\n" {
			t.Fatalf("xz|tar: %q, %v", out, err)
		}
	})
	t.Run("xz container refused", func(t *testing.T) {
		out, err := exec.Command("sh", "-c", fmt.Sprintf("tar -cf - -C %s . | xz -c --format=xz", src)).Output()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := readAll(bytes.NewReader(out), Limits{}, true); CodeOf(err) != CodeFormatXZ {
			t.Fatalf("%v, want %s", err, CodeFormatXZ)
		}
	})
}

// Every Code constant has one catalogue row with a status the API uses and
// a description; no row is for a code that does not exist.
func TestCodesCatalogue(t *testing.T) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "errors.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	consts := map[Code]bool{}
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, s := range g.Specs {
			vs := s.(*ast.ValueSpec)
			if id, ok := vs.Type.(*ast.Ident); ok && id.Name == "Code" {
				lit := vs.Values[0].(*ast.BasicLit)
				consts[Code(strings.Trim(lit.Value, `"`))] = true
			}
		}
	}
	rows := map[Code]bool{}
	for _, ci := range Codes {
		if rows[ci.Code] {
			t.Errorf("%s: two rows", ci.Code)
		}
		rows[ci.Code] = true
		if !consts[ci.Code] {
			t.Errorf("%s: row without a constant", ci.Code)
		}
		switch ci.Status {
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity:
		default:
			t.Errorf("%s: status %d", ci.Code, ci.Status)
		}
		if !strings.HasPrefix(string(ci.Code), "ARCHIVE_") || len(ci.Description) < 20 {
			t.Errorf("%s: bad code name or description", ci.Code)
		}
	}
	for c := range consts {
		if !rows[c] {
			t.Errorf("%s: constant without a row", c)
		}
	}
	if (&Error{Code: CodeRatio}).Status() != http.StatusRequestEntityTooLarge {
		t.Error("Status")
	}
}
