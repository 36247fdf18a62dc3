// Package transport is what the SFTP and SMTP delivery transports share:
// the outcome of one delivery attempt (delivered, transient, permanent)
// and the stable codes of failed attempts.
//
// A transport's Deliver returns nil (delivered) or an *Error. The deliver
// stage needs only three calls to fit a transport into its schedule:
//
//	switch transport.Classify(err) {
//	case transport.Delivered: // success event, positive business receipt
//	case transport.Transient: // next slot of the redelivery schedule
//	case transport.Permanent: // no retry can help: fail now, negative receipt
//	}
//	code := transport.CodeOf(err) // errorCode of the failure event
//
// or with errors.Is(err, transport.ErrTransient / ErrPermanent).
package transport

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
)

// Outcome is how one delivery attempt ended.
type Outcome uint8

const (
	// Delivered: the recipient system has the message (or already had
	// exactly these bytes: transports are idempotent per messageUUID).
	Delivered Outcome = iota
	// Transient: the attempt failed for a reason that can pass (the
	// server is down, busy, out of disk, timed out). Retry on the
	// redelivery schedule; count the failure toward deactivation.
	Transient
	// Permanent: no retry of this message can succeed until someone
	// changes configuration or data (pinned host key differs, key or
	// certificate rejected or expired, permission denied, a different
	// file under the same name, a 5xx reply). Fail the message now.
	Permanent
)

func (o Outcome) String() string {
	switch o {
	case Delivered:
		return "delivered"
	case Transient:
		return "transient"
	case Permanent:
		return "permanent"
	}
	return fmt.Sprintf("outcome(%d)", uint8(o))
}

// Sentinels matched by every *Error of that outcome:
// errors.Is(err, ErrTransient).
var (
	ErrTransient = errors.New("transient delivery failure")
	ErrPermanent = errors.New("permanent delivery failure")
)

// Stable codes of failed attempts. They appear as errorCode in
// MEMO_SEND_SENT_TO_RECIPIENT_SYSTEM_FAILED events and negative business
// receipts and never change meaning. DELIVER_CONNECT_FAILED and
// DELIVER_TIMEOUT are the same strings the REST push uses, so a
// dashboard counts connection trouble across protocols.
const (
	// Both protocols.
	CodeConnect       = "DELIVER_CONNECT_FAILED"       // transient: refused, DNS, reset, connection lost
	CodeTimeout       = "DELIVER_TIMEOUT"              // transient: no answer within the timeout
	CodeConfig        = "DELIVER_TRANSPORT_CONFIG"     // permanent: the registry entry or our own key/cert is unusable
	CodeAuthRejected  = "DELIVER_AUTH_REJECTED"        // permanent: the server refused memoflow's key/credentials
	CodeBadMessage    = "DELIVER_TRANSPORT_BAD_INPUT"  // permanent: not a deliverable message (bad messageUUID, empty)
	CodeReceiptFile   = "DELIVER_RECEIPT_FILE_INVALID" // a receipt file that does not parse (moved aside, never retried)
	CodeRemoteFailure = "DELIVER_REMOTE_FAILURE"       // transient: the server failed without saying why

	// SFTP.
	CodeHostKeyMismatch  = "DELIVER_SFTP_HOST_KEY_MISMATCH" // permanent: the server's host key is not the pinned one
	CodePermissionDenied = "DELIVER_SFTP_PERMISSION_DENIED" // permanent: the folder or file may not be written
	CodeFolderMissing    = "DELIVER_SFTP_FOLDER_MISSING"    // permanent: the agreed folder does not exist
	CodeStorageFull      = "DELIVER_SFTP_STORAGE_FULL"      // transient: no space left / quota exceeded
	CodeFileTooLarge     = "DELIVER_SFTP_FILE_TOO_LARGE"    // permanent: the server refuses a file this large
	CodeFileConflict     = "DELIVER_SFTP_FILE_CONFLICT"     // permanent: <uuid>.xml exists with other content
	CodeUnsupported      = "DELIVER_SFTP_UNSUPPORTED"       // permanent: the server lacks an operation we need

	// SMTP.
	CodeSMTPTransient   = "DELIVER_SMTP_TRANSIENT"      // transient: a 4xx reply
	CodeSMTPRejected    = "DELIVER_SMTP_REJECTED"       // permanent: a 5xx reply
	CodeStartTLSMissing = "DELIVER_SMTP_NO_STARTTLS"    // permanent: the server does not offer STARTTLS; plaintext is refused
	CodeTLSVerify       = "DELIVER_SMTP_TLS_UNVERIFIED" // permanent: the server's TLS certificate does not verify
	CodeCertExpired     = "DELIVER_SMIME_CERT_EXPIRED"  // permanent: a certificate (ours or the system's) is outside its validity
	CodeCertInvalid     = "DELIVER_SMIME_CERT_INVALID"  // permanent: the system's certificate cannot encrypt or does not verify
	CodeSMIME           = "DELIVER_SMIME_FAILED"        // permanent: signing or encryption failed
)

// Error is a failed attempt: a stable code, its outcome and the cause.
// Match the outcome with errors.Is(err, ErrTransient/ErrPermanent), the
// details with errors.As(err, **Error).
type Error struct {
	Code     string
	Outcome  Outcome
	Protocol string // "SFTP" or "SMTP"
	Reply    int    // SMTP reply code or SFTP status code, when the server answered
	Err      error
}

func (e *Error) Error() string {
	if e.Reply != 0 {
		return fmt.Sprintf("%s %s (%s, reply %d): %v", e.Protocol, e.Code, e.Outcome, e.Reply, e.Err)
	}
	return fmt.Sprintf("%s %s (%s): %v", e.Protocol, e.Code, e.Outcome, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrTransient) and errors.Is(err, ErrPermanent)
// follow the outcome.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrTransient:
		return e.Outcome == Transient
	case ErrPermanent:
		return e.Outcome == Permanent
	}
	return false
}

// Transientf and Permanentf build an *Error.
func Transientf(proto, code string, format string, args ...any) *Error {
	return &Error{Code: code, Outcome: Transient, Protocol: proto, Err: fmt.Errorf(format, args...)}
}

func Permanentf(proto, code string, format string, args ...any) *Error {
	return &Error{Code: code, Outcome: Permanent, Protocol: proto, Err: fmt.Errorf(format, args...)}
}

// Classify returns the outcome of an attempt. nil is Delivered; an *Error
// carries its own; a context deadline is Transient; anything else a
// transport did not classify is Transient too, because retrying on the
// schedule is the safe default (the schedule is bounded and ends in a
// negative receipt).
func Classify(err error) Outcome {
	if err == nil {
		return Delivered
	}
	var te *Error
	if errors.As(err, &te) {
		return te.Outcome
	}
	return Transient
}

// CodeOf returns the stable code of a failed attempt ("" for nil).
func CodeOf(err error) string {
	if err == nil {
		return ""
	}
	var te *Error
	if errors.As(err, &te) {
		return te.Code
	}
	if IsTimeout(err) {
		return CodeTimeout
	}
	return CodeConnect
}

// IsTimeout reports whether err is a deadline or a network timeout.
func IsTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) ||
		errors.As(err, &ne) && ne.Timeout()
}

// NetError classifies an error from dialling or from a connection that
// broke mid-way: a timeout or a connection failure, both transient.
func NetError(proto string, err error) *Error {
	if IsTimeout(err) {
		return &Error{Code: CodeTimeout, Outcome: Transient, Protocol: proto, Err: err}
	}
	return &Error{Code: CodeConnect, Outcome: Transient, Protocol: proto, Err: err}
}
