package pipeline

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

// Topic names: the one catalogue of what flows where. docs/ARCHITECTURE.md
// describes each record format.
const (
	TopicIngest    = "memo.ingest"     // accepted MeMo shipments, key messageUUID (ingest → parse)
	TopicValid     = "memo.valid"      // parsed+validated compact records (parse/validate → schedule)
	TopicHeld      = "memo.held"       // messages held until their value date (schedule's changelog)
	TopicReady     = "memo.ready"      // released for routing (schedule → route)
	TopicRouted    = "memo.routed"     // routed, key = destination system (route → deliver)
	TopicEvents    = "memo.events"     // lifecycle events, metadata only (every stage → eventlog)
	TopicReceipts  = "memo.receipts"   // technical and business receipts to senders
	TopicRegistry  = "memo.registry"   // registry changes, compacted (admin → route, deliver, ingest)
	TopicDLQ       = "memo.dlq"        // poison records with error headers
	TopicDedup     = "memo.dedup"      // messageUUID → verdict, compacted (validate's idempotency state)
	TopicOutbox    = "memo.outbox"     // recipient systems' waiting post for pull, compacted, key system/uuid (deliver → pull API)
	TopicNotify    = "memo.notify"     // notifications for contact persons (deliver → mailer)
	TopicSchedule  = "memo.schedule"   // recall commands and release ticks, co-partitioned with memo.valid (API, ticker → schedule)
	TopicRecalls   = "memo.recalls"    // recall outcomes by request id, compacted (schedule → recall API)
	TopicBlobsDone = "memo.blobs.done" // claim-check blobs no longer needed, key blob key (deliver → blobgc)
	TopicForward   = "memo.forward"    // company mailbox post to forward, key messageUUID (route → forward)
	// TopicPushJournal: acknowledged pushes, key messageUUID, written
	// outside the batch transaction (deliver → deliver; stages/deliver/journal.go).
	TopicPushJournal = "memo.deliver.pushed"
)

// TopicForwardRetry holds forwards to pickup systems that failed and wait
// one constant gap (forward's timer moves them back to TopicForward).
const TopicForwardRetry = TopicForward + ".retry"

// TopicReceiptPush queues receipts for sender systems' receipt endpoints
// (receipts → receipt-push); failed POSTs wait in TopicReceiptPush+".retry".
const TopicReceiptPush = "memo.receipts.push"

// TopicSpec is one entry of the catalogue.
type TopicSpec struct {
	Name string
	// Compacted topics keep the last record per key (state); with a
	// Retention they also forget keys older than it (compact,delete).
	Compacted bool
	// Retention; 0 means the catalogue default for non-compacted topics
	// and forever for compacted ones.
	Retention time.Duration
	Purpose   string
}

// Catalogue lists every topic memoflow uses.
var Catalogue = []TopicSpec{
	{Name: TopicIngest, Purpose: "accepted MeMo messages as submitted (original bytes or claim-check reference)"},
	{Name: TopicValid, Purpose: "parsed and validated messages as compact records"},
	{Name: TopicHeld, Compacted: true, Purpose: "messages held until their value date, and their releases and recalls (schedule's changelog, key messageUUID, partitioned like memo.valid)"},
	{Name: TopicReady, Purpose: "messages due for routing"},
	{Name: TopicRouted, Purpose: "messages with their destination system, partitioned by destination"},
	{Name: TopicEvents, Purpose: "lifecycle and admin events (metadata only) for the ClickHouse event log"},
	{Name: TopicReceipts, Purpose: "technical and business receipts for sender systems"},
	{Name: TopicRegistry, Compacted: true, Purpose: "organisations, systems, contact structures (source of truth)"},
	{Name: TopicDLQ, Retention: 30 * 24 * time.Hour, Purpose: "records no stage could process, with error headers"},
	{Name: TopicDedup, Compacted: true, Retention: 7 * 24 * time.Hour, Purpose: "messageUUID → first verdict: the idempotency window (same partitioning as memo.ingest)"},
	{Name: TopicOutbox, Compacted: true, Purpose: "post waiting for pickup by recipient systems (pull, publish/subscribe, deactivated); tombstoned after pickup and receipt"},
	{Name: TopicNotify, Purpose: "notifications for recipient systems' contact persons (redelivery given up, deactivation)"},
	{Name: TopicReceiptPush, Purpose: "receipts to POST to sender systems' receipt endpoints"},
	{Name: TopicReceiptPush + ".retry", Purpose: "receipt POSTs that failed, due again after one constant gap"},
	{Name: TopicSchedule, Retention: 7 * 24 * time.Hour, Purpose: "recall commands (key messageUUID) and release ticks for the schedule stage, partitioned like memo.valid"},
	{Name: TopicBlobsDone, Purpose: "claim-check blobs whose message reached a final state; blobgc deletes them"},
	{Name: TopicRecalls, Compacted: true, Retention: 7 * 24 * time.Hour, Purpose: "recall outcomes by request id, read by the recall API"},
	{Name: TopicForward, Purpose: "company mailbox post to forward to a secure mailbox or a pickup system (Envelope + memoflow.forward.* headers)"},
	{Name: TopicForwardRetry, Purpose: "forwards to pickup systems that failed, due again after one constant gap"},
	{Name: TopicPushJournal, Retention: 24 * time.Hour, Purpose: "pushes recipient systems acknowledged (messageUUID, attempt, time), written at once outside the batch transaction so a redone batch does not push them again"},
}

// TopicOptions say how EnsureTopics creates topics.
type TopicOptions struct {
	Partitions  int
	Replication int
	// Retention is the default retention.ms of non-compacted topics. With
	// the embedded broker it also bounds the disk a long run uses.
	Retention time.Duration
	// SegmentBytes, when set, rolls segments small enough for retention to
	// reclaim space during a run.
	SegmentBytes int
}

// EnsureTopics creates every catalogue topic that does not exist yet. It is
// idempotent: existing topics are left as they are (partitions are never
// decreased; an operator changes them deliberately).
func EnsureTopics(ctx context.Context, adm *kadm.Client, o TopicOptions, specs ...TopicSpec) error {
	if len(specs) == 0 {
		specs = Catalogue
	}
	for _, s := range specs {
		cfg := map[string]*string{}
		if s.Compacted {
			cfg["cleanup.policy"] = kadm.StringPtr("compact")
			if s.Retention > 0 {
				cfg["cleanup.policy"] = kadm.StringPtr("compact,delete")
				cfg["retention.ms"] = kadm.StringPtr(strconv.FormatInt(s.Retention.Milliseconds(), 10))
			}
		} else {
			ret := s.Retention
			if ret == 0 {
				ret = o.Retention
			}
			if ret > 0 {
				cfg["retention.ms"] = kadm.StringPtr(strconv.FormatInt(ret.Milliseconds(), 10))
			}
		}
		if o.SegmentBytes > 0 {
			cfg["segment.bytes"] = kadm.StringPtr(strconv.Itoa(o.SegmentBytes))
		}
		resp, err := adm.CreateTopic(ctx, int32(o.Partitions), int16(o.Replication), cfg, s.Name)
		if err == nil {
			err = resp.Err
		}
		if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("create topic %s: %w", s.Name, err)
		}
	}
	return nil
}
