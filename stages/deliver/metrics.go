package deliver

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	outcomes      *prometheus.CounterVec
	pushSeconds   prometheus.Histogram
	circuitOpen   prometheus.Counter
	deactivations prometheus.Counter
	retryWaiting  prometheus.Gauge
	pull          *prometheus.CounterVec
	configErrors  *prometheus.CounterVec
	receiptFiles  *prometheus.CounterVec
	journal       *journalMetrics
}

// journalMetrics are the push journal's (journal.go).
type journalMetrics struct {
	entries prometheus.Gauge
	errors  prometheus.Counter
	skips   prometheus.Counter
	syncs   *prometheus.CounterVec
}

// newMetrics registers on r; nil means unregistered (tests).
func newMetrics(r prometheus.Registerer) *metrics {
	m := &metrics{
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "memoflow", Subsystem: "deliver", Name: "outcomes_total",
			Help: "Delivery decisions: delivered, rescheduled, failed (schedule ran out or permanent), outbox (waits for pull), diverted (a slow system's message moved to the slow lane).",
		}, []string{"outcome"}),
		pushSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "memoflow", Subsystem: "deliver", Name: "push_seconds",
			Help:    "Duration of one push to a recipient system.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}),
		circuitOpen: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "memoflow", Subsystem: "deliver", Name: "circuit_open_total",
			Help: "Attempts rescheduled without a call because the system's circuit was open.",
		}),
		deactivations: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "memoflow", Subsystem: "deliver", Name: "deactivations_total",
			Help: "Recipient systems deactivated after receiving nothing for --deliver-deactivate-after.",
		}),
		retryWaiting: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "memoflow", Subsystem: "deliver", Name: "retry_held_records",
			Help: "Records the retry consumer holds in memory, read but not yet due (bounded by one poll per partition).",
		}),
		pull: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "memoflow", Subsystem: "deliver", Name: "pull_requests_total",
			Help: "Pull API requests by endpoint and answer code.",
		}, []string{"endpoint", "code"}),
		configErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "memoflow", Subsystem: "deliver", Name: "transport_config_errors_total",
			Help: "SFTP/SMTP messages failed for a fault of the system's or memoflow's setup (host key mismatch, certificate expired or invalid, key rejected, no key configured): alert on any increase.",
		}, []string{"system", "protocol", "code"}),
		receiptFiles: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "memoflow", Subsystem: "deliver", Name: "sftp_receipt_files_total",
			Help: "SFTP receipt files picked up: relayed, duplicate (already relayed), invalid (moved to failed/), retry (left for the next poll).",
		}, []string{"outcome"}),
		journal: &journalMetrics{
			entries: prometheus.NewGauge(prometheus.GaugeOpts{
				Namespace: "memoflow", Subsystem: "deliver", Name: "journal_entries",
				Help: "Acknowledged pushes the push journal holds in memory (the last --deliver-journal-window).",
			}),
			errors: prometheus.NewCounter(prometheus.CounterOpts{
				Namespace: "memoflow", Subsystem: "deliver", Name: "journal_write_errors_total",
				Help: "Acknowledged pushes whose journal record could not be written: each may be pushed again if its batch is redone.",
			}),
			skips: prometheus.NewCounter(prometheus.CounterOpts{
				Namespace: "memoflow", Subsystem: "deliver", Name: "journal_skips_total",
				Help: "Pushes not repeated in a redone batch because the journal says the system acknowledged them.",
			}),
			syncs: prometheus.NewCounterVec(prometheus.CounterOpts{
				Namespace: "memoflow", Subsystem: "deliver", Name: "journal_syncs_total",
				Help: "Batches that waited for the journal to be read to its end: ok, or timeout (the batch may repeat pushes).",
			}, []string{"result"}),
		},
	}
	if r != nil {
		// The deliver stage and the pull API may share a registry in one
		// process: the second one uses the collectors already there.
		m.outcomes = register(r, m.outcomes)
		m.pushSeconds = register(r, m.pushSeconds)
		m.circuitOpen = register(r, m.circuitOpen)
		m.deactivations = register(r, m.deactivations)
		m.retryWaiting = register(r, m.retryWaiting)
		m.pull = register(r, m.pull)
		m.configErrors = register(r, m.configErrors)
		m.receiptFiles = register(r, m.receiptFiles)
		m.journal.entries = register(r, m.journal.entries)
		m.journal.errors = register(r, m.journal.errors)
		m.journal.skips = register(r, m.journal.skips)
		m.journal.syncs = register(r, m.journal.syncs)
	}
	return m
}

func register[C prometheus.Collector](r prometheus.Registerer, c C) C {
	if err := r.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if ex, ok := are.ExistingCollector.(C); ok {
				return ex
			}
		}
		panic(err)
	}
	return c
}
