package ingest

import "net/http"

// Codes of what ingest rejects at once. MeMo parse codes (XML_*, LIMIT_*)
// come from schemas/memo's catalogue; archive codes (ARCHIVE_*) from
// stages/ingest/archive.
const (
	CodeContentType      = "INGEST_CONTENT_TYPE"
	CodeEmpty            = "INGEST_EMPTY"
	CodeTooLarge         = "INGEST_TOO_LARGE"
	CodeUUIDMissing      = "INGEST_UUID_MISSING"
	CodeUUIDMismatch     = "INGEST_UUID_MISMATCH"
	CodeUUIDInvalid      = "INGEST_UUID_INVALID"
	CodeSenderNotAllowed = "INGEST_SENDER_NOT_ALLOWED"
	CodeDuplicateInBatch = "INGEST_DUPLICATE_IN_BATCH"
	CodeRateLimited      = "INGEST_RATE_LIMITED"
	CodeOverloaded       = "INGEST_OVERLOADED"
	CodeKafkaUnavailable = "INGEST_KAFKA_UNAVAILABLE"
	CodeReadFailed       = "INGEST_READ_FAILED"
	CodeBlobStore        = "INGEST_BLOB_STORE_UNAVAILABLE"
)

// CodeInfo documents one code.
type CodeInfo struct {
	Code        string
	Status      int
	Description string
}

// Codes is the catalogue of ingest's own codes (docs/api.md is made from it).
var Codes = []CodeInfo{
	{CodeContentType, http.StatusUnsupportedMediaType, "Content-Type is not application/xml (one MeMo), application/x-lzma (a tar+LZMA batch) or multipart/form-data with a part named file."},
	{CodeEmpty, http.StatusBadRequest, "The request body is empty."},
	{CodeTooLarge, http.StatusRequestEntityTooLarge, "The shipment is larger than 99.5 MB."},
	{CodeUUIDMissing, http.StatusBadRequest, "The query parameter memo-message-uuid is missing."},
	{CodeUUIDMismatch, http.StatusBadRequest, "memo-message-uuid differs from the message's MessageHeader/messageUUID."},
	{CodeUUIDInvalid, http.StatusBadRequest, "memo-message-uuid is not a UUID."},
	{CodeSenderNotAllowed, http.StatusForbidden, "Sender/senderID is not the authenticated sender system's organisation: a system may send only as itself (NOT_ALLOWED)."},
	{CodeDuplicateInBatch, http.StatusUnprocessableEntity, "The same messageUUID appears twice in one batch; the second is rejected."},
	{CodeRateLimited, http.StatusTooManyRequests, "The sender system exceeded its request rate; retry after Retry-After seconds."},
	{CodeOverloaded, http.StatusServiceUnavailable, "The pipeline is saturated; nothing was accepted; retry after Retry-After seconds."},
	{CodeKafkaUnavailable, http.StatusServiceUnavailable, "Kafka did not acknowledge the message in time; it was not accepted; retry."},
	{CodeReadFailed, http.StatusBadRequest, "The request body could not be read completely."},
	{CodeBlobStore, http.StatusServiceUnavailable, "A large message could not be written to the claim-check blob store; nothing was accepted; retry."},
}

func statusOf(code string) int {
	for _, c := range Codes {
		if c.Code == code {
			return c.Status
		}
	}
	return http.StatusBadRequest
}
