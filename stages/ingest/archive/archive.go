// Package archive reads and writes NgDP batches: a tar archive of MeMo
// files, compressed with LZMA in the "LZMA alone" format (.lzma), as sent to
// POST /apis/v1/memos/ with Content-Type application/x-lzma. Plain tar is
// read too.
//
// The Reader is built for hostile input. It streams (it holds one LZMA
// dictionary and at most the entry the caller is reading, never the
// archive), and every resource it spends is bounded by Limits: the
// decompressed total, the decompression ratio (checked continuously, so a
// bomb is stopped after a few MB), the LZMA dictionary, the size of one
// file, the number of entries and the length of a name. Every refusal is an
// *Error with a stable Code whose HTTP status is in Codes.
//
// A batch is only valid once Next has returned io.EOF: a damaged LZMA
// stream or a missing tar trailer is found only at the end, after entries
// have been returned. Callers stage what they read and commit after io.EOF.
// See DESIGN.md.
package archive

import (
	"archive/tar"
	"bufio"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Defaults of Limits.
const (
	// DefaultMaxTotalBytes is domain rule 1: at most 99.5 MB per shipment.
	DefaultMaxTotalBytes = 99_500_000
	// DefaultMaxEntryBytes: one MeMo may use the whole shipment.
	DefaultMaxEntryBytes = 99_500_000
	// DefaultMaxEntries bounds the per-entry work and the duplicate-name
	// set. A tar entry takes at least 1 KiB (header plus a padded block),
	// so about 97,000 files fit in 99.5 MB anyway.
	DefaultMaxEntries = 100_000
	// DefaultMaxRatio of decompressed to compressed bytes. XML batches
	// compress 5-30:1; a decompression bomb reaches thousands to one.
	DefaultMaxRatio = 100
	// DefaultRatioGraceBytes are decompressed before the ratio applies, so
	// a small, very repetitive batch (or the mostly-zero tar padding of a
	// tiny one) is not refused.
	DefaultRatioGraceBytes = 4 << 20
	// DefaultMaxDictBytes covers every LZMA preset of xz, 7-Zip and the
	// Java encoders (-9 uses 64 MiB). The dictionary is the decoder's one
	// large allocation.
	DefaultMaxDictBytes = 64 << 20
	// DefaultMaxNameBytes is the classic file name limit; MeMo file names
	// are a UUID and a suffix.
	DefaultMaxNameBytes = 255
)

// Limits bound what one Reader may spend. A zero field takes its default.
type Limits struct {
	// MaxTotalBytes bounds the decompressed stream (tar headers and padding
	// included) and the sum of the files' sizes.
	MaxTotalBytes int64
	// MaxEntryBytes bounds one file.
	MaxEntryBytes int64
	// MaxEntries bounds the tar headers of any kind (files, directories,
	// global headers).
	MaxEntries int
	// MaxRatio bounds decompressed/compressed bytes once RatioGraceBytes
	// have been decompressed. Negative disables the check (a mass send
	// whose letters all carry the same large attachment can legitimately
	// exceed 100:1; the total limit still bounds the work).
	MaxRatio float64
	// RatioGraceBytes are decompressed before MaxRatio applies.
	RatioGraceBytes int64
	// MaxDictBytes bounds the LZMA dictionary the header asks for (after
	// clamping it to the declared size and MaxTotalBytes, which a stream
	// can never need more than).
	MaxDictBytes int64
	// MaxNameBytes bounds an entry name.
	MaxNameBytes int
}

// DefaultLimits returns the limits a zero Limits stands for.
func DefaultLimits() Limits { return Limits{}.withDefaults() }

func (l Limits) withDefaults() Limits {
	if l.MaxTotalBytes <= 0 {
		l.MaxTotalBytes = DefaultMaxTotalBytes
	}
	if l.MaxEntryBytes <= 0 {
		l.MaxEntryBytes = DefaultMaxEntryBytes
	}
	if l.MaxEntries <= 0 {
		l.MaxEntries = DefaultMaxEntries
	}
	if l.MaxRatio == 0 {
		l.MaxRatio = DefaultMaxRatio
	}
	if l.RatioGraceBytes <= 0 {
		l.RatioGraceBytes = DefaultRatioGraceBytes
	}
	if l.MaxDictBytes <= 0 {
		l.MaxDictBytes = DefaultMaxDictBytes
	}
	if l.MaxNameBytes <= 0 {
		l.MaxNameBytes = DefaultMaxNameBytes
	}
	return l
}

// Entry is one file of the archive.
type Entry struct {
	// Name is the cleaned name: relative, slash-separated, without "." or
	// empty components and without a leading "./". It is unique in the
	// archive.
	Name string
	// Size is the file's size from its tar header, already checked against
	// the limits. Body yields exactly Size bytes or fails.
	Size int64
	// Body is the file's content. It is valid until the next call to Next;
	// what the caller does not read is skipped (and still checked) by Next.
	// Its errors are *Error (with Entry set) or read errors of the input.
	Body io.Reader
}

// Bytes reads the rest of Body. Memory grows with what is actually read,
// not with the declared Size, so a header that lies costs nothing.
func (e Entry) Bytes() ([]byte, error) {
	buf := make([]byte, 0, min(e.Size, 1<<20))
	for {
		if len(buf) == cap(buf) {
			if int64(len(buf)) >= e.Size {
				// tar yields exactly Size bytes: confirm the end so a
				// stream error right after the file is not missed.
				var one [1]byte
				n, err := e.Body.Read(one[:])
				if n > 0 {
					return nil, fmt.Errorf("archive: entry %q is longer than its header says", e.Name)
				}
				if err != nil && err != io.EOF {
					return nil, err
				}
				return buf, nil
			}
			nb := make([]byte, len(buf), min(e.Size, 2*int64(cap(buf))))
			copy(nb, buf)
			buf = nb
		}
		n, err := e.Body.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// Reader reads the entries of one batch. It is not safe for concurrent use.
type Reader struct {
	lim        Limits
	compressed bool

	src source      // the input as received, counted
	m   meter       // the decompressed (tar) stream, limited
	tr  *tar.Reader // nil until the first Next

	err     error // sticky: the first failure, or io.EOF
	seq     int   // incremented by each Next, to retire old Bodies
	headers int
	files   int
	total   int64 // sum of the files' sizes
	// seen holds a 128-bit digest per file name, not the name: with
	// 100,000 names of up to 255 bytes the strings would be up to 25 MB.
	seen map[[16]byte]struct{}
}

// NewReader returns a Reader of the tar archive in r, LZMA-alone compressed
// when compressed is true. It reads nothing until the first Next.
func NewReader(r io.Reader, lim Limits, compressed bool) *Reader {
	ar := &Reader{
		lim:        lim.withDefaults(),
		compressed: compressed,
		seen:       make(map[[16]byte]struct{}),
	}
	ar.src.br = bufio.NewReaderSize(r, 64<<10)
	ar.m.r = ar
	return ar
}

// Next returns the next file. It returns io.EOF once the whole input has
// been read and found valid, and then again on every call; any other error
// is final too. Directories and pax global headers are skipped.
func (r *Reader) Next() (Entry, error) {
	if r.err != nil {
		return Entry{}, r.err
	}
	r.seq++
	if r.tr == nil {
		if err := r.start(); err != nil {
			return Entry{}, r.fail(err)
		}
	}
	for {
		hdr, err := r.tr.Next()
		if err == io.EOF {
			return Entry{}, r.finish()
		}
		// ErrInsecurePath comes only with GODEBUG=tarinsecurepath=0 and
		// with the header; cleanName below makes its own, stricter check.
		if err != nil && (hdr == nil || !errors.Is(err, tar.ErrInsecurePath)) {
			return Entry{}, r.fail(r.tarErr(err, ""))
		}
		r.headers++
		if r.headers > r.lim.MaxEntries {
			return Entry{}, r.fail(&Error{Code: CodeTooManyEntries, Entry: hdr.Name,
				Message: fmt.Sprintf("more than %d entries", r.lim.MaxEntries)})
		}
		switch hdr.Typeflag {
		case tar.TypeReg:
		case tar.TypeDir:
			// Skipped, but a hostile name is still refused: the batch
			// would not be written by a sane tool.
			if _, reason := cleanName(hdr.Name, r.lim.MaxNameBytes, true); reason != "" {
				return Entry{}, r.fail(&Error{Code: CodePathUnsafe, Entry: hdr.Name, Message: reason})
			}
			continue
		case tar.TypeXGlobalHeader:
			// git archive and some tars start with a pax global header
			// (pax_global_header); it is metadata, not a file.
			continue
		default:
			return Entry{}, r.fail(&Error{Code: CodeEntryType, Entry: hdr.Name,
				Message: "entry is a " + typeName(hdr.Typeflag) + ", only regular files are accepted"})
		}
		for k := range hdr.PAXRecords {
			// A pax sparse file expands holes into zeros that do not pass
			// through the stream limits.
			if strings.HasPrefix(k, "GNU.sparse.") {
				return Entry{}, r.fail(&Error{Code: CodeEntryType, Entry: hdr.Name,
					Message: "entry is a sparse file, only regular files are accepted"})
			}
		}
		name, reason := cleanName(hdr.Name, r.lim.MaxNameBytes, false)
		if reason != "" {
			return Entry{}, r.fail(&Error{Code: CodePathUnsafe, Entry: hdr.Name, Message: reason})
		}
		// Sizes are refused from the header, before anything is read.
		if hdr.Size > r.lim.MaxEntryBytes {
			return Entry{}, r.fail(&Error{Code: CodeEntryTooLarge, Entry: hdr.Name,
				Message: fmt.Sprintf("%d bytes, the limit is %d", hdr.Size, r.lim.MaxEntryBytes)})
		}
		if r.total+hdr.Size > r.lim.MaxTotalBytes {
			return Entry{}, r.fail(&Error{Code: CodeTooLarge, Entry: hdr.Name,
				Message: fmt.Sprintf("the files add up to more than %d bytes", r.lim.MaxTotalBytes)})
		}
		sum := sha256.Sum256([]byte(name))
		key := [16]byte(sum[:16])
		if _, dup := r.seen[key]; dup {
			return Entry{}, r.fail(&Error{Code: CodeDuplicateName, Entry: hdr.Name,
				Message: "a file named " + quoteName(name) + " came earlier"})
		}
		r.seen[key] = struct{}{}
		r.files++
		r.total += hdr.Size
		return Entry{Name: name, Size: hdr.Size, Body: &entryBody{r: r, seq: r.seq, name: hdr.Name}}, nil
	}
}

// Stats reports progress: files returned so far, decompressed bytes read and
// compressed bytes consumed (equal for plain tar). For logs and metrics.
func (r *Reader) Stats() (files int, decompressed, compressed int64) {
	return r.files, r.m.n, r.src.n
}

// finish runs when tar has seen the end of the archive: it reads the rest
// of the stream (tar pads to 10 KiB records; the LZMA stream must also end
// cleanly), and only then declares the batch good.
func (r *Reader) finish() error {
	// Measured before draining: what tar consumed must end in its
	// end-of-archive marker, two zero blocks. archive/tar also accepts an
	// archive that simply stops at an entry boundary, which is how a cut
	// plain-tar upload looks.
	trailer := r.m.zeroRun >= 2*blockSize
	if _, err := io.Copy(io.Discard, &r.m); err != nil {
		return r.fail(err)
	}
	if r.files == 0 {
		return r.fail(&Error{Code: CodeEmpty, Message: "the archive holds no files"})
	}
	if !trailer {
		return r.fail(&Error{Code: CodeTarTruncated, Message: "the archive ends without its end-of-archive marker"})
	}
	r.err = io.EOF
	return io.EOF
}

const blockSize = 512

func (r *Reader) fail(err error) error {
	if r.err == nil {
		r.err = err
	}
	return r.err
}

// tarErr turns an error from archive/tar into an *Error or a read error.
// Errors from the stream below (meter) pass through tar unchanged.
func (r *Reader) tarErr(err error, entry string) error {
	var ae *Error
	if errors.As(err, &ae) {
		if ae.Entry == "" && entry != "" {
			c := *ae
			c.Entry = entry
			return &c
		}
		return ae
	}
	if r.src.err != nil {
		return readErr(r.src.err)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return &Error{Code: CodeTarTruncated, Entry: entry, Message: "the archive ends inside a header or file"}
	}
	return &Error{Code: CodeTarCorrupt, Entry: entry, Message: "not a valid tar archive", Err: err}
}

func readErr(err error) error { return fmt.Errorf("archive: reading the body: %w", err) }

// entryBody is Entry.Body. seq ties it to one Next so a stale Body cannot
// read the next entry's bytes.
type entryBody struct {
	r    *Reader
	seq  int
	name string
}

var errStaleBody = errors.New("archive: Entry.Body read after the next call to Next")

func (b *entryBody) Read(p []byte) (int, error) {
	r := b.r
	if b.seq != r.seq {
		return 0, errStaleBody
	}
	if r.err != nil {
		return 0, r.err
	}
	n, err := r.tr.Read(p)
	if err != nil && err != io.EOF {
		err = r.fail(r.tarErr(err, b.name))
	}
	return n, err
}

func typeName(t byte) string {
	switch t {
	case tar.TypeSymlink:
		return "symlink"
	case tar.TypeLink:
		return "hard link"
	case tar.TypeChar:
		return "character device"
	case tar.TypeBlock:
		return "block device"
	case tar.TypeFifo:
		return "FIFO"
	case tar.TypeCont:
		return "contiguous file"
	case tar.TypeGNUSparse:
		return "sparse file"
	default:
		return fmt.Sprintf("entry of type %q", t)
	}
}
