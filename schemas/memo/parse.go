package memo

import (
	"bytes"
	"encoding/binary"
	"io"
	"sync"
	"unicode/utf8"
	"unsafe"
)

// Limits bounds what one Parse may consume. Each limit has its own code.
type Limits struct {
	MaxBytes      int // whole message; CodeLimitSize (99.5 MB = 99,500,000 by default)
	MaxDepth      int // element nesting; CodeLimitDepth
	MaxElements   int // elements in the document; CodeLimitElements
	MaxAttributes int // attributes of one element, namespace declarations included; CodeLimitAttributes
	MaxTextLength int // bytes of one text or attribute value other than File content; CodeLimitTextLength
}

// DefaultMaxBytes is NgDP's limit on one shipment: 99.5 MB.
const DefaultMaxBytes = 99_500_000

// DefaultLimits are generous for real MeMo (depth 8, a few hundred
// elements, values of at most 512 characters) and tight for hostile input.
func DefaultLimits() Limits {
	return Limits{
		MaxBytes:      DefaultMaxBytes,
		MaxDepth:      32,
		MaxElements:   200_000,
		MaxAttributes: 64,
		MaxTextLength: 64 << 10,
	}
}

// maxDocErrs bounds the document-level findings one parse keeps.
const maxDocErrs = 1000

type frameKind uint8

const (
	fkComplex frameKind = iota // element-only content of a known complex type
	fkLeaf                     // simple-typed element: text is collected
	fkContent                  // File/content: base64 is scanned, not copied
	fkSkip                     // not typed (unknown or misplaced): only well-formedness
)

// frame is one open element. It holds no pointers (types and particles
// are table indexes, model objects live in Parser.objs), so pushing one
// costs no GC write barriers.
type frame struct {
	kind    frameKind
	ctID    uint8 // complex: index of its type in ctypes
	partCT  uint8 // the parent's type (0: root or skipped element) ...
	partIdx uint8 // ... and the particle this element matched in it
	occ     int   // 1-based occurrence of the particle, for paths
	pos     int   // complex: current particle index
	count   int   // complex: occurrences of parts[pos] so far
	nsMark  int   // len(binds) before this element's declarations
	qs, qe  int   // the element's QName in src
	ls      int   // start of its local name

	hasData bool // leaf/content: some character data node was seen
	multi   bool // leaf: the value is being assembled in Parser.text
	norm    bool // leaf: the single raw run holds '\r'
	broken  bool // leaf: had a child element; the value is not used
	textErr bool // complex: text not allowed was reported
	rs, re  int  // leaf: the single raw run
	cstart  int  // content: offset of its character data
}

type binding struct {
	prefix []byte // empty: the default namespace
	ns     nsID
}

type attr struct {
	qs, qe, colon int // QName; colon is -1 or the index of ':'
	vs, ve        int // raw value (between the quotes)
	norm          bool
	ns            nsID
}

// Parser parses MeMo messages. It is not safe for concurrent use; reuse one
// per goroutine (Reset is implicit in Parse) or call the package-level Parse,
// which pools them.
type Parser struct {
	Limits Limits

	src    []byte
	pos    int
	stack  []frame
	objs   []any // model object of each open complex element, by depth
	binds  []binding
	attrs  []attr
	text   []byte // leaf value being assembled (references, CDATA, CR)
	abuf   []byte // attribute value normalization
	path   []byte
	arena  []byte // string storage of the current message, never reused
	msg    *Message
	nElems int
	b64    b64State

	cachePrefix []byte
	cacheNS     nsID
	cacheOK     bool
	stackHigh   int // deepest stack of the current parse
}

// NewParser returns a parser with DefaultLimits.
func NewParser() *Parser {
	return &Parser{Limits: DefaultLimits(), stack: make([]frame, 0, 16), binds: make([]binding, 0, 16), attrs: make([]attr, 0, 16)}
}

// Reset drops every reference to the last input and message, keeping the
// scratch buffers.
func (p *Parser) Reset() {
	p.src, p.msg, p.arena = nil, nil, nil
	p.pos, p.nElems = 0, 0
	clear(p.objs[:min(p.stackHigh, len(p.objs))]) // drop the model pointers of the last message
	p.stack, p.stackHigh = p.stack[:0], 0
	p.binds = p.binds[:0]
	p.attrs = p.attrs[:0]
	p.text = p.text[:0]
	p.cachePrefix, p.cacheOK = nil, false
	p.b64 = b64State{}
}

var parserPool = sync.Pool{New: func() any { return NewParser() }}

// Parse parses one message with a pooled Parser and DefaultLimits.
func Parse(data []byte) (*Message, error) {
	p := parserPool.Get().(*Parser)
	p.Limits = DefaultLimits()
	m, err := p.Parse(data)
	p.Reset()
	parserPool.Put(p)
	return m, err
}

// ParseReader reads the whole message (at most DefaultMaxBytes; more is
// CodeLimitSize) and parses it. It returns the bytes read, which the
// message's File offsets refer to.
func ParseReader(r io.Reader) (*Message, []byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, DefaultMaxBytes+1))
	if err != nil {
		return nil, data, err
	}
	if len(data) > DefaultMaxBytes {
		return &Message{Size: len(data)}, data, &Error{Code: CodeLimitSize, Message: "message is larger than " + itoa(DefaultMaxBytes) + " bytes"}
	}
	m, perr := Parse(data)
	return m, data, perr
}

// Parse parses data in one pass. It returns the message and a fatal *Error
// (levels xml and limit) or nil. Document-level schema findings (element
// order, unknown elements, ...) are not fatal: Validate reports them with
// the model checks. On a fatal error the message holds what was read before
// it and must not be routed on.
//
// The message's strings do not alias data; File content is located by
// offset into data, which Serialize needs again.
func (p *Parser) Parse(data []byte) (*Message, error) {
	p.Reset()
	p.src = data
	m := &Message{Size: len(data), src: data}
	p.msg = m
	est := len(data) / 4
	if est < 256 {
		est = 256
	} else if est > 4096 {
		est = 4096
	}
	p.arena = make([]byte, 0, est)
	var err *Error
	if p.Limits.MaxBytes > 0 && len(data) > p.Limits.MaxBytes {
		err = &Error{Code: CodeLimitSize, Message: "message is " + itoa(len(data)) + " bytes, more than " + itoa(p.Limits.MaxBytes)}
	} else {
		err = p.document()
	}
	p.msg = nil
	p.src = nil
	if err != nil {
		return m, err
	}
	return m, nil
}

// fail builds a fatal error at byte offset off.
func (p *Parser) fail(off int, code Code, msg string) *Error {
	line, col := 1, 1
	if off > len(p.src) {
		off = len(p.src)
	}
	if nl := bytes.Count(p.src[:off], []byte{'\n'}); nl > 0 {
		line = nl + 1
		col = off - bytes.LastIndexByte(p.src[:off], '\n')
	} else {
		col = off + 1
	}
	return &Error{Code: code, Path: p.curPath(), Message: msg + " (line " + itoa(line) + ", column " + itoa(col) + ")"}
}

func (p *Parser) truncated(off int) *Error {
	return p.fail(off, CodeXMLTruncated, "document ends unexpectedly")
}

// curPath is the element path of the open elements.
func (p *Parser) curPath() string {
	p.path = p.appendPath(p.path[:0], len(p.stack))
	return string(p.path)
}

func (p *Parser) appendPath(b []byte, depth int) []byte {
	for i := 0; i < depth; i++ {
		f := &p.stack[i]
		b = append(b, '/')
		if pt := f.particle(); pt != nil {
			b = append(b, pt.name...)
			if pt.repeated() {
				b = append(b, '[')
				b = appendInt(b, f.occ)
				b = append(b, ']')
			}
		} else {
			b = append(b, p.src[f.ls:f.qe]...)
		}
	}
	return b
}

func (p *Parser) docErr(code Code, path string, msg string) {
	if len(p.msg.docErrs) < maxDocErrs {
		p.msg.docErrs = append(p.msg.docErrs, &Error{Code: code, Path: path, Message: msg})
	}
}

// pathTo is the path of the first depth open elements.
func (p *Parser) pathTo(depth int) string {
	p.path = p.appendPath(p.path[:0], depth)
	return string(p.path)
}

// childPath is the path of the parent of the element being matched plus
// name (and index). While an element is matched its own frame is already
// pushed, so the parent is the second-innermost frame.
func (p *Parser) childPath(name []byte, idx int) string {
	return p.childPathAt(len(p.stack)-1, name, idx)
}

// childPathAt is the path of the first depth elements plus name.
func (p *Parser) childPathAt(depth int, name []byte, idx int) string {
	b := p.appendPath(p.path[:0], depth)
	b = append(b, '/')
	b = append(b, name...)
	if idx > 0 {
		b = append(b, '[')
		b = appendInt(b, idx)
		b = append(b, ']')
	}
	p.path = b
	return string(b)
}

// str stores b in the message's arena and returns it as a string. The arena
// is append-only and belongs to one message, so the strings stay valid.
func (p *Parser) str(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	if cap(p.arena)-len(p.arena) < len(b) {
		n := 2 * cap(p.arena)
		if n < len(b) {
			n = len(b)
		}
		if n < 256 {
			n = 256
		}
		p.arena = make([]byte, 0, n)
	}
	start := len(p.arena)
	p.arena = append(p.arena, b...)
	return unsafe.String(&p.arena[start], len(b))
}

func hasPrefixAt(s []byte, i int, pre string) bool {
	return len(s)-i >= len(pre) && string(s[i:i+len(pre)]) == pre
}

func (p *Parser) document() *Error {
	s := p.src
	if len(s) == 0 {
		return p.fail(0, CodeXMLEmpty, "empty document")
	}
	switch {
	case len(s) >= 3 && s[0] == 0xEF && s[1] == 0xBB && s[2] == 0xBF:
		p.pos = 3
	case len(s) >= 2 && ((s[0] == 0xFE && s[1] == 0xFF) || (s[0] == 0xFF && s[1] == 0xFE)):
		return p.fail(0, CodeXMLEncoding, "UTF-16 byte-order mark; MeMo must be UTF-8")
	case len(s) >= 2 && (s[0] == 0 || s[1] == 0):
		return p.fail(0, CodeXMLEncoding, "UTF-16/32 encoded document; MeMo must be UTF-8")
	}
	if hasPrefixAt(s, p.pos, "<?xml") && len(s) > p.pos+5 && isXMLSpace(s[p.pos+5]) {
		if err := p.xmlDecl(); err != nil {
			return err
		}
	}
	if err := p.misc(false); err != nil {
		return err
	}
	if err := p.elements(); err != nil {
		return err
	}
	return p.misc(true)
}

func (p *Parser) skipSpace(i int) int {
	for i < len(p.src) && isXMLSpace(p.src[i]) {
		i++
	}
	return i
}

// xmlDecl parses <?xml version="1.0" encoding="UTF-8" standalone="yes"?>.
func (p *Parser) xmlDecl() *Error {
	s := p.src
	i := p.pos + 5
	bad := func(msg string) *Error { return p.fail(i, CodeXMLDeclaration, msg) }
	pseudo := func(name string, required bool) (string, bool, *Error) {
		j := p.skipSpace(i)
		if j == i || !hasPrefixAt(s, j, name) {
			if required {
				return "", false, bad("XML declaration needs " + name)
			}
			return "", false, nil
		}
		j = p.skipSpace(j + len(name))
		if j >= len(s) || s[j] != '=' {
			return "", false, bad("expected '=' after " + name)
		}
		j = p.skipSpace(j + 1)
		if j >= len(s) || (s[j] != '"' && s[j] != '\'') {
			return "", false, bad("expected a quoted value for " + name)
		}
		q := s[j]
		k := bytes.IndexByte(s[j+1:], q)
		if k < 0 {
			return "", false, p.truncated(len(s))
		}
		i = j + 1 + k + 1
		return string(s[j+1 : j+1+k]), true, nil
	}
	v, _, err := pseudo("version", true)
	if err != nil {
		return err
	}
	if v != "1.0" {
		return bad("XML version " + quote(v) + " is not supported; use 1.0")
	}
	enc, ok, err := pseudo("encoding", false)
	if err != nil {
		return err
	}
	if ok {
		switch string(bytes.ToUpper([]byte(enc))) {
		case "UTF-8", "UTF8":
		default:
			return p.fail(i, CodeXMLEncoding, "encoding "+quote(enc)+" is not supported; MeMo must be UTF-8")
		}
	}
	sa, ok, err := pseudo("standalone", false)
	if err != nil {
		return err
	}
	if ok && sa != "yes" && sa != "no" {
		return bad("standalone must be yes or no")
	}
	i = p.skipSpace(i)
	if !hasPrefixAt(s, i, "?>") {
		if i >= len(s)-1 {
			return p.truncated(len(s))
		}
		return bad("malformed XML declaration")
	}
	p.pos = i + 2
	return nil
}

// misc skips comments, processing instructions and whitespace before the
// root (after=false, stopping at the root's '<') or after it (to the end).
func (p *Parser) misc(after bool) *Error {
	s := p.src
	for {
		p.pos = p.skipSpace(p.pos)
		if p.pos >= len(s) {
			if after {
				return nil
			}
			return p.fail(p.pos, CodeXMLEmpty, "no root element")
		}
		if s[p.pos] != '<' {
			if after {
				return p.fail(p.pos, CodeXMLOutsideRoot, "text after the root element")
			}
			return p.fail(p.pos, CodeXMLOutsideRoot, "text before the root element")
		}
		switch {
		case hasPrefixAt(s, p.pos, "<!--"):
			if err := p.comment(); err != nil {
				return err
			}
		case hasPrefixAt(s, p.pos, "<?"):
			if err := p.pi(); err != nil {
				return err
			}
		case hasPrefixAt(s, p.pos, "<!DOCTYPE"):
			return p.doctype()
		case hasPrefixAt(s, p.pos, "<!"):
			return p.fail(p.pos, CodeXMLSyntax, "unexpected markup declaration")
		default:
			if after {
				return p.fail(p.pos, CodeXMLOutsideRoot, "a second root element")
			}
			if p.pos+1 >= len(s) {
				return p.truncated(len(s))
			}
			return nil
		}
	}
}

// doctype refuses any DTD. It looks into the internal subset, without
// expanding anything, only to say whether entities are declared.
func (p *Parser) doctype() *Error {
	rest := p.src[p.pos:]
	if len(rest) > 1<<20 {
		rest = rest[:1<<20]
	}
	end := len(rest)
	if k := bytes.Index(rest, []byte("]>")); k >= 0 {
		end = k
	} else if k := bytes.IndexByte(rest, '>'); k >= 0 && bytes.IndexByte(rest[:k], '[') < 0 {
		end = k
	}
	if bytes.Contains(rest[:end], []byte("<!ENTITY")) {
		return p.fail(p.pos, CodeXMLEntityDeclaration, "DOCTYPE with entity declarations refused (no DTD processing)")
	}
	return p.fail(p.pos, CodeXMLDoctype, "DOCTYPE refused: MeMo messages must not carry a DTD")
}

// checkChars validates s[from:to] as XML characters (no markup meaning).
func (p *Parser) checkChars(from, to int) *Error {
	s := p.src
	for i := from; i < to; {
		if i+8 <= to && plainASCII8(binary.LittleEndian.Uint64(s[i:])) {
			i += 8
			continue
		}
		c := s[i]
		if c >= 0x20 && c < 0x80 {
			i++
			continue
		}
		if c < 0x20 {
			if c == '\t' || c == '\n' || c == '\r' {
				i++
				continue
			}
			return p.fail(i, CodeXMLInvalidChar, "control character 0x"+string("0123456789abcdef"[c>>4])+string("0123456789abcdef"[c&15])+" is not allowed in XML")
		}
		n, code := decodeHigh(s[i:to])
		if code != "" {
			return p.fail(i, code, "invalid character")
		}
		i += n
	}
	return nil
}

func (p *Parser) comment() *Error {
	s := p.src
	start := p.pos + 4
	k := bytes.Index(s[start:], []byte("--"))
	if k < 0 {
		return p.truncated(len(s))
	}
	end := start + k
	if end+2 >= len(s) {
		return p.truncated(len(s))
	}
	if s[end+2] != '>' {
		return p.fail(end, CodeXMLSyntax, "'--' inside a comment")
	}
	if err := p.checkChars(start, end); err != nil {
		return err
	}
	p.pos = end + 3
	return nil
}

func (p *Parser) pi() *Error {
	s := p.src
	i := p.pos + 2
	ts := i
	i, colon, err := p.qname(i)
	if err != nil {
		return err
	}
	if colon >= 0 {
		return p.fail(ts, CodeXMLBadName, "colon in a processing-instruction target")
	}
	if i-ts == 3 && (s[ts]|0x20) == 'x' && (s[ts+1]|0x20) == 'm' && (s[ts+2]|0x20) == 'l' {
		return p.fail(p.pos, CodeXMLDeclaration, "XML declaration not at the start of the document")
	}
	k := bytes.Index(s[i:], []byte("?>"))
	if k < 0 {
		return p.truncated(len(s))
	}
	if k > 0 && !isXMLSpace(s[i]) {
		return p.fail(i, CodeXMLSyntax, "malformed processing instruction")
	}
	if err := p.checkChars(i, i+k); err != nil {
		return err
	}
	p.pos = i + k + 2
	return nil
}

// qname scans an XML name at i with at most one colon, not first or last
// (a namespace QName). It returns the end and the colon's index or -1.
func (p *Parser) qname(i int) (int, int, *Error) {
	s := p.src
	// Fast path: ASCII letters, digits, '-', '.', '_' and at most one
	// colon followed by a letter. Anything else takes the general loop.
	if i < len(s) && nameClass[s[i]] == 1 {
		j, colon := i+1, -1
		for j < len(s) {
			k := nameClass[s[j]]
			if k == 1 || k == 2 {
				j++
				continue
			}
			if k == 4 && colon < 0 && j+1 < len(s) && nameClass[s[j+1]] == 1 {
				colon = j
				j += 2
				continue
			}
			break
		}
		if j < len(s) && nameClass[s[j]] == 0 {
			return j, colon, nil
		}
	}
	start, colon := i, -1
	atStart := true
	for i < len(s) {
		c := s[i]
		switch nameClass[c] {
		case 1:
			i++
		case 2:
			if atStart {
				return i, colon, p.fail(i, CodeXMLBadName, "a name cannot start with "+quote(string(c)))
			}
			i++
		case 4:
			if atStart || colon >= 0 {
				return i, colon, p.fail(i, CodeXMLBadName, "malformed qualified name")
			}
			colon = i
			i++
			atStart = true
			continue
		case 3:
			r, n := utf8.DecodeRune(s[i:])
			if r == utf8.RuneError && n <= 1 {
				return i, colon, p.fail(i, CodeXMLInvalidUTF8, "invalid UTF-8 in a name")
			}
			if (atStart && !isNameStartRune(r)) || !isNameRune(r) {
				return i, colon, p.fail(i, CodeXMLBadName, "character not allowed in a name")
			}
			i += n
		default:
			if i == start {
				if i >= len(s) {
					return i, colon, p.truncated(i)
				}
				return i, colon, p.fail(i, CodeXMLBadName, "expected a name")
			}
			if atStart {
				return i, colon, p.fail(i, CodeXMLBadName, "malformed qualified name")
			}
			return i, colon, nil
		}
		atStart = false
	}
	return i, colon, p.truncated(i)
}

// reference parses the reference at s[i]=='&'. It returns the character it
// stands for and its length in bytes.
func (p *Parser) reference(i int) (rune, int, *Error) {
	s := p.src
	j := i + 1
	if j >= len(s) {
		return 0, 0, p.truncated(j)
	}
	if s[j] == '#' {
		j++
		var r rune
		digits := 0
		if j < len(s) && s[j] == 'x' {
			j++
			for j < len(s) && isHex(s[j]) {
				c := s[j]
				var v byte
				switch {
				case c <= '9':
					v = c - '0'
				case c >= 'a':
					v = c - 'a' + 10
				default:
					v = c - 'A' + 10
				}
				if r < 0x110000 {
					r = r*16 + rune(v)
				}
				digits++
				j++
			}
		} else {
			for j < len(s) && isDigit(s[j]) {
				if r < 0x110000 {
					r = r*10 + rune(s[j]-'0')
				}
				digits++
				j++
			}
		}
		if j >= len(s) {
			return 0, 0, p.truncated(j)
		}
		if digits == 0 || s[j] != ';' {
			return 0, 0, p.fail(i, CodeXMLBadReference, "malformed character reference")
		}
		if !isXMLChar(r) {
			return 0, 0, p.fail(i, CodeXMLBadReference, "character reference to a character XML does not allow")
		}
		return r, j + 1 - i, nil
	}
	ns := j
	for j < len(s) && nameClass[s[j]] != 0 && nameClass[s[j]] != 4 && j-ns < 64 {
		j++
	}
	if j >= len(s) {
		return 0, 0, p.truncated(j)
	}
	if j == ns || s[j] != ';' {
		return 0, 0, p.fail(i, CodeXMLBadReference, "malformed entity reference")
	}
	c, ok := predefinedEntity(s[ns:j])
	if !ok {
		return 0, 0, p.fail(i, CodeXMLUndefinedEntity, "undefined entity &"+string(s[ns:j])+";")
	}
	return rune(c), j + 1 - i, nil
}

// elements parses the root element and everything in it.
func (p *Parser) elements() *Error {
	s := p.src
	if err := p.startTag(); err != nil {
		return err
	}
	for len(p.stack) > 0 {
		if p.pos >= len(s) {
			return p.truncated(p.pos)
		}
		if s[p.pos] != '<' {
			if err := p.charData(); err != nil {
				return err
			}
			continue
		}
		if p.pos+1 >= len(s) {
			return p.truncated(len(s))
		}
		var err *Error
		switch s[p.pos+1] {
		case '/':
			err = p.endTag()
		case '!':
			switch {
			case hasPrefixAt(s, p.pos, "<!--"):
				err = p.comment()
			case hasPrefixAt(s, p.pos, "<![CDATA["):
				err = p.cdata()
			case hasPrefixAt(s, p.pos, "<!DOCTYPE"):
				err = p.doctype()
			case hasPrefixAt(s, p.pos, "<!ENTITY"):
				err = p.fail(p.pos, CodeXMLEntityDeclaration, "entity declaration refused")
			default:
				if len(s)-p.pos < 9 {
					err = p.truncated(len(s))
				} else {
					err = p.fail(p.pos, CodeXMLSyntax, "unexpected markup declaration in content")
				}
			}
		case '?':
			err = p.pi()
		default:
			err = p.startTag()
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// scanRun scans character data from i to the next '<' or '&' (or the end),
// checking characters and "]]>". It reports whether the run holds '\r'.
func (p *Parser) scanRun(i int) (int, bool, *Error) {
	s := p.src
	cr := false
	for i < len(s) {
		if i+8 <= len(s) && plainText8(binary.LittleEndian.Uint64(s[i:])) {
			i += 8
			continue
		}
		c := s[i]
		k := textClass[c]
		if k == tcPlain {
			i++
			continue
		}
		switch k {
		case tcLT, tcAmp:
			return i, cr, nil
		case tcRBracket:
			if i+2 < len(s) && s[i+1] == ']' && s[i+2] == '>' {
				return i, cr, p.fail(i, CodeXMLSyntax, "']]>' is not allowed in text")
			}
			i++
		case tcCR:
			cr = true
			i++
		case tcCtrl:
			return i, cr, p.checkChars(i, i+1)
		default:
			n, code := decodeHigh(s[i:])
			if code != "" {
				return i, cr, p.fail(i, code, "invalid character in text")
			}
			i += n
		}
	}
	return i, cr, nil
}

func (p *Parser) charData() *Error {
	f := &p.stack[len(p.stack)-1]
	if f.kind == fkContent {
		return p.contentData(f)
	}
	s := p.src
	if f.kind == fkComplex {
		// Between elements there is usually only indentation.
		i := p.pos
		for i < len(s) && isXMLSpace(s[i]) {
			i++
		}
		if i < len(s) && s[i] == '<' {
			p.pos = i
			return nil
		}
	}
	for {
		start := p.pos
		end, cr, err := p.scanRun(start)
		if err != nil {
			return err
		}
		if end > start {
			if err := p.textRun(f, start, end, cr); err != nil {
				return err
			}
		}
		p.pos = end
		if end >= len(s) || s[end] == '<' {
			return nil
		}
		r, n, err := p.reference(end)
		if err != nil {
			return err
		}
		p.pos = end + n
		if err := p.textChar(f, r); err != nil {
			return err
		}
	}
}

// appendNorm appends raw text with XML line-end normalization.
func appendNorm(dst, raw []byte, cr bool) []byte {
	if !cr {
		return append(dst, raw...)
	}
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if c == '\r' {
			if i+1 < len(raw) && raw[i+1] == '\n' {
				i++
			}
			c = '\n'
		}
		dst = append(dst, c)
	}
	return dst
}

func (p *Parser) textTooLong(off int) *Error {
	return p.fail(off, CodeLimitTextLength, "text value longer than "+itoa(p.Limits.MaxTextLength)+" bytes")
}

func (p *Parser) textRun(f *frame, start, end int, cr bool) *Error {
	switch f.kind {
	case fkComplex:
		if !f.textErr {
			for _, c := range p.src[start:end] {
				if !isXMLSpace(c) {
					f.textErr = true
					p.docErr(CodeXSDTextNotAllowed, p.curPath(), "text is not allowed in "+f.ctype().name+", which holds elements only")
					break
				}
			}
		}
	case fkLeaf:
		if f.broken {
			return nil
		}
		if !f.hasData && !f.multi {
			f.hasData, f.rs, f.re, f.norm = true, start, end, cr
			if p.Limits.MaxTextLength > 0 && end-start > p.Limits.MaxTextLength {
				return p.textTooLong(start)
			}
			return nil
		}
		p.toMulti(f)
		p.text = appendNorm(p.text, p.src[start:end], cr)
		if p.Limits.MaxTextLength > 0 && len(p.text) > p.Limits.MaxTextLength {
			return p.textTooLong(start)
		}
	}
	return nil
}

func (p *Parser) toMulti(f *frame) {
	if f.multi {
		return
	}
	p.text = p.text[:0]
	if f.hasData {
		p.text = appendNorm(p.text, p.src[f.rs:f.re], f.norm)
	}
	f.multi = true
	f.hasData = true
}

// textChar adds one character that came from a reference.
func (p *Parser) textChar(f *frame, r rune) *Error {
	switch f.kind {
	case fkComplex:
		if !f.textErr && !(r == ' ' || r == '\t' || r == '\n' || r == '\r') {
			f.textErr = true
			p.docErr(CodeXSDTextNotAllowed, p.curPath(), "text is not allowed in "+f.ctype().name+", which holds elements only")
		}
	case fkLeaf:
		if f.broken {
			return nil
		}
		p.toMulti(f)
		p.text = utf8.AppendRune(p.text, r)
		if p.Limits.MaxTextLength > 0 && len(p.text) > p.Limits.MaxTextLength {
			return p.textTooLong(p.pos)
		}
	case fkContent:
		f.hasData = true
		if r < utf8.RuneSelf {
			p.b64.feed([]byte{byte(r)})
		} else {
			p.b64.stray = true
		}
	}
	return nil
}

// contentData scans a File's base64 character data without copying it: the
// hot loop of attachment-heavy messages.
func (p *Parser) contentData(f *frame) *Error {
	s := p.src
	i := p.pos
	st := p.b64
	f.hasData = true
	for i < len(s) {
		if !st.afterPad {
			for i+8 <= len(s) {
				b := s[i : i+8 : i+8]
				v0, v1, v2, v3 := b64Val[b[0]], b64Val[b[1]], b64Val[b[2]], b64Val[b[3]]
				v4, v5, v6, v7 := b64Val[b[4]], b64Val[b[5]], b64Val[b[6]], b64Val[b[7]]
				if (v0|v1|v2|v3|v4|v5|v6|v7)&0xC0 != 0 {
					break
				}
				st.n += 8
				st.last = v7
				i += 8
			}
			if i >= len(s) {
				break
			}
		}
		c := s[i]
		v := b64Val[c]
		switch {
		case v < 64:
			if st.afterPad {
				st.bad = true
			}
			st.n++
			st.last = v
			i++
		case v == 64:
			st.afterPad = true
			st.pad++
			i++
		case v == 65:
			i++
		case v == 66:
			st.stray = true
			i++
		case v == 67:
			n, code := decodeHigh(s[i:])
			if code != "" {
				p.b64 = st
				return p.fail(i, code, "invalid character in content")
			}
			st.stray = true
			i += n
		case v == 68: // '<'
			p.b64 = st
			p.pos = i
			return nil
		case v == 69: // '&'
			r, n, err := p.reference(i)
			if err != nil {
				p.b64 = st
				return err
			}
			p.b64 = st
			p.pos = i
			if err := p.textChar(f, r); err != nil {
				return err
			}
			st = p.b64
			i += n
		case v == 70: // ']'
			if i+2 < len(s) && s[i+1] == ']' && s[i+2] == '>' {
				p.b64 = st
				return p.fail(i, CodeXMLSyntax, "']]>' is not allowed in text")
			}
			st.stray = true
			i++
		default:
			p.b64 = st
			return p.checkChars(i, i+1)
		}
	}
	p.b64 = st
	p.pos = i
	return nil
}

func (p *Parser) cdata() *Error {
	s := p.src
	start := p.pos + 9
	k := bytes.Index(s[start:], []byte("]]>"))
	if k < 0 {
		return p.truncated(len(s))
	}
	end := start + k
	if err := p.checkChars(start, end); err != nil {
		return err
	}
	p.pos = end + 3
	f := &p.stack[len(p.stack)-1]
	switch f.kind {
	case fkComplex:
		// libxml2 treats any CDATA section in element-only content as text.
		if !f.textErr {
			f.textErr = true
			p.docErr(CodeXSDTextNotAllowed, p.curPath(), "a CDATA section is not allowed in "+f.ctype().name+", which holds elements only")
		}
	case fkLeaf:
		if f.broken {
			return nil
		}
		p.toMulti(f)
		p.text = appendNorm(p.text, s[start:end], bytes.IndexByte(s[start:end], '\r') >= 0)
		if p.Limits.MaxTextLength > 0 && len(p.text) > p.Limits.MaxTextLength {
			return p.textTooLong(start)
		}
	case fkContent:
		f.hasData = true
		p.b64.feed(s[start:end])
	}
	return nil
}

// attrValue scans a quoted attribute value at i (the quote).
func (p *Parser) attrValue(i int) (vs, ve int, norm bool, err *Error) {
	s := p.src
	q := s[i]
	i++
	vs = i
	for i < len(s) {
		c := s[i]
		switch attrClass[c] {
		case tcPlain, tcRBracket:
			i++
		case tcQuote:
			if c == q {
				if p.Limits.MaxTextLength > 0 && i-vs > p.Limits.MaxTextLength {
					return vs, i, norm, p.textTooLong(vs)
				}
				return vs, i, norm, nil
			}
			i++
		case tcLT:
			return vs, i, norm, p.fail(i, CodeXMLSyntax, "'<' in an attribute value")
		case tcAmp:
			_, n, e := p.reference(i)
			if e != nil {
				return vs, i, norm, e
			}
			norm = true
			i += n
		case tcCR:
			norm = true
			i++
		case tcCtrl:
			return vs, i, norm, p.checkChars(i, i+1)
		default:
			n, code := decodeHigh(s[i:])
			if code != "" {
				return vs, i, norm, p.fail(i, code, "invalid character in an attribute value")
			}
			i += n
		}
	}
	return vs, i, norm, p.truncated(i)
}

// attrText returns an attribute's normalized value (XML 1.0 3.3.3 for CDATA
// attributes): references replaced, literal tab/LF/CR (and CRLF) as one space.
func (p *Parser) attrText(a *attr) []byte {
	raw := p.src[a.vs:a.ve]
	if !a.norm {
		return raw
	}
	b := p.abuf[:0]
	for i := 0; i < len(raw); {
		c := raw[i]
		switch c {
		case '&':
			r, n, _ := p.reference(a.vs + i)
			b = utf8.AppendRune(b, r)
			i += n
			continue
		case '\r':
			if i+1 < len(raw) && raw[i+1] == '\n' {
				i++
			}
			c = ' '
		case '\t', '\n':
			c = ' '
		}
		b = append(b, c)
		i++
	}
	p.abuf = b
	return b
}

func (p *Parser) lookupPrefix(prefix []byte) (nsID, bool) {
	if p.cacheOK && bytes.Equal(prefix, p.cachePrefix) {
		return p.cacheNS, true
	}
	for k := len(p.binds) - 1; k >= 0; k-- {
		if bytes.Equal(p.binds[k].prefix, prefix) {
			p.cachePrefix, p.cacheNS, p.cacheOK = p.binds[k].prefix, p.binds[k].ns, true
			return p.binds[k].ns, true
		}
	}
	switch {
	case len(prefix) == 0:
		return nsNone, true
	case string(prefix) == "xml":
		return nsXML, true
	}
	return nsNone, false
}

func (p *Parser) startTag() *Error {
	s := p.src
	tagStart := p.pos
	qs := p.pos + 1
	i, colon, err := p.qname(qs)
	if err != nil {
		return err
	}
	qe := i
	p.attrs = p.attrs[:0]
	empty := false
	for {
		ws := i
		i = p.skipSpace(i)
		if i >= len(s) {
			return p.truncated(i)
		}
		if s[i] == '>' {
			i++
			break
		}
		if s[i] == '/' {
			if i+1 >= len(s) {
				return p.truncated(i + 1)
			}
			if s[i+1] != '>' {
				return p.fail(i, CodeXMLSyntax, "expected '/>'")
			}
			i += 2
			empty = true
			break
		}
		if i == ws {
			return p.fail(i, CodeXMLSyntax, "attributes must be separated by whitespace")
		}
		as := i
		var acolon int
		if i, acolon, err = p.qname(i); err != nil {
			return err
		}
		ae := i
		i = p.skipSpace(i)
		if i >= len(s) {
			return p.truncated(i)
		}
		if s[i] != '=' {
			return p.fail(i, CodeXMLSyntax, "expected '=' after attribute name")
		}
		i = p.skipSpace(i + 1)
		if i >= len(s) {
			return p.truncated(i)
		}
		if s[i] != '"' && s[i] != '\'' {
			return p.fail(i, CodeXMLSyntax, "attribute value must be quoted")
		}
		vs, ve, norm, err := p.attrValue(i)
		if err != nil {
			return err
		}
		i = ve + 1
		if p.Limits.MaxAttributes > 0 && len(p.attrs) >= p.Limits.MaxAttributes {
			return p.fail(as, CodeLimitAttributes, "more than "+itoa(p.Limits.MaxAttributes)+" attributes on one element")
		}
		name := s[as:ae]
		for k := range p.attrs {
			if bytes.Equal(s[p.attrs[k].qs:p.attrs[k].qe], name) {
				return p.fail(as, CodeXMLDuplicateAttribute, "attribute "+string(name)+" appears twice")
			}
		}
		p.attrs = append(p.attrs, attr{qs: as, qe: ae, colon: acolon, vs: vs, ve: ve, norm: norm})
	}
	p.pos = i
	if p.Limits.MaxDepth > 0 && len(p.stack) >= p.Limits.MaxDepth {
		return p.fail(tagStart, CodeLimitDepth, "elements nested deeper than "+itoa(p.Limits.MaxDepth))
	}
	p.nElems++
	if p.Limits.MaxElements > 0 && p.nElems > p.Limits.MaxElements {
		return p.fail(tagStart, CodeLimitElements, "more than "+itoa(p.Limits.MaxElements)+" elements")
	}

	// Namespace declarations of this element.
	mark := len(p.binds)
	for k := range p.attrs {
		a := &p.attrs[k]
		q := s[a.qs:a.qe]
		switch {
		case a.colon < 0 && string(q) == "xmlns":
			uri := p.nsValue(a)
			ns := lookupNS(uri)
			if ns == nsXML || ns == nsXMLNS {
				return p.fail(a.qs, CodeXMLNamespaceDecl, "the xml and xmlns namespaces cannot be the default namespace")
			}
			p.binds = append(p.binds, binding{prefix: nil, ns: ns})
			a.ns = nsXMLNS
		case a.colon >= 0 && string(s[a.qs:a.colon]) == "xmlns":
			prefix := s[a.colon+1 : a.qe]
			uri := p.nsValue(a)
			ns := lookupNS(uri)
			switch {
			case string(prefix) == "xmlns":
				return p.fail(a.qs, CodeXMLNamespaceDecl, "the xmlns prefix cannot be declared")
			case string(prefix) == "xml" && ns != nsXML:
				return p.fail(a.qs, CodeXMLNamespaceDecl, "the xml prefix is bound to "+NamespaceXML+" only")
			case string(prefix) != "xml" && (ns == nsXML || ns == nsXMLNS):
				return p.fail(a.qs, CodeXMLNamespaceDecl, "the xml and xmlns namespaces cannot be bound to another prefix")
			case len(uri) == 0:
				return p.fail(a.qs, CodeXMLNamespaceDecl, "a prefixed namespace declaration cannot be empty (xmlns:"+string(prefix)+"=\"\")")
			}
			p.binds = append(p.binds, binding{prefix: prefix, ns: ns})
			a.ns = nsXMLNS
		}
	}
	if len(p.binds) != mark {
		p.cacheOK = false
	}

	// The element's and the attributes' namespaces.
	var ns nsID
	ls := qs
	if colon >= 0 {
		prefix := s[qs:colon]
		if string(prefix) == "xmlns" {
			return p.fail(qs, CodeXMLNamespaceDecl, "the xmlns prefix cannot name an element")
		}
		var ok bool
		if ns, ok = p.lookupPrefix(prefix); !ok {
			return p.fail(qs, CodeXMLUnboundPrefix, "namespace prefix "+string(prefix)+" is not declared")
		}
		ls = colon + 1
	} else {
		ns, _ = p.lookupPrefix(nil)
	}
	for k := range p.attrs {
		a := &p.attrs[k]
		if a.ns == nsXMLNS {
			continue
		}
		if a.colon < 0 {
			a.ns = nsNone
			continue
		}
		ans, ok := p.lookupPrefix(s[a.qs:a.colon])
		if !ok {
			return p.fail(a.qs, CodeXMLUnboundPrefix, "namespace prefix "+string(s[a.qs:a.colon])+" is not declared")
		}
		a.ns = ans
		for j := 0; j < k; j++ {
			b := &p.attrs[j]
			if b.ns == ans && b.colon >= 0 && bytes.Equal(s[b.colon+1:b.qe], s[a.colon+1:a.qe]) {
				return p.fail(a.qs, CodeXMLDuplicateAttribute, "attribute {"+nsName(ans, p)+"}"+string(s[a.colon+1:a.qe])+" appears twice")
			}
		}
	}

	p.enter(ns, qs, ls, qe, mark)
	if empty {
		return p.endElement(p.pos)
	}
	return nil
}

// nsValue is a namespace declaration's URI; it outlives the start tag.
func (p *Parser) nsValue(a *attr) []byte {
	if !a.norm {
		return p.src[a.vs:a.ve]
	}
	return append([]byte(nil), p.attrText(a)...)
}

// enter pushes the frame of a new element, matching it against its
// parent's content model. The frame is initialized in place: elements are
// the unit of work, so a copy per element shows in profiles.
func (p *Parser) enter(ns nsID, qs, ls, qe, mark int) {
	s := p.src
	n := len(p.stack)
	if n < cap(p.stack) {
		p.stack = p.stack[:n+1]
	} else {
		p.stack = append(p.stack, frame{})
	}
	if n >= len(p.objs) {
		p.objs = append(p.objs, nil)
	}
	if n+1 > p.stackHigh {
		p.stackHigh = n + 1
	}
	nf := &p.stack[n]
	// Field by field: the slot is reused, and a composite-literal store
	// showed up as a zero-then-copy of the whole frame in profiles.
	nf.kind, nf.ctID, nf.partCT, nf.partIdx = fkSkip, 0, 0, 0
	nf.occ, nf.pos, nf.count, nf.nsMark = 0, 0, 0, mark
	nf.qs, nf.qe, nf.ls = qs, qe, ls
	nf.hasData, nf.multi, nf.norm, nf.broken, nf.textErr = false, false, false, false, false
	nf.rs, nf.re, nf.cstart = 0, 0, 0
	local := s[ls:qe]
	if n == 0 {
		if ns == nsMemo && string(local) == "Message" {
			nf.kind, nf.ctID = fkComplex, ctMessage.id
			p.objs[0] = p.msg
			p.rootAttrs()
			return
		}
		p.msg.rootBroken = true
		if string(local) == "Message" {
			p.docErr(CodeXSDWrongNamespace, "/Message", "root element Message is in namespace "+quote(nsName(ns, p))+", not "+NamespaceMeMo)
		} else {
			p.docErr(CodeXSDRootElement, "/"+string(local), "root element is "+string(s[qs:qe])+", not memo:Message")
		}
		return
	}
	parent := &p.stack[n-1]
	switch parent.kind {
	case fkLeaf, fkContent:
		if !parent.broken {
			parent.broken = true
			p.docErr(CodeXSDElementInSimple, p.pathTo(n), "element "+string(s[qs:qe])+" inside "+parent.particle().name+", which holds text only")
		}
	case fkComplex:
		p.matchChild(parent, nf, ns, local)
	}
	if nf.kind != fkSkip && len(p.attrs) > 0 {
		p.childAttrs()
	}
}

func nsName(ns nsID, p *Parser) string {
	if ns == nsOther {
		return "(other)"
	}
	return nsURI[ns]
}

// matchChild finds the particle of parent's content model an element
// (ns, local) stands for, advancing the sequence; on a violation it records
// the finding and leaves nf as a skipped frame.
func (p *Parser) matchChild(parent *frame, nf *frame, ns nsID, local []byte) {
	pct := parent.ctype()
	parts := pct.parts
	ver := p.msg.rules
	pos, count := parent.pos, parent.count
	for j := pos; j < len(parts); j++ {
		pt := &parts[j]
		if pt.ns != ns || pt.name != string(local) || !pt.allowed(ver) {
			continue
		}
		if j == pos {
			if pt.max != 0 && count >= pt.max {
				p.docErr(CodeXSDTooMany, p.childPath(local, count+1), pt.name+" may occur at most "+itoa(pt.max)+" time(s) here")
				return
			}
			count++
		} else {
			if count > 0 && parts[pos].group != 0 && parts[pos].group == pt.group {
				p.docErr(CodeXSDUnexpectedElement, p.childPath(local, 0), pt.name+" is not allowed together with "+parts[pos].name)
				return
			}
			for k := pos; k < j; k++ {
				have := 0
				if k == pos {
					have = count
				}
				if parts[k].group == 0 && parts[k].allowed(ver) && have < parts[k].minFor(ver) {
					p.docErr(CodeXSDMissingElement, p.childPath([]byte(parts[k].name), 0), "required element "+parts[k].name+" is missing before "+pt.name)
				}
			}
			pos, count = j, 1
		}
		parent.pos, parent.count = pos, count
		nf.partCT, nf.partIdx, nf.occ = pct.id, uint8(j), count
		switch {
		case pt.ct != nil:
			nf.kind, nf.ctID = fkComplex, pt.ct.id
			depth := len(p.stack) - 1
			p.objs[depth] = pt.open(p.objs[depth-1])
		case pt.st == stBase64:
			nf.kind, nf.cstart = fkContent, p.pos
			p.b64 = b64State{}
		default:
			nf.kind = fkLeaf
		}
		return
	}
	for j := 0; j < pos; j++ {
		pt := &parts[j]
		if pt.ns == ns && pt.name == string(local) && pt.allowed(ver) {
			p.docErr(CodeXSDElementOrder, p.childPath(local, 0), pt.name+" is out of order: it must come before "+parts[pos].name)
			return
		}
	}
	for j := range parts {
		if parts[j].name == string(local) && parts[j].allowed(ver) {
			p.docErr(CodeXSDWrongNamespace, p.childPath(local, 0), local2(local)+" must be in namespace "+nsURI[parts[j].ns]+", not "+quote(nsName(ns, p)))
			return
		}
	}
	msg := "element " + local2(local) + " is not allowed in " + pct.name
	for j := range parts {
		if parts[j].name == string(local) && !parts[j].allowed(ver) {
			msg += " in MeMo " + ver.String()
		}
	}
	p.docErr(CodeXSDUnexpectedElement, p.childPath(local, 0), msg)
}

func local2(b []byte) string { return string(b) }

// rootAttrs reads memoVersion and memoSchVersion and decides the rules.
func (p *Parser) rootAttrs() {
	m := p.msg
	s := p.src
	for k := range p.attrs {
		a := &p.attrs[k]
		local := s[a.qs:a.qe]
		if a.colon >= 0 {
			local = s[a.colon+1 : a.qe]
		}
		switch {
		case a.ns == nsXMLNS:
		case a.ns == nsNone && string(local) == "memoVersion":
			m.MemoVersion = Opt{Value: p.str(p.attrText(a)), Set: true}
		case a.ns == nsNone && string(local) == "memoSchVersion":
			m.MemoSchVersion = Opt{Value: p.str(p.attrText(a)), Set: true}
		case a.ns == nsXSI && (string(local) == "schemaLocation" || string(local) == "noNamespaceSchemaLocation"):
		default:
			p.docErr(CodeXSDAttrNotAllowed, "/Message/@"+string(s[a.qs:a.qe]), "attribute "+string(s[a.qs:a.qe])+" is not allowed on Message")
		}
	}
	if m.MemoVersion.Set {
		m.Version, _, _ = versionOf(m.MemoVersion.Value)
	}
	m.rules = m.Version
	if m.rules == VersionUnknown {
		if m.MemoSchVersion.Set {
			m.rules = Version11
		} else {
			m.rules = Version12
		}
	}
}

// childAttrs reports attributes on non-root elements: the schemas declare
// none, and only namespace declarations and xsi location hints are free.
func (p *Parser) childAttrs() {
	s := p.src
	for k := range p.attrs {
		a := &p.attrs[k]
		if a.ns == nsXMLNS {
			continue
		}
		if a.ns == nsXSI && a.colon >= 0 {
			local := string(s[a.colon+1 : a.qe])
			if local == "schemaLocation" || local == "noNamespaceSchemaLocation" {
				continue
			}
		}
		p.docErr(CodeXSDAttrNotAllowed, p.curPath()+"/@"+string(s[a.qs:a.qe]), "attribute "+string(s[a.qs:a.qe])+" is not allowed here")
	}
}

func (p *Parser) endTag() *Error {
	s := p.src
	tagStart := p.pos
	f := &p.stack[len(p.stack)-1]
	name := s[f.qs:f.qe]
	// Fast path: the end tag repeats the start tag's name.
	if i := p.pos + 2 + len(name); i < len(s) && (s[i] == '>' || isXMLSpace(s[i])) && bytes.Equal(s[p.pos+2:i], name) {
		if s[i] == '>' {
			p.pos = i + 1
			return p.endElement(tagStart)
		}
	}
	i, _, err := p.qname(p.pos + 2)
	if err != nil {
		return err
	}
	if !bytes.Equal(s[p.pos+2:i], name) {
		return p.fail(p.pos, CodeXMLTagMismatch, "end tag </"+string(s[p.pos+2:i])+"> does not match <"+string(s[f.qs:f.qe])+">")
	}
	i = p.skipSpace(i)
	if i >= len(s) {
		return p.truncated(i)
	}
	if s[i] != '>' {
		return p.fail(i, CodeXMLSyntax, "expected '>' to close the end tag")
	}
	p.pos = i + 1
	return p.endElement(tagStart)
}

// endElement closes the innermost element; dataEnd is where its character
// data ended (the '<' of its end tag).
func (p *Parser) endElement(dataEnd int) *Error {
	f := &p.stack[len(p.stack)-1]
	switch f.kind {
	case fkLeaf:
		if !f.broken {
			p.setLeaf(f)
		}
	case fkContent:
		if !f.broken {
			c := f.particle().content(p.objs[len(p.stack)-2])
			if dataEnd < f.cstart {
				dataEnd = f.cstart // <content/>
			}
			c.Offset, c.Length = f.cstart, dataEnd-f.cstart
			c.scan, c.scanned = p.b64, true
			c.DecodedSize = p.b64.decodedSize()
		}
	case fkComplex:
		parts := f.ctype().parts
		ver := p.msg.rules
		for k := f.pos; k < len(parts); k++ {
			have := 0
			if k == f.pos {
				have = f.count
			}
			if parts[k].group == 0 && parts[k].allowed(ver) && have < parts[k].minFor(ver) {
				p.docErr(CodeXSDMissingElement, p.childPathAt(len(p.stack), []byte(parts[k].name), 0), "required element "+parts[k].name+" is missing in "+f.ctype().name)
			}
		}
	}
	if len(p.binds) != f.nsMark {
		p.binds = p.binds[:f.nsMark]
		p.cacheOK = false
	}
	p.stack = p.stack[:len(p.stack)-1] // Reset clears stale frames
	return nil
}

func (p *Parser) setLeaf(f *frame) {
	var v string
	switch {
	case f.multi:
		v = p.str(p.text)
	case f.hasData && f.norm:
		p.text = appendNorm(p.text[:0], p.src[f.rs:f.re], true)
		v = p.str(p.text)
	case f.hasData:
		v = p.str(p.src[f.rs:f.re])
	default:
		v = f.particle().def // no character data: the schema's default, if any
	}
	pt, obj := f.particle(), p.objs[len(p.stack)-2]
	if pt.str != nil {
		*pt.str(obj) = v
	} else {
		*pt.opt(obj) = Opt{Value: v, Set: true}
	}
}

func (f *frame) ctype() *ctype { return ctypes[f.ctID] }

// particle is the particle the element matched in its parent, or nil.
func (f *frame) particle() *particle {
	if f.partCT == 0 {
		return nil
	}
	return &ctypes[f.partCT].parts[f.partIdx]
}
