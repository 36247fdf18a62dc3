package chsink

import (
	"errors"
	"reflect"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/memoflow/memoflow/pipeline"
)

func recs(topic string, p int32, offs ...int64) []*kgo.Record {
	out := make([]*kgo.Record, len(offs))
	for i, o := range offs {
		out[i] = &kgo.Record{Topic: topic, Partition: p, Offset: o}
	}
	return out
}

func keys(m map[int32]Span) []int32 {
	var out []int32
	for p := range m {
		out = append(out, p)
	}
	if len(out) > 1 && out[0] > out[1] {
		out[0], out[1] = out[1], out[0]
	}
	return out
}

// TestOffsetsLifecycle walks the decisions a sink takes over a partition's
// life: first batch checked, then not, a retried batch checked again, a
// failed write and a revoke forgetting the history, and a horizon keeping
// batches checked until they are past it.
func TestOffsetsLifecycle(t *testing.T) {
	o := NewOffsets("test")
	step := func(name string, rs []*kgo.Record, all bool, wantCheck []int32, ok bool) {
		t.Helper()
		if err := o.Begin(rs); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got := keys(o.ToCheck(all)); !reflect.DeepEqual(got, wantCheck) {
			t.Fatalf("%s: check %v, want %v", name, got, wantCheck)
		}
		if ok {
			o.Done()
		} else {
			o.Failed()
		}
	}
	both := append(recs("t", 0, 0, 1, 2), recs("t", 1, 5, 6)...)
	step("first batch: both unknown", both, false, []int32{0, 1}, true)
	step("next batch: known", append(recs("t", 0, 3, 4), recs("t", 1, 7)...), false, nil, true)
	step("verify every batch", recs("t", 0, 5), true, []int32{0}, true)
	step("re-delivered at or below acked", recs("t", 0, 4, 5, 6), false, []int32{0}, true)
	step("failed write", recs("t", 1, 8, 9), false, nil, false)
	step("after the failure: unknown", recs("t", 1, 8, 9), false, []int32{1}, true)

	o.Revoked(map[string][]int32{"t": {0}, "other": {1}})
	if err := o.Begin(recs("t", 0, 7)); err != nil {
		t.Fatal(err)
	}
	check := o.ToCheck(false)
	if got := keys(check); !reflect.DeepEqual(got, []int32{0}) {
		t.Fatalf("after revoke: %v", got)
	}
	if got := keys(o.Unseen(check)); !reflect.DeepEqual(got, []int32{0}) {
		t.Fatalf("unseen after revoke: %v", got)
	}
	// A previous owner wrote up to offset 20.
	o.SetHorizon(0, 20)
	o.Done()
	step("known but below the horizon", recs("t", 0, 8, 9), false, []int32{0}, true)
	if got := o.Unseen(map[int32]Span{0: {8, 9}}); got != nil {
		t.Fatalf("a known partition is unseen: %v", got)
	}
	step("reaching the horizon", recs("t", 0, 10, 20), false, []int32{0}, true)
	step("past the horizon", recs("t", 0, 21), false, nil, true)
	if _, ok := o.horizon[0]; ok {
		t.Fatal("the horizon outlived a batch past it")
	}
}

func TestOffsetsOneTopic(t *testing.T) {
	o := NewOffsets("eventlog")
	if err := o.Begin(recs("memo.events", 0, 1)); err != nil {
		t.Fatal(err)
	}
	err := o.Begin(append(recs("memo.events", 0, 2), recs("memo.other", 0, 1)...))
	var pe *pipeline.Error
	if !errors.As(err, &pe) || pipeline.ClassOf(err) != pipeline.ClassFatal {
		t.Fatalf("two topics: %v", err)
	}
}
