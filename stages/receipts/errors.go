package receipts

import "net/http"

// Error codes of the receipts API, in the NgDP error shape
// {errorCode, errorMessage} (auth.WriteError). They are stable: clients
// match on them. Authentication failures carry auth's codes (AUTH_MISSING,
// AUTH_MALFORMED, AUTH_INVALID_TOKEN, AUTH_FORBIDDEN).
const (
	CodeNotFound         = "RECEIPTS_NOT_FOUND"          // no live receipt with this id for the caller
	CodeBadID            = "RECEIPTS_BAD_ID"             // the path id is not a UUID
	CodeBadParameter     = "RECEIPTS_BAD_PARAMETER"      // a query parameter's value is malformed or out of range, or repeated
	CodeUnknownParameter = "RECEIPTS_UNKNOWN_PARAMETER"  // a query parameter the endpoint does not take (a misspelt filter would widen the answer)
	CodeMethodNotAllowed = "RECEIPTS_METHOD_NOT_ALLOWED" // the path exists, the method does not
	CodeUnavailable      = "RECEIPTS_UNAVAILABLE"        // the store did not answer (ClickHouse down, timeout): retry
	CodeInternal         = "RECEIPTS_INTERNAL"           // a failure retrying cannot fix
)

// CodeTable maps every API error code to its HTTP status; docs/receipts-api.md
// lists the same table.
var CodeTable = map[string]int{
	CodeNotFound:         http.StatusNotFound,
	CodeBadID:            http.StatusBadRequest,
	CodeBadParameter:     http.StatusBadRequest,
	CodeUnknownParameter: http.StatusBadRequest,
	CodeMethodNotAllowed: http.StatusMethodNotAllowed,
	CodeUnavailable:      http.StatusServiceUnavailable,
	CodeInternal:         http.StatusInternalServerError,
}
