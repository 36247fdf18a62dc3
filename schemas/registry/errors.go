package registry

import (
	"errors"
	"fmt"
)

// ErrInvalid is matched (errors.Is) by every validation *Error.
var ErrInvalid = errors.New("invalid registry entity")

// Stable validation codes. Callers (admin API, XLSX import) report them per
// row and column; they never change meaning.
const (
	CodeBadCVR          = "REGISTRY_BAD_CVR"           // not 8 digits, or starts with 0
	CodeBadCPR          = "REGISTRY_BAD_CPR"           // not 10 digits with a DDMMYY date
	CodeBadID           = "REGISTRY_BAD_ID"            // id empty, too long, or outside [A-Za-z0-9._:-]
	CodeBadName         = "REGISTRY_BAD_NAME"          // name empty or above 256 characters
	CodeBadKind         = "REGISTRY_BAD_KIND"          // unknown organisation or system kind
	CodeBadSetup        = "REGISTRY_BAD_SETUP"         // authority setup not 1, 2 or 3; company with a setup
	CodeBadProtocol     = "REGISTRY_BAD_PROTOCOL"      // not REST_PUSH, REST_PULL, PUBLISH_SUBSCRIBE, SFTP or SMTP; or another protocol's field set
	CodeBadURL          = "REGISTRY_BAD_URL"           // not an absolute http(s) URL
	CodeEndpointMissing = "REGISTRY_ENDPOINT_REQUIRED" // push and publish/subscribe need an endpoint
	CodeCredentials     = "REGISTRY_CREDENTIALS_IN_CLEAR"
	CodeBadVersion      = "REGISTRY_BAD_MEMO_VERSION" // MeMo version wanted not 11 or 12
	CodeBadRole         = "REGISTRY_BAD_ROLE"         // role unknown, or set on a provider system
	CodeBadContact      = "REGISTRY_BAD_CONTACT"      // contact person without a name or a valid e-mail
	CodeBadToken        = "REGISTRY_BAD_TOKEN_HASH"   // token hash not 64 lowercase hex digits, or too many
	CodeBadKeyword      = "REGISTRY_BAD_KEYWORD"      // empty or above 256 characters, or too many
	CodeBadKLE          = "REGISTRY_BAD_KLE"          // not dd, dd.dd or dd.dd.dd
	CodeBadFORM         = "REGISTRY_BAD_FORM"         // not 1-32 of [A-Z0-9.]
	CodeBadEAN          = "REGISTRY_BAD_EAN"          // EAN/GLN not 13 digits
	CodeBadSOR          = "REGISTRY_BAD_SOR"          // SOR code not 1-18 digits
	CodeBadVisibility   = "REGISTRY_BAD_VISIBILITY"   // bits outside citizens|companies|authorities
	CodeTooManyInfo     = "REGISTRY_TOO_MANY_INFO_FIELDS"
	CodeBadInfo         = "REGISTRY_BAD_INFO_FIELD" // info field without a title, or above its size
	CodeSelfParent      = "REGISTRY_SELF_PARENT"    // parent id equals the id
	CodeBadStatus       = "REGISTRY_BAD_STATUS"     // registration not registered or exempt
	CodeMailboxMissing  = "REGISTRY_MAILBOX_REQUIRED"
	CodeBadLegacy       = "REGISTRY_BAD_LEGACY_MAILBOX" // postkasse/emne empty, too long or with '/'
	CodeTooManySystems  = "REGISTRY_TOO_MANY_SYSTEMS"   // above 4 + 1 per authority, 1 per company
	CodeUnknownEntity   = "REGISTRY_UNKNOWN_ENTITY"     // a referenced entity does not exist
	CodeBadActor        = "REGISTRY_BAD_ACTOR"          // change without an actor
	CodeBadSFTP         = "REGISTRY_BAD_SFTP"           // SFTP user, host key or folder unusable
	CodeBadSMTP         = "REGISTRY_BAD_SMTP"           // SMTP address or certificate unusable
	CodeBadTemplate     = "REGISTRY_BAD_TEMPLATE"       // standard-system selection malformed or pointing at no standard system
	CodeBadForward      = "REGISTRY_BAD_FORWARD"        // company forwarding kind/target unusable
)

// Error is one validation failure: a stable code, the field it concerns
// (the XLSX column for imports) and a message saying what to fix.
type Error struct {
	Code    string
	Field   string
	Message string
}

func (e *Error) Error() string {
	if e.Field == "" {
		return e.Code + ": " + e.Message
	}
	return fmt.Sprintf("%s: %s: %s", e.Code, e.Field, e.Message)
}

// Is makes every *Error match ErrInvalid.
func (e *Error) Is(target error) bool { return target == ErrInvalid }

func errf(code, field, format string, args ...any) *Error {
	return &Error{Code: code, Field: field, Message: fmt.Sprintf(format, args...)}
}

// CodeOf returns the code of the first *Error in err's chain ("" if none).
func CodeOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}
