package bench

import (
	"context"
	"os"
	"testing"

	"github.com/memoflow/memoflow/internal/embedded"
)

// BenchmarkIngest runs RunIngest once per iteration (use -benchtime 1x);
// with -cpuprofile it shows where the ingest path spends its time.
func BenchmarkIngest(b *testing.B) {
	dir := b.TempDir()
	br, err := embedded.Start(embedded.Config{Port: 0, DataDir: dir, CleanerBackoffMs: 60000})
	if err != nil {
		b.Fatal(err)
	}
	defer br.Close()
	for b.Loop() {
		rep, err := RunIngest(context.Background(), IngestOptions{Brokers: br.Addrs()[0], Messages: 50000, BatchSize: 10000, Log: os.Stderr})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(rep.APIMsgsPerSec, "api_msgs/s")
		b.ReportMetric(rep.RawMsgsPerSec, "raw_msgs/s")
		b.ReportMetric(rep.Ratio, "ratio")
	}
}
