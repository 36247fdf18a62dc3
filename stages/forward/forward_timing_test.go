package forward

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/memoflow/memoflow/pipeline"
	"github.com/memoflow/memoflow/schemas/registry"
	"github.com/memoflow/memoflow/stages/deliver"
)

var (
	benchMessages = flag.Int("forward.messages", 20000, "messages per setup in BenchmarkForward")
	benchTargets  = flag.Int("forward.targets", 50, "pickup systems (and push systems for the baseline) in BenchmarkForward")
)

// BenchmarkForward: forwards per second through the stage's Write to
// pickup systems (POST with Idempotency-Key, events), against delivery's
// push path (deliver.Sink.Write: POST, events, business receipt) to the
// same number of systems on the same server, with the same batch size and
// concurrency, in the same run. Also the rate of secure-mailbox copies
// (no HTTP: a registry look-up and a routed copy per message).
//
//	go test -run '^$' -bench BenchmarkForward -benchtime 1x ./stages/forward/
func BenchmarkForward(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	n, targets, batch := *benchMessages, *benchTargets, 100
	const perTarget, workers = 8, 256
	body := 2048
	pseudo := testPseudo(b)
	ctx := context.Background()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: perTarget, MaxIdleConns: targets * perTarget}}

	// Forward: pickup requests to targets URLs.
	cfg := DefaultConfig()
	cfg.PerTarget, cfg.Workers, cfg.BatchRecords, cfg.CallBudget, cfg.Cooldown = perTarget, workers, batch, time.Minute, 0
	v := testView(srv.URL, srv.URL)
	st, err := New(cfg, v, pseudo, WithHTTPClient(client), WithLogger(quiet()))
	if err != nil {
		b.Fatal(err)
	}
	var fwd []*kgo.Record
	for i := range n {
		e := message(fmt.Sprintf("0b7b9c1e-3f0e-4a36-9d33-%012d", i), compPickup, body)
		fwd = append(fwd, request(e, registry.Forwarding{Kind: registry.ForwardPickup, To: fmt.Sprintf("%s/pickup/%d", srv.URL, i%targets)}))
	}
	// Deliver: the same messages routed to targets push systems.
	var systems []deliver.System
	for t := range targets {
		systems = append(systems, deliver.System{ID: fmt.Sprintf("sys-%d", t), Protocol: deliver.ProtoPush,
			Endpoint: fmt.Sprintf("%s/push/%d", srv.URL, t), Active: true, WantVersion: 12})
	}
	dcfg := deliver.DefaultConfig()
	dcfg.PerSystem, dcfg.Workers, dcfg.BatchRecords = perTarget, workers, batch
	d, err := deliver.NewDeliverer(dcfg, deliver.NewStaticSystems(systems...), pseudo, deliver.WithHTTPClient(client), deliver.WithLogger(quiet()))
	if err != nil {
		b.Fatal(err)
	}
	sink := deliver.NewSink(d)
	var routed []*kgo.Record
	for i := range n {
		e := message(fmt.Sprintf("0b7b9c1e-3f0e-4a36-9d34-%012d", i), compPickup, body)
		e.Destination = fmt.Sprintf("sys-%d", i%targets)
		routed = append(routed, &kgo.Record{Topic: pipeline.TopicRouted, Key: []byte(e.Destination), Value: e.Append(nil)})
	}
	// Secure-mailbox copies.
	var secure []*kgo.Record
	for i := range n {
		e := message(fmt.Sprintf("0b7b9c1e-3f0e-4a36-9d35-%012d", i), compSecure, body)
		secure = append(secure, request(e, registry.Forwarding{Kind: registry.ForwardSecureMailbox, To: trusted}))
	}

	run := func(recs []*kgo.Record, write func(context.Context, *pipeline.Batch) error, want int) time.Duration {
		start := time.Now()
		for i := 0; i < len(recs); i += batch {
			bt := &pipeline.Batch{Records: recs[i:min(i+batch, len(recs))]}
			if err := write(ctx, bt); err != nil {
				b.Fatal(err)
			}
			if len(bt.Outputs()) < want*len(bt.Records) {
				b.Fatalf("%d outputs for %d records", len(bt.Outputs()), len(bt.Records))
			}
		}
		return time.Since(start)
	}
	b.ResetTimer()
	var tf, td, ts time.Duration
	for range b.N {
		// Alternate, so both see the same machine load.
		td += run(routed, sink.Write, 2)
		tf += run(fwd, st.Write, 1)
		ts += run(secure, st.Write, 3)
	}
	b.StopTimer()
	total := float64(n * b.N)
	fps, dps := total/tf.Seconds(), total/td.Seconds()
	b.ReportMetric(fps, "forwards/s")
	b.ReportMetric(dps, "deliver-pushes/s")
	b.ReportMetric(fps/dps, "ratio")
	b.ReportMetric(total/ts.Seconds(), "secure-copies/s")
}
