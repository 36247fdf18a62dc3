package receipts

import "github.com/prometheus/client_golang/prometheus"

type sinkMetrics struct {
	inserted      prometheus.Counter
	skipped       *prometheus.CounterVec
	rejected      *prometheus.CounterVec
	errors        *prometheus.CounterVec
	insertSeconds prometheus.Histogram
	checkSeconds  prometheus.Histogram
}

func newSinkMetrics(reg prometheus.Registerer) (sinkMetrics, error) {
	m := sinkMetrics{
		inserted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "memoflow_receipts_rows_inserted_total",
			Help: "Receipt rows ClickHouse acknowledged.",
		}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "memoflow_receipts_rows_skipped_total",
			Help: "Receipts not inserted: reason=written (this record is stored already: a retry or restart) or reason=duplicate (the same receipt id from another record).",
		}, []string{"reason"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "memoflow_receipts_records_rejected_total",
			Help: "memo.receipts records sent to the DLQ, by code.",
		}, []string{"code"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "memoflow_receipts_insert_errors_total",
			Help: "Failed checks and inserts, by class (transient: retried; fatal: the stage stops).",
		}, []string{"class"}),
		insertSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "memoflow_receipts_insert_seconds",
			Help:    "Time of one acknowledged INSERT of a batch.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 13), // 5 ms .. 20 s
		}),
		checkSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "memoflow_receipts_check_seconds",
			Help:    "Time of one look-up of already-stored receipts (every batch).",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 15), // 1 ms .. 16 s
		}),
	}
	for _, c := range []prometheus.Collector{m.inserted, m.skipped, m.rejected, m.errors, m.insertSeconds, m.checkSeconds} {
		if err := reg.Register(c); err != nil {
			return sinkMetrics{}, err
		}
	}
	return m, nil
}

type apiMetrics struct {
	requests     *prometheus.CounterVec
	seconds      *prometheus.HistogramVec
	markFailures prometheus.Counter
}

func newAPIMetrics(reg prometheus.Registerer) (apiMetrics, error) {
	m := apiMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "memoflow_receipts_api_requests_total",
			Help: "Receipts API requests by endpoint and answer code (OK or the errorCode).",
		}, []string{"endpoint", "code"}),
		seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "memoflow_receipts_api_seconds",
			Help:    "Receipts API request latency by endpoint.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 15),
		}, []string{"endpoint"}),
		markFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "memoflow_receipts_api_delete_after_read_failures_total",
			Help: "GET ?delete=true answers whose deletion could not be stored (the receipt stays listed).",
		}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.seconds, m.markFailures} {
		if err := reg.Register(c); err != nil {
			return apiMetrics{}, err
		}
	}
	return m, nil
}
