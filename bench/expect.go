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
}

// StageEvents says which event-log rows each stage writes for an outcome.
// The expected log is the sum over the stages that run. A stage that
// writes events adds its entry here in the same change (schedule, route,
// deliver: say per valid message which tags it writes, for the scenario's
// recipients); a tag in the log that no entry expects fails the run, so a
// forgotten entry shows at once instead of as a wrong count.
var StageEvents = map[string]func(o Outcome) map[events.Tag]int64{
	// validate writes the receipt event (ingest writes none) and the
	// verdict, two rows per accepted message.
	"validate": func(o Outcome) map[events.Tag]int64 {
		return map[events.Tag]int64{
			events.MemoMassSendReceived:     o.Accepted,
			events.MemoSendValidated:        o.Valid,
			events.MemoSendValidationFailed: o.Invalid,
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
	tags := map[string]bool{}
	for t := range got {
		tags[t] = true
	}
	for t := range want {
		tags[t] = true
	}
	var out []string
	for t := range tags {
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
