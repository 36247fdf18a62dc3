package schedule

import "net/http"

// Codes of records the stage sends to the DLQ.
const (
	CodeBadEnvelope = "SCHEDULE_BAD_ENVELOPE" // a memo.valid value that is not an Envelope
	CodeBadCommand  = "SCHEDULE_BAD_COMMAND"  // a memo.schedule value that is not a recall or a tick
)

// Codes the recall API answers with.
const (
	CodeRecallBadUUID     = "RECALL_BAD_UUID"
	CodeRecallNotFound    = "RECALL_NOT_FOUND"
	CodeRecallTooLate     = "RECALL_TOO_LATE"
	CodeRecallPending     = "RECALL_PENDING"
	CodeRecallUnavailable = "RECALL_UNAVAILABLE"
	CodeRecallNoRequest   = "RECALL_REQUEST_NOT_FOUND"
)

// CodeInfo documents one code.
type CodeInfo struct {
	Code        string
	Status      int
	Description string
}

// Codes is the catalogue of the recall API's codes (docs/sender-api.md).
var Codes = []CodeInfo{
	{CodeRecallBadUUID, http.StatusBadRequest, "The messageUUID in the path is not a UUID."},
	{CodeRecallNotFound, http.StatusNotFound, "No message with this messageUUID is held for the caller's organisation: unknown, sent by another organisation, sent without a future value date, or released or recalled longer ago than the marker retention."},
	{CodeRecallTooLate, http.StatusConflict, "The message was already released for delivery (its value date came) before the recall was decided."},
	{CodeRecallPending, http.StatusAccepted, "The recall is queued but not decided yet; poll the status URL in Location."},
	{CodeRecallUnavailable, http.StatusServiceUnavailable, "Kafka did not acknowledge the recall request in time; nothing was recalled; retry."},
	{CodeRecallNoRequest, http.StatusNotFound, "No recall request with this id is known (status URL of another replica's or an expired request)."},
}
