package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/grafana/pyroscope-go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kprom"

	"github.com/memoflow/memoflow/internal/embedded"
	"github.com/memoflow/memoflow/internal/httpserver"
	"github.com/memoflow/memoflow/pipeline"
)

// app holds what every long-running subcommand shares.
type app struct {
	cfg      *Config
	log      *slog.Logger
	reg      *prometheus.Registry
	metrics  *pipeline.Metrics
	http     *httpserver.Server
	broker   *embedded.Broker
	profiler *pyroscope.Profiler
	closers  []func()
	deps     deps
	// generate allows creating local secrets and demo tokens (memoflow run).
	generate bool
	// demoForwardClient, set by the demo seed, is the forward stage's HTTP
	// client trusting the demo's pickup URL (demo_sim.go); nil otherwise.
	demoForwardClient *http.Client
}

func newApp(cfg *Config, stderr io.Writer) *app {
	a := &app{cfg: cfg, reg: prometheus.NewRegistry()}
	a.log = newLogger(cfg.Log, stderr)
	slog.SetDefault(a.log)
	a.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	a.metrics = pipeline.NewMetrics(a.reg)
	a.http = httpserver.New(a.reg)
	// Listening starts before the stages mount their APIs: until
	// runStages is done, unmounted routes answer 503 + Retry-After.
	a.http.Starting()
	return a
}

func newLogger(c LogConfig, w io.Writer) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(c.Level))
	opts := &slog.HandlerOptions{Level: lvl}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// kafkaMetrics returns franz-go metrics for one client. kprom binds its
// collectors to one client, so each client gets its own, told apart by the
// client_id label (every client's id is unique in the process).
func (a *app) kafkaMetrics() *kprom.Metrics {
	return kprom.NewMetrics("memoflow_kafka", kprom.Registerer(a.reg), kprom.WithClientLabel())
}

// startProfiling turns on continuous profiling when --pyroscope-url is set.
// Runners label their goroutines with pprof label stage=NAME, which
// pyroscope turns into a per-stage tag.
func (a *app) startProfiling(component string) error {
	if a.cfg.Pyroscope.URL == "" {
		return nil
	}
	host, _ := os.Hostname()
	p, err := pyroscope.Start(pyroscope.Config{
		ApplicationName: "memoflow",
		ServerAddress:   a.cfg.Pyroscope.URL,
		Tags:            map[string]string{"component": component, "hostname": host},
		ProfileTypes: []pyroscope.ProfileType{
			pyroscope.ProfileCPU, pyroscope.ProfileAllocObjects, pyroscope.ProfileAllocSpace,
			pyroscope.ProfileInuseObjects, pyroscope.ProfileInuseSpace, pyroscope.ProfileGoroutines,
		},
	})
	if err != nil {
		return fmt.Errorf("pyroscope at %s: %w", a.cfg.Pyroscope.URL, err)
	}
	a.profiler = p
	a.closers = append(a.closers, func() { _ = p.Stop() })
	return nil
}

// startEmbeddedBroker starts kfake when no brokers are configured and points
// the Kafka config at it.
func (a *app) startEmbeddedBroker() error {
	if a.cfg.Kafka.Brokers != "" {
		return nil
	}
	bc := a.cfg.Broker
	if !filepath.IsAbs(bc.DataDir) && bc.DataDir == "./var/kafka" && a.cfg.VarDir != "./var" {
		bc.DataDir = filepath.Join(a.cfg.VarDir, "kafka")
	}
	b, err := embedded.Start(bc)
	if err != nil {
		return err
	}
	a.broker = b
	a.cfg.Kafka.Brokers = strings.Join(b.Addrs(), ",")
	a.log.Info("embedded Kafka broker started", "addr", a.cfg.Kafka.Brokers, "data_dir", bc.DataDir)
	return nil
}

// connectKafka checks the brokers answer (bounded wait, clear error) and
// creates the catalogue's topics.
func (a *app) connectKafka(ctx context.Context) (*kgo.Client, error) {
	opts, err := a.cfg.Kafka.ClientOpts()
	if err != nil {
		return nil, usageErr(err)
	}
	cl, err := kgo.NewClient(append(opts, kgo.WithHooks(a.kafkaMetrics()), kgo.ClientID(a.cfg.Kafka.ClientID+"-admin"))...)
	if err != nil {
		return nil, usageErr(fmt.Errorf("kafka: %w", err))
	}
	pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := cl.Ping(pctx); err != nil {
		cl.Close()
		return nil, fmt.Errorf("kafka at %s is not reachable: %v (check --kafka-brokers / MEMOFLOW_KAFKA_BROKERS, or leave it empty to use the embedded broker)", a.cfg.Kafka.Brokers, err)
	}
	adm := kadm.NewClient(cl)
	to := pipeline.TopicOptions{
		Partitions:  a.cfg.Kafka.TopicPartitions,
		Replication: a.cfg.Kafka.TopicReplication,
	}
	if a.broker != nil {
		// Bound the embedded broker's disk: time-based retention with
		// segments small enough to be deleted during a run.
		to.Retention = a.cfg.Kafka.EmbeddedRetention
		to.SegmentBytes = 64 << 20
	} else {
		to.Retention = 7 * 24 * time.Hour
	}
	if err := pipeline.EnsureTopics(pctx, adm, to); err != nil {
		cl.Close()
		return nil, fmt.Errorf("kafka topics: %w", err)
	}
	a.closers = append(a.closers, cl.Close)
	a.http.AddCheck("kafka", func(ctx context.Context) error { return cl.Ping(ctx) })
	return cl, nil
}

func (a *app) close() {
	for i := len(a.closers) - 1; i >= 0; i-- {
		a.closers[i]()
	}
	if a.broker != nil {
		a.broker.Close()
	}
}
