package archive

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/ulikunitz/xz/lzma"
)

// WriterDictBytes is the LZMA dictionary Writer uses: the size of xz's
// default preset (-6), far below what Reader accepts, and enough to find the
// repetition between neighbouring letters of a mass send.
const WriterDictBytes = 8 << 20

// Writer writes a batch Reader accepts: regular files with clean, unique
// names, in a tar archive that is LZMA-alone compressed (with an end marker
// and no declared size, because the size is not known in advance) when
// compressed is true. It streams: only the LZMA window is held.
//
// Entries carry mode 0644 and the Unix epoch as modification time, so the
// same files in the same order give the same bytes.
type Writer struct {
	lz    *lzma.Writer // nil for plain tar
	tw    *tar.Writer
	names map[string]struct{}
	err   error // sticky: the archive is unusable after a write error
	done  bool
}

// NewWriter returns a Writer to w. It writes the LZMA header at once; an
// error doing so is returned by the first Add or Close.
func NewWriter(w io.Writer, compressed bool) *Writer {
	aw := &Writer{names: make(map[string]struct{})}
	out := w
	if compressed {
		lz, err := lzma.WriterConfig{DictCap: WriterDictBytes, EOSMarker: true}.NewWriter(w)
		if err != nil {
			aw.err = fmt.Errorf("archive: starting LZMA: %w", err)
		} else {
			aw.lz, out = lz, lz
		}
	}
	aw.tw = tar.NewWriter(out)
	return aw
}

// Add writes one file. A name Reader would refuse or a repeated name is an
// *Error (CodePathUnsafe, CodeDuplicateName) and leaves the archive
// usable; a write error is final.
func (w *Writer) Add(name string, data []byte) error {
	return w.AddReader(name, int64(len(data)), bytes.NewReader(data))
}

// AddReader writes one file of size bytes read from r, for files that are
// not in memory. r must yield exactly size bytes.
func (w *Writer) AddReader(name string, size int64, r io.Reader) error {
	if w.err != nil {
		return w.err
	}
	if w.done {
		return errors.New("archive: Add after Close")
	}
	clean, reason := cleanName(name, DefaultMaxNameBytes, false)
	if reason != "" {
		return &Error{Code: CodePathUnsafe, Entry: name, Message: reason}
	}
	if _, dup := w.names[clean]; dup {
		return &Error{Code: CodeDuplicateName, Entry: name, Message: "already added"}
	}
	if size < 0 {
		return fmt.Errorf("archive: negative size %d for %q", size, name)
	}
	w.names[clean] = struct{}{}
	hdr := &tar.Header{
		Typeflag: tar.TypeReg,
		Name:     clean,
		Size:     size,
		Mode:     0o644,
		ModTime:  time.Unix(0, 0),
	}
	if err := w.tw.WriteHeader(hdr); err != nil {
		w.err = fmt.Errorf("archive: writing header of %q: %w", name, err)
		return w.err
	}
	n, err := io.CopyN(w.tw, r, size)
	if err != nil {
		if err == io.EOF {
			err = fmt.Errorf("archive: %q: got %d bytes, size says %d", name, n, size)
		}
		w.err = fmt.Errorf("archive: writing %q: %w", name, err)
		return w.err
	}
	return nil
}

// Close writes the tar trailer and the LZMA end marker. It does not close
// the underlying writer.
func (w *Writer) Close() error {
	if w.done {
		return w.err
	}
	w.done = true
	if w.err != nil {
		return w.err
	}
	if err := w.tw.Close(); err != nil {
		w.err = fmt.Errorf("archive: closing tar: %w", err)
		return w.err
	}
	if w.lz != nil {
		if err := w.lz.Close(); err != nil {
			w.err = fmt.Errorf("archive: closing LZMA: %w", err)
			return w.err
		}
	}
	return nil
}
