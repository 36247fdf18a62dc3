package eventlog

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	inserted      prometheus.Counter
	skipped       prometheus.Counter
	rejected      *prometheus.CounterVec
	errors        *prometheus.CounterVec
	insertSeconds prometheus.Histogram
	checkSeconds  prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) (metrics, error) {
	m := metrics{
		inserted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "memoflow_eventlog_rows_inserted_total",
			Help: "Event rows ClickHouse acknowledged.",
		}),
		skipped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "memoflow_eventlog_rows_skipped_total",
			Help: "Event rows not inserted because ClickHouse already had them (a retry or a restart).",
		}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "memoflow_eventlog_records_rejected_total",
			Help: "memo.events records sent to the DLQ, by code.",
		}, []string{"code"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "memoflow_eventlog_insert_errors_total",
			Help: "Failed inserts, by class (transient: retried; fatal: the stage stops).",
		}, []string{"class"}),
		insertSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "memoflow_eventlog_insert_seconds",
			Help:    "Time of one acknowledged INSERT of a batch.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 13), // 10 ms .. 41 s
		}),
		checkSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "memoflow_eventlog_check_seconds",
			Help:    "Time of one look-up of already-written rows (first batch per partition, retries).",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 15), // 1 ms .. 16 s
		}),
	}
	for _, c := range []prometheus.Collector{m.inserted, m.skipped, m.rejected, m.errors, m.insertSeconds, m.checkSeconds} {
		if err := reg.Register(c); err != nil {
			return metrics{}, err
		}
	}
	return m, nil
}
