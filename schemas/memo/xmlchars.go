package memo

import "unicode/utf8"

// Character-level helpers of the XML scanner.

// textClass classifies bytes of character data: 0 plain (ASCII that needs
// no attention), otherwise one of the constants below.
const (
	tcPlain = iota
	tcLT
	tcAmp
	tcRBracket
	tcCR
	tcCtrl
	tcHigh
	tcGT // only in attribute values: fine, but listed so quotes stand out
	tcQuote
)

var textClass = func() (t [256]uint8) {
	for i := 0; i < 0x20; i++ {
		t[i] = tcCtrl
	}
	t['\t'], t['\n'] = tcPlain, tcPlain
	t['\r'] = tcCR
	t['<'] = tcLT
	t['&'] = tcAmp
	t[']'] = tcRBracket
	for i := 0x80; i < 0x100; i++ {
		t[i] = tcHigh
	}
	return t
}()

// attrClass is textClass for attribute values: quotes end the value and
// tab/LF need normalizing too.
var attrClass = func() (t [256]uint8) {
	t = textClass
	t[']'] = tcPlain
	t['"'], t['\''] = tcQuote, tcQuote
	t['\t'], t['\n'] = tcCR, tcCR
	return t
}()

// isXMLChar reports whether r (already valid UTF-8) is an XML 1.0 Char.
func isXMLChar(r rune) bool {
	switch {
	case r < 0x20:
		return r == 0x9 || r == 0xA || r == 0xD
	case r <= 0xD7FF:
		return true
	case r < 0xE000:
		return false
	case r <= 0xFFFD:
		return true
	}
	return r >= 0x10000 && r <= 0x10FFFF
}

// decodeHigh decodes the multi-byte UTF-8 sequence at b[0:], checking it is
// valid UTF-8 and an XML Char. It returns the size, or 0 and a code.
func decodeHigh(b []byte) (int, Code) {
	r, n := utf8.DecodeRune(b)
	if r == utf8.RuneError && n <= 1 {
		return 0, CodeXMLInvalidUTF8
	}
	if !isXMLChar(r) {
		return 0, CodeXMLInvalidChar
	}
	return n, ""
}

// Name characters (XML 1.0 fifth edition).
func isNameStartRune(r rune) bool {
	switch {
	case r < 0x80:
		return (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || r == '_' || r == ':'
	case r >= 0xC0 && r <= 0xD6, r >= 0xD8 && r <= 0xF6, r >= 0xF8 && r <= 0x2FF,
		r >= 0x370 && r <= 0x37D, r >= 0x37F && r <= 0x1FFF, r >= 0x200C && r <= 0x200D,
		r >= 0x2070 && r <= 0x218F, r >= 0x2C00 && r <= 0x2FEF, r >= 0x3001 && r <= 0xD7FF,
		r >= 0xF900 && r <= 0xFDCF, r >= 0xFDF0 && r <= 0xFFFD, r >= 0x10000 && r <= 0xEFFFF:
		return true
	}
	return false
}

func isNameRune(r rune) bool {
	if isNameStartRune(r) {
		return true
	}
	switch {
	case r < 0x80:
		return r == '-' || r == '.' || (r >= '0' && r <= '9')
	case r == 0xB7, r >= 0x300 && r <= 0x36F, r >= 0x203F && r <= 0x2040:
		return true
	}
	return false
}

// nameClass: 1 name start (ASCII), 2 name char only (ASCII), 0 not a name
// char, 3 high byte (decode), 4 colon.
var nameClass = func() (t [256]uint8) {
	for c := 'a'; c <= 'z'; c++ {
		t[c] = 1
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = 1
	}
	t['_'] = 1
	for c := '0'; c <= '9'; c++ {
		t[c] = 2
	}
	t['-'], t['.'] = 2, 2
	t[':'] = 4
	for i := 0x80; i < 0x100; i++ {
		t[i] = 3
	}
	return t
}()

// predefinedEntity returns the replacement of one of the five predefined
// entities.
func predefinedEntity(name []byte) (byte, bool) {
	switch string(name) {
	case "amp":
		return '&', true
	case "lt":
		return '<', true
	case "gt":
		return '>', true
	case "apos":
		return '\'', true
	case "quot":
		return '"', true
	}
	return 0, false
}

// SWAR tests on 8 bytes at a time (little-endian words).
const (
	lsb8 = 0x0101010101010101
	msb8 = 0x8080808080808080
)

func hasLess(x uint64, n byte) bool { return (x-lsb8*uint64(n))&^x&msb8 != 0 }

func hasByte(x uint64, b byte) bool {
	y := x ^ (lsb8 * uint64(b))
	return (y-lsb8)&^y&msb8 != 0
}

// plainASCII8: all 8 bytes are printable ASCII (0x20..0x7f).
func plainASCII8(x uint64) bool { return x&msb8 == 0 && !hasLess(x, 0x20) }

// plainText8: all 8 bytes are character data needing no attention.
func plainText8(x uint64) bool {
	return plainASCII8(x) && !hasByte(x, '<') && !hasByte(x, '&') && !hasByte(x, ']')
}
