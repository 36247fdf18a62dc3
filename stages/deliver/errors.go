package deliver

import (
	"errors"
	"fmt"
)

// Stable codes of failed delivery attempts. They appear as errorCode in
// MEMO_SEND_SENT_TO_RECIPIENT_SYSTEM_FAILED events and in negative business
// receipts; they never change meaning.
const (
	CodeConnect        = "DELIVER_CONNECT_FAILED"        // no connection to the endpoint (refused, DNS, TLS)
	CodeTimeout        = "DELIVER_TIMEOUT"               // no answer within --deliver-timeout
	CodeHTTPStatus     = "DELIVER_HTTP_STATUS"           // the endpoint answered non-2xx
	CodeNegative       = "DELIVER_NEGATIVE_RECEIPT"      // 2xx with a receipt that is not COMPLETED/RECEIVED
	CodeCircuitOpen    = "DELIVER_CIRCUIT_OPEN"          // the system failed repeatedly; not called for a while
	CodeUnknownSystem  = "DELIVER_UNKNOWN_SYSTEM"        // the destination is not in the registry (yet)
	CodeNoEndpoint     = "DELIVER_NO_ENDPOINT"           // a push system without an endpoint
	CodeTransformation = "MEMO_TRANSFORMATION_FAILED"    // 1.2 → 1.1 down-conversion failed (not retried)
	CodeExhausted      = "MEMO_SEND_FAILED"              // the redelivery schedule ran out
	CodeBlob           = "DELIVER_BLOB_UNREADABLE"       // the claim-checked MeMo is missing or corrupt
	CodeMalformed      = "DELIVER_MALFORMED_ENVELOPE"    // the record is not an Envelope
	CodeDeactivated    = "DELIVER_SYSTEM_DEACTIVATED"    // the system received nothing for DeactivateAfter
	CodeNotifyFailed   = "DELIVER_NOTIFICATION_FAILED"   // a publish/subscribe notification was not taken
	CodeAwaitingPickup = "DELIVER_AWAITING_PICKUP"       // in the outbox of a pull (or deactivated) system
	CodeWrongProtocol  = "DELIVER_UNSUPPORTED_PROTOCOL"  // the registry names a protocol delivery lacks
	CodeReceiptInvalid = "DELIVER_RECEIPT_INVALID"       // pull API: a business receipt that cannot be read
	CodeReceiptTwice   = "DELIVER_RECEIPT_ALREADY_GIVEN" // pull API: second receipt for one message
)

// AttemptError is a failed attempt: a stable code and what happened.
// Match it with errors.As.
type AttemptError struct {
	Code   string
	Status int // HTTP status, when there was an answer
	Err    error
}

func (e *AttemptError) Error() string {
	if e.Status != 0 {
		return fmt.Sprintf("%s (HTTP %d): %v", e.Code, e.Status, e.Err)
	}
	return fmt.Sprintf("%s: %v", e.Code, e.Err)
}

func (e *AttemptError) Unwrap() error { return e.Err }

func attemptErr(code string, format string, args ...any) *AttemptError {
	return &AttemptError{Code: code, Err: fmt.Errorf(format, args...)}
}

// ErrPermanent is wrapped by attempt errors that no retry can fix (the
// MeMo cannot be converted to the version the system takes).
var ErrPermanent = errors.New("permanent delivery failure")
