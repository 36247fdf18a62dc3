package eventquery

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/memoflow/memoflow/internal/auth"
	"github.com/memoflow/memoflow/internal/chconn"
)

// Codes of the event-log query APIs. Authentication and role failures use
// the auth package's codes (AUTH_MISSING, AUTH_INVALID_TOKEN, AUTH_FORBIDDEN).
const (
	CodeBadParameter     = "EVENTQUERY_BAD_PARAMETER"
	CodeDateRange        = "EVENTQUERY_DATE_RANGE"
	CodePageTooDeep      = "EVENTQUERY_PAGE_TOO_DEEP"
	CodeTooManyRows      = "EVENTQUERY_TOO_MANY_ROWS"
	CodeCPRForbidden     = "EVENTQUERY_CPR_SEARCH_FORBIDDEN"
	CodeOrgForbidden     = "EVENTQUERY_ORGANISATION_FORBIDDEN"
	CodeNotFound         = "EVENTQUERY_NOT_FOUND"
	CodeAuditUnavailable = "EVENTQUERY_AUDIT_UNAVAILABLE"
	CodeTimeout          = "EVENTQUERY_TIMEOUT"
	CodeStoreUnavailable = "EVENTQUERY_STORE_UNAVAILABLE"
	CodeInternal         = "EVENTQUERY_INTERNAL"
)

// codeTimeoutClickHouse is TIMEOUT_EXCEEDED: max_execution_time ran out.
const codeTimeoutClickHouse = 159

// CodeInfo documents one code (docs/eventlog-api.md lists them all; a test
// keeps the two in step).
type CodeInfo struct {
	Code        string
	Status      int
	Description string
}

// Codes is the catalogue of the query APIs' own codes.
var Codes = []CodeInfo{
	{CodeBadParameter, http.StatusBadRequest, "A query parameter is unknown, malformed or out of range; the message names it."},
	{CodeDateRange, http.StatusBadRequest, "dateFrom is after dateTo, or the range is longer than the endpoint allows (events: 366 days; statistics: 3660 days)."},
	{CodePageTooDeep, http.StatusBadRequest, "(page+1)*size is beyond 100,000 rows: narrow the date range or the filters instead of paging further."},
	{CodeTooManyRows, http.StatusBadRequest, "The statistics have more than 100,000 groups: use fewer dimensions, more filters or a shorter range."},
	{CodeCPRForbidden, http.StatusForbidden, "Searching by a person's CPR needs the role log-searches."},
	{CodeOrgForbidden, http.StatusForbidden, "Only operators may ask for another organisation's statistics."},
	{CodeNotFound, http.StatusNotFound, "No event of this messageUUID is visible to the caller (it does not exist, has expired, or belongs to another organisation)."},
	{CodeAuditUnavailable, http.StatusServiceUnavailable, "The search could not be logged (memo.events did not acknowledge the EVENT_LOG_SEARCHES event), so it was not run; retry."},
	{CodeTimeout, http.StatusGatewayTimeout, "ClickHouse stopped the query at its max_execution_time: narrow the date range or add filters."},
	{CodeStoreUnavailable, http.StatusServiceUnavailable, "ClickHouse did not answer; retry."},
	{CodeInternal, http.StatusInternalServerError, "An unexpected ClickHouse or server error; the message says which."},
}

// Error is a request the APIs refuse or could not serve. Match it with
// errors.As and compare Code.
type Error struct {
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Status is the HTTP status of e's code.
func (e *Error) Status() int {
	for _, c := range Codes {
		if c.Code == e.Code {
			return c.Status
		}
	}
	return http.StatusInternalServerError
}

func errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

func badParam(name, format string, args ...any) *Error {
	return &Error{Code: CodeBadParameter, Message: name + ": " + fmt.Sprintf(format, args...)}
}

// storeError maps a ClickHouse failure onto the API's codes: the query's
// own time limit, an unreachable server, or anything else.
func storeError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	if code, ok := chconn.ExceptionCode(err); ok {
		if code == codeTimeoutClickHouse {
			return errorf(CodeTimeout, "the query ran longer than its time limit: narrow the date range or add filters")
		}
		if chconn.IsRetryable(err) {
			return errorf(CodeStoreUnavailable, "ClickHouse is busy (code %d); retry", code)
		}
		return errorf(CodeInternal, "ClickHouse refused the query (code %d)", code)
	}
	if chconn.IsRetryable(err) {
		return errorf(CodeStoreUnavailable, "ClickHouse did not answer: %v", err)
	}
	return errorf(CodeInternal, "%v", err)
}

// writeError answers with the NgDP error body {errorCode, errorMessage}.
func writeError(w http.ResponseWriter, err error) {
	var e *Error
	if !errors.As(err, &e) {
		e = errorf(CodeInternal, "%v", err)
	}
	auth.WriteError(w, &auth.Error{Status: e.Status(), Code: e.Code, Message: e.Message})
}
