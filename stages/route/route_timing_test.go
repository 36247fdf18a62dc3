package route

import (
	"context"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/memoflow/memoflow/pipeline"
	"github.com/memoflow/memoflow/schemas/records"
	"github.com/memoflow/memoflow/schemas/registry"
)

// The national registry of issue 6 (5M citizens, 800k companies, 100
// authorities x 100 contact points = 10k), built once per test binary;
// MEMOFLOW_BENCH_CITIZENS / MEMOFLOW_BENCH_COMPANIES shrink it.
var national struct {
	once  sync.Once
	view  *registry.View
	envs  []records.Envelope
	build time.Duration
}

func nationalRegistry(b *testing.B) (*registry.View, []records.Envelope) {
	national.once.Do(func() {
		cfg := registry.GenConfig{Seed: 1, Citizens: 5_000_000, Companies: 800_000, Authorities: 100, PointsPerAuthority: 100, MailboxProviders: 3}
		if n, err := strconv.Atoi(os.Getenv("MEMOFLOW_BENCH_CITIZENS")); err == nil {
			cfg.Citizens = n
		}
		if n, err := strconv.Atoi(os.Getenv("MEMOFLOW_BENCH_COMPANIES")); err == nil {
			cfg.Companies = n
		}
		start := time.Now()
		v := registry.NewMemView(registry.WithCitizenCapacity(cfg.Citizens))
		var cprs, cvrs []string
		var points [][2]string // authority, contact point
		r := rand.New(rand.NewPCG(3, 4))
		err := registry.Generate(cfg, func(c registry.Change) error {
			v.Apply(c)
			switch e := c.Entity.(type) {
			case *registry.Citizen:
				if r.IntN(5) == 0 {
					cprs = append(cprs, e.CPR)
				}
			case *registry.Company:
				if r.IntN(5) == 0 {
					cvrs = append(cvrs, e.CVR)
				}
			case *registry.ContactPoint:
				points = append(points, [2]string{e.Org, e.ID})
			}
			return nil
		})
		if err != nil {
			panic(err)
		}
		// 1M messages: 75% citizens (10% of them NemSMS), 15% companies
		// (30% VIRKSOMHEDSPOST), 10% MYNDIGHEDSPOST to contact points;
		// recipients drawn at random so lookups miss the CPU caches as a
		// national send does.
		envs := make([]records.Envelope, 1<<20)
		for i := range envs {
			e := &envs[i]
			e.MessageType = records.TypeDigitalPost
			switch x := r.Float64(); {
			case x < 0.75:
				e.RecipientType, e.RecipientID = records.IDCPR, cprs[r.IntN(len(cprs))]
				if r.IntN(10) == 0 {
					e.MessageType = records.TypeNemSMS
				}
			case x < 0.90:
				e.RecipientType, e.RecipientID = records.IDCVR, cvrs[r.IntN(len(cvrs))]
				if r.IntN(10) < 3 {
					e.PostType = PostVirksomhed
				}
			default:
				p := points[r.IntN(len(points))]
				e.RecipientType, e.RecipientID, e.PostType, e.ContactPointID = records.IDCVR, p[0], PostMyndighed, p[1]
			}
		}
		national.view, national.envs, national.build = v, envs, time.Since(start)
		runtime.GC()
	})
	return national.view, national.envs
}

// BenchmarkDecide: routing decisions per second on one goroutine (run with
// -cpu 1 for the per-core figure) against the 5M/800k/10k registry. The
// baseline, timed in the same run over the same envelopes: one bare Go map
// lookup of the recipient id (map[string]uint32 holding the same keys),
// the least any registry lookup can cost.
func BenchmarkDecide(b *testing.B) {
	v, envs := nationalRegistry(b)
	s := newStage(b, v, noon)
	base := make(map[string]uint32, len(envs))
	for i := range envs {
		base[envs[i].RecipientID] = uint32(i)
	}
	mask := len(envs) - 1
	b.ReportAllocs()
	b.ResetTimer()

	// CPU time, not wall time: on a machine shared with other work the
	// wall clock counts time this benchmark was not running. With -cpu 1
	// and no allocation, the process's CPU time is this loop's.
	start := cpuSeconds()
	var sink uint32
	for i := 0; i < b.N; i++ {
		sink += base[envs[i&mask].RecipientID]
	}
	baseline := cpuSeconds() - start

	start = cpuSeconds()
	routed := 0
	for i := 0; i < b.N; i++ {
		if d := s.Decide(&envs[i&mask], noon); d.System != nil {
			routed++
		}
	}
	decide := cpuSeconds() - start
	b.StopTimer()
	if routed < b.N*9/10 {
		b.Fatalf("only %d of %d routed", routed, b.N)
	}
	runtime.KeepAlive(sink)
	b.ReportMetric(float64(b.N)/decide, "decisions/cpu-s")
	b.ReportMetric(float64(b.N)/baseline, "baseline-lookups/cpu-s")
	b.ReportMetric(decide/baseline, "decide/baseline")
	b.ReportMetric(national.build.Seconds(), "registry-build-s")
}

// BenchmarkDecideParallel: decisions per second over all GOMAXPROCS
// goroutines (the read lock is shared).
func BenchmarkDecideParallel(b *testing.B) {
	v, envs := nationalRegistry(b)
	s := newStage(b, v, noon)
	mask := len(envs) - 1
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		i := rand.IntN(len(envs))
		for pb.Next() {
			s.Decide(&envs[i&mask], noon)
			i++
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "decisions/s")
}

// BenchmarkTransform: the whole stage per message (decode the Envelope,
// decide, encode it and its events), in batches of 1000 records of 2 KiB
// bodies, against the same registry.
func BenchmarkTransform(b *testing.B) {
	v, envs := nationalRegistry(b)
	s := newStage(b, v, noon)
	body := make([]byte, 2048)
	recs := make([]*kgo.Record, 1000)
	for i := range recs {
		e := envs[i*997%len(envs)]
		e.MessageUUID, e.SenderOrg, e.Body = "6f1c2c9e-8f5e-4c55-9a3e-"+strconv.Itoa(100000000000+i), "12345678", body
		recs[i] = &kgo.Record{Value: e.Append(nil)}
	}
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuSeconds()
	n := 0
	for n < b.N {
		batch := &pipeline.Batch{Records: recs}
		if err := s.Transform(context.Background(), batch); err != nil {
			b.Fatal(err)
		}
		n += len(recs)
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "messages/s")
	b.ReportMetric(float64(n)/(cpuSeconds()-cpu0), "messages/cpu-s")
}

// cpuSeconds is the process's user+system CPU time.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Utime.Sec+ru.Stime.Sec) + float64(ru.Utime.Usec+ru.Stime.Usec)/1e6
}
