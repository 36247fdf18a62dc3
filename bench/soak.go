package bench

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"sort"
	"time"
)

// Soak sends at a fixed rate for a set time and checks that memory stays
// flat: the RSS of the last quarter of the load may exceed that of the
// second quarter (after warm-up) by at most MaxGrowth. Everything else
// (arrivals, the exact event log) is checked as for mass-send.
type Soak struct {
	Rate     float64 // messages per second
	Duration time.Duration
	// MaxGrowth is the allowed RSS growth, late over early (0: 0.2).
	MaxGrowth float64

	MassSend // the same load, arrival point and expectations
}

func (s *Soak) Name() string { return "soak" }

// Messages is the soak's load size for Options.Messages.
func (s *Soak) Messages() int { return int(math.Ceil(s.Rate * s.Duration.Seconds())) }

// BatchSize keeps batches at most a second apart, so the rate is steady.
func (s *Soak) BatchSize(max int) int {
	return int(math.Max(1, math.Min(float64(max), math.Round(s.Rate))))
}

func (s *Soak) Prepare(ctx context.Context, env *Env) (*Manifest, error) {
	if s.Rate <= 0 || s.Duration <= 0 {
		return nil, errors.New("bench soak: rate and duration must be positive")
	}
	if env.Opts.Live {
		return nil, errors.New("bench soak: --live does not pace its sends; use prepared batches or --direct")
	}
	return s.MassSend.Prepare(ctx, env)
}

// Load sends batch i at start + i*BatchSize/Rate; a batch that is late
// (the pipeline pushed back) is sent at once, and the lateness reported.
func (s *Soak) Load(ctx context.Context, env *Env) error {
	late, err := loadPaced(ctx, env, s.set, s.prepared, s.Rate)
	if err != nil {
		return err
	}
	if interval := time.Duration(float64(s.set.BatchSize) / s.Rate * float64(time.Second)); late > interval && env.Report != nil {
		env.Report.Notes = append(env.Report.Notes, fmt.Sprintf("the sender fell behind the set rate by up to %s: the pipeline did not keep up with %.0f msgs/s", late.Round(time.Millisecond), s.Rate))
	}
	return nil
}

// loadPaced sends set's batch i at start + i*BatchSize/rate (prepared
// batch files, or produced directly with --direct) and returns how late
// the latest batch went out.
func loadPaced(ctx context.Context, env *Env, set *MessageSet, prepared *Prepared, rate float64) (time.Duration, error) {
	interval := time.Duration(float64(set.BatchSize) / rate * float64(time.Second))
	start := time.Now()
	var d *directProducer
	if env.Opts.Direct {
		var err error
		if d, err = newDirectProducer(env); err != nil {
			return 0, err
		}
		defer d.close()
	}
	client := &http.Client{Timeout: 10 * time.Minute}
	var late time.Duration
	for b := 0; b < set.Batches(); b++ {
		due := start.Add(time.Duration(b) * interval)
		if w := time.Until(due); w > 0 {
			select {
			case <-ctx.Done():
				return late, ctx.Err()
			case <-time.After(w):
			}
		} else {
			late = max(late, -w)
		}
		var err error
		if d != nil {
			err = d.batch(ctx, env, set, b)
		} else {
			err = postBatch(ctx, client, env, set, b, prepared.Files[b])
		}
		if err != nil {
			return late, err
		}
	}
	if d != nil {
		if err := d.flush(ctx); err != nil {
			return late, err
		}
	}
	return late, nil
}

// RSSTrend compares memory early and late in a run.
type RSSTrend struct {
	EarlyMB float64 `json:"early_mb"` // median RSS of the second quarter of the load
	LateMB  float64 `json:"late_mb"`  // median RSS of the last quarter
	Growth  float64 `json:"growth"`   // late/early - 1
	Flat    bool    `json:"flat"`
}

// Check adds the memory verdict to the report.
func (s *Soak) Check(r *Report) {
	tr := rssTrend(r.Samples, r.LoadSeconds)
	maxGrowth := s.MaxGrowth
	if maxGrowth <= 0 {
		maxGrowth = 0.2
	}
	tr.Flat = tr.EarlyMB > 0 && tr.Growth <= maxGrowth
	r.RSS = &tr
	if tr.EarlyMB == 0 {
		r.Failures = append(r.Failures, "soak: no RSS samples (give --metrics-url for a running setup)")
	} else if !tr.Flat {
		r.Failures = append(r.Failures, fmt.Sprintf("soak: RSS grew %.0f%% (%.0f MB to %.0f MB), more than %.0f%%", 100*tr.Growth, tr.EarlyMB, tr.LateMB, 100*maxGrowth))
	}
	r.OK = len(r.Failures) == 0
}

func rssTrend(ss []Sample, loadSecs float64) RSSTrend {
	var early, late []float64
	for _, s := range ss {
		switch {
		case s.T >= loadSecs/4 && s.T < loadSecs/2:
			early = append(early, s.RSSMB)
		case s.T >= loadSecs*3/4 && s.T <= loadSecs:
			late = append(late, s.RSSMB)
		}
	}
	med := func(v []float64) float64 {
		sort.Float64s(v)
		return Quantile(v, 0.5)
	}
	t := RSSTrend{EarlyMB: med(early), LateMB: med(late)}
	if t.EarlyMB > 0 {
		t.Growth = t.LateMB/t.EarlyMB - 1
	}
	return t
}

// ReportChecker is implemented by scenarios with verdicts of their own
// (soak's memory); Run calls it after the common checks.
type ReportChecker interface {
	Check(r *Report)
}
