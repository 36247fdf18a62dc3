package schedule

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/memoflow/memoflow/pipeline"
	"github.com/memoflow/memoflow/schemas/records"
)

// Child processes: the release benchmark runs the broker in one (this test
// binary re-executed with MEMOFLOW_SCHEDULE_BROKER set), so the memory
// measured here is the stage's (and its clients'), not kfake's copy of a
// million held messages; the SIGKILL test runs the stage in one
// (MEMOFLOW_SCHEDULE_CHILD=stage).
func TestMain(m *testing.M) {
	if os.Getenv("MEMOFLOW_SCHEDULE_BROKER") != "" {
		os.Exit(childBroker())
	}
	if os.Getenv("MEMOFLOW_SCHEDULE_CHILD") == "stage" {
		os.Exit(childStage())
	}
	os.Exit(m.Run())
}

func childBroker() int {
	parts, _ := strconv.Atoi(os.Getenv("MEMOFLOW_SCHEDULE_BROKER"))
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(int32(parts), allTopics...))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer c.Close()
	fmt.Println(c.ListenAddrs()[0])
	// Until the parent closes stdin (or dies).
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
	return 0
}

func startChildBroker(b *testing.B, parts int) string {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "MEMOFLOW_SCHEDULE_BROKER="+strconv.Itoa(parts))
	stdin, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = stdin.Close(); _ = cmd.Wait() })
	addr, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		b.Fatal(err)
	}
	return strings.TrimSpace(addr)
}

// memSampler records the peak Go heap in use and RSS while it runs.
type memSampler struct {
	heapMax, rssMax atomic.Uint64
	stop            chan struct{}
	done            chan struct{}
}

func rssBytes() uint64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, _ := strconv.ParseUint(f[1], 10, 64)
	return pages * uint64(os.Getpagesize())
}

func sampleMem() *memSampler {
	s := &memSampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > s.heapMax.Load() {
				s.heapMax.Store(ms.HeapInuse)
			}
			if r := rssBytes(); r > s.rssMax.Load() {
				s.rssMax.Store(r)
			}
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

func (s *memSampler) end() (heapMB, rssMB float64) {
	close(s.stop)
	<-s.done
	return float64(s.heapMax.Load()) / (1 << 20), float64(s.rssMax.Load()) / (1 << 20)
}

func writeHeapProfile(b *testing.B, path string) {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := pprof.WriteHeapProfile(f); err != nil {
		b.Fatal(err)
	}
}

// counter counts memo.ready records without keeping them: live ones (by
// key prefix) apart from released ones.
type counter struct {
	live, released atomic.Int64
	cancel         context.CancelFunc
	done           chan struct{}
}

const livePrefix = "11111111-"

func (h *harness) count(b *testing.B) *counter {
	cl, err := kgo.NewClient(append(h.opts(), kgo.ConsumeTopics(pipeline.TopicReady),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(50*time.Millisecond), kgo.FetchMaxBytes(4<<20), kgo.FetchMaxPartitionBytes(1<<20))...)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &counter{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		defer cl.Close()
		for ctx.Err() == nil {
			cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
				if bytes.HasPrefix(r.Key, []byte(livePrefix)) {
					c.live.Add(1)
				} else {
					c.released.Add(1)
				}
			})
		}
	}()
	b.Cleanup(func() { cancel(); <-c.done })
	return c
}

// scrambledUUID spreads keys over the index like real random uuids.
func scrambledUUID(i int) string {
	x := uint64(i)*0x9E3779B97F4A7C15 + 0x632BE59BD9B4E019
	return fmt.Sprintf("%08x-%04x-4%03x-8%03x-%012x", uint32(x>>32), uint16(x>>16), uint16(x)&0xfff, i>>48&0xfff, i&0xffffffffffff)
}

// fillHeld writes n HELD records straight to memo.held (what the stage
// would have written while holding them): all due at releaseAt.
func (h *harness) fillHeld(b testing.TB, n int, releaseAt time.Time) {
	cl, err := kgo.NewClient(append(h.opts(), kgo.ProducerLinger(5*time.Millisecond), kgo.MaxBufferedRecords(200000))...)
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	var first error
	var mu sync.Mutex
	// Bodies that compress like text, not like a run of one byte (which
	// would make an 8 MiB fetch decompress to hundreds of MiB).
	rng := rand.New(rand.NewPCG(1, 2))
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/ <>=\"\n"
	body := func() []byte {
		b := make([]byte, 200)
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		return b
	}
	for i := range n {
		u := scrambledUUID(i)
		e := records.Envelope{MessageUUID: u, MessageID: "m", TransmissionID: "tx", MemoVersion: 12, MessageType: records.TypeDigitalPost,
			PostType: "MYNDIGHEDSPOST", SenderOrg: "22222222", SenderSystem: "sys", RecipientType: records.IDCPR, RecipientID: "0101701234",
			ValueDate: 1, Size: 200, Body: body()}
		hr := heldRec{kind: kindHeld, releaseAt: releaseAt.UnixMilli(), seq: int64(i), at: 1, org: "22222222", system: "sys", envelope: e.Append(nil)}
		cl.Produce(context.Background(), &kgo.Record{Topic: pipeline.TopicHeld, Key: []byte(u), Value: hr.appendTo(nil)}, func(_ *kgo.Record, err error) {
			if err != nil {
				mu.Lock()
				first = err
				mu.Unlock()
			}
		})
	}
	if err := cl.Flush(context.Background()); err != nil || first != nil {
		b.Fatal(err, first)
	}
}

// liveRun sends n live (undated) messages and returns the rate at which
// they reached memo.ready.
func (h *harness) liveRun(b *testing.B, c *counter, from, n int) float64 {
	cl, err := kgo.NewClient(append(h.opts(), kgo.ProducerLinger(2*time.Millisecond))...)
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	before := c.live.Load()
	start := time.Now()
	for i := from; i < from+n; i++ {
		r := envelope(i, "11111111", 0)
		r.Key = []byte(fmt.Sprintf("%s0000-4000-8000-%012d", livePrefix, i))
		cl.Produce(context.Background(), r, nil)
	}
	deadline := time.Now().Add(5 * time.Minute)
	for c.live.Load() < before+int64(n) {
		if time.Now().After(deadline) {
			b.Fatalf("live messages: %d of %d after 5 min", c.live.Load()-before, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return float64(n) / time.Since(start).Seconds()
}

// BenchmarkRelease holds 1M messages (100k with -short) due at one
// midnight, and measures in one run: the index rebuild from memo.held, the
// live (undated) message rate with nothing due (baseline), the release
// rate, the live rate during the release and its ratio to the baseline,
// and the peak Go heap and RSS of the stage's process (the broker runs in
// a child process).
//
//	go test -run '^$' -bench Release -benchtime 1x ./stages/schedule/
func BenchmarkRelease(b *testing.B) {
	n, live := 1_000_000, 20_000
	if testing.Short() {
		n, live = 100_000, 5_000
	}
	if v, err := strconv.Atoi(os.Getenv("MEMOFLOW_BENCH_HELD")); err == nil && v > 0 {
		n = v
	}
	const parts = 4
	for b.Loop() {
		addr := startChildBroker(b, parts)
		midnight := cph(2026, time.June, 2, 0, 0)
		h := &harness{t: b, parts: parts, clock: &fakeClock{t: midnight.Add(-time.Hour)}, pseudo: mustPseudo(b),
			kc: pipeline.KafkaConfig{Brokers: addr, ClientID: "bench", DialTimeout: 5 * time.Second, TopicPartitions: parts, TopicReplication: 1}}
		t0 := time.Now()
		h.fillHeld(b, n, midnight)
		b.Logf("filled memo.held with %d in %s", n, time.Since(t0).Round(time.Millisecond))

		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		heapBefore, rssBefore := float64(ms.HeapInuse)/(1<<20), float64(rssBytes())/(1<<20)
		memRebuild := sampleMem()
		c := h.count(b)
		cfg := testConfig(b)
		cfg.TickInterval = 100 * time.Millisecond
		cfg.ReleaseRate = 2_500 // per partition: 10k/s for the stage
		t0 = time.Now()
		run := h.start(cfg, "bench")
		for run.st.Rebuilt() < parts {
			if time.Since(t0) > 10*time.Minute {
				b.Fatal("index not rebuilt within 10 min")
			}
			time.Sleep(5 * time.Millisecond)
		}
		rebuild := time.Since(t0)
		heapRebuild, rssRebuild := memRebuild.end()
		if f := os.Getenv("MEMOFLOW_BENCH_REBUILD_HEAP_PROFILE"); f != "" {
			writeHeapProfile(b, f)
		}
		baseline := h.liveRun(b, c, 0, live)

		memRelease := sampleMem()
		h.clock.Set(midnight)
		relStart := time.Now()
		for c.released.Load() == 0 {
			time.Sleep(time.Millisecond)
		}
		during := h.liveRun(b, c, live, live)
		relDuringLive := c.released.Load()
		for c.released.Load() < int64(n) {
			if time.Since(relStart) > 30*time.Minute {
				b.Fatalf("released %d of %d after 30 min", c.released.Load(), n)
			}
			time.Sleep(10 * time.Millisecond)
		}
		relTook := time.Since(relStart)
		heapMax, rssMax := memRelease.end()
		if f := os.Getenv("MEMOFLOW_BENCH_HEAP_PROFILE"); f != "" {
			writeHeapProfile(b, f)
		}
		run.stop(b)
		if got := c.released.Load(); got != int64(n) {
			b.Fatalf("released %d, want %d", got, n)
		}
		b.ReportMetric(float64(n), "held")
		b.ReportMetric(rebuild.Seconds(), "rebuild_s")
		b.ReportMetric(float64(n)/relTook.Seconds(), "release_msg/s")
		b.ReportMetric(baseline, "live_msg/s")
		b.ReportMetric(during, "live_during_release_msg/s")
		b.ReportMetric(during/baseline, "live_ratio")
		b.ReportMetric(heapRebuild, "heap_rebuild_max_MB")
		b.ReportMetric(heapMax, "heap_release_max_MB")
		b.ReportMetric(rssMax, "rss_release_max_MB")
		b.Logf("%d held: index rebuilt in %s (heap max %.0f MB, RSS max %.0f MB); released in %s (%.0f/s, cap %.0f/s); live %.0f/s alone, %.0f/s during the release (%d released meanwhile); heap %.0f MB before, max %.0f MB during the release; RSS %.0f MB before, max %.0f MB (bbolt pages are file-backed and counted in RSS)",
			n, rebuild.Round(time.Millisecond), heapRebuild, rssRebuild, relTook.Round(time.Millisecond), float64(n)/relTook.Seconds(), cfg.ReleaseRate*parts,
			baseline, during, relDuringLive, heapBefore, heapMax, rssBefore, rssMax)
	}
}
