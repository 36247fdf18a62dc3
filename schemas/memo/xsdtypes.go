package memo

import (
	"time"
	"unicode/utf8"
	"unsafe"
)

// Simple-type checks. The conformance oracle is xmllint (libxml2 2.9.14), so
// where libxml2 deviates from XSD 1.0 in a way a real message can hit, these
// functions follow libxml2 and say so:
//   - xs:date used directly as an element type accepts no surrounding
//     whitespace (derived types such as memoDateTimeType are collapsed first);
//   - memoGLNType and memoPNumberType (derived from xs:long) accept no
//     surrounding whitespace either;
//   - xs:base64Binary ignores every character outside the base64 alphabet
//     (BUSINESS_BASE64_STRAY_CHARACTERS reports them separately);
//   - xs:dateTime accepts hour 24 only as 24:00:00;
//   - xs:decimal accepts at most 24 significant digits;
//   - xs:anyURI is whatever libxml2's RFC 3986 parser accepts after it has
//     replaced spaces, controls, non-ASCII and "<>\"{}|\\^`'" by '_'.

// isXMLSpace is XML's S production (and XSD's whitespace).
func isXMLSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func trimXMLSpace(s string) string {
	i, j := 0, len(s)
	for i < j && isXMLSpace(s[i]) {
		i++
	}
	for j > i && isXMLSpace(s[j-1]) {
		j--
	}
	return s[i:j]
}

// collapse applies XSD whiteSpace=collapse.
func collapse(s string) string {
	clean := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '\t' || c == '\n' || c == '\r' || (c == ' ' && (i == 0 || i == len(s)-1 || s[i+1] == ' ')) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	b := make([]byte, 0, len(s))
	space := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if isXMLSpace(c) {
			space = len(b) > 0
			continue
		}
		if space {
			b = append(b, ' ')
			space = false
		}
		b = append(b, c)
	}
	return string(b)
}

// charLen is the XSD length of a string: characters, not bytes.
func charLen(s string) int {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return utf8.RuneCountInString(s)
		}
	}
	return len(s)
}

// checkSimple checks v against simple type st under the rules of version
// ver. It returns "" when v is valid, else a code and a message.
func checkSimple(st stype, v string, ver Version) (Code, string) {
	switch st {
	case stText:
		return maxLen(v, 256)
	case stComment:
		return maxLen(v, 512)
	case stNotification:
		if ver == Version12 {
			return maxLen(v, 160)
		}
		return maxLen(v, 150)
	case stLicense:
		return maxLen(v, 7)
	case stMessageType:
		if v != "DIGITALPOST" && v != "NEMSMS" {
			return CodeXSDEnumeration, "value " + quote(v) + " is not DIGITALPOST or NEMSMS"
		}
	case stUUID:
		if !matchUUIDPattern(v) {
			return CodeXSDPattern, "value " + quote(v) + " does not match memoUuidType [a-fA-F0-9]{8}-[a-fA-F0-9]{4}-4[a-fA-F0-9]{3}-[aAbB89][a-fA-F0-9]{3}-[a-fA-F0-9]{12}"
		}
	case stBoolean:
		switch trimXMLSpace(v) {
		case "true", "false", "1", "0":
		default:
			return CodeXSDBoolean, "value " + quote(v) + " is not an xs:boolean"
		}
	case stDate:
		if _, ok := parseXSDate(v); !ok {
			return CodeXSDDate, "value " + quote(v) + " is not an xs:date (YYYY-MM-DD)"
		}
	case stDateTime:
		t := trimXMLSpace(v)
		if !validXSDateTime(t) {
			return CodeXSDDateTime, "value " + quote(v) + " is not an xs:dateTime"
		}
		if t[len(t)-1] != 'Z' {
			return CodeXSDPattern, "value " + quote(v) + " does not match memoDateTimeType .+Z (UTC with Z)"
		}
	case stLanguage:
		c := collapse(v)
		if !validLanguage(c) {
			return CodeXSDLanguage, "value " + quote(v) + " is not an xs:language"
		}
		if charLen(c) > 2 {
			return CodeXSDMaxLength, "value " + quote(v) + " is longer than 2 characters"
		}
	case stURI:
		c := collapse(v)
		if charLen(c) > 256 {
			return CodeXSDMaxLength, "URI has " + itoa(charLen(c)) + " characters, more than 256"
		}
		if !validAnyURI(c) {
			return CodeXSDAnyURI, "value " + quote(v) + " is not an xs:anyURI"
		}
	case stGLN:
		return checkLong(v, "9999999999999")
	case stPNumber:
		return checkLong(v, "9999999999")
	}
	return "", ""
}

func maxLen(v string, n int) (Code, string) {
	if len(v) <= n {
		return "", ""
	}
	if l := charLen(v); l > n {
		return CodeXSDMaxLength, "value has " + itoa(l) + " characters, more than " + itoa(n)
	}
	return "", ""
}

func quote(s string) string {
	b := appendQuote(make([]byte, 0, min(len(s), 60)+8), s)
	return unsafe.String(&b[0], len(b)) // b is never written again
}

// appendQuote appends s in double quotes, shortened to 60 bytes, with
// quotes, backslashes and control characters escaped.
func appendQuote(b []byte, s string) []byte {
	if len(s) > 60 {
		s = s[:57] + "..."
	}
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20:
			b = append(b, '\\', 'x', "0123456789abcdef"[c>>4], "0123456789abcdef"[c&15])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}

func itoa(n int) string {
	var b [20]byte
	return string(appendInt(b[:0], n))
}

func appendInt(b []byte, n int) []byte {
	if n < 0 {
		b = append(b, '-')
		n = -n
	}
	var tmp [20]byte
	i := len(tmp)
	for {
		i--
		tmp[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			break
		}
	}
	return append(b, tmp[i:]...)
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isAlpha(c byte) bool { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') }

// matchUUIDPattern is memoUuidType's pattern, implicitly anchored, no
// whitespace handling (the type derives from xs:string).
func matchUUIDPattern(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < 36; i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		case 14:
			if c != '4' {
				return false
			}
		case 19:
			if !(c == '8' || c == '9' || c == 'a' || c == 'b' || c == 'A' || c == 'B') {
				return false
			}
		default:
			if !isHex(c) {
				return false
			}
		}
	}
	return true
}

// validLanguage is xs:language's pattern [a-zA-Z]{1,8}(-[a-zA-Z0-9]{1,8})*.
func validLanguage(s string) bool {
	n := 0
	first := true
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == '-' {
			if n < 1 || n > 8 {
				return false
			}
			first = false
			n = 0
			continue
		}
		c := s[i]
		if !(isAlpha(c) || (!first && isDigit(c))) {
			return false
		}
		n++
	}
	return true
}

// checkLong checks an xs:long with a maxInclusive, libxml2 style: optional
// sign, digits, no surrounding whitespace for these derived types.
func checkLong(v string, max string) (Code, string) {
	s := v
	neg := false
	if len(s) > 0 && (s[0] == '-' || s[0] == '+') {
		neg = s[0] == '-'
		s = s[1:]
	}
	if len(s) == 0 {
		return CodeXSDLong, "value " + quote(v) + " is not an xs:long"
	}
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return CodeXSDLong, "value " + quote(v) + " is not an xs:long"
		}
	}
	for len(s) > 1 && s[0] == '0' {
		s = s[1:]
	}
	limit := "9223372036854775807"
	if neg {
		limit = "9223372036854775808"
	}
	if decGreater(s, limit) {
		return CodeXSDLong, "value " + quote(v) + " is out of the xs:long range"
	}
	if !neg && decGreater(s, max) {
		return CodeXSDMaxInclusive, "value " + v + " is greater than " + max
	}
	return "", ""
}

// decGreater compares two unsigned decimal integers without leading zeros.
func decGreater(a, b string) bool {
	if len(a) != len(b) {
		return len(a) > len(b)
	}
	return a > b
}

// parseDecimal checks xs:decimal the way libxml2 2.9.14 does and returns the
// value's canonical form ("1.1", "-2", "0").
func parseDecimal(v string) (canon string, ok bool) {
	s := trimXMLSpace(v)
	neg := false
	if len(s) > 0 && (s[0] == '-' || s[0] == '+') {
		neg = s[0] == '-'
		s = s[1:]
	}
	if len(s) == 0 {
		return "", false
	}
	leadingZero := false
	for len(s) > 0 && s[0] == '0' {
		s = s[1:]
		leadingZero = true
	}
	var intPart, frac string
	digits := 0
	i := 0
	for i < len(s) && isDigit(s[i]) && digits < 24 {
		i++
		digits++
	}
	intPart = s[:i]
	if i < len(s) && s[i] == '.' && digits < 24 {
		j := i + 1
		for j < len(s) && isDigit(s[j]) && digits < 24 {
			j++
			digits++
		}
		frac = s[i+1 : j]
		if digits == 0 && !leadingZero {
			return "", false // "." alone
		}
		i = j
	}
	if i != len(s) {
		return "", false
	}
	for len(frac) > 0 && frac[len(frac)-1] == '0' {
		frac = frac[:len(frac)-1]
	}
	if intPart == "" {
		intPart = "0"
	}
	canon = intPart
	if frac != "" {
		canon += "." + frac
	}
	if neg && canon != "0" {
		canon = "-" + canon
	}
	return canon, true
}

// versionOf maps a memoVersion value to a Version; unsupported is true for 1.0.
func versionOf(v string) (ver Version, valid, unsupported bool) {
	switch v { // the forms every real message uses
	case "1.1":
		return Version11, true, false
	case "1.2":
		return Version12, true, false
	}
	c, ok := parseDecimal(v)
	if !ok {
		return VersionUnknown, false, false
	}
	switch c {
	case "1.1":
		return Version11, true, false
	case "1.2":
		return Version12, true, false
	case "1":
		return VersionUnknown, true, true
	}
	return VersionUnknown, true, false
}

// dateParts is what the xs:date / xs:dateTime lexical parser found.
type dateParts struct {
	year              int64
	month, day        int
	hour, min         int
	sec               float64
	tzSet             bool
	tzMinutes         int
	afterDate, length int
}

func parseYear(s string, i int) (int64, int, bool) {
	neg := false
	if i < len(s) && s[i] == '-' {
		neg = true
		i++
	}
	start := i
	var y int64
	for i < len(s) && isDigit(s[i]) {
		if i-start >= 18 {
			return 0, i, false // beyond what libxml2 represents sensibly
		}
		y = y*10 + int64(s[i]-'0')
		i++
	}
	n := i - start
	if n < 4 || (n > 4 && s[start] == '0') || y == 0 {
		return 0, i, false
	}
	if neg {
		y = -y
	}
	return y, i, true
}

func two(s string, i int) (int, bool) {
	if i+1 >= len(s) || !isDigit(s[i]) || !isDigit(s[i+1]) {
		return 0, false
	}
	return int(s[i]-'0')*10 + int(s[i+1]-'0'), true
}

func isLeap(y int64) bool { return (y%4 == 0 && y%100 != 0) || y%400 == 0 }

func daysIn(y int64, m int) int {
	switch m {
	case 2:
		if isLeap(y) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// parseDatePart parses CCYY-MM-DD from s[0:].
func parseDatePart(s string) (d dateParts, i int, ok bool) {
	y, i, ok := parseYear(s, 0)
	if !ok || i >= len(s) || s[i] != '-' {
		return d, i, false
	}
	m, ok := two(s, i+1)
	if !ok || m < 1 || m > 12 || i+3 >= len(s) || s[i+3] != '-' {
		return d, i, false
	}
	day, ok := two(s, i+4)
	if !ok || day < 1 || day > daysIn(y, m) {
		return d, i, false
	}
	d.year, d.month, d.day = y, m, day
	return d, i + 6, true
}

// parseTZ parses an optional time zone at s[i:] that must end the string.
func parseTZ(s string, i int, d *dateParts) bool {
	if i == len(s) {
		return true
	}
	switch s[i] {
	case 'Z':
		d.tzSet = true
		return i+1 == len(s)
	case '+', '-':
		h, ok := two(s, i+1)
		if !ok || h > 23 || i+3 >= len(s) || s[i+3] != ':' {
			return false
		}
		m, ok := two(s, i+4)
		if !ok || m > 59 || i+6 != len(s) {
			return false
		}
		off := h*60 + m
		if off > 14*60 {
			return false
		}
		if s[i] == '-' {
			off = -off
		}
		d.tzSet, d.tzMinutes = true, off
		return true
	}
	return false
}

func parseXSDate(s string) (Date, bool) {
	d, i, ok := parseDatePart(s)
	if !ok || !parseTZ(s, i, &d) {
		return Date{}, false
	}
	if d.year < -999999 || d.year > 999999 {
		return Date{}, false
	}
	return Date{Year: int(d.year), Month: time.Month(d.month), Day: d.day}, true
}

func validXSDateTime(s string) bool {
	_, ok := parseXSDateTime(s)
	return ok
}

func parseXSDateTime(s string) (dateParts, bool) {
	d, i, ok := parseDatePart(s)
	if !ok || i >= len(s) || s[i] != 'T' {
		return d, false
	}
	i++
	h, ok := two(s, i)
	if !ok || i+2 >= len(s) || s[i+2] != ':' {
		return d, false
	}
	mi, ok := two(s, i+3)
	if !ok || i+5 >= len(s) || s[i+5] != ':' {
		return d, false
	}
	sec, ok := two(s, i+6)
	if !ok {
		return d, false
	}
	i += 8
	frac := 0.0
	fracNonZero := false
	if i < len(s) && s[i] == '.' {
		i++
		if i >= len(s) || !isDigit(s[i]) {
			return d, false
		}
		mult := 0.1
		for i < len(s) && isDigit(s[i]) {
			if s[i] != '0' {
				fracNonZero = true
			}
			frac += float64(s[i]-'0') * mult
			mult /= 10
			i++
		}
	}
	if mi > 59 || sec > 59 {
		return d, false
	}
	if h > 23 && !(h == 24 && mi == 0 && sec == 0 && !fracNonZero) {
		return d, false
	}
	d.hour, d.min, d.sec = h, mi, float64(sec)+frac
	if !parseTZ(s, i, &d) {
		return d, false
	}
	return d, true
}

// Time parses an xs:dateTime value (UTC when it ends in Z); ok is false
// when absent or invalid.
func (o Opt) Time() (time.Time, bool) {
	if !o.Set {
		return time.Time{}, false
	}
	return parseDateTimeValue(o.Value)
}

func parseDateTimeValue(v string) (time.Time, bool) {
	d, ok := parseXSDateTime(trimXMLSpace(v))
	if !ok || d.year < 1 || d.year > 9999 {
		return time.Time{}, false
	}
	sec := int(d.sec)
	ns := int((d.sec - float64(sec)) * 1e9)
	loc := time.UTC
	if d.tzSet && d.tzMinutes != 0 {
		loc = time.FixedZone("", d.tzMinutes*60)
	}
	return time.Date(int(d.year), time.Month(d.month), d.day, d.hour, d.min, sec, ns, loc), true
}

// b64State is libxml2's xs:base64Binary check, run incrementally over the
// character data of a File's content: alphabet characters are counted up to
// the first '=', after which only '=' (and ignored characters) may follow.
type b64State struct {
	n        int64 // alphabet characters before the first '='
	pad      int64 // '=' characters
	afterPad bool
	bad      bool  // an alphabet character after '='
	stray    bool  // a character outside alphabet, '=' and XML whitespace
	last     uint8 // value of the last alphabet character
}

// b64Val: 0..63 alphabet, 64 '=', 65 XML whitespace, 66 other ASCII,
// 67 byte >= 0x80, 68 '<', 69 '&', 70 ']' , 71 invalid XML control.
var b64Val = func() (t [256]uint8) {
	for i := range t {
		switch {
		case i >= 0x80:
			t[i] = 67
		case i < 0x20:
			t[i] = 71
		default:
			t[i] = 66
		}
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	for i := 0; i < 64; i++ {
		t[alphabet[i]] = uint8(i)
	}
	t['='] = 64
	t[' '], t['\t'], t['\n'], t['\r'] = 65, 65, 65, 65
	t['<'], t['&'], t[']'] = 68, 69, 70
	return t
}()

// feed runs decoded character data (no markup) through the check.
func (s *b64State) feed(b []byte) {
	for _, c := range b {
		v := b64Val[c]
		switch {
		case v < 64:
			if s.afterPad {
				s.bad = true
			}
			s.n++
			s.last = v
		case v == 64:
			s.afterPad = true
			s.pad++
		case v == 65:
		default:
			s.stray = true
		}
	}
}

func (s *b64State) valid() bool {
	if s.bad {
		return false
	}
	switch s.pad {
	case 0:
		return s.n%4 == 0
	case 1:
		return s.n%4 == 3 && s.last&^0x3c == 0
	case 2:
		return s.n%4 == 2 && s.last&^0x30 == 0
	}
	return false
}

func (s *b64State) decodedSize() int64 {
	n := 3 * (s.n / 4)
	switch s.pad {
	case 1:
		n += 2
	case 2:
		n++
	}
	return n
}

// validAnyURI is libxml2's xs:anyURI check on a collapsed value.
func validAnyURI(v string) bool {
	if v == "" {
		return true
	}
	b := make([]byte, len(v))
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c < 32 || c >= 127 || c == ' ' || c == '<' || c == '>' || c == '"' || c == '{' || c == '}' ||
			c == '|' || c == '\\' || c == '^' || c == '`' || c == '\'' {
			c = '_'
		}
		b[i] = c
	}
	u := uriParser{s: b}
	if u.uri(0) {
		return true
	}
	return u.relativeRef(0)
}

// uriParser is a port of libxml2's xmlParse3986URIReference (uri.c), which
// reads a NUL-terminated string; at returns 0 past the end to match.
type uriParser struct{ s []byte }

func (u *uriParser) at(i int) byte {
	if i < len(u.s) {
		return u.s[i]
	}
	return 0
}

func (u *uriParser) unreserved(i int) bool {
	c := u.at(i)
	return isAlpha(c) || isDigit(c) || c == '-' || c == '.' || c == '_' || c == '~'
}

func (u *uriParser) subDelim(i int) bool {
	switch u.at(i) {
	case '!', '$', '&', '(', ')', '*', '+', ',', ';', '=':
		return true
	}
	return false
}

func (u *uriParser) pct(i int) bool {
	return u.at(i) == '%' && isHex(u.at(i+1)) && isHex(u.at(i+2))
}

func (u *uriParser) pchar(i int) bool {
	c := u.at(i)
	return u.unreserved(i) || u.pct(i) || u.subDelim(i) || c == ':' || c == '@'
}

func (u *uriParser) next(i int) int {
	if u.at(i) == '%' {
		return i + 3
	}
	return i + 1
}

func (u *uriParser) uri(i int) bool {
	if !isAlpha(u.at(i)) {
		return false
	}
	i++
	for c := u.at(i); isAlpha(c) || isDigit(c) || c == '+' || c == '-' || c == '.'; c = u.at(i) {
		i++
	}
	if u.at(i) != ':' {
		return false
	}
	i++
	var ok bool
	if i, ok = u.hierPart(i); !ok {
		return false
	}
	return u.queryFragmentEnd(i)
}

func (u *uriParser) queryFragmentEnd(i int) bool {
	if u.at(i) == '?' {
		i++
		for u.pchar(i) || u.at(i) == '/' || u.at(i) == '?' {
			i = u.next(i)
		}
	}
	if u.at(i) == '#' {
		i++
		for u.pchar(i) || u.at(i) == '/' || u.at(i) == '?' || u.at(i) == '[' || u.at(i) == ']' {
			i = u.next(i)
		}
	}
	return i >= len(u.s)
}

func (u *uriParser) hierPart(i int) (int, bool) {
	if u.at(i) == '/' && u.at(i+1) == '/' {
		i, ok := u.authority(i + 2)
		if !ok {
			return i, false
		}
		return u.pathAbEmpty(i)
	}
	if u.at(i) == '/' {
		return u.pathAbsolute(i)
	}
	if u.pchar(i) {
		return u.pathRootless(i, 0)
	}
	return i, true
}

func (u *uriParser) relativeRef(i int) bool {
	var ok bool
	switch {
	case u.at(i) == '/' && u.at(i+1) == '/':
		if i, ok = u.authority(i + 2); !ok {
			return false
		}
		if i, ok = u.pathAbEmpty(i); !ok {
			return false
		}
	case u.at(i) == '/':
		if i, ok = u.pathAbsolute(i); !ok {
			return false
		}
	case u.pchar(i):
		if i, ok = u.pathRootless(i, ':'); !ok {
			return false
		}
	}
	return u.queryFragmentEnd(i)
}

func (u *uriParser) authority(i int) (int, bool) {
	// userinfo "@"
	j := i
	for u.unreserved(j) || u.pct(j) || u.subDelim(j) || u.at(j) == ':' {
		j = u.next(j)
	}
	if u.at(j) == '@' {
		i = j + 1
	}
	// host
	if u.at(i) == '[' {
		i++
		for u.at(i) != ']' && i < len(u.s) {
			i++
		}
		if u.at(i) != ']' {
			return i, false
		}
		i++
	} else {
		for u.unreserved(i) || u.pct(i) || u.subDelim(i) {
			i = u.next(i)
		}
	}
	if u.at(i) == ':' {
		i++
		if !isDigit(u.at(i)) {
			return i, false
		}
		port := 0
		for isDigit(u.at(i)) {
			d := int(u.at(i) - '0')
			if port > (1<<31-1)/10 {
				return i, false
			}
			port *= 10
			if port > 1<<31-1-d {
				return i, false
			}
			port += d
			i++
		}
	}
	return i, true
}

// segment parses *pchar (empty allowed) or 1*pchar (empty not allowed),
// stopping at forbid (':' for path-noscheme's first segment).
func (u *uriParser) segment(i int, forbid byte, empty bool) (int, bool) {
	if !u.pchar(i) {
		return i, empty
	}
	for u.pchar(i) && (forbid == 0 || u.at(i) != forbid) {
		i = u.next(i)
	}
	return i, true
}

func (u *uriParser) pathAbEmpty(i int) (int, bool) {
	for u.at(i) == '/' {
		var ok bool
		if i, ok = u.segment(i+1, 0, true); !ok {
			return i, false
		}
	}
	return i, true
}

func (u *uriParser) pathAbsolute(i int) (int, bool) {
	i++ // '/'
	if j, ok := u.segment(i, 0, false); ok {
		i = j
		for u.at(i) == '/' {
			if i, ok = u.segment(i+1, 0, true); !ok {
				return i, false
			}
		}
	}
	return i, true
}

func (u *uriParser) pathRootless(i int, forbid byte) (int, bool) {
	var ok bool
	if i, ok = u.segment(i, forbid, false); !ok {
		return i, false
	}
	for u.at(i) == '/' {
		if i, ok = u.segment(i+1, 0, true); !ok {
			return i, false
		}
	}
	return i, true
}
