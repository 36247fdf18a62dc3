package eventquery

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	requests      *prometheus.CounterVec
	seconds       *prometheus.HistogramVec
	auditFailures prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "memoflow_eventquery_requests_total",
			Help: "Event-log query requests by endpoint and answer code (OK or an EVENTQUERY_* code; AUTH_* refusals are not counted here).",
		}, []string{"endpoint", "code"}),
		seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "memoflow_eventquery_request_seconds",
			Help:    "Time to answer an event-log query request, audit and ClickHouse included.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 14), // 5 ms .. 41 s
		}, []string{"endpoint"}),
		auditFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "memoflow_eventquery_audit_failures_total",
			Help: "Searches refused because their EVENT_LOG_SEARCHES/STATISTICS_READ event could not be produced.",
		}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.seconds, m.auditFailures} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
