// Package wire holds the primitives of memoflow's compact binary records
// (records.Envelope, registry changes): length-prefixed strings and
// varints, and a decoder that stops at the first malformed field.
package wire

import (
	"encoding/binary"
	"fmt"
)

// AppendStr appends s with its uvarint length.
func AppendStr(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// AppendStrs appends a count and each string.
func AppendStrs(dst []byte, ss []string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(ss)))
	for _, s := range ss {
		dst = AppendStr(dst, s)
	}
	return dst
}

// Decoder reads fields from B. The first malformed field sets Err (wrapping
// Malformed, the caller's sentinel) and empties B, so later reads return
// zero values and the caller checks Err once at the end.
type Decoder struct {
	B         []byte
	Err       error
	Malformed error
}

// Fail records a malformed field.
func (d *Decoder) Fail(what string) {
	if d.Err == nil {
		d.Err = fmt.Errorf("%w: %s", d.Malformed, what)
	}
	d.B = nil
}

// Byte reads one byte.
func (d *Decoder) Byte() byte {
	if len(d.B) < 1 {
		d.Fail("truncated")
		return 0
	}
	v := d.B[0]
	d.B = d.B[1:]
	return v
}

// Uvarint reads an unsigned varint below limit.
func (d *Decoder) Uvarint(limit uint64) uint64 {
	v, n := binary.Uvarint(d.B)
	if n <= 0 {
		d.Fail("bad uvarint")
		return 0
	}
	if v >= limit {
		d.Fail("value out of range")
		return 0
	}
	d.B = d.B[n:]
	return v
}

// Varint reads a signed varint.
func (d *Decoder) Varint() int64 {
	v, n := binary.Varint(d.B)
	if n <= 0 {
		d.Fail("bad varint")
		return 0
	}
	d.B = d.B[n:]
	return v
}

// Raw returns the next n bytes without copying (capacity capped, so an
// append to them cannot overwrite what follows).
func (d *Decoder) Raw(n int) []byte {
	if n < 0 || len(d.B) < n {
		d.Fail("truncated")
		return nil
	}
	v := d.B[:n:n]
	d.B = d.B[n:]
	return v
}

// Bytes returns a length-prefixed field of less than max bytes, not copied.
func (d *Decoder) Bytes(max uint64) []byte {
	n := d.Uvarint(max)
	if d.Err != nil {
		return nil
	}
	return d.Raw(int(n))
}

// Str returns a length-prefixed string of less than max bytes (a copy).
func (d *Decoder) Str(max uint64) string {
	return string(d.Bytes(max))
}

// Strs returns a count of strings, each shorter than max. The count is
// bounded by what remains, so a corrupt count cannot make it allocate
// without limit.
func (d *Decoder) Strs(max uint64) []string {
	n := d.Uvarint(uint64(len(d.B)) + 1)
	if n == 0 || d.Err != nil {
		return nil
	}
	out := make([]string, n)
	for i := range out {
		out[i] = d.Str(max)
	}
	return out
}
