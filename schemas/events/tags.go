package events

// Tag names one step in the life of a message or one administrative action,
// in NgDP's event-log vocabulary (EventLogEventTag in the NgDP OpenAPI
// 1.68.0, as quoted in shared/notes/memo-ngdp-facts.md 3.6). Tags are kept
// as strings end to end: the vocabulary has about 128 entries and grows, and
// a tag memoflow does not know yet must still be logged, not rejected.
type Tag string

// Message lifecycle: receipt and validation.
const (
	MemoSendReceived                      Tag = "MEMO_SEND_RECEIVED"
	MemoMassSendReceived                  Tag = "MEMO_MASS_SEND_RECEIVED"
	MemoArchiveRejected                   Tag = "MEMO_ARCHIVE_REJECTED"
	MemoSendValidated                     Tag = "MEMO_SEND_VALIDATED"
	MemoSendValidationFailed              Tag = "MEMO_SEND_VALIDATION_FAILED"
	MemoTransformationFailed              Tag = "MEMO_TRANSFORMATION_FAILED"
	DelayedMemoSendValidatedAwaitingDelay Tag = "DELAYED_MEMO_SEND_VALIDATED_AWAITING_DELAY"
	DelayedMemoSendSent                   Tag = "DELAYED_MEMO_SEND_SENT"
	DelayedMemoMessageRecalled            Tag = "DELAYED_MEMO_MESSAGE_RECALLED"
)

// Message lifecycle: delivery to a mailbox or a recipient system.
const (
	MemoAvailableToRecipient            Tag = "MEMO_AVAILABLE_TO_RECIPIENT"
	MemoSendReadyForFetch               Tag = "MEMO_SEND_READY_FOR_FETCH"
	MemoSendFetchedByRecipientSystem    Tag = "MEMO_SEND_FETCHED_BY_RECIPIENT_SYSTEM"
	MemoSendSentToRecipientSystem       Tag = "MEMO_SEND_SENT_TO_RECIPIENT_SYSTEM"
	MemoSendSentToRecipientSystemFailed Tag = "MEMO_SEND_SENT_TO_RECIPIENT_SYSTEM_FAILED"
	MemoSendFailed                      Tag = "MEMO_SEND_FAILED"
	MemoSendRecalled                    Tag = "MEMO_SEND_RECALLED"
	MemoMessageRecalled                 Tag = "MEMO_MESSAGE_RECALLED"
	MessageRecalledByAdministrator      Tag = "MESSAGE_RECALLED_BY_ADMINISTRATOR"
	MemoExtracted                       Tag = "MEMO_EXTRACTED"
	MemoSystemFetched                   Tag = "MEMO_SYSTEM_FETCHED"
	MessageRead                         Tag = "MESSAGE_READ"
	MessageLegallyNotified              Tag = "MESSAGE_LEGALLY_NOTIFIED"
	MessageForwardedToAuthority         Tag = "MESSAGE_FORWARDED_TO_AUTHORITY"
	MessageForwardedToEmail             Tag = "MESSAGE_FORWARDED_TO_EMAIL"
	MessageForwardedToTrusted           Tag = "MESSAGE_FORWARDED_TO_TRUSTED"
	NotificationSent                    Tag = "NOTIFICATION_SENT"
	NotificationFailed                  Tag = "NOTIFICATION_FAILED"
	NotificationPushCompleted           Tag = "NOTIFICATION_PUSH_COMPLETED"
	NemSMSSentSuccessfully              Tag = "NEM_SMS_SENT_SUCCESSFULLY"
	NemSMSSentAndRejected               Tag = "NEM_SMS_SENT_AND_REJECTED"
	NemSMSSendFailed                    Tag = "NEM_SMS_SEND_FAILED"
	PhysicalLetterSent                  Tag = "PHYSICAL_LETTER_SENT"
	UnopenedMailAsPhysicalPost          Tag = "UNOPENED_MAIL_AS_PHYSICAL_POST"
	UnopenedMailNotAsPhysicalPost       Tag = "UNOPENED_MAIL_NOT_AS_PHYSICAL_POST"
	UnopenedMailSentAsPhysicalPost      Tag = "UNOPENED_MAIL_SENT_AS_PHYSICAL_POST"
	DigitalPostRegistered               Tag = "DIGITAL_POST_REGISTERED"
	DigitalPostExempted                 Tag = "DIGITAL_POST_EXEMPTED"
	MemoSendRouted                      Tag = "MEMO_SEND_ROUTED" // memoflow's own, not NgDP's: the routing decision (stages/route)
)

// Forwarding of company post (stages/forward), memoflow's own tags beside
// NgDP's MESSAGE_FORWARDED_*: a forward that did not happen (too large,
// refused, given up; the letter stays in the mailbox), and one failed
// attempt of a forward that is retried.
const (
	MessageForwardFailed        Tag = "MESSAGE_FORWARD_FAILED"
	MessageForwardAttemptFailed Tag = "MESSAGE_FORWARD_ATTEMPT_FAILED"
)

// Receipts: the technical receipt answers the submission at once; the
// business receipt reports delivery (or its failure) later.
const (
	TechnicalReceiptSent                    Tag = "TECHNICAL_RECEIPT_SENT"
	TechnicalReceiptSentToSenderSystem      Tag = "TECHNICAL_RECEIPT_SENT_TO_SENDER_SYSTEM"
	BusinessReceiptCreated                  Tag = "BUSINESS_RECEIPT_CREATED"
	BusinessReceiptReceived                 Tag = "BUSINESS_RECEIPT_RECEIVED"
	BusinessReceiptReceivedByRecipientSys   Tag = "BUSINESS_RECEIPT_RECEIVED_BY_RECIPIENT_SYSTEM"
	BusinessReceiptSent                     Tag = "BUSINESS_RECEIPT_SENT"
	BusinessReceiptSendToSenderSystem       Tag = "BUSINESS_RECEIPT_SEND_TO_SENDER_SYSTEM"
	BusinessReceiptSendToSenderSystemFailed Tag = "BUSINESS_RECEIPT_SEND_TO_SENDER_SYSTEM_FAILED"
)

// Administration and look-ups. Every admin action is itself logged, with
// Event.Actor set; a search of the log by a person's CPR (EVENT_LOG_SEARCHES)
// carries that person, pseudonymised, as the Recipient.
const (
	CPRLookedUp         Tag = "CPR_LOOKED_UP"
	CVRLookedUp         Tag = "CVR_LOOKED_UP"
	ContactPointChanged Tag = "CONTACT_POINT_CHANGED"
	SystemChanged       Tag = "SYSTEM_CHANGED"
	StatisticsRead      Tag = "STATISTICS_READ"
	EventLogSearches    Tag = "EVENT_LOG_SEARCHES"
	Unknown             Tag = "UNKNOWN"
)

// KnownTags lists every tag above, for validation and documentation.
var KnownTags = []Tag{
	MemoSendReceived, MemoMassSendReceived, MemoArchiveRejected, MemoSendValidated,
	MemoSendValidationFailed, MemoTransformationFailed, DelayedMemoSendValidatedAwaitingDelay,
	DelayedMemoSendSent, DelayedMemoMessageRecalled,
	MemoAvailableToRecipient, MemoSendReadyForFetch, MemoSendFetchedByRecipientSystem,
	MemoSendSentToRecipientSystem, MemoSendSentToRecipientSystemFailed, MemoSendFailed, MemoSendRouted,
	MemoSendRecalled, MemoMessageRecalled, MessageRecalledByAdministrator, MemoExtracted,
	MemoSystemFetched, MessageRead, MessageLegallyNotified, MessageForwardedToAuthority,
	MessageForwardedToEmail, MessageForwardedToTrusted, MessageForwardFailed, MessageForwardAttemptFailed, NotificationSent, NotificationFailed,
	NotificationPushCompleted, NemSMSSentSuccessfully, NemSMSSentAndRejected, NemSMSSendFailed,
	PhysicalLetterSent, UnopenedMailAsPhysicalPost, UnopenedMailNotAsPhysicalPost,
	UnopenedMailSentAsPhysicalPost, DigitalPostRegistered, DigitalPostExempted,
	TechnicalReceiptSent, TechnicalReceiptSentToSenderSystem, BusinessReceiptCreated,
	BusinessReceiptReceived, BusinessReceiptReceivedByRecipientSys, BusinessReceiptSent,
	BusinessReceiptSendToSenderSystem, BusinessReceiptSendToSenderSystemFailed,
	CPRLookedUp, CVRLookedUp, ContactPointChanged, SystemChanged, StatisticsRead,
	EventLogSearches, Unknown,
}

var knownTags = func() map[Tag]struct{} {
	m := make(map[Tag]struct{}, len(KnownTags))
	for _, t := range KnownTags {
		m[t] = struct{}{}
	}
	return m
}()

// Known reports whether t is in KnownTags.
func (t Tag) Known() bool {
	_, ok := knownTags[t]
	return ok
}
