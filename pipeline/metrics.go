package pipeline

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the per-stage counters every runner exports. One Metrics is
// shared by all runners of a process; the stage name is a label.
type Metrics struct {
	RecordsIn   *prometheus.CounterVec
	RecordsOut  *prometheus.CounterVec
	RecordsDLQ  *prometheus.CounterVec
	Errors      *prometheus.CounterVec
	Batches     *prometheus.HistogramVec
	BatchSize   *prometheus.HistogramVec
	TxnAborts   *prometheus.CounterVec
	ConsumerLag *prometheus.GaugeVec
}

var (
	defaultMetricsOnce sync.Once
	defaultMetrics     *Metrics
)

// NewMetrics registers the stage metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		RecordsIn: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "memoflow", Name: "stage_records_in_total",
			Help: "Records consumed and handled by a stage (counted once the batch is committed).",
		}, []string{"stage"}),
		RecordsOut: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "memoflow", Name: "stage_records_out_total",
			Help: "Records a stage produced, by topic.",
		}, []string{"stage", "topic"}),
		RecordsDLQ: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "memoflow", Name: "stage_records_dlq_total",
			Help: "Records a stage sent to the dead-letter topic, by error code.",
		}, []string{"stage", "code"}),
		Errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "memoflow", Name: "stage_errors_total",
			Help: "Stage errors by class (transient: retried, fatal: stage stopped).",
		}, []string{"stage", "class"}),
		Batches: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "memoflow", Name: "stage_batch_seconds",
			Help:    "Time from a batch's poll to its commit.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}, []string{"stage"}),
		BatchSize: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "memoflow", Name: "stage_batch_records",
			Help:    "Records per batch.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 10),
		}, []string{"stage"}),
		TxnAborts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "memoflow", Name: "stage_transaction_aborts_total",
			Help: "Transactions aborted (rebalance, produce failure); their records are processed again.",
		}, []string{"stage"}),
		ConsumerLag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "memoflow", Name: "consumer_lag_records",
			Help: "Records between a stage group's committed offset and the partition end.",
		}, []string{"stage", "topic", "partition"}),
	}
	reg.MustRegister(m.RecordsIn, m.RecordsOut, m.RecordsDLQ, m.Errors, m.Batches, m.BatchSize, m.TxnAborts, m.ConsumerLag)
	return m
}

// DefaultMetrics returns the process-wide metrics on the default registry.
func DefaultMetrics() *Metrics {
	defaultMetricsOnce.Do(func() { defaultMetrics = NewMetrics(prometheus.DefaultRegisterer) })
	return defaultMetrics
}
