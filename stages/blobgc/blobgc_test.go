package blobgc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/memoflow/memoflow/internal/blob"
	"github.com/memoflow/memoflow/pipeline"
)

func newStore(t *testing.T) *blob.Dir {
	t.Helper()
	d, err := blob.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func put(t *testing.T, s blob.Store, key string) blob.Ref {
	t.Helper()
	ref, err := s.Put(context.Background(), key, bytes.NewReader([]byte("memo "+key)))
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

func exists(t *testing.T, s blob.Store, ref blob.Ref) bool {
	t.Helper()
	rc, err := s.Get(context.Background(), ref)
	if errors.Is(err, blob.ErrNotFound) {
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, rc)
	rc.Close()
	return true
}

func newSink(t *testing.T, s blob.Store, opts ...Option) *Sink {
	t.Helper()
	k, err := New(s, append([]Option{WithRegisterer(prometheus.NewRegistry())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// failingStore is a real store whose deletes fail while fail is set: a
// blob store outage as the sink sees it.
type failingStore struct {
	blob.Store
	fail    atomic.Bool
	deletes atomic.Int32
}

func (f *failingStore) Delete(ctx context.Context, ref blob.Ref) error {
	f.deletes.Add(1)
	if f.fail.Load() {
		return errors.New("store unavailable")
	}
	return f.Store.Delete(ctx, ref)
}

func TestWrite(t *testing.T) {
	store := newStore(t)
	a, b := put(t, store, "12345678/a"), put(t, store, "12345678/b")
	keep := put(t, store, "12345678/keep")
	for _, tc := range []struct {
		name     string
		records  []*kgo.Record
		rejected int
		code     string
	}{
		{"delete two, one twice, one already gone", []*kgo.Record{Done(a), Done(b), Done(a), Done(blob.Ref{Key: "12345678/never-stored"})}, 0, ""},
		{"not a reference", []*kgo.Record{{Value: []byte("{")}}, 1, CodeDecode},
		{"path trick", []*kgo.Record{{Value: []byte(`{"key":"../etc/passwd"}`)}}, 1, CodeInvalidKey},
		{"empty key", []*kgo.Record{{Value: []byte(`{}`)}}, 1, CodeInvalidKey},
	} {
		t.Run(tc.name, func(t *testing.T) {
			batch := &pipeline.Batch{Records: tc.records}
			if err := newSink(t, store).Write(context.Background(), batch); err != nil {
				t.Fatal(err)
			}
			if batch.Rejected() != tc.rejected {
				t.Errorf("rejected %d, want %d", batch.Rejected(), tc.rejected)
			}
		})
	}
	if exists(t, store, a) || exists(t, store, b) {
		t.Error("a delivered message's blob is still there")
	}
	if !exists(t, store, keep) {
		t.Error("a blob nobody released was deleted")
	}
}

// A failed delete fails the whole batch as transient, so the runtime
// commits nothing and writes the batch again; the retry finishes the job.
func TestWriteFailureHoldsBatch(t *testing.T) {
	store := &failingStore{Store: newStore(t)}
	ref := put(t, store, "12345678/x")
	store.fail.Store(true)
	sink := newSink(t, store)
	batch := &pipeline.Batch{Records: []*kgo.Record{Done(ref)}}
	err := sink.Write(context.Background(), batch)
	if pipeline.ClassOf(err) != pipeline.ClassTransient {
		t.Fatalf("Write during an outage = %v, want a transient error", err)
	}
	store.fail.Store(false)
	if err := sink.Write(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
	if exists(t, store, ref) {
		t.Error("blob still there after the retry")
	}
}

func TestSweep(t *testing.T) {
	dir := t.TempDir()
	store, err := blob.NewDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	old, fresh := put(t, store, "12345678/old"), put(t, store, "12345678/fresh")
	// Age the old blob: find its file and set its time back 100 days.
	var aged int
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && filepath.Base(p) == "12345678+old" {
			past := time.Now().Add(-100 * 24 * time.Hour)
			if err := os.Chtimes(p, past, past); err != nil {
				t.Fatal(err)
			}
			aged++
		}
		return nil
	})
	if aged != 1 {
		t.Fatalf("aged %d files, want 1 (layout of blob.Dir changed?)", aged)
	}
	w := NewSweeper(store, SweepConfig{Retention: blob.DefaultRetention}, slog.New(slog.DiscardHandler), newSink(t, store))
	n, err := w.SweepOnce(context.Background())
	if err != nil || n != 1 {
		t.Fatalf("SweepOnce = %d, %v; want 1 deleted", n, err)
	}
	if exists(t, store, old) || !exists(t, store, fresh) {
		t.Error("the sweep must delete exactly the blobs older than the retention")
	}
	// Off: Run returns at once and deletes nothing.
	done := make(chan struct{})
	go func() {
		NewSweeper(store, SweepConfig{}, slog.New(slog.DiscardHandler), newSink(t, store)).Run(context.Background())
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run with retention 0 did not return")
	}
}

// TestRunner runs the stage in the real runtime over kfake: every released
// blob is gone and the group's offsets cover every record; during a store
// outage the offsets do not move.
func TestRunner(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, pipeline.TopicBlobsDone, pipeline.TopicDLQ))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	brokers := c.ListenAddrs()[0]
	kc := pipeline.KafkaConfig{Brokers: brokers, ClientID: "t", DialTimeout: 5 * time.Second, TopicPartitions: 3, TopicReplication: 1}
	rc := pipeline.RunnerConfig{PollRecords: 50, MaxBufferedBytes: 8 << 20, FetchMaxBytes: 4 << 20, Transactions: true,
		SinkBatchRecords: 40, SinkBatchWait: 20 * time.Millisecond, RetryMinBackoff: 10 * time.Millisecond, RetryMaxBackoff: 50 * time.Millisecond,
		SessionTimeout: 6 * time.Second, TxnTimeout: 10 * time.Second, ReplicaID: "r"}

	store := &failingStore{Store: newStore(t)}
	var recs []*kgo.Record
	var refs []blob.Ref
	for i := range 200 {
		ref := put(t, store, fmt.Sprintf("12345678/m%03d", i))
		refs = append(refs, ref)
		recs = append(recs, Done(ref))
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	store.fail.Store(true)
	r, err := pipeline.NewRunner(newSink(t, store), []string{pipeline.TopicBlobsDone}, kc, rc,
		pipeline.WithLogger(slog.New(slog.DiscardHandler)), pipeline.WithMetrics(pipeline.NewMetrics(prometheus.NewRegistry())))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()

	adm := kadm.NewClient(cl)
	committed := func() int64 {
		o, err := adm.FetchOffsets(context.Background(), "memoflow-"+Name)
		if err != nil {
			return -1
		}
		var n int64
		o.Each(func(o kadm.OffsetResponse) { n += max(o.At, 0) })
		return n
	}
	// The outage: deletes are tried, nothing is committed.
	deadline := time.Now().Add(10 * time.Second)
	for store.deletes.Load() < 5 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if store.deletes.Load() < 5 {
		t.Fatal("the sink never tried to delete")
	}
	if n := committed(); n > 0 {
		t.Fatalf("%d offsets committed while every delete failed", n)
	}
	store.fail.Store(false)
	deadline = time.Now().Add(20 * time.Second)
	for committed() < int64(len(recs)) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	if n := committed(); n != int64(len(recs)) {
		t.Fatalf("committed %d of %d records", n, len(recs))
	}
	for _, ref := range refs {
		if exists(t, store, ref) {
			t.Fatalf("blob %s still there", ref.Key)
		}
	}
}
