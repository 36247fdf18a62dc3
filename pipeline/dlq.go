package pipeline

import (
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Dead-letter headers. `memoflow dlq` reads them; keep them stable.
const (
	HeaderDLQStage     = "memoflow.dlq.stage"
	HeaderDLQCode      = "memoflow.dlq.code"
	HeaderDLQError     = "memoflow.dlq.error"
	HeaderDLQTopic     = "memoflow.dlq.topic"
	HeaderDLQPartition = "memoflow.dlq.partition"
	HeaderDLQOffset    = "memoflow.dlq.offset"
	HeaderDLQTime      = "memoflow.dlq.time"
)

// dlqRecord wraps a rejected record for the DLQ: same key, value and
// headers, plus where it came from and why it was rejected.
func dlqRecord(stage string, r *kgo.Record, err error, now time.Time) *kgo.Record {
	msg := err.Error()
	if len(msg) > 1024 {
		msg = msg[:1024]
	}
	h := make([]kgo.RecordHeader, 0, len(r.Headers)+7)
	h = append(h, r.Headers...)
	h = append(h,
		kgo.RecordHeader{Key: HeaderDLQStage, Value: []byte(stage)},
		kgo.RecordHeader{Key: HeaderDLQCode, Value: []byte(CodeOf(err))},
		kgo.RecordHeader{Key: HeaderDLQError, Value: []byte(msg)},
		kgo.RecordHeader{Key: HeaderDLQTopic, Value: []byte(r.Topic)},
		kgo.RecordHeader{Key: HeaderDLQPartition, Value: strconv.AppendInt(nil, int64(r.Partition), 10)},
		kgo.RecordHeader{Key: HeaderDLQOffset, Value: strconv.AppendInt(nil, r.Offset, 10)},
		kgo.RecordHeader{Key: HeaderDLQTime, Value: now.UTC().AppendFormat(nil, time.RFC3339Nano)},
	)
	return &kgo.Record{Topic: TopicDLQ, Key: r.Key, Value: r.Value, Headers: h}
}

// Header returns the value of the first header named key, or nil.
func Header(r *kgo.Record, key string) []byte {
	for _, h := range r.Headers {
		if h.Key == key {
			return h.Value
		}
	}
	return nil
}
