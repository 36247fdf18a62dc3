package schedule

import "github.com/prometheus/client_golang/prometheus"

// metrics of the stage. Decisions are counted when made: a batch whose
// transaction aborts is decided (and counted) again, so the counters can
// run slightly ahead of what committed; memoflow_stage_records_out_total
// {stage="schedule"} counts only committed outputs.
type metrics struct {
	decisions    *prometheus.CounterVec
	ticksSkipped prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "memoflow_schedule_decisions_total",
			Help: "Value-date decisions: pass (no future value date), held, released, and recall outcomes (recalled, already_recalled, too_late, not_found).",
		}, []string{"decision"}),
		ticksSkipped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "memoflow_schedule_ticks_skipped_total",
			Help: "Release ticks skipped because the partition's index was still rebuilding or reading back the previous release.",
		}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.decisions, m.ticksSkipped} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
