package archive

import (
	"strings"
	"unicode/utf8"
)

// cleanName returns the canonical form of an entry name (slash-separated,
// relative, no "." components, no leading "./") or, when the name is one
// memoflow refuses, "" and the reason.
//
// The names never become file system paths in memoflow itself, but they end
// up in receipts, logs and the event log, and a sender's tooling or a
// downstream consumer may well extract them. So the rule is "refuse
// anything a careless extractor would misread", not "refuse only what is
// dangerous here": absolute paths, Windows drive letters, any ".."
// component (even a harmless a/../b), backslashes (a separator on
// Windows), NUL and control characters, and invalid UTF-8.
func cleanName(name string, maxBytes int, dir bool) (clean, reason string) {
	switch {
	case name == "":
		return "", "empty name"
	case len(name) > maxBytes:
		return "", "name is longer than the limit"
	case !utf8.ValidString(name):
		return "", "name is not valid UTF-8"
	case strings.IndexByte(name, 0) >= 0:
		return "", "name contains NUL"
	case strings.IndexByte(name, '\\') >= 0:
		return "", "name contains a backslash"
	case name[0] == '/':
		return "", "absolute path"
	case len(name) >= 2 && name[1] == ':' && isASCIILetter(name[0]):
		return "", "absolute path (drive letter)"
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return "", "name contains a control character"
		}
	}
	if dir {
		name = strings.TrimRight(name, "/")
	} else if strings.HasSuffix(name, "/") {
		return "", "file name ends with a slash"
	}
	var b strings.Builder
	b.Grow(len(name))
	for part := range strings.SplitSeq(name, "/") {
		switch part {
		case "", ".":
			continue
		case "..":
			return "", "name has a .. component"
		}
		if b.Len() > 0 {
			b.WriteByte('/')
		}
		b.WriteString(part)
	}
	if b.Len() == 0 {
		if dir {
			return ".", "" // the archive root, "./"
		}
		return "", "empty name"
	}
	return b.String(), ""
}

func isASCIILetter(c byte) bool { return c|0x20 >= 'a' && c|0x20 <= 'z' }
