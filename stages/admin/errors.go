package admin

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
)

// Codes of the admin API and of sheet imports. Every refusal carries one of
// them; the message says what to fix. Authentication failures carry the
// auth package's codes (AUTH_MISSING, AUTH_INVALID_TOKEN, AUTH_FORBIDDEN).
const (
	CodeBadRequest      = "ADMIN_BAD_REQUEST"
	CodeBadParameter    = "ADMIN_BAD_PARAMETER"
	CodeInvalid         = "ADMIN_INVALID"
	CodeNotFound        = "ADMIN_NOT_FOUND"
	CodeOrgForbidden    = "ADMIN_ORGANISATION_FORBIDDEN"
	CodeConflict        = "ADMIN_CONFLICT"
	CodeTooLarge        = "ADMIN_BODY_TOO_LARGE"
	CodeUnavailable     = "ADMIN_REGISTRY_UNAVAILABLE"
	CodeInternal        = "ADMIN_INTERNAL"
	CodeImportRejected  = "IMPORT_REJECTED"
	CodeMissingField    = "IMPORT_MISSING_FIELD"
	CodeBadValue        = "IMPORT_BAD_VALUE"
	CodeBadCode         = "IMPORT_BAD_CODE"
	CodeTooLong         = "IMPORT_TOO_LONG"
	CodeDuplicateID     = "IMPORT_DUPLICATE_ID"
	CodeParentUnknown   = "IMPORT_PARENT_UNKNOWN"
	CodeParentNotGroup  = "IMPORT_PARENT_NOT_GROUP"
	CodeCycle           = "IMPORT_CYCLE"
	CodeTooManyRows     = "IMPORT_TOO_MANY_ROWS"
	CodeUnknownSystem   = "IMPORT_UNKNOWN_SYSTEM"
	CodeForeignID       = "IMPORT_ID_OF_OTHER_ORGANISATION"
	CodeFormula         = "IMPORT_FORMULA"
	CodeBadUTF8         = "IMPORT_BAD_UTF8"
	CodeBadHeader       = "IMPORT_BAD_HEADER"
	CodeSheetMissing    = "IMPORT_SHEET_MISSING"
	CodeBadFile         = "IMPORT_BAD_FILE"
	CodeFileTooLarge    = "IMPORT_FILE_TOO_LARGE"
	CodeUnknownFormat   = "IMPORT_UNKNOWN_FORMAT"
	CodeRegistryInvalid = "IMPORT_REGISTRY_INVALID"
	CodeSelectionID     = "IMPORT_SELECTION_ID"
	CodeNotACompany     = "IMPORT_NOT_A_COMPANY"
	CodeNotAllowed      = "IMPORT_NOT_ALLOWED"
)

// CodeInfo documents one code; docs/admin-api.md's table is generated from
// Codes (TestAdminAPIDocs keeps them equal).
type CodeInfo struct {
	Code        string
	Status      int
	Description string
}

// Codes is the catalogue of the admin API's own codes.
var Codes = []CodeInfo{
	{CodeBadRequest, http.StatusBadRequest, "The body is not the JSON object the endpoint takes (syntax, unknown field, wrong type); `field` names the field when known."},
	{CodeBadParameter, http.StatusBadRequest, "A query parameter is unknown, malformed or out of range; `field` names it."},
	{CodeInvalid, http.StatusUnprocessableEntity, "The entity breaks a registry rule (format, limit, reference); `field` names the field and `registryCode` the registry's code (REGISTRY_BAD_SFTP, REGISTRY_BAD_SMTP, REGISTRY_BAD_TEMPLATE, REGISTRY_BAD_FORWARD, ...)."},
	{CodeNotFound, http.StatusNotFound, "No such entity, or it belongs to an organisation the caller may not see (the two are not told apart)."},
	{CodeOrgForbidden, http.StatusForbidden, "The caller administers another organisation; only operators act across organisations."},
	{CodeConflict, http.StatusConflict, "The id is taken (by another kind of entity or another organisation), or the path's id and the body's differ; a standard system still selected by an authority cannot be deleted or change kind (`registryCode` REGISTRY_BAD_TEMPLATE); a selection keeps its standard system (select another under a new id)."},
	{CodeTooLarge, http.StatusRequestEntityTooLarge, "The request body is above the endpoint's limit (JSON 1 MiB, import files 16 MiB)."},
	{CodeUnavailable, http.StatusServiceUnavailable, "memo.registry did not acknowledge the change (or the view is not loaded yet); nothing was changed, retry."},
	{CodeInternal, http.StatusInternalServerError, "An unexpected server error; the message says which."},
	{CodeImportRejected, http.StatusUnprocessableEntity, "The sheet has errors; nothing was imported. `errors` lists every one with sheet, row, column and code."},
	{CodeMissingField, http.StatusUnprocessableEntity, "A required cell (ID, Navn, ...) is empty."},
	{CodeBadValue, http.StatusUnprocessableEntity, "A cell's value is not of its column's kind (a yes/no column holding something else, an id with spaces, ...)."},
	{CodeBadCode, http.StatusUnprocessableEntity, "A KLE, FORM, EAN/GLN or SOR code is malformed (KLE `dd`, `dd.dd` or `dd.dd.dd`; FORM 1-32 of A-Z, 0-9 and '.'; EAN/GLN 13 digits; SOR 1-18 digits; at most 32 codes of each kind)."},
	{CodeTooLong, http.StatusUnprocessableEntity, "A cell or list is longer than its column allows (names and information-field titles 256 bytes, information-field texts 4000, at most 64 keywords of 256 bytes)."},
	{CodeDuplicateID, http.StatusUnprocessableEntity, "Two rows carry the same ID (in one sheet, or a group and a point: a group is never a point)."},
	{CodeParentUnknown, http.StatusUnprocessableEntity, "A Parent ID names no group of this organisation, neither in the file nor in the registry."},
	{CodeParentNotGroup, http.StatusUnprocessableEntity, "A Parent ID names a contact point; only groups nest."},
	{CodeCycle, http.StatusUnprocessableEntity, "Groups' Parent IDs form a cycle (the message lists it); reported on every group of the cycle."},
	{CodeTooManyRows, http.StatusUnprocessableEntity, "A sheet has more than 2000 rows of contact points or of groups: split it into several files."},
	{CodeUnknownSystem, http.StatusUnprocessableEntity, "The recipient system is not a recipient system of this organisation."},
	{CodeForeignID, http.StatusUnprocessableEntity, "The ID exists in the registry for another organisation; ids are global, pick another."},
	{CodeFormula, http.StatusUnprocessableEntity, "A cell holds a formula. Formulas are never evaluated: paste the values instead."},
	{CodeBadUTF8, http.StatusUnprocessableEntity, "A cell (or the CSV file) is not valid UTF-8, or holds control characters; save the file as UTF-8."},
	{CodeBadHeader, http.StatusUnprocessableEntity, "The header row lacks a required column, repeats one or has an unknown one; the message lists the expected headers."},
	{CodeSheetMissing, http.StatusUnprocessableEntity, "The workbook has none of the import's sheets (`Kontaktpunkter`/`Kontaktgrupper`; for systems `Modtagersystemer`/`Standardsystemer`/`Videresendelse`)."},
	{CodeBadFile, http.StatusUnprocessableEntity, "The file is not a readable XLSX workbook or CSV file (corrupt, encrypted, or another format)."},
	{CodeFileTooLarge, http.StatusRequestEntityTooLarge, "The file, its unpacked size, a sheet's rows or columns, or a cell exceed the import limits (zip bombs and huge sheets stop here)."},
	{CodeUnknownFormat, http.StatusUnsupportedMediaType, "The upload is neither XLSX nor CSV; send the workbook or a CSV with `format=csv`."},
	{CodeRegistryInvalid, http.StatusUnprocessableEntity, "A row passed the sheet's checks but the registry refused the entity it becomes; the message is the registry's, `registryCode` its code."},
	{CodeSelectionID, http.StatusUnprocessableEntity, "A Standardsystem cell would turn an existing own system into a selection, or move a selection to another standard system: select under a new ID (the supplier sees that ID's traffic)."},
	{CodeNotACompany, http.StatusUnprocessableEntity, "A Videresendelse row for an organisation without a Digital Post registration as a company; only companies forward their mailbox post."},
	{CodeNotAllowed, http.StatusUnprocessableEntity, "A row changes what the caller's roles do not cover: standard systems need `supplier`, recipient systems and forwarding `system-admin`. Rows equal to the registry may stay in the file."},
}

var codeStatus = func() map[string]int {
	m := make(map[string]int, len(Codes))
	for _, c := range Codes {
		m[c.Code] = c.Status
	}
	return m
}()

// Error is a refused admin request: a stable code, a message for a human
// and, when one field is at fault, its name. Match it with errors.As.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
	// RegistryCode, when the registry refused the change, is its stable
	// code (REGISTRY_BAD_SFTP, REGISTRY_BAD_TEMPLATE, ...; the table is in
	// schemas/registry/errors.go).
	RegistryCode string `json:"registryCode,omitempty"`
	// Errors are an import's row errors (CodeImportRejected).
	Errors []RowError `json:"errors,omitempty"`
	status int
}

func (e *Error) Error() string {
	if e.Field != "" {
		return e.Code + ": " + e.Field + ": " + e.Message
	}
	return e.Code + ": " + e.Message
}

// Status is the HTTP status of e's code.
func (e *Error) Status() int {
	if e.status != 0 {
		return e.status
	}
	if s, ok := codeStatus[e.Code]; ok {
		return s
	}
	return http.StatusInternalServerError
}

func errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

func fieldErr(code, field, format string, args ...any) *Error {
	return &Error{Code: code, Field: field, Message: fmt.Sprintf(format, args...)}
}

// RowError is one fault of an imported sheet. Row is the sheet's 1-based
// row number (the header is row 1), Column the header of the column at
// fault and Cell its A1 name, so a user finds it in Excel at once.
type RowError struct {
	Sheet   string `json:"sheet"`
	Row     int    `json:"row,omitempty"`
	Column  string `json:"column,omitempty"`
	Cell    string `json:"cell,omitempty"`
	ID      string `json:"id,omitempty"`
	Code    string `json:"code"`
	Message string `json:"message"`
	// RegistryCode is the registry's code when the row's entity was
	// refused by the registry model or Writer.
	RegistryCode string `json:"registryCode,omitempty"`
}

func (e RowError) String() string {
	where := e.Sheet
	if e.Row > 0 {
		where += " row " + strconv.Itoa(e.Row)
	}
	if e.Column != "" {
		where += " column " + e.Column
	}
	if e.Cell != "" {
		where += " (" + e.Cell + ")"
	}
	return where + ": " + e.Code + ": " + e.Message
}

// ImportError is a rejected import: every row error found. Nothing was
// written. errors.As(err, &*ImportError) finds it.
type ImportError struct {
	Errors []RowError
}

func (e *ImportError) Error() string {
	if len(e.Errors) == 1 {
		return "import rejected: " + e.Errors[0].String()
	}
	return fmt.Sprintf("import rejected: %d errors, the first: %s", len(e.Errors), e.Errors[0].String())
}

// Codes reports whether any row error has code c.
func (e *ImportError) Has(code string) bool {
	for _, r := range e.Errors {
		if r.Code == code {
			return true
		}
	}
	return false
}

// asAPIError turns any error into the API's shape.
func asAPIError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	var ie *ImportError
	if errors.As(err, &ie) {
		return &Error{Code: CodeImportRejected, Message: ie.Error(), Errors: ie.Errors}
	}
	return errorf(CodeInternal, "%v", err)
}
