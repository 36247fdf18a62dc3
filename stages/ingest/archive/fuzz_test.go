package archive

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

// fuzzLimits keep each fuzz input cheap: a clamped dictionary of at most
// 1 MiB and at most 1 MiB of output.
var fuzzLimits = Limits{
	MaxTotalBytes:   1 << 20,
	MaxEntryBytes:   256 << 10,
	MaxEntries:      64,
	RatioGraceBytes: 64 << 10,
	MaxDictBytes:    1 << 20,
}

// FuzzReader: no input makes the reader panic, return a non-*Error (the
// input is in memory, so there are no read errors), return more than the
// limits allow, or hand out a name that is not clean and unique.
func FuzzReader(f *testing.F) {
	seeds := [][]byte{
		build(f, false, file{name: "a.xml", data: "<Message/>"}),
		build(f, false, file{name: "a.xml", data: "<a/>"}, file{name: "d/b.xml", data: strings.Repeat("b", 700)}),
		tarOf(f, tar.FormatPAX, file{name: "d/", typ: tar.TypeDir}, file{name: "../x", data: "x"}),
		tarOf(f, tar.FormatGNU, file{name: "l", typ: tar.TypeSymlink, link: "/etc"}),
		tarOf(f, tar.FormatPAX, file{name: strings.Repeat("long/", 30) + "x.xml", data: "x"}),
		tarOf(f, 0, file{name: "a.xml"}, file{name: "./a.xml"}),
	}
	for _, s := range seeds {
		f.Add(s, false)
		f.Add(lzmaOf(f, s), true)
	}
	f.Add(build(f, true, file{name: "a.xml", data: strings.Repeat("<Message>hej</Message>", 100)}), true)
	f.Add([]byte{}, true)
	f.Add([]byte{0x5d, 0, 0, 0x80, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0}, true)

	f.Fuzz(func(t *testing.T, data []byte, compressed bool) {
		r := NewReader(bytes.NewReader(data), fuzzLimits, compressed)
		seen := map[string]bool{}
		var sum int64
		for {
			e, err := r.Next()
			if err == io.EOF {
				if len(seen) == 0 {
					t.Fatal("io.EOF with no files")
				}
				break
			}
			if err != nil {
				checkErr(t, err)
				break
			}
			if c, reason := cleanName(e.Name, DefaultMaxNameBytes, false); reason != "" || c != e.Name {
				t.Fatalf("name %q is not clean (%q, %s)", e.Name, c, reason)
			}
			if seen[e.Name] {
				t.Fatalf("duplicate name %q", e.Name)
			}
			seen[e.Name] = true
			if e.Size > fuzzLimits.MaxEntryBytes {
				t.Fatalf("entry of %d bytes", e.Size)
			}
			b, err := e.Bytes()
			if err != nil {
				checkErr(t, err)
				break
			}
			if int64(len(b)) != e.Size {
				t.Fatalf("%d bytes, header says %d", len(b), e.Size)
			}
			sum += e.Size
		}
		if _, dec, _ := r.Stats(); sum > fuzzLimits.MaxTotalBytes || dec > fuzzLimits.MaxTotalBytes+1 {
			t.Fatalf("read %d file bytes, %d stream bytes", sum, dec)
		}
	})
}

func checkErr(t *testing.T, err error) {
	var ae *Error
	if !errors.As(err, &ae) {
		t.Fatalf("error %v (%T) is not an *Error", err, err)
	}
	if Lookup(ae.Code).Description == "" {
		t.Fatalf("code %s is not in the catalogue", ae.Code)
	}
}
