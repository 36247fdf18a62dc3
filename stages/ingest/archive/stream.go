package archive

import (
	"archive/tar"
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/ulikunitz/xz/lzma"
)

// source is the input as received. It counts the bytes consumed (the
// compressed side of the ratio), remembers the first read error of the
// underlying reader (so a client that went away is not reported as corrupt
// LZMA), and can replay a rewritten LZMA header in front of the stream.
//
// It implements io.ByteReader because the LZMA decoder reads byte by byte
// and would otherwise wrap it in a one-byte-Read adapter.
type source struct {
	br  *bufio.Reader
	n   int64
	err error
	hdr []byte // served before br; not counted, its bytes were already
}

func (s *source) Read(p []byte) (int, error) {
	if len(s.hdr) > 0 {
		n := copy(p, s.hdr)
		s.hdr = s.hdr[n:]
		return n, nil
	}
	n, err := s.br.Read(p)
	s.n += int64(n)
	s.note(err)
	return n, err
}

func (s *source) ReadByte() (byte, error) {
	if len(s.hdr) > 0 {
		c := s.hdr[0]
		s.hdr = s.hdr[1:]
		return c, nil
	}
	c, err := s.br.ReadByte()
	if err != nil {
		s.note(err)
		return 0, err
	}
	s.n++
	return c, nil
}

func (s *source) note(err error) {
	if err != nil && err != io.EOF && s.err == nil {
		s.err = err
	}
}

// meter is the decompressed stream that archive/tar reads. It enforces the
// limits that concern the stream as a whole, on every Read, so that a bomb
// is stopped as soon as it shows, and turns decoder errors into codes.
type meter struct {
	r   *Reader
	in  io.Reader // the LZMA decoder, or &r.src for plain tar
	lz  bool
	n   int64 // bytes delivered
	err error // sticky

	// zeroRun is how many zero bytes the delivered stream ends with; finish
	// uses it to see the tar end-of-archive marker.
	zeroRun int64
}

func (m *meter) Read(p []byte) (int, error) {
	if m.err != nil {
		return 0, m.err
	}
	lim := &m.r.lim
	// Never decode more than one byte past the limit on the caller's
	// behalf.
	if room := lim.MaxTotalBytes - m.n + 1; int64(len(p)) > room {
		p = p[:room]
	}
	n, err := m.read(p)
	if n > 0 {
		m.n += int64(n)
		m.trackZeros(p[:n])
	}
	src := &m.r.src
	switch {
	case m.n > lim.MaxTotalBytes:
		err = &Error{Code: CodeTooLarge, Message: fmt.Sprintf("decompressed data exceeds %d bytes", lim.MaxTotalBytes)}
	case m.lz && lim.MaxRatio > 0 && m.n > lim.RatioGraceBytes && float64(m.n) > lim.MaxRatio*float64(src.n):
		// src.n runs ahead of m.n (the decoder fills its dictionary before
		// we read it), so the ratio seen here is never overstated.
		err = &Error{Code: CodeRatio, Message: fmt.Sprintf("%d bytes decompressed from %d (more than %g:1)", m.n, src.n, lim.MaxRatio)}
	case err == io.EOF:
		if m.lz {
			err = m.endOfLZMA()
		}
	case err != nil:
		err = m.decodeErr(err)
	}
	if err != nil {
		m.err = err
	}
	return n, err
}

// read calls the decoder. The decoder is third-party code fed hostile
// bytes; a panic in it must fail this batch, not the process.
func (m *meter) read(p []byte) (n int, err error) {
	if !m.lz {
		return m.in.Read(p)
	}
	defer func() {
		if v := recover(); v != nil {
			n, err = 0, &Error{Code: CodeLZMACorrupt, Message: fmt.Sprintf("the LZMA decoder failed: %v", v)}
		}
	}()
	return m.in.Read(p)
}

// endOfLZMA checks that nothing follows the LZMA stream, as xz does for
// .lzma files: trailing bytes are a concatenation or garbage, and either
// way not what the sender meant to send.
func (m *meter) endOfLZMA() error {
	src := &m.r.src
	b, err := src.br.Peek(1)
	src.note(err)
	if len(b) > 0 {
		return &Error{Code: CodeLZMACorrupt, Message: "data after the end of the LZMA stream"}
	}
	if src.err != nil {
		return readErr(src.err)
	}
	return io.EOF
}

func (m *meter) decodeErr(err error) error {
	src := &m.r.src
	if src.err != nil {
		return readErr(src.err)
	}
	if !m.lz {
		return readErr(err)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return &Error{Code: CodeLZMATruncated, Message: "the LZMA stream ends early"}
	}
	return &Error{Code: CodeLZMACorrupt, Message: "corrupt LZMA data", Err: err}
}

func (m *meter) trackZeros(b []byte) {
	i := len(b) - 1
	for i >= 0 && b[i] == 0 {
		i--
	}
	if i < 0 {
		m.zeroRun += int64(len(b))
	} else {
		m.zeroRun = int64(len(b) - 1 - i)
	}
}

// sniffLen covers the ustar magic at offset 257.
const sniffLen = 265

// start identifies the input, reads the LZMA header and sets up the tar
// reader.
func (r *Reader) start() error {
	head, err := r.src.br.Peek(sniffLen)
	r.src.note(err)
	if len(head) == 0 {
		if r.src.err != nil {
			return readErr(r.src.err)
		}
		return &Error{Code: CodeEmpty, Message: "the body is empty"}
	}
	if err := sniff(head, r.compressed); err != nil {
		return err
	}
	r.tr = tar.NewReader(&r.m)
	if !r.compressed {
		r.m.in = &r.src
		return nil
	}
	lz, err := r.openLZMA()
	if err != nil {
		return err
	}
	r.m.in, r.m.lz = lz, true
	return nil
}

// openLZMA reads and checks the 13-byte LZMA-alone header (properties,
// dictionary size, uncompressed size or all ones for "unknown") before the
// decoder allocates anything.
func (r *Reader) openLZMA() (*lzma.Reader, error) {
	var h [lzma.HeaderLen]byte
	if _, err := io.ReadFull(&r.src, h[:]); err != nil {
		if r.src.err != nil {
			return nil, readErr(r.src.err)
		}
		return nil, &Error{Code: CodeLZMATruncated, Message: "the body is shorter than an LZMA header"}
	}
	if h[0] >= 9*5*5 {
		return nil, &Error{Code: CodeLZMACorrupt, Message: fmt.Sprintf("invalid LZMA properties byte 0x%02x", h[0])}
	}
	dict := int64(binary.LittleEndian.Uint32(h[1:5]))
	size := int64(-1)
	if s := binary.LittleEndian.Uint64(h[5:]); s != 1<<64-1 {
		if s > uint64(r.lim.MaxTotalBytes) {
			return nil, &Error{Code: CodeTooLarge, Message: fmt.Sprintf("the LZMA header declares %d bytes, the limit is %d", s, r.lim.MaxTotalBytes)}
		}
		if s == 0 {
			return nil, &Error{Code: CodeEmpty, Message: "the LZMA header declares 0 bytes"}
		}
		size = int64(s)
	}
	// A match can reach back at most as far as the data decoded so far, so
	// no stream needs a dictionary larger than its own (declared or
	// permitted) size. Clamping before the check lets a -9 encoder's 64 MiB
	// dictionary through for a small batch under a tighter MaxDictBytes,
	// and keeps fuzzing cheap.
	eff := dict
	if size >= 0 && size < eff {
		eff = size
	}
	eff = min(eff, r.lim.MaxTotalBytes)
	eff = max(eff, lzma.MinDictCap)
	if eff > r.lim.MaxDictBytes {
		return nil, &Error{Code: CodeDictTooLarge, Message: fmt.Sprintf("the LZMA header asks for a %d-byte dictionary, the limit is %d", dict, r.lim.MaxDictBytes)}
	}
	binary.LittleEndian.PutUint32(h[1:5], uint32(eff))
	r.src.hdr = h[:]
	lz, err := lzma.ReaderConfig{DictCap: int(eff)}.NewReader(&r.src)
	if err != nil {
		if r.src.err != nil {
			return nil, readErr(r.src.err)
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, &Error{Code: CodeLZMATruncated, Message: "the LZMA stream ends early"}
		}
		return nil, &Error{Code: CodeLZMACorrupt, Message: "invalid LZMA stream start", Err: err}
	}
	return lz, nil
}

// sniff refuses the formats a sender plausibly sends by mistake, with a
// code that says which, instead of a confusing LZMA or tar error.
//
// LZMA-alone has no magic number, and several magics below begin with a
// byte that is also a valid LZMA properties byte. So when the first 13
// bytes look like the header real encoders write (a dictionary of 2^n or
// 3*2^(n-1) bytes), the input is taken to be LZMA; no magic checked here
// passes that test.
func sniff(head []byte, compressed bool) error {
	if compressed && len(head) >= lzma.HeaderLen && lzma.ValidHeader(head[:lzma.HeaderLen]) {
		return nil
	}
	unsupported := func(what string) error {
		return &Error{Code: CodeFormatUnsupported, Message: what + ", expected a tar archive compressed with LZMA (.lzma)"}
	}
	switch {
	case bytes.HasPrefix(head, []byte{0x1f, 0x8b, 0x08}):
		return &Error{Code: CodeFormatGzip, Message: "the body is gzip, expected LZMA-alone (.lzma)"}
	case bytes.HasPrefix(head, []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}):
		return &Error{Code: CodeFormatXZ, Message: "the body is an xz container, expected LZMA-alone (.lzma, xz --format=lzma)"}
	case bytes.HasPrefix(head, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return unsupported("the body is zstd")
	case len(head) >= 4 && bytes.HasPrefix(head, []byte("BZh")) && head[3] >= '1' && head[3] <= '9':
		return unsupported("the body is bzip2")
	case bytes.HasPrefix(head, []byte("PK\x03\x04")), bytes.HasPrefix(head, []byte("PK\x05\x06")):
		return unsupported("the body is a zip archive")
	case bytes.HasPrefix(head, []byte{'7', 'z', 0xbc, 0xaf, 0x27, 0x1c}):
		return unsupported("the body is a 7z archive")
	case bytes.HasPrefix(head, []byte("LZIP")):
		return unsupported("the body is lzip")
	case compressed && len(head) >= 262 && bytes.Equal(head[257:262], []byte("ustar")):
		return unsupported("the body is an uncompressed tar archive")
	}
	return nil
}
