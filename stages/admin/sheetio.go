package admin

import (
	"archive/zip"
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/xuri/excelize/v2"
)

// Limits bound what an import reads, so a hostile file (a zip bomb, a
// sheet with a row at 1,048,576, megabyte cells) costs little before it is
// refused. The defaults fit the NgDP sheet with room to spare: 2000 rows of
// about 15 columns unpack to a few megabytes.
type Limits struct {
	MaxFileBytes     int64 // the upload as sent (16 MiB)
	MaxUnpackedBytes int64 // an XLSX's parts unpacked, all together (64 MiB)
	MaxZipEntries    int   // parts in an XLSX (1000)
	MaxRows          int   // data rows per sheet, per kind (2000, NgDP's limit)
	MaxScannedRows   int   // rows read including blank ones (20,000)
	MaxColumns       int   // columns read (64)
	MaxCellBytes     int   // one cell (32 KiB, Excel's own cell limit is 32,767 characters)
}

// DefaultLimits are NgDP's sheet limits and this package's safety bounds.
func DefaultLimits() Limits {
	return Limits{
		MaxFileBytes:     16 << 20,
		MaxUnpackedBytes: 64 << 20,
		MaxZipEntries:    1000,
		MaxRows:          2000,
		MaxScannedRows:   20_000,
		MaxColumns:       64,
		MaxCellBytes:     32 << 10,
	}
}

// Validate names the limit at fault.
func (l Limits) Validate() error {
	switch {
	case l.MaxFileBytes <= 0:
		return errors.New("admin limits: MaxFileBytes must be > 0")
	case l.MaxUnpackedBytes < l.MaxFileBytes:
		return errors.New("admin limits: MaxUnpackedBytes must be >= MaxFileBytes")
	case l.MaxZipEntries <= 0:
		return errors.New("admin limits: MaxZipEntries must be > 0")
	case l.MaxRows <= 0:
		return errors.New("admin limits: MaxRows must be > 0 (NgDP: 2000)")
	case l.MaxScannedRows < l.MaxRows:
		return errors.New("admin limits: MaxScannedRows must be >= MaxRows")
	case l.MaxColumns <= 0:
		return errors.New("admin limits: MaxColumns must be > 0")
	case l.MaxCellBytes <= 0:
		return errors.New("admin limits: MaxCellBytes must be > 0")
	}
	return nil
}

// table is one sheet as read: the header and the non-blank rows, before
// any column means anything.
type table struct {
	sheet  string
	header []string
	rows   []tableRow
}

type tableRow struct {
	line  int      // 1-based row number in the sheet (the header is row 1)
	cells []string // by column index; formulas are refused before this
}

// Format is a sheet file format.
type Format string

const (
	FormatXLSX Format = "xlsx"
	FormatCSV  Format = "csv"
)

// DetectFormat tells XLSX (a zip: "PK\x03\x04") from CSV (UTF-8 text).
// Old binary .xls and encrypted workbooks (OLE: D0 CF 11 E0) are refused.
func DetectFormat(data []byte) (Format, error) {
	switch {
	case bytes.HasPrefix(data, []byte("PK\x03\x04")):
		return FormatXLSX, nil
	case bytes.HasPrefix(data, []byte{0xD0, 0xCF, 0x11, 0xE0}):
		return "", fileErr(CodeUnknownFormat, "the file is an old binary .xls workbook or an encrypted one; save it as an unencrypted .xlsx")
	case len(data) == 0:
		return "", fileErr(CodeBadFile, "the file is empty")
	}
	return FormatCSV, nil
}

func fileErr(code, format string, args ...any) *ImportError {
	return &ImportError{Errors: []RowError{{Code: code, Message: fmt.Sprintf(format, args...)}}}
}

// Sheet names of the workbook (NgDP's Danish ones; the English ones are
// accepted on import).
const (
	SheetPoints = "Kontaktpunkter"
	SheetGroups = "Kontaktgrupper"
)

var sheetAliases = map[string]string{
	"kontaktpunkter": SheetPoints, "contact points": SheetPoints, "contactpoints": SheetPoints,
	"kontaktgrupper": SheetGroups, "contact groups": SheetGroups, "contactgroups": SheetGroups,
}

// readXLSX reads the two sheets of a contact-structure workbook.
func readXLSX(data []byte, lim Limits) (groups, points *table, err error) {
	ts, err := readWorkbook(data, lim, sheetAliases, "a "+SheetPoints+" nor a "+SheetGroups+" sheet")
	return ts[SheetGroups], ts[SheetPoints], err
}

// readWorkbook reads the sheets of a workbook that aliases names (lower
// case name -> canonical name), by canonical name; other sheets are
// ignored. The zip's central directory is checked first (entries,
// declared sizes, ratio), then excelize opens it with the same
// unpacked-size limit (archive/zip refuses an entry whose data outruns its
// declared size), and the sheets are streamed row by row. none says what
// is missing when no sheet is found ("a X nor a Y sheet").
func readWorkbook(data []byte, lim Limits, aliases map[string]string, none string) (map[string]*table, error) {
	if int64(len(data)) > lim.MaxFileBytes {
		return nil, fileErr(CodeFileTooLarge, "the file is %d bytes; the limit is %d", len(data), lim.MaxFileBytes)
	}
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return nil, fileErr(CodeBadFile, "not a readable XLSX workbook (%v)", err)
	}
	if len(zr.File) > lim.MaxZipEntries {
		return nil, fileErr(CodeFileTooLarge, "the workbook has %d parts; the limit is %d", len(zr.File), lim.MaxZipEntries)
	}
	var unpacked uint64
	for _, f := range zr.File {
		unpacked += f.UncompressedSize64
		if unpacked > uint64(lim.MaxUnpackedBytes) {
			return nil, fileErr(CodeFileTooLarge, "the workbook unpacks to more than %d bytes (part %s)", lim.MaxUnpackedBytes, f.Name)
		}
	}
	formulas, err := hasFormulas(zr, lim)
	if err != nil {
		return nil, fileErr(CodeBadFile, "not a readable XLSX workbook (%v)", err)
	}
	f, err := excelize.OpenReader(bytes.NewReader(data), excelize.Options{
		UnzipSizeLimit:    lim.MaxUnpackedBytes,
		UnzipXMLSizeLimit: lim.MaxUnpackedBytes,
		// Raw values: numbers as stored, so an EAN typed as a number
		// reads as its digits, not as 5.798E+12.
		RawCellValue: true,
	})
	if err != nil {
		if strings.Contains(err.Error(), "unzip size") {
			return nil, fileErr(CodeFileTooLarge, "the workbook unpacks to more than %d bytes", lim.MaxUnpackedBytes)
		}
		return nil, fileErr(CodeBadFile, "not a readable XLSX workbook (%v)", err)
	}
	defer f.Close()
	var ie ImportError
	out := map[string]*table{}
	for _, name := range f.GetSheetList() {
		canon, ok := aliases[strings.ToLower(strings.TrimSpace(name))]
		if !ok {
			continue // instructions, lookup lists: not ours
		}
		if out[canon] != nil {
			ie.Errors = append(ie.Errors, RowError{Sheet: name, Code: CodeBadFile, Message: "the workbook has two " + canon + " sheets"})
			continue
		}
		t, errs := readXLSXSheet(f, name, canon, lim, formulas)
		ie.Errors = append(ie.Errors, errs...)
		out[canon] = t
	}
	if len(out) == 0 && len(ie.Errors) == 0 {
		ie.Errors = append(ie.Errors, RowError{Code: CodeSheetMissing, Message: "the workbook has neither " + none + " (sheets: " + strings.Join(f.GetSheetList(), ", ") + ")"})
	}
	if len(ie.Errors) > 0 {
		return out, &ie
	}
	return out, nil
}

func readXLSXSheet(f *excelize.File, name, canon string, lim Limits, formulas bool) (*table, []RowError) {
	t := &table{sheet: canon}
	rows, err := f.Rows(name)
	if err != nil {
		return t, []RowError{{Sheet: canon, Code: CodeBadFile, Message: err.Error()}}
	}
	defer rows.Close()
	var errs []RowError
	line := 0
	width := 0
	for rows.Next() {
		line++
		if line > lim.MaxScannedRows {
			return t, append(errs, RowError{Sheet: canon, Row: line, Code: CodeFileTooLarge,
				Message: fmt.Sprintf("the sheet has rows beyond row %d; the limit is %d rows of data", lim.MaxScannedRows, lim.MaxRows)})
		}
		cells, err := rows.Columns(excelize.Options{RawCellValue: true})
		if err != nil {
			return t, append(errs, RowError{Sheet: canon, Row: line, Code: CodeBadFile, Message: err.Error()})
		}
		cells, cerrs := checkCells(canon, line, cells, lim)
		errs = append(errs, cerrs...)
		if line == 1 {
			t.header = cells
			width = len(cells)
			continue
		}
		if isBlank(cells) {
			continue
		}
		if len(t.rows) == lim.MaxRows {
			return t, append(errs, RowError{Sheet: canon, Row: line, Code: CodeTooManyRows,
				Message: fmt.Sprintf("more than %d rows of data; split the sheet into several files", lim.MaxRows)})
		}
		if len(cells) > width {
			width = len(cells)
		}
		t.rows = append(t.rows, tableRow{line: line, cells: cells})
	}
	if err := rows.Error(); err != nil {
		errs = append(errs, RowError{Sheet: canon, Code: CodeBadFile, Message: err.Error()})
	}
	// Formulas are never evaluated, and their cached values are whatever
	// the last program to save the file wrote: refuse them. Only cells in
	// the rows and columns read need checking; the sheet is within the
	// limits by now, so loading it for the lookup is bounded.
	if width > 0 && formulas {
		check := func(line, n int) {
			for col := 1; col <= n; col++ {
				ref, _ := excelize.CoordinatesToCellName(col, line)
				if fml, err := f.GetCellFormula(name, ref); err == nil && fml != "" {
					errs = append(errs, RowError{Sheet: canon, Row: line, Cell: ref, Column: headerAt(t.header, col-1),
						Code: CodeFormula, Message: "the cell holds the formula =" + truncate(fml, 60) + "; formulas are never evaluated, paste the value instead"})
				}
			}
		}
		check(1, width)
		for _, r := range t.rows {
			check(r.line, width)
		}
	}
	return t, errs
}

// hasFormulaElement reports whether worksheet XML has a formula element
// (<f>, <f t="shared" .../>, or with a namespace prefix, x:f). It looks at
// every element name: a hand loop, several times faster than a regexp on
// the megabytes of a full sheet.
func hasFormulaElement(b []byte) bool {
	for {
		i := bytes.IndexByte(b, '<')
		if i < 0 {
			return false
		}
		b = b[i+1:]
		j := 0
		for j < len(b) && b[j] != ' ' && b[j] != '>' && b[j] != '/' && b[j] != '\t' && b[j] != '\n' && b[j] != '\r' {
			j++
		}
		name := b[:j]
		if k := bytes.LastIndexByte(name, ':'); k >= 0 {
			name = name[k+1:]
		}
		if len(name) == 1 && name[0] == 'f' {
			return true
		}
	}
}

// hasFormulas reports whether any worksheet part holds a formula. Most
// sheets hold none, and then the per-cell formula look-up (which makes
// excelize parse the whole sheet a second time) is skipped.
func hasFormulas(zr *zip.Reader, lim Limits) (bool, error) {
	for _, zf := range zr.File {
		if !strings.HasPrefix(strings.ToLower(zf.Name), "xl/worksheets/") || !strings.HasSuffix(strings.ToLower(zf.Name), ".xml") {
			continue
		}
		rc, err := zf.Open()
		if err != nil {
			return false, err
		}
		b, err := io.ReadAll(io.LimitReader(rc, lim.MaxUnpackedBytes))
		rc.Close()
		if err != nil {
			return false, err
		}
		if hasFormulaElement(b) {
			return true, nil
		}
	}
	return false, nil
}

// readCSV reads a CSV export: a Type column (Kontaktgruppe or Kontaktpunkt)
// and the union of the two sheets' columns. Excel in Danish saves CSV with
// ';', so the delimiter is taken from the header line; a UTF-8 BOM is
// skipped.
func readCSV(data []byte, lim Limits) (*table, error) {
	if int64(len(data)) > lim.MaxFileBytes {
		return nil, fileErr(CodeFileTooLarge, "the file is %d bytes; the limit is %d", len(data), lim.MaxFileBytes)
	}
	data = bytes.TrimPrefix(data, []byte("\xEF\xBB\xBF"))
	if !utf8.Valid(data) {
		// Report where, so the user finds the Latin-1 'ø' at once.
		line := 1 + bytes.Count(data[:firstInvalidUTF8(data)], []byte("\n"))
		return nil, &ImportError{Errors: []RowError{{Sheet: "CSV", Row: line, Code: CodeBadUTF8,
			Message: "the file is not UTF-8 (Excel: save as \"CSV UTF-8\")"}}}
	}
	first, _, _ := bytes.Cut(data, []byte("\n"))
	cr := csv.NewReader(bytes.NewReader(data))
	if bytes.Count(first, []byte(";")) > bytes.Count(first, []byte(",")) {
		cr.Comma = ';'
	}
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = false
	t := &table{sheet: "CSV"}
	var ie ImportError
	line := 0
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		line++
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				ie.Errors = append(ie.Errors, RowError{Sheet: "CSV", Row: pe.StartLine, Code: CodeBadFile, Message: pe.Err.Error()})
			} else {
				ie.Errors = append(ie.Errors, RowError{Sheet: "CSV", Row: line, Code: CodeBadFile, Message: err.Error()})
			}
			return t, &ie
		}
		if line > lim.MaxScannedRows {
			ie.Errors = append(ie.Errors, RowError{Sheet: "CSV", Row: line, Code: CodeFileTooLarge,
				Message: fmt.Sprintf("the file has lines beyond %d; the limit is %d contact points and %d groups", lim.MaxScannedRows, lim.MaxRows, lim.MaxRows)})
			return t, &ie
		}
		// A CSV line's number is the reader's: quoted cells may span lines.
		at, _ := cr.FieldPos(0)
		cells, cerrs := checkCells("CSV", at, rec, lim)
		ie.Errors = append(ie.Errors, cerrs...)
		if line == 1 {
			t.header = cells
			continue
		}
		if isBlank(cells) {
			continue
		}
		if len(t.rows) == 2*lim.MaxRows {
			ie.Errors = append(ie.Errors, RowError{Sheet: "CSV", Row: at, Code: CodeTooManyRows,
				Message: fmt.Sprintf("more than %d contact points and %d groups; split the file", lim.MaxRows, lim.MaxRows)})
			return t, &ie
		}
		t.rows = append(t.rows, tableRow{line: at, cells: cells})
	}
	if line == 0 {
		return t, fileErr(CodeBadFile, "the file is empty")
	}
	if len(ie.Errors) > 0 {
		return t, &ie
	}
	return t, nil
}

// checkCells trims the cells, refuses bad UTF-8, control characters and
// oversized cells, and cuts a row down to MaxColumns (refusing text beyond).
func checkCells(sheet string, line int, cells []string, lim Limits) ([]string, []RowError) {
	var errs []RowError
	if len(cells) > lim.MaxColumns {
		for i := lim.MaxColumns; i < len(cells); i++ {
			if strings.TrimSpace(cells[i]) != "" {
				ref, _ := excelize.CoordinatesToCellName(i+1, line)
				errs = append(errs, RowError{Sheet: sheet, Row: line, Cell: ref, Code: CodeFileTooLarge,
					Message: fmt.Sprintf("text beyond column %d; the sheet has at most %d columns", lim.MaxColumns, lim.MaxColumns)})
				break
			}
		}
		cells = cells[:lim.MaxColumns]
	}
	for i, c := range cells {
		ref, _ := excelize.CoordinatesToCellName(i+1, line)
		switch {
		case len(c) > lim.MaxCellBytes:
			errs = append(errs, RowError{Sheet: sheet, Row: line, Cell: ref, Code: CodeFileTooLarge,
				Message: fmt.Sprintf("the cell holds %d bytes; the limit is %d", len(c), lim.MaxCellBytes)})
			cells[i] = ""
			continue
		case !utf8.ValidString(c):
			errs = append(errs, RowError{Sheet: sheet, Row: line, Cell: ref, Code: CodeBadUTF8, Message: "the cell is not valid UTF-8"})
			cells[i] = ""
			continue
		}
		c = strings.TrimSpace(c)
		if i := strings.IndexFunc(c, isBadControl); i >= 0 {
			errs = append(errs, RowError{Sheet: sheet, Row: line, Cell: ref, Code: CodeBadUTF8,
				Message: fmt.Sprintf("the cell holds the control character %U", []rune(c[i:])[0])})
			c = ""
		}
		cells[i] = c
	}
	return cells, errs
}

// isBadControl: control characters other than line breaks and tabs (which
// information texts may hold), and the Unicode replacement character that
// a lossy conversion leaves behind.
func isBadControl(r rune) bool {
	if r == '\n' || r == '\t' || r == '\r' {
		return false
	}
	return unicode.IsControl(r) || r == utf8.RuneError
}

func firstInvalidUTF8(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n <= 1 {
			return i
		}
		i += n
	}
	return len(b)
}

func isBlank(cells []string) bool {
	for _, c := range cells {
		if c != "" {
			return false
		}
	}
	return true
}

func headerAt(h []string, i int) string {
	if i < len(h) {
		return h[i]
	}
	return ""
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
