package archive

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
)

// Code is a stable, machine-readable reason a batch was refused. Codes never
// change meaning; new ones are added to Codes.
type Code string

// The codes. Each one has a row in Codes; TestCodesCatalogue fails when a
// code is added without one.
const (
	// The input is not what the endpoint takes.
	CodeFormatGzip        Code = "ARCHIVE_FORMAT_GZIP"
	CodeFormatXZ          Code = "ARCHIVE_FORMAT_XZ"
	CodeFormatUnsupported Code = "ARCHIVE_FORMAT_UNSUPPORTED"

	// The LZMA stream is damaged.
	CodeLZMACorrupt   Code = "ARCHIVE_LZMA_CORRUPT"
	CodeLZMATruncated Code = "ARCHIVE_LZMA_TRUNCATED"

	// The tar stream inside is damaged.
	CodeTarCorrupt   Code = "ARCHIVE_TAR_CORRUPT"
	CodeTarTruncated Code = "ARCHIVE_TAR_TRUNCATED"

	// Resource limits.
	CodeTooLarge       Code = "ARCHIVE_TOO_LARGE"
	CodeRatio          Code = "ARCHIVE_RATIO"
	CodeDictTooLarge   Code = "ARCHIVE_LZMA_DICT_TOO_LARGE"
	CodeEntryTooLarge  Code = "ARCHIVE_ENTRY_TOO_LARGE"
	CodeTooManyEntries Code = "ARCHIVE_TOO_MANY_ENTRIES"

	// Well-formed, but not a batch memoflow accepts.
	CodePathUnsafe    Code = "ARCHIVE_PATH_UNSAFE"
	CodeEntryType     Code = "ARCHIVE_ENTRY_TYPE"
	CodeDuplicateName Code = "ARCHIVE_DUPLICATE_NAME"
	CodeEmpty         Code = "ARCHIVE_EMPTY"
)

// CodeInfo is one row of the catalogue.
type CodeInfo struct {
	Code Code
	// Status is what the HTTP API answers when this code rejects a batch:
	// 400 the bytes are not a readable tar(+LZMA) stream, 413 a size limit
	// was hit, 422 the archive is readable but its content is refused.
	Status      int
	Description string
}

// Codes is the catalogue of archive codes, in the order of the constants.
// docs and the ingest API's receipts are made from it.
var Codes = []CodeInfo{
	{CodeFormatGzip, http.StatusBadRequest, "The body is gzip-compressed. A batch is a tar archive compressed with LZMA in the LZMA-alone format (.lzma, `xz --format=lzma`), not gzip."},
	{CodeFormatXZ, http.StatusBadRequest, "The body is an xz container (.xz). A batch must use the older LZMA-alone format (.lzma, `xz --format=lzma`), which NgDP specifies."},
	{CodeFormatUnsupported, http.StatusBadRequest, "The body is another archive or compression format (zip, 7z, bzip2, zstd, lzip) or an uncompressed tar sent as LZMA. A batch is a tar archive compressed with LZMA-alone."},
	{CodeLZMACorrupt, http.StatusBadRequest, "The LZMA stream is invalid: a bad header, corrupt compressed data, a size that differs from the header, or bytes after the end of the stream."},
	{CodeLZMATruncated, http.StatusBadRequest, "The LZMA stream ends before its end marker or declared size: the upload was cut short."},
	{CodeTarCorrupt, http.StatusBadRequest, "The decompressed data is not a valid tar archive (bad header checksum or fields)."},
	{CodeTarTruncated, http.StatusBadRequest, "The tar archive ends inside an entry or without its end-of-archive marker (two zero blocks)."},
	{CodeTooLarge, http.StatusRequestEntityTooLarge, "The decompressed archive is larger than the shipment limit (99.5 MB by default), or its LZMA header declares so."},
	{CodeRatio, http.StatusRequestEntityTooLarge, "The archive decompresses to more than the allowed multiple of its compressed size (100:1 by default past the first few MB): it is treated as a decompression bomb."},
	{CodeDictTooLarge, http.StatusRequestEntityTooLarge, "The LZMA header asks for a dictionary larger than the server allows (64 MiB by default). Compress with a smaller dictionary (presets up to -9 are accepted)."},
	{CodeEntryTooLarge, http.StatusRequestEntityTooLarge, "One file in the archive is larger than the per-message limit."},
	{CodeTooManyEntries, http.StatusRequestEntityTooLarge, "The archive holds more entries than one batch may."},
	{CodePathUnsafe, http.StatusUnprocessableEntity, "An entry name is unsafe or unusable: absolute, with a `..` component, a backslash, NUL or a control character, not UTF-8, empty, or too long."},
	{CodeEntryType, http.StatusUnprocessableEntity, "An entry is not a regular file: symlinks, hard links, devices, FIFOs and sparse files are refused (directories are skipped)."},
	{CodeDuplicateName, http.StatusUnprocessableEntity, "Two entries have the same name (after removing a leading ./)."},
	{CodeEmpty, http.StatusUnprocessableEntity, "The body or the archive holds no files."},
}

// Lookup returns the catalogue row of c, or a row with status 400 and no
// description for a code not in the catalogue.
func Lookup(c Code) CodeInfo {
	for _, ci := range Codes {
		if ci.Code == c {
			return ci
		}
	}
	return CodeInfo{Code: c, Status: http.StatusBadRequest}
}

// Error is why a batch was refused. Entry names the archive entry at fault
// (as written in the archive, before cleaning) when there is one. Match it
// with errors.As, or a code with errors.Is(err, &Error{Code: c}).
//
// An error from Reader that is not an *Error is a read error of the
// underlying io.Reader (a client that went away, an http.MaxBytesError),
// wrapped so errors.As still finds the original.
type Error struct {
	Code    Code
	Entry   string
	Message string
	// Err is the underlying cause (from the LZMA decoder or archive/tar),
	// if any. It is for logs: its text is not stable.
	Err error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(string(e.Code))
	if e.Entry != "" {
		b.WriteString(" at ")
		b.WriteString(quoteName(e.Entry))
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Unwrap returns the underlying cause.
func (e *Error) Unwrap() error { return e.Err }

// Is reports whether target is an *Error with the same code, so that
// errors.Is(err, &archive.Error{Code: archive.CodeRatio}) works.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// Status is the HTTP status the catalogue gives e's code.
func (e *Error) Status() int { return Lookup(e.Code).Status }

// CodeOf returns the code of the first *Error in err's chain, or "".
func CodeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// quoteName keeps hostile entry names (control characters, invalid UTF-8)
// from reaching logs and receipts verbatim.
func quoteName(s string) string {
	const max = 200
	if len(s) > max {
		s = s[:max] + "..."
	}
	return strconv.Quote(s)
}
