package forward

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	outcomes    *prometheus.CounterVec
	postSeconds prometheus.Histogram
	moved       prometheus.Counter
}

// newMetrics registers on r; nil means unregistered (tests).
func newMetrics(r prometheus.Registerer) *metrics {
	m := &metrics{
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "memoflow", Subsystem: "forward", Name: "outcomes_total",
			Help: "Forward decisions: forwarded, too_large, refused, rejected, rescheduled, given_up, deferred (not reached in a batch), duplicate (a retry the timer moved twice).",
		}, []string{"outcome"}),
		postSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "memoflow", Subsystem: "forward", Name: "pickup_post_seconds",
			Help:    "Duration of one POST to a pickup system.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}),
		moved: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "memoflow", Subsystem: "forward", Name: "retries_due_total",
			Help: "Failed forwards the timer moved back to memo.forward when their gap had passed.",
		}),
	}
	if r != nil {
		r.MustRegister(m.outcomes, m.postSeconds, m.moved)
	}
	return m
}
