package bench

import (
	"fmt"
	"sort"
	"strings"

	"github.com/memoflow/memoflow/schemas/events"
)

// Outcome is what a run's load came to, as far as the expected event log
// and arrivals depend on it. Every bench submission is a batch (or, with
// --direct, a record marked as one), so every message is a mass send.
type Outcome struct {
	Accepted int64 // accepted by ingest
	Valid    int64 // of those, valid (they go on down the pipeline)
	Invalid  int64 // of those, rejected by validate
	// Single were submitted one by one (application/xml), not in a batch:
	// validate logs MEMO_SEND_RECEIVED for them, not the mass-send tag.
	Single int64
	// Held are valid messages with a future value date (schedule holds
	// them); Released those of them released during the run.
	Held, Released int64
	// Delivered by the kind of system that took them (the bench's
	// registry routes letters to mailbox providers and NEMSMS to the SMS
	// provider, every one a push system on the recipient simulator).
	ToMailbox, ToSMS, ToSystem int64
}

// StageEvents says which event-log rows each stage writes for an outcome.
// The expected log is the sum over the stages that run. A stage that
// writes events adds its entry here in the same change; a tag in the log
// that no entry expects fails the run, so a forgotten entry shows at once
// instead of as a wrong count. Each entry cites the code that writes it.
var StageEvents = map[string]func(o Outcome) map[events.Tag]int64{
	// stages/validate handle: the receipt event (ingest writes none) and
	// the verdict, two rows per accepted message.
	"validate": func(o Outcome) map[events.Tag]int64 {
		return map[events.Tag]int64{
			events.MemoMassSendReceived:     o.Accepted - o.Single,
			events.MemoSendReceived:         o.Single,
			events.MemoSendValidated:        o.Valid,
			events.MemoSendValidationFailed: o.Invalid,
		}
	},
	// stages/schedule: nothing for a message that passes straight on;
	// AWAITING_DELAY when it is held, SENT when it is released.
	"schedule": func(o Outcome) map[events.Tag]int64 {
		return map[events.Tag]int64{
			events.DelayedMemoSendValidatedAwaitingDelay: o.Held,
			events.DelayedMemoSendSent:                   o.Released,
		}
	},
	// stages/route: MEMO_SEND_ROUTED for every message it reads (the
	// bench addresses only registered recipients, so no exemptions and
	// no routing rejections).
	"route": func(o Outcome) map[events.Tag]int64 {
		return map[events.Tag]int64{events.MemoSendRouted: o.Valid - o.Held + o.Released}
	},
	// stages/deliver delivered(): one tag by the system's kind plus
	// BUSINESS_RECEIPT_CREATED per delivered message. Failed attempts
	// (MEMO_SEND_SENT_TO_RECIPIENT_SYSTEM_FAILED) depend on timing: the
	// failing-recipients scenario expects them as a minimum.
	"deliver": func(o Outcome) map[events.Tag]int64 {
		return map[events.Tag]int64{
			events.MemoAvailableToRecipient:      o.ToMailbox,
			events.NemSMSSentSuccessfully:        o.ToSMS,
			events.MemoSendSentToRecipientSystem: o.ToSystem,
			events.BusinessReceiptCreated:        o.ToMailbox + o.ToSMS + o.ToSystem,
		}
	},
}

// ExpectedEvents sums StageEvents over stages, dropping zero counts.
func ExpectedEvents(stages []string, o Outcome) map[string]int64 {
	out := map[string]int64{}
	for _, s := range stages {
		f := StageEvents[s]
		if f == nil {
			continue
		}
		for tag, n := range f(o) {
			if n != 0 {
				out[string(tag)] += n
			}
		}
	}
	return out
}

// EventDiff lists every tag whose count differs, "TAG: got N, want M".
func EventDiff(got map[string]uint64, want map[string]int64) []string {
	return EventDiffAtLeast(got, want, nil)
}

// EventDiffAtLeast is EventDiff where the tags of atLeast only need at
// least the wanted count ("TAG: got N, want at least M").
func EventDiffAtLeast(got map[string]uint64, want map[string]int64, atLeast map[string]bool) []string {
	tags := map[string]bool{}
	for t := range got {
		tags[t] = true
	}
	for t := range want {
		tags[t] = true
	}
	var out []string
	for t := range tags {
		if atLeast[t] {
			if int64(got[t]) < want[t] {
				out = append(out, fmt.Sprintf("%s: got %d, want at least %d", t, got[t], want[t]))
			}
			continue
		}
		if int64(got[t]) != want[t] {
			out = append(out, fmt.Sprintf("%s: got %d, want %d", t, got[t], want[t]))
		}
	}
	sort.Strings(out)
	return out
}

func sumValues[V int64 | uint64](m map[string]V) int64 {
	var n int64
	for _, v := range m {
		n += int64(v)
	}
	return n
}

// unmodelled names running stages without a StageEvents entry (they may
// write events the check does not expect yet).
func unmodelled(stages []string) string {
	var out []string
	for _, s := range stages {
		switch {
		case s == "ingest" || s == "eventlog" || s == "receipts" || s == "eventquery" || s == "blobgc" || strings.HasSuffix(s, "-api"):
			// APIs, sinks and housekeeping write no per-message events.
			continue
		}
		if StageEvents[s] == nil {
			out = append(out, s)
		}
	}
	return strings.Join(out, ",")
}
