package receipts

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Pushed is one stored receipt handed to a Pusher.
type Pushed struct {
	ID           string
	SenderSystem string
	SenderOrg    string
	Time         time.Time
	// Body is the receipt JSON exactly as GET /apis/v1/receipts/{id} serves
	// it (NgDP's BulkReceipt: the Receipt plus its id).
	Body []byte
}

// Pusher delivers receipts to sender systems that take them by push (the
// NgDP MailSystem's receiptEndpoint). Which systems those are, and where,
// is the registry's business, so the sink does not know: a Pusher skips
// the systems it does not push to.
//
// The sink calls Push after ClickHouse acknowledged the batch, with every
// valid receipt of the batch, including the ones it found already stored
// (a previous Push of them may have failed). A non-nil error holds the
// batch: nothing is committed and Write runs again, rows already stored are
// skipped and Push is called again. So delivery is at least once, and a
// receiver tells repeats apart by the receipt id.
//
// Push runs inside the sink's batch: a slow endpoint holds the partition.
// An implementation that calls HTTP endpoints should hand the receipts to
// its own retrying queue (memo.retry, keyed by sender system) and return
// once that is durable, rather than call every endpoint inline. Errors
// should carry a pipeline class (unclassified errors are retried).
type Pusher interface {
	Push(ctx context.Context, receipts []Pushed) error
}

// RecordPusher is a Pusher whose queue is a Kafka topic. The sink does not
// call Push on it: it emits the records PushRecords returns in its batch,
// so they commit in the same transaction as the batch's offsets and each
// receipt is queued exactly once (a separate producer queued it again
// whenever the batch was redone after the queueing, and the sender got the
// same receipt POSTed twice).
type RecordPusher interface {
	Pusher
	PushRecords(receipts []Pushed) []*kgo.Record
}
