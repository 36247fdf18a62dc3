package admin

import "strings"

// Spreadsheets run a cell that starts with = + - @ (and, in some, a tab or
// CR) as a formula. Exports therefore prefix such text with an apostrophe,
// as stages/eventquery's CSV does, and imports remove exactly that prefix
// again, so export -> import is a no-op:
//
//	escape: a value that is k >= 0 apostrophes followed by a trigger gets one more apostrophe
//	unescape: a value that is k >= 1 apostrophes followed by a trigger loses one
//
// The two are inverse on every string, so no value changes on a round trip,
// including one that really starts with "'=".
const formulaTriggers = "=+-@\t\r"

func needsEscape(s string) bool {
	t := strings.TrimLeft(s, "'")
	return t != "" && strings.IndexByte(formulaTriggers, t[0]) >= 0
}

func escapeCell(s string) string {
	if needsEscape(s) {
		return "'" + s
	}
	return s
}

func unescapeCell(s string) string {
	if len(s) > 1 && s[0] == '\'' && needsEscape(s[1:]) {
		return s[1:]
	}
	return s
}
