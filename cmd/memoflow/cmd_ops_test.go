package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/memoflow/memoflow/pipeline"
)

// opsCluster starts an in-process Kafka with the catalogue's topics (3
// partitions each) and returns its address and an admin client.
func opsCluster(t *testing.T, seed bool) (string, *kadm.Client) {
	t.Helper()
	opts := []kfake.Opt{kfake.NumBrokers(1)}
	if seed {
		var names []string
		for _, s := range pipeline.Catalogue {
			names = append(names, s.Name)
		}
		opts = append(opts, kfake.SeedTopics(3, names...))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	addr := c.ListenAddrs()[0]
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return addr, kadm.NewClient(cl)
}

// dead is a record as the runtime dead-letters it.
type dead struct {
	dlqPartition       int32
	stage, code, topic string
	srcPartition       int32
	srcOffset          int64
	at                 time.Time
	key, value         string
}

// putDLQ writes records into memo.dlq the way pipeline's runner does: the
// original key, value and headers plus the memoflow.dlq.* headers, in a
// transaction.
func putDLQ(t *testing.T, addr string, ds ...dead) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.TransactionalID(fmt.Sprintf("test-runtime-%d", time.Now().UnixNano())))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := context.Background()
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	for _, d := range ds {
		r := &kgo.Record{Topic: pipeline.TopicDLQ, Partition: d.dlqPartition, Key: []byte(d.key), Value: []byte(d.value),
			Headers: []kgo.RecordHeader{
				{Key: "memoflow.sender", Value: []byte("12345678")}, // an original header: kept by replay
				{Key: pipeline.HeaderDLQStage, Value: []byte(d.stage)},
				{Key: pipeline.HeaderDLQCode, Value: []byte(d.code)},
				{Key: pipeline.HeaderDLQError, Value: []byte(d.code + ": the record could not be processed")},
				{Key: pipeline.HeaderDLQTopic, Value: []byte(d.topic)},
				{Key: pipeline.HeaderDLQPartition, Value: []byte(strconv.Itoa(int(d.srcPartition)))},
				{Key: pipeline.HeaderDLQOffset, Value: []byte(strconv.FormatInt(d.srcOffset, 10))},
				{Key: pipeline.HeaderDLQTime, Value: []byte(d.at.UTC().Format(time.RFC3339Nano))},
			}}
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
}

// readTopic returns every committed record of topic.
func readTopic(t *testing.T, addr string, adm *kadm.Client, topic string) []*kgo.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ends, err := adm.ListCommittedOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	want := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			want[o.Partition] = o.Offset
		}
	})
	if len(want) == 0 {
		return nil
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.KeepControlRecords())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var out []*kgo.Record
	for len(want) > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("reading %s: %v (left %v)", topic, ctx.Err(), want)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if end, ok := want[r.Partition]; ok && r.Offset >= end-1 {
				delete(want, r.Partition)
			}
			if !r.Attrs.IsControl() {
				out = append(out, r)
			}
		})
	}
	return out
}

func mustCLI(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errs := runCLI(t, args...)
	if code != 0 {
		t.Fatalf("memoflow %s: exit %d: %s\n%s", strings.Join(args, " "), code, errs, out)
	}
	return out
}

func lines(s string) []string { return strings.Split(strings.TrimRight(s, "\n"), "\n") }

// someDead is a DLQ with records from two stages and two codes, one of
// them two days old.
func someDead(now time.Time) []dead {
	return []dead{
		{0, "validate", "MEMO_SCHEMA_INVALID", pipeline.TopicIngest, 1, 10, now.Add(-time.Hour), "msg-a", "<Message>a</Message>"},
		{1, "validate", "MEMO_TOO_LARGE", pipeline.TopicIngest, 2, 20, now.Add(-30 * time.Minute), "msg-b", "<Message>b</Message>"},
		{1, "route", "NO_CONTACT_POINT", pipeline.TopicReady, 0, 7, now.Add(-48 * time.Hour), "msg-c", "compact-record-c"},
		{2, "route", "NO_CONTACT_POINT", pipeline.TopicReady, 2, 8, now.Add(-10 * time.Minute), "msg-d", "compact-record-d"},
	}
}

func TestDLQListAndFilters(t *testing.T) {
	addr, _ := opsCluster(t, true)
	now := time.Now()
	putDLQ(t, addr, someDead(now)...)
	for _, tc := range []struct {
		name     string
		args     []string
		wantKeys []string
	}{
		{"all", nil, []string{"msg-c", "msg-a", "msg-b", "msg-d"}}, // oldest first
		{"by stage", []string{"--stage", "validate"}, []string{"msg-a", "msg-b"}},
		{"by code", []string{"--code", "NO_CONTACT_POINT"}, []string{"msg-c", "msg-d"}},
		{"by two codes", []string{"--code", "MEMO_TOO_LARGE,NO_CONTACT_POINT"}, []string{"msg-c", "msg-b", "msg-d"}},
		{"since duration", []string{"--since", "24h"}, []string{"msg-a", "msg-b", "msg-d"}},
		{"since time", []string{"--since", now.Add(-45 * time.Minute).UTC().Format(time.RFC3339)}, []string{"msg-b", "msg-d"}},
		{"by source topic", []string{"--source-topic", pipeline.TopicReady, "--stage", "route"}, []string{"msg-c", "msg-d"}},
		{"nothing", []string{"--stage", "deliver"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := mustCLI(t, append([]string{"dlq", "list", "--kafka-brokers", addr}, tc.args...)...)
			if tc.wantKeys == nil {
				if !strings.Contains(out, "no dead-lettered records match") {
					t.Fatalf("want no records:\n%s", out)
				}
				return
			}
			ls := lines(out)
			if !strings.HasPrefix(ls[0], "TIME") || !strings.Contains(ls[0], "SOURCE") || !strings.Contains(ls[0], "KEY") {
				t.Fatalf("no table header:\n%s", out)
			}
			for i, k := range tc.wantKeys {
				if !strings.Contains(ls[1+i], k) {
					t.Fatalf("row %d: want %s:\n%s", i, k, out)
				}
				if !strings.Contains(ls[1+i], "pending") {
					t.Fatalf("row %d not pending:\n%s", i, out)
				}
			}
			if strings.Contains(ls[1+len(tc.wantKeys)], "msg-") {
				t.Fatalf("more rows than %v:\n%s", tc.wantKeys, out)
			}
			if !strings.Contains(out, fmt.Sprintf("\n%d records\n", len(tc.wantKeys))) {
				t.Fatalf("count line missing:\n%s", out)
			}
		})
	}

	t.Run("row content", func(t *testing.T) {
		out := mustCLI(t, "dlq", "list", "--kafka-brokers", addr, "--stage", "validate", "--code", "MEMO_SCHEMA_INVALID")
		f := strings.Fields(lines(out)[1])
		// TIME DLQ STAGE CODE SOURCE KEY STATUS ERROR...
		if f[1] != "0:0" || f[2] != "validate" || f[3] != "MEMO_SCHEMA_INVALID" || f[4] != "memo.ingest/1/10" || f[5] != "msg-a" || f[6] != "pending" {
			t.Fatalf("row %q", f)
		}
	})

	t.Run("json", func(t *testing.T) {
		out := mustCLI(t, "dlq", "list", "--kafka-brokers", addr, "--json", "--limit", "2")
		var got struct {
			Total   int        `json:"total"`
			Records []dlqEntry `json:"records"`
			Counts  []dlqCount `json:"counts"`
		}
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatalf("%v:\n%s", err, out)
		}
		if got.Total != 4 || len(got.Records) != 2 || got.Records[0].Key != "msg-c" || got.Records[0].SourceTopic != pipeline.TopicReady || got.Records[0].SourceOffset != 7 {
			t.Fatalf("%+v", got)
		}
		want := []dlqCount{{"route", "NO_CONTACT_POINT", 2, 0}, {"validate", "MEMO_SCHEMA_INVALID", 1, 0}, {"validate", "MEMO_TOO_LARGE", 1, 0}}
		if fmt.Sprint(got.Counts) != fmt.Sprint(want) {
			t.Fatalf("counts %v, want %v", got.Counts, want)
		}
	})

	t.Run("bad since", func(t *testing.T) {
		code, _, errs := runCLI(t, "dlq", "list", "--kafka-brokers", addr, "--since", "yesterday")
		if code != 2 || !strings.Contains(errs, "--since") {
			t.Fatalf("exit %d: %s", code, errs)
		}
	})
}

func TestDLQShow(t *testing.T) {
	addr, _ := opsCluster(t, true)
	long := strings.Repeat("x", 5000)
	putDLQ(t, addr,
		dead{1, "validate", "MEMO_SCHEMA_INVALID", pipeline.TopicIngest, 2, 42, time.Now(), "msg-x", "<Message>" + long + "</Message>"},
		dead{2, "route", "NO_CONTACT_POINT", pipeline.TopicReady, 0, 3, time.Now(), "msg-y", "y"},
	)
	for _, tc := range []struct {
		name string
		args []string
		want []string
		not  []string
	}{
		{"position", []string{"1:0"}, []string{
			"record    memo.dlq 1:0", "stage     validate", "code      MEMO_SCHEMA_INVALID",
			"error     MEMO_SCHEMA_INVALID: the record could not be processed",
			"source    memo.ingest/2/42", "key       msg-x", "status    pending",
			"  memoflow.sender: 12345678", "  memoflow.dlq.offset: 42",
			"value     5019 bytes, the first 4096:", "<Message>xxx",
		}, []string{"</Message>"}},
		{"flags", []string{"--partition", "1", "--offset", "0", "--max-bytes", "0"}, []string{"value     5019 bytes:", "</Message>"}, nil},
		{"offset in any partition", []string{"0"}, []string{"memo.dlq 1:0", "memo.dlq 2:0", "key       msg-y"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := mustCLI(t, append([]string{"dlq", "show", "--kafka-brokers", addr}, tc.args...)...)
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("want %q in:\n%s", w, out)
				}
			}
			for _, w := range tc.not {
				if strings.Contains(out, w) {
					t.Errorf("do not want %q in:\n%s", w, out)
				}
			}
		})
	}
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"missing", []string{"1:5"}, 1, "no dead-lettered record at 1:5"},
		{"no position", nil, 2, "which record?"},
		{"both forms", []string{"1:0", "--offset", "0"}, 2, "not both"},
		{"garbage", []string{"1:x"}, 2, "PARTITION:OFFSET"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errs := runCLI(t, append([]string{"dlq", "show", "--kafka-brokers", addr}, tc.args...)...)
			if code != tc.code || !strings.Contains(errs, tc.want) {
				t.Fatalf("exit %d (want %d): %s", code, tc.code, errs)
			}
		})
	}
}

func TestDLQReplayExactlyOnce(t *testing.T) {
	addr, adm := opsCluster(t, true)
	now := time.Now()
	ds := someDead(now)
	putDLQ(t, addr, ds...)

	// A dry run writes nothing.
	out := mustCLI(t, "dlq", "replay", "--kafka-brokers", addr, "--dry-run")
	if !strings.Contains(out, "dry run: 4 records would be replayed") || !strings.Contains(out, "memo.ingest/1") {
		t.Fatalf("dry run:\n%s", out)
	}
	if n := len(readTopic(t, addr, adm, pipeline.TopicIngest)) + len(readTopic(t, addr, adm, pipeline.TopicReady)); n != 0 {
		t.Fatalf("dry run wrote %d records", n)
	}

	// A filtered replay, then an unfiltered one, then one more: every
	// record ends up in its source topic exactly once.
	out = mustCLI(t, "dlq", "replay", "--kafka-brokers", addr, "--stage", "validate", "--code", "MEMO_TOO_LARGE")
	if !strings.Contains(out, "replayed 1 records in 1 transactions") {
		t.Fatalf("filtered replay:\n%s", out)
	}
	out = mustCLI(t, "dlq", "replay", "--kafka-brokers", addr, "--batch", "2")
	if !strings.Contains(out, "replayed 3 records in 2 transactions; 1 matching records were replayed before and are skipped") {
		t.Fatalf("second replay:\n%s", out)
	}
	out = mustCLI(t, "dlq", "replay", "--kafka-brokers", addr)
	if !strings.Contains(out, "replayed 0 records") || !strings.Contains(out, "4 matching records were replayed before") {
		t.Fatalf("third replay:\n%s", out)
	}

	checkCopies := func(extra ...dead) {
		t.Helper()
		got := map[string]*kgo.Record{}
		for _, topic := range []string{pipeline.TopicIngest, pipeline.TopicReady} {
			for _, r := range readTopic(t, addr, adm, topic) {
				k := string(r.Key)
				if got[k] != nil {
					t.Fatalf("%s replayed twice (%s and %s/%d/%d)", k, got[k].Topic, r.Topic, r.Partition, r.Offset)
				}
				got[k] = r
			}
		}
		all := append(append([]dead(nil), ds...), extra...)
		if len(got) != len(all) {
			t.Fatalf("%d copies, want %d", len(got), len(all))
		}
		for _, d := range all {
			r := got[d.key]
			if r == nil {
				t.Fatalf("%s not replayed", d.key)
			}
			if r.Topic != d.topic || r.Partition != d.srcPartition || string(r.Value) != d.value {
				t.Errorf("%s: copy in %s/%d value %q, want %s/%d %q", d.key, r.Topic, r.Partition, r.Value, d.topic, d.srcPartition, d.value)
			}
			if len(r.Headers) != 1 || r.Headers[0].Key != "memoflow.sender" {
				t.Errorf("%s: headers %v, want only the original memoflow.sender", d.key, r.Headers)
			}
		}
	}
	checkCopies()

	// The list shows them replayed; a record dead-lettered later is the
	// only one the next replay copies.
	out = mustCLI(t, "dlq", "list", "--kafka-brokers", addr)
	if strings.Count(out, "replayed") < 4 || strings.Contains(out, " pending ") {
		t.Fatalf("list after replay:\n%s", out)
	}
	late := dead{0, "validate", "MEMO_SCHEMA_INVALID", pipeline.TopicIngest, 0, 99, time.Now(), "msg-e", "<Message>e</Message>"}
	putDLQ(t, addr, late)
	out = mustCLI(t, "dlq", "list", "--kafka-brokers", addr, "--pending")
	if !strings.Contains(out, "msg-e") || strings.Contains(out, "msg-a") {
		t.Fatalf("pending list:\n%s", out)
	}
	var pend struct {
		Records []dlqEntry `json:"records"`
	}
	if err := json.Unmarshal([]byte(mustCLI(t, "dlq", "list", "--kafka-brokers", addr, "--pending", "--json")), &pend); err != nil || len(pend.Records) != 1 {
		t.Fatalf("pending: %v %+v", err, pend)
	}
	out = mustCLI(t, "dlq", "replay", "--kafka-brokers", addr, pend.Records[0].pos().String())
	if !strings.Contains(out, "replayed 1 records") {
		t.Fatalf("replay by position:\n%s", out)
	}
	checkCopies(late)

	code, _, errs := runCLI(t, "dlq", "replay", "--kafka-brokers", addr, "2:77")
	if code != 1 || !strings.Contains(errs, "no dead-lettered record at 2:77") {
		t.Fatalf("unknown position: exit %d %s", code, errs)
	}
}

func TestReplayFromResetsOffsets(t *testing.T) {
	addr, adm := opsCluster(t, true)
	ctx := context.Background()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	t0 := time.Now().Add(-3 * time.Hour).Truncate(time.Millisecond)
	// Partition 0: 10 records, one every 10 minutes from t0. Partition 1:
	// 2 records, both before the replay time.
	for i := 0; i < 10; i++ {
		r := &kgo.Record{Topic: pipeline.TopicReady, Partition: 0, Value: []byte{byte(i)}, Timestamp: t0.Add(time.Duration(i) * 10 * time.Minute)}
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 2; i++ {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: pipeline.TopicReady, Partition: 1, Timestamp: t0}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	const group = "memoflow-teststage"
	commit := kadm.Offsets{}
	commit.Add(kadm.Offset{Topic: pipeline.TopicReady, Partition: 0, At: 10, LeaderEpoch: -1})
	commit.Add(kadm.Offset{Topic: pipeline.TopicReady, Partition: 1, At: 1, LeaderEpoch: -1})
	if err := adm.CommitAllOffsets(ctx, group, commit); err != nil {
		t.Fatal(err)
	}
	committed := func() (int64, int64) {
		t.Helper()
		os, err := adm.FetchOffsets(ctx, group)
		if err != nil {
			t.Fatal(err)
		}
		p0, _ := os.Lookup(pipeline.TopicReady, 0)
		p1, _ := os.Lookup(pipeline.TopicReady, 1)
		return p0.At, p1.At
	}
	from := t0.Add(45 * time.Minute).UTC().Format(time.RFC3339Nano) // first record at or after: offset 5

	out := mustCLI(t, "replay", "--kafka-brokers", addr, "--stage", "teststage", "--topic", pipeline.TopicReady, "--from", from, "--dry-run")
	if !strings.Contains(out, "dry run: 1 partitions would be rewound, 5 records processed again") {
		t.Fatalf("dry run:\n%s", out)
	}
	if p0, p1 := committed(); p0 != 10 || p1 != 1 {
		t.Fatalf("dry run moved offsets to %d, %d", p0, p1)
	}
	// Without --topic: the topics the group has committed.
	out = mustCLI(t, "replay", "--kafka-brokers", addr, "--stage", "teststage", "--from", from)
	if !strings.Contains(out, "rewound 1 partitions of memoflow-teststage: 5 records") {
		t.Fatalf("replay:\n%s", out)
	}
	if p0, p1 := committed(); p0 != 5 || p1 != 1 {
		t.Fatalf("offsets %d, %d; want 5 (rewound) and 1 (already before the time, never moved forward)", p0, p1)
	}
	if !strings.Contains(out, "unchanged") {
		t.Fatalf("partition 1 should be reported unchanged:\n%s", out)
	}

	// A running member: refused, naming what to do.
	member, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumerGroup(group), kgo.ConsumeTopics(pipeline.TopicReady), kgo.ClientID("memoflow-teststage"))
	if err != nil {
		t.Fatal(err)
	}
	defer member.Close()
	deadline := time.Now().Add(15 * time.Second)
	for {
		member.PollRecords(ctxTimeout(t, 200*time.Millisecond), 1)
		dg, err := adm.DescribeGroups(ctx, group)
		if err == nil && dg[group].State == "Stable" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("group never stable: %v %v", dg, err)
		}
	}
	code, _, errs := runCLI(t, "replay", "--kafka-brokers", addr, "--stage", "teststage", "--from", from)
	if code != 1 || !strings.Contains(errs, "1 active members") || !strings.Contains(errs, "stop stage teststage first") {
		t.Fatalf("exit %d: %s", code, errs)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--stage", "teststage"}, "--stage and --from are required"},
		{[]string{"--stage", "teststage", "--from", "last tuesday"}, "--from"},
		{[]string{"--stage", "nosuchstage", "--from", "1h"}, "name the input topics with --topic"},
	} {
		code, _, errs := runCLI(t, append([]string{"replay", "--kafka-brokers", addr}, tc.args...)...)
		if code != 2 || !strings.Contains(errs, tc.want) {
			t.Errorf("%v: exit %d: %s", tc.args, code, errs)
		}
	}
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestLag(t *testing.T) {
	addr, adm := opsCluster(t, true)
	ctx := context.Background()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for i := 0; i < 10; i++ {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: pipeline.TopicRouted, Partition: int32(i % 2)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	commit := kadm.Offsets{}
	commit.Add(kadm.Offset{Topic: pipeline.TopicRouted, Partition: 0, At: 3, LeaderEpoch: -1})
	commit.Add(kadm.Offset{Topic: pipeline.TopicRouted, Partition: 1, At: 5, LeaderEpoch: -1})
	if err := adm.CommitAllOffsets(ctx, "memoflow-lagtest", commit); err != nil {
		t.Fatal(err)
	}
	if err := adm.CommitAllOffsets(ctx, "someone-else", commit); err != nil {
		t.Fatal(err)
	}

	out := mustCLI(t, "lag", "--kafka-brokers", addr)
	if !strings.Contains(out, "STAGE") || strings.Contains(out, "someone-else") {
		t.Fatalf("lag:\n%s", out)
	}
	var rows [][]string
	for _, l := range lines(out) {
		if f := strings.Fields(l); len(f) >= 6 && f[0] == "lagtest" && f[1] == pipeline.TopicRouted {
			rows = append(rows, f[:6])
		}
	}
	want := [][]string{{"lagtest", "memo.routed", "0", "3", "5", "2"}, {"lagtest", "memo.routed", "1", "5", "5", "0"}, {"lagtest", "memo.routed", "2", "-", "0", "0"}}
	if fmt.Sprint(rows) != fmt.Sprint(want) {
		t.Fatalf("rows %v, want %v:\n%s", rows, want, out)
	}
	if !strings.Contains(out, "memoflow-lagtest") {
		t.Fatalf("no summary:\n%s", out)
	}

	out = mustCLI(t, "lag", "--kafka-brokers", addr, "--stage", "lagtest", "--json")
	var got struct {
		Stages []lagGroup `json:"stages"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	if len(got.Stages) != 1 || got.Stages[0].Group != "memoflow-lagtest" || got.Stages[0].Lag != 2 || got.Stages[0].State != "Empty" || len(got.Stages[0].Partitions) != 3 {
		t.Fatalf("%+v", got)
	}
}

func TestTopicsApply(t *testing.T) {
	addr, _ := opsCluster(t, false)
	ctx := context.Background()
	// A new admin client per look: a client caches topic metadata for a
	// few seconds, and the CLI changes the topics behind its back.
	fresh := func() *kadm.Client {
		cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cl.Close)
		return kadm.NewClient(cl)
	}
	args := []string{"topics", "apply", "--kafka-brokers", addr, "--kafka-topic-partitions", "6", "--kafka-topic-replication", "1", "--min-insync-replicas", "1", "--retention", "72h"}

	out := mustCLI(t, append(args, "--dry-run")...)
	if !strings.Contains(out, fmt.Sprintf("dry run: %d to create, 0 to alter", len(pipeline.Catalogue))) {
		t.Fatalf("dry run:\n%s", out)
	}
	if td, _ := fresh().ListTopics(ctx); len(td) != 0 {
		t.Fatalf("dry run created %v", td.Names())
	}

	out = mustCLI(t, args...)
	if !strings.Contains(out, fmt.Sprintf("applied: %d created, 0 altered", len(pipeline.Catalogue))) {
		t.Fatalf("apply:\n%s", out)
	}
	td, err := fresh().ListTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range pipeline.Catalogue {
		if n := len(td[s.Name].Partitions); n != 6 {
			t.Errorf("%s has %d partitions, want 6", s.Name, n)
		}
	}
	cfg := func(topic, key string) string {
		t.Helper()
		rcs, err := fresh().DescribeTopicConfigs(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		rc, err := rcs.On(topic, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range rc.Configs {
			if c.Key == key && c.Value != nil {
				return *c.Value
			}
		}
		return ""
	}
	for _, tc := range []struct{ topic, key, want string }{
		{pipeline.TopicRegistry, "cleanup.policy", "compact"},
		{pipeline.TopicDLQ, "retention.ms", strconv.FormatInt((30 * 24 * time.Hour).Milliseconds(), 10)},
		{pipeline.TopicIngest, "retention.ms", strconv.FormatInt((72 * time.Hour).Milliseconds(), 10)},
		{pipeline.TopicIngest, "cleanup.policy", "delete"},
		{pipeline.TopicEvents, "min.insync.replicas", "1"},
	} {
		if got := cfg(tc.topic, tc.key); got != tc.want {
			t.Errorf("%s %s=%q, want %q", tc.topic, tc.key, got, tc.want)
		}
	}

	// Applying again changes nothing; a config changed by hand is put back
	// and reported with its old value.
	out = mustCLI(t, args...)
	if !strings.Contains(out, "applied: 0 created, 0 altered") {
		t.Fatalf("second apply:\n%s", out)
	}
	if _, err := fresh().AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "retention.ms", Value: kadm.StringPtr("1000")}}, pipeline.TopicValid); err != nil {
		t.Fatal(err)
	}
	out = mustCLI(t, append(args, "--dry-run")...)
	if !strings.Contains(out, "retention.ms=259200000 (was 1000)") || !strings.Contains(out, "1 to alter") {
		t.Fatalf("drift plan:\n%s", out)
	}
	mustCLI(t, args...)
	if got := cfg(pipeline.TopicValid, "retention.ms"); got != "259200000" {
		t.Fatalf("retention.ms=%s after apply", got)
	}

	// More partitions wanted than exist: a warning, never a change.
	out = mustCLI(t, "topics", "apply", "--kafka-brokers", addr, "--kafka-topic-partitions", "12", "--kafka-topic-replication", "1", "--retention", "72h")
	if !strings.Contains(out, "has 6 partitions, the catalogue wants 12: not added") {
		t.Fatalf("partition warning missing:\n%s", out)
	}
	if td, _ := fresh().ListTopics(ctx, pipeline.TopicIngest); len(td[pipeline.TopicIngest].Partitions) != 6 {
		t.Fatal("partitions changed")
	}

	code, _, errs := runCLI(t, "topics", "apply", "--kafka-brokers", addr, "--kafka-topic-replication", "1", "--min-insync-replicas", "2")
	if code != 2 || !strings.Contains(errs, "no write could succeed") {
		t.Fatalf("exit %d: %s", code, errs)
	}
}

func TestTopicsList(t *testing.T) {
	out := mustCLI(t, "topics", "list", "--json", "--kafka-topic-replication", "3")
	var got struct {
		Topics []topicPlan `json:"topics"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	if len(got.Topics) != len(pipeline.Catalogue) {
		t.Fatalf("%d topics", len(got.Topics))
	}
	for _, tp := range got.Topics {
		if tp.Replication != 3 || tp.Configs["min.insync.replicas"] != "2" {
			t.Errorf("%+v", tp)
		}
		for _, s := range tp.ReadBy {
			d, ok := lookupStage(s)
			if !ok || !strings.Contains(strings.Join(d.inputs, ","), tp.Name) {
				t.Errorf("%s: read by %s, which does not read it", tp.Name, s)
			}
		}
	}
	table := mustCLI(t, "topics", "list")
	if !strings.Contains(table, "memo.registry") || !strings.Contains(table, "cleanup.policy=compact") {
		t.Fatalf("table:\n%s", table)
	}
}
