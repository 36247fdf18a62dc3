package chaos

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/memoflow/memoflow/pipeline"
)

// Verdict is what the run's end looks like from outside the pipeline.
type Verdict struct {
	// EventsExpected and EventsFound per tag.
	EventsExpected map[string]uint64 `json:"events_expected"`
	EventsFound    map[string]uint64 `json:"events_in_clickhouse"`
	// DoubleCounted is the number of (tag, messageUUID) pairs with more
	// than one row.
	DoubleCounted uint64 `json:"double_counted"`
	// Unprocessed data records per consumer group (0 when caught up).
	Unprocessed map[string]int `json:"unprocessed"`
	// DLQ records.
	DLQ int `json:"dlq"`
	// Problems lists every failed check in words; empty means pass.
	Problems []string `json:"problems"`
}

// OK reports whether every check passed.
func (v *Verdict) OK() bool { return len(v.Problems) == 0 }

// Judge waits up to timeout for the event log to reach the expected
// counts, then checks exactness, the consumer groups and the DLQ. A key
// of want may name several tags joined by "|": their rows are summed
// (a message ends in one of them).
//
// groups are consumer group names without the "memoflow-" prefix. A group
// named in backlog is judged over those topics (a prefix ending in "."
// stands for every topic that starts with it) from its committed offset
// or, where it never committed, from the start: the delay topics' groups
// commit only what fell due, so a record never taken would not show in
// the committed offsets at all.
func Judge(ctx context.Context, conn driver.Conn, db, kafkaAddr string, want map[string]uint64, groups []string, backlog map[string][]string, timeout time.Duration) (*Verdict, error) {
	v := &Verdict{EventsExpected: want, Unprocessed: map[string]int{}}
	found, err := waitEvents(ctx, conn, db, want, timeout)
	if err != nil {
		return nil, err
	}
	v.EventsFound = found
	tags := make([]string, 0, len(want))
	for tag := range want {
		tags = append(tags, tag)
	}
	sort.Strings(tags)
	for _, tag := range tags {
		if found[tag] != want[tag] {
			v.Problems = append(v.Problems, fmt.Sprintf("event log: %d %s rows, want exactly %d", found[tag], tag, want[tag]))
		}
	}
	// A double count could hide behind a loss in the totals. Only the
	// tags that happen once per message: a failed attempt's event
	// (MEMO_SEND_SENT_TO_RECIPIENT_SYSTEM_FAILED) is one row per attempt.
	var once []string
	for _, tag := range tags {
		once = append(once, strings.Split(tag, "|")...)
	}
	if err := conn.QueryRow(ctx, fmt.Sprintf(
		"SELECT count() FROM (SELECT tag, message_uuid, count() AS c FROM %s.events WHERE message_uuid != '' AND tag IN ('%s') GROUP BY tag, message_uuid HAVING c > 1)",
		db, strings.Join(once, "','"))).Scan(&v.DoubleCounted); err != nil {
		return nil, err
	}
	if v.DoubleCounted > 0 {
		v.Problems = append(v.Problems, fmt.Sprintf("event log: %d (tag, messageUUID) pairs counted more than once", v.DoubleCounted))
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(kafkaAddr))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	deadline := time.Now().Add(30 * time.Second)
	for {
		behind := false
		for _, g := range groups {
			var n int
			var err error
			if topics, ok := backlog[g]; ok {
				n, err = Backlog(ctx, adm, kafkaAddr, "memoflow-"+g, topics)
			} else {
				n, err = Unprocessed(ctx, adm, kafkaAddr, "memoflow-"+g)
			}
			if err != nil {
				return nil, fmt.Errorf("group %s: %w", g, err)
			}
			v.Unprocessed[g] = n
			behind = behind || n > 0
		}
		if !behind || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Second)
	}
	for _, g := range groups {
		if n := v.Unprocessed[g]; n > 0 {
			v.Problems = append(v.Problems, fmt.Sprintf("group memoflow-%s has %d records left to process", g, n))
		}
	}
	starts, err := adm.ListStartOffsets(ctx, pipeline.TopicDLQ)
	if err != nil {
		return nil, err
	}
	ends, err := adm.ListEndOffsets(ctx, pipeline.TopicDLQ)
	if err != nil {
		return nil, err
	}
	if v.DLQ, err = countRecords(ctx, kafkaAddr, starts.Offsets(), ends.Offsets()); err != nil {
		return nil, err
	}
	if v.DLQ > 0 {
		v.Problems = append(v.Problems, fmt.Sprintf("%d records in the DLQ; nothing in this run is poison", v.DLQ))
	}
	return v, nil
}

func waitEvents(ctx context.Context, conn driver.Conn, db string, want map[string]uint64, timeout time.Duration) (map[string]uint64, error) {
	deadline := time.Now().Add(timeout)
	for {
		got := map[string]uint64{}
		rows, err := conn.Query(ctx, fmt.Sprintf("SELECT tag, count() FROM %s.events GROUP BY tag", db))
		if err == nil {
			for rows.Next() {
				var tag string
				var c uint64
				if rows.Scan(&tag, &c) == nil {
					got[tag] = c
				}
			}
			rows.Close()
		}
		for key := range want {
			if strings.Contains(key, "|") {
				got[key] = 0
				for _, tag := range strings.Split(key, "|") {
					got[key] += got[tag]
				}
			}
		}
		done := true
		for tag, w := range want {
			if got[tag] < w {
				done = false
			}
		}
		if done || time.Now().After(deadline) {
			// Give a straggling duplicate a moment to show itself.
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(2 * time.Second):
			}
			return got, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// Unprocessed counts the data records after group's committed offsets.
// Lag as usually computed (end offset minus committed) stays at 1 per
// partition behind a transaction's commit marker, which no consumer ever
// receives; this reads from each committed offset with read_committed
// and counts the data records instead.
func Unprocessed(ctx context.Context, adm *kadm.Client, addr, group string) (int, error) {
	committed, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		return 0, err
	}
	if err := committed.Error(); err != nil {
		return 0, err
	}
	from := committed.Offsets()
	if len(from) == 0 {
		return 0, nil
	}
	ends, err := adm.ListEndOffsets(ctx, from.TopicsSet().Topics()...)
	if err != nil {
		return 0, err
	}
	return countRecords(ctx, addr, from, ends.Offsets())
}

// Backlog counts the data records of topics (a name ending in "." is a
// prefix) that group has not committed: from its committed offset, or from
// the start of a partition it never committed.
func Backlog(ctx context.Context, adm *kadm.Client, addr, group string, topics []string) (int, error) {
	all, err := adm.ListTopics(ctx)
	if err != nil {
		return 0, err
	}
	var names []string
	for _, t := range all.Names() {
		for _, want := range topics {
			if t == want || strings.HasSuffix(want, ".") && strings.HasPrefix(t, want) {
				names = append(names, t)
				break
			}
		}
	}
	if len(names) == 0 {
		return 0, nil
	}
	starts, err := adm.ListStartOffsets(ctx, names...)
	if err != nil {
		return 0, err
	}
	ends, err := adm.ListEndOffsets(ctx, names...)
	if err != nil {
		return 0, err
	}
	committed, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		return 0, err
	}
	if err := committed.Error(); err != nil {
		return 0, err
	}
	from := kadm.Offsets{}
	starts.Offsets().Each(func(o kadm.Offset) {
		if c, ok := committed.Lookup(o.Topic, o.Partition); ok && c.At > o.At {
			o.At = c.At
		}
		from.Add(o)
	})
	return countRecords(ctx, addr, from, ends.Offsets())
}

// countRecords reads [from, to) of every partition with read_committed and
// counts the data records (control markers are never returned).
func countRecords(ctx context.Context, addr string, from, to kadm.Offsets) (int, error) {
	parts := map[string]map[int32]kgo.Offset{}
	todo := 0
	from.Each(func(o kadm.Offset) {
		end, ok := to.Lookup(o.Topic, o.Partition)
		if !ok || o.At >= end.At {
			return
		}
		if parts[o.Topic] == nil {
			parts[o.Topic] = map[int32]kgo.Offset{}
		}
		parts[o.Topic][o.Partition] = kgo.NewOffset().At(o.At)
		todo++
	})
	if todo == 0 {
		return 0, nil
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumePartitions(parts), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	n := 0
	for {
		pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		fs := cl.PollFetches(pctx)
		cancel()
		got := 0
		fs.EachRecord(func(r *kgo.Record) {
			if end, ok := to.Lookup(r.Topic, r.Partition); ok && r.Offset < end.At {
				got++
			}
		})
		n += got
		if got == 0 {
			return n, nil
		}
	}
}
