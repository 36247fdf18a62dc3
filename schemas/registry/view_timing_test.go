package registry

import (
	"context"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// benchSizes is the national scale of issue 6 (5M citizens, 800k
// companies, 10k contact points), or MEMOFLOW_BENCH_CITIZENS and
// MEMOFLOW_BENCH_COMPANIES when set (smaller runs on a busy machine).
func benchSizes() GenConfig {
	cfg := GenConfig{Seed: 1, Citizens: 5_000_000, Companies: 800_000, Authorities: 100, PointsPerAuthority: 100, MailboxProviders: 3}
	if n, err := strconv.Atoi(os.Getenv("MEMOFLOW_BENCH_CITIZENS")); err == nil {
		cfg.Citizens = n
	}
	if n, err := strconv.Atoi(os.Getenv("MEMOFLOW_BENCH_COMPANIES")); err == nil {
		cfg.Companies = n
	}
	return cfg
}

func heapInuse() uint64 {
	runtime.GC()
	debug.FreeOSMemory()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

func rssBytes() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			f := strings.Fields(l)
			n, _ := strconv.ParseUint(f[1], 10, 64)
			return n * 1024
		}
	}
	return 0
}

// BenchmarkViewMemory builds the View of the national registry from its
// encoded records (what the tail applies, without a broker) and reports
// the View's heap (live bytes after GC), the citizen table, and the apply
// rate. The baseline in the same run: the same citizens in a plain
// map[string]uint32 keyed by the CPR strings, the obvious unpacked index.
func BenchmarkViewMemory(b *testing.B) {
	cfg := benchSizes()
	for i := 0; i < b.N; i++ {
		h0 := heapInuse()
		v := NewMemView(WithLogger(quiet()), WithCitizenCapacity(cfg.Citizens))
		start := time.Now()
		n := 0
		buf := make([]byte, 0, 256)
		rec := &kgo.Record{}
		v.mu.Lock()
		err := Generate(cfg, func(c Change) error {
			n++
			buf = c.AppendValue(buf[:0])
			rec.Key, rec.Value = append(rec.Key[:0], c.Key...), buf
			return v.applyRecordLocked(rec)
		})
		v.mu.Unlock()
		if err != nil {
			b.Fatal(err)
		}
		el := time.Since(start)
		h1 := heapInuse()
		st := v.Stats()
		if st.Citizens != cfg.Citizens || st.ContactPoints != cfg.Authorities*cfg.PointsPerAuthority {
			b.Fatalf("stats %+v", st)
		}
		b.ReportMetric(float64(h1-h0)/(1<<20), "view-heap-MiB")
		b.ReportMetric(float64(st.CitizenTableBytes)/(1<<20), "citizen-table-MiB")
		b.ReportMetric(float64(n)/el.Seconds(), "generate+apply-records/s")
		b.ReportMetric(float64(rssBytes())/(1<<20), "process-RSS-MiB")

		// Baseline: the same citizens in a map[string]uint32.
		h2 := heapInuse()
		m := make(map[string]uint32, cfg.Citizens)
		seq := newCPRSeq(cfg.Seed)
		for j := 0; j < cfg.Citizens; j++ {
			m[seq.next()] = uint32(j)
		}
		h3 := heapInuse()
		b.ReportMetric(float64(h3-h2)/(1<<20), "baseline-map-citizens-MiB")
		b.ReportMetric(float64(h3-h2)/float64(st.CitizenTableBytes), "baseline/packed")
		runtime.KeepAlive(m)
		runtime.KeepAlive(v)
	}
}

// BenchmarkViewLoadFromTopic writes the national registry to an embedded
// broker (kfake, 12 partitions) and measures how long a new View takes to
// read it and catch up: the start-up time of a routing instance. RSS here
// includes the broker's copy of the topic (same process).
func BenchmarkViewLoadFromTopic(b *testing.B) {
	cfg := benchSizes()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(12, "memo.registry"))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	opts := []kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...)}
	prod, err := kgo.NewClient(append(opts, kgo.ProducerLinger(5*time.Millisecond), kgo.MaxBufferedRecords(1<<18))...)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	n := 0
	start := time.Now()
	if err := Generate(cfg, func(ch Change) error {
		n++
		prod.Produce(ctx, ch.Record("memo.registry"), func(_ *kgo.Record, err error) {
			if err != nil {
				b.Error(err)
			}
		})
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	if err := prod.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	prod.Close()
	b.Logf("produced %d records in %v", n, time.Since(start).Round(time.Millisecond))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		cpu0 := cpuSeconds()
		start := time.Now()
		v, err := NewView(ctx, opts, WithLogger(quiet()), WithCitizenCapacity(cfg.Citizens))
		if err != nil {
			b.Fatal(err)
		}
		if err := v.WaitCaughtUp(ctx); err != nil {
			b.Fatal(err)
		}
		el := time.Since(start)
		cpu := cpuSeconds() - cpu0
		if st := v.Stats(); st.Citizens != cfg.Citizens {
			b.Fatalf("caught up with %d citizens", st.Citizens)
		}
		b.ReportMetric(el.Seconds(), "load-s")
		b.ReportMetric(float64(n)/el.Seconds(), "records/s")
		// CPU seconds of the process (View and broker together): the
		// figure that holds on a busy machine, where wall time does not.
		b.ReportMetric(cpu, "cpu-s(view+broker)")
		b.ReportMetric(float64(rssBytes())/(1<<20), "process-RSS-MiB(with-broker)")
		v.Close()
	}
}

// cpuSeconds is the process's user+system CPU time.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Utime.Sec+ru.Stime.Sec) + float64(ru.Utime.Usec+ru.Stime.Usec)/1e6
}
