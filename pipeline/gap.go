package pipeline

import (
	"context"
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// EmptyForReadCommitted reports whether a read_committed consumer gets no
// record at all (data or control) in [from, to) of topic's partition p,
// waiting up to wait for one.
//
// Stages that tail a transactional topic into an index count their progress
// by the records they receive, control records included, and wait until
// they reach the last stable offset. A range of aborted data whose abort
// markers are missing (a broker that crashed mid-transaction and aborted it
// on restart without writing markers, as the embedded broker can) is never
// received although a consumer's position moves past it, so such a tail
// would wait forever. A fresh consumer from `from` that receives nothing
// below `to` proves the range holds nothing to index, and the tail may move
// past it.
func EmptyForReadCommitted(ctx context.Context, opts []kgo.Opt, topic string, p int32, from, to int64, wait time.Duration) (bool, error) {
	if from >= to {
		return true, nil
	}
	cl, err := kgo.NewClient(append(append([]kgo.Opt{}, opts...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {p: kgo.NewOffset().At(from)}}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(),
	)...)
	if err != nil {
		return false, err
	}
	defer cl.Close()
	pctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	for {
		f := cl.PollFetches(pctx)
		if pctx.Err() != nil {
			// Nothing below `to` within the wait: empty for read_committed
			// readers, unless the caller gave up.
			return ctx.Err() == nil, ctx.Err()
		}
		if err := f.Err0(); err != nil && !errors.Is(err, context.DeadlineExceeded) {
			return false, err
		}
		found := false
		f.EachRecord(func(r *kgo.Record) {
			if r.Offset < to {
				found = true
			}
		})
		if found {
			return false, nil
		}
	}
}
