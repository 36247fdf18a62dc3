package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/twmb/franz-go/pkg/kadm"
)

// Sample is the state of a run at one second. Counters are cumulative;
// the report derives rates from consecutive samples.
type Sample struct {
	T        float64 `json:"t_s"`      // seconds since the load started
	Accepted int64   `json:"accepted"` // messages ingest accepted so far
	Arrived  int64   `json:"arrived"`  // first arrivals so far
	// LatP50 and LatP99 are the end-to-end latency of the arrivals since
	// the previous sample (ms; 0 when none arrived).
	LatP50 float64 `json:"lat_p50_ms"`
	LatP99 float64 `json:"lat_p99_ms"`
	Events uint64  `json:"events"` // rows in the ClickHouse event log
	// Committed is the sum of committed offsets per consumer group and Lag
	// its records behind the end offsets (kadm, every group memoflow-*).
	Committed map[string]int64 `json:"committed"`
	Lag       map[string]int64 `json:"lag"`
	// StageIn is memoflow_stage_records_in_total per stage, where the
	// stages' metrics can be read (in process, or --metrics-url).
	StageIn    map[string]float64 `json:"stage_in,omitempty"`
	CPUSeconds float64            `json:"cpu_s"`  // of the measured processes, cumulative
	RSSMB      float64            `json:"rss_mb"` // of the measured processes, summed
}

// ProcStats reads CPU seconds and RSS of the processes under test.
type ProcStats interface {
	Read(ctx context.Context) (cpuSeconds, rssMB float64, err error)
}

// SelfStats reads this process: right when the pipeline runs in process
// (the bench's own senders and bookkeeping are included, and said so).
type SelfStats struct{}

func (SelfStats) Read(context.Context) (float64, float64, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, 0, err
	}
	cpu := float64(ru.Utime.Sec+ru.Stime.Sec) + float64(ru.Utime.Usec+ru.Stime.Usec)/1e6
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return cpu, 0, nil
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return cpu, 0, nil
	}
	pages, _ := strconv.ParseFloat(f[1], 64)
	return cpu, pages * float64(os.Getpagesize()) / (1 << 20), nil
}

// MaxRSSMB is this process's peak RSS (getrusage).
func MaxRSSMB() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return float64(ru.Maxrss) / 1024
}

// MetricsStats scrapes Prometheus endpoints (a running setup's /metrics)
// and sums process_cpu_seconds_total and process_resident_memory_bytes.
type MetricsStats struct {
	URLs   []string
	Client *http.Client
}

func (m *MetricsStats) Read(ctx context.Context) (float64, float64, error) {
	var cpu, rss float64
	for _, u := range m.URLs {
		fams, err := scrape(ctx, m.Client, u)
		if err != nil {
			return 0, 0, err
		}
		cpu += gaugeOrCounter(fams["process_cpu_seconds_total"])
		rss += gaugeOrCounter(fams["process_resident_memory_bytes"]) / (1 << 20)
	}
	return cpu, rss, nil
}

func scrape(ctx context.Context, c *http.Client, u string) (map[string]*dto.MetricFamily, error) {
	if c == nil {
		c = &http.Client{Timeout: 5 * time.Second}
	}
	req, err := http.NewRequestWithContext(ctx, "GET", u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("metrics %s answered %d", u, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return nil, err
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	return p.TextToMetricFamilies(bytes.NewReader(body))
}

func gaugeOrCounter(f *dto.MetricFamily) float64 {
	if f == nil {
		return 0
	}
	sum := 0.0
	for _, m := range f.Metric {
		switch {
		case m.Counter != nil:
			sum += m.Counter.GetValue()
		case m.Gauge != nil:
			sum += m.Gauge.GetValue()
		case m.Untyped != nil:
			sum += m.Untyped.GetValue()
		}
	}
	return sum
}

// stageIn sums memoflow_stage_records_in_total per stage label.
func stageIn(fams map[string]*dto.MetricFamily) map[string]float64 {
	f := fams["memoflow_stage_records_in_total"]
	if f == nil {
		return nil
	}
	out := map[string]float64{}
	for _, m := range f.Metric {
		for _, l := range m.Label {
			if l.GetName() == "stage" {
				out[l.GetValue()] += m.GetCounter().GetValue()
			}
		}
	}
	return out
}

// sampler records a Sample every Interval.
type sampler struct {
	adm      *kadm.Client
	groupPfx string
	ch       driver.Conn
	eventsTb string // database.events
	proc     ProcStats
	gatherer prometheus.Gatherer
	metrics  []string
	tracker  *tracker
	accepted func() int64
	onSample func(Sample)

	mu      sync.Mutex
	samples []Sample
	errs    map[string]string // first error per source, for the report
}

func (s *sampler) run(ctx context.Context, start time.Time, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		s.take(ctx, start)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *sampler) fail(src string, err error) {
	if err == nil || s.errs[src] != "" {
		return
	}
	s.errs[src] = err.Error()
}

// take records one sample now. A source that fails leaves its fields
// zero for this second and is named in the report; it does not stop the run.
func (s *sampler) take(ctx context.Context, start time.Time) Sample {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	sm := Sample{T: time.Since(start).Seconds(), Committed: map[string]int64{}, Lag: map[string]int64{}}
	if s.accepted != nil {
		sm.Accepted = s.accepted()
	}
	if s.tracker != nil {
		sm.Arrived, sm.LatP50, sm.LatP99 = s.tracker.snapshot()
	}
	s.mu.Lock()
	if s.errs == nil {
		s.errs = map[string]string{}
	}
	s.mu.Unlock()
	if s.adm != nil {
		listed, err := s.adm.ListGroups(ctx)
		var groups []string
		if err == nil {
			for _, g := range listed.Groups() {
				if strings.HasPrefix(g, s.groupPfx) {
					groups = append(groups, g)
				}
			}
			sort.Strings(groups)
		}
		if err == nil && len(groups) > 0 {
			var lags kadm.DescribedGroupLags
			lags, err = s.adm.Lag(ctx, groups...)
			for g, l := range lags {
				name := strings.TrimPrefix(g, s.groupPfx)
				var com, lag int64
				for _, ps := range l.Lag {
					for _, m := range ps {
						if m.Commit.At > 0 {
							com += m.Commit.At
						}
						if m.Lag > 0 {
							lag += m.Lag
						}
					}
				}
				sm.Committed[name], sm.Lag[name] = com, lag
			}
		}
		s.mu.Lock()
		s.fail("kafka lag", err)
		s.mu.Unlock()
	}
	if s.ch != nil {
		var n uint64
		err := s.ch.QueryRow(ctx, "SELECT count() FROM "+s.eventsTb).Scan(&n)
		sm.Events = n
		s.mu.Lock()
		s.fail("clickhouse count", err)
		s.mu.Unlock()
	}
	if s.proc != nil {
		cpu, rss, err := s.proc.Read(ctx)
		sm.CPUSeconds, sm.RSSMB = cpu, rss
		s.mu.Lock()
		s.fail("process stats", err)
		s.mu.Unlock()
	}
	if s.gatherer != nil {
		if fams, err := s.gatherer.Gather(); err == nil {
			m := map[string]*dto.MetricFamily{}
			for _, f := range fams {
				m[f.GetName()] = f
			}
			sm.StageIn = stageIn(m)
		}
	}
	for _, u := range s.metrics {
		if fams, err := scrape(ctx, nil, u); err == nil {
			for k, v := range stageIn(fams) {
				if sm.StageIn == nil {
					sm.StageIn = map[string]float64{}
				}
				sm.StageIn[k] += v
			}
		} else {
			s.mu.Lock()
			s.fail("metrics "+redactURL(u), err)
			s.mu.Unlock()
		}
	}
	s.mu.Lock()
	s.samples = append(s.samples, sm)
	s.mu.Unlock()
	if s.onSample != nil {
		s.onSample(sm)
	}
	return sm
}

func (s *sampler) result() ([]Sample, map[string]string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Sample(nil), s.samples...), s.errs
}

func redactURL(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "?"
	}
	p.User = nil
	return p.String()
}
