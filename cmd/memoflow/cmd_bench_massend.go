package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/memoflow/memoflow/bench"
	"github.com/memoflow/memoflow/internal/recipientsim"
	"github.com/memoflow/memoflow/schemas/memo"
)

// benchRunOpts are the flags every end-to-end bench scenario shares.
type benchRunOpts struct {
	o                            bench.Options
	jsonOut, htmlOut, url, token string
	stages, cpuprofile           string
	metricsURLs                  []string
	keepDB, prepareOnly          bool
	// tune sets a scenario's stage defaults on the in-process pipeline
	// (flags the user gave win: it is told which were changed).
	tune                              func(cfg *Config, changed func(string) bool)
	letterSize, attachmentSize        string
	nemsmsShare, attShare, invalidPct float64
	// protocolMix: shares of the push systems delivered over REST, SFTP
	// and SMTP (in-process servers; --protocol-mix).
	protocolMix string
}

func (b *benchRunOpts) register(cmd *cobra.Command, defMessages int) {
	fs := cmd.Flags()
	fs.IntVar(&b.o.Messages, "messages", defMessages, "messages to send")
	fs.Uint64Var(&b.o.Seed, "seed", 1, "generator seed: the same seed sends the same messages (against a running setup the default is the time, since resent messageUUIDs are dropped as duplicates)")
	fs.StringVar(&b.jsonOut, "json", "", "write the report as JSON to this file")
	fs.StringVar(&b.htmlOut, "html", "", "write a self-contained HTML report with plots to this file")
	fs.StringVar(&b.protocolMix, "protocol-mix", "rest=100", "shares of the recipient systems delivered over REST push, SFTP and SMTP (in-process servers), e.g. rest=80,sftp=10,smtp=10")
	fs.BoolVar(&b.o.Direct, "direct", false, "produce straight into memo.ingest instead of posting to the ingest API")
	fs.BoolVar(&b.o.Live, "live", false, "compress batches while sending (internal/sendclient, as memoflow send does) instead of preparing them beforehand")
	fs.StringVar(&b.url, "url", "", "ingest API of a running setup (default: start the pipeline in this process); needs --token, --kafka-brokers and --clickhouse-database")
	fs.StringVar(&b.token, "token", "", "sender token for --url (default $MEMOFLOW_TOKEN)")
	// The default is the whole message path to the recipient simulator;
	// every stage in it has its bench.StageEvents entry.
	fs.StringVar(&b.stages, "stages", benchWholeStages, "stages to run in process, or (with --url) the stages the running setup runs: the expected event log follows from them")
	fs.IntVar(&b.o.BatchSize, "batch-size", 10000, "messages per tar+LZMA batch")
	fs.IntVar(&b.o.Concurrency, "concurrency", 2, "batches in flight")
	fs.StringVar(&b.o.CacheDir, "cache-dir", filepath.Join(os.TempDir(), "memoflow-bench"), "where prepared batches are kept and reused (same seed, size and day)")
	fs.IntVar(&b.o.NullRecords, "null-records", 0, "records through the null pipeline (0: --messages, at most 500000; -1: skip it)")
	fs.DurationVar(&b.o.Timeout, "timeout", 30*time.Minute, "longest wait for arrivals and the event log after the load")
	fs.DurationVar(&b.o.StallTimeout, "stall-timeout", 60*time.Second, "give up when neither arrivals nor the event log moved for this long")
	fs.StringVar(&b.cpuprofile, "cpuprofile", "", "write a CPU profile of the load phase (after preparation) to this file")
	fs.StringSliceVar(&b.metricsURLs, "metrics-url", nil, "with --url: /metrics endpoints of the setup's processes (CPU, RSS and stage counters)")
	fs.BoolVar(&b.keepDB, "keep-database", false, "keep the fresh ClickHouse database of an in-process run")
	fs.BoolVar(&b.prepareOnly, "prepare-only", false, "only prepare (and cache) the tar+LZMA batches, then exit: compressing a large load takes longer than sending it")
	fs.Float64Var(&b.nemsmsShare, "nemsms-share", bench.DefaultMix().NemSMSShare, "share of NEMSMS messages")
	fs.Float64Var(&b.attShare, "attachment-share", bench.DefaultMix().AttachmentShare, "share of messages with a large attachment")
	fs.Float64Var(&b.invalidPct, "invalid-share", 0, "share of messages that fail validation (exercises rejections and receipts)")
	fs.StringVar(&b.letterSize, "letter-size", "lognormal:500B,sigma=0.5,max=64KiB", "main-document size of letters (before base64)")
	fs.StringVar(&b.attachmentSize, "attachment-size", "lognormal:24KiB,sigma=0.8,max=1MiB", "main-document size of messages with an attachment")
}

func (b *benchRunOpts) mix() (bench.Mix, error) {
	m := bench.DefaultMix()
	m.NemSMSShare, m.AttachmentShare, m.InvalidShare = b.nemsmsShare, b.attShare, b.invalidPct
	var err error
	if m.Letter, err = memo.ParseSizeDist(b.letterSize); err != nil {
		return m, fmt.Errorf("--letter-size: %v", err)
	}
	if m.Attachment, err = memo.ParseSizeDist(b.attachmentSize); err != nil {
		return m, fmt.Errorf("--attachment-size: %v", err)
	}
	for name, v := range map[string]float64{"--nemsms-share": m.NemSMSShare, "--attachment-share": m.AttachmentShare, "--invalid-share": m.InvalidShare} {
		if v < 0 || v > 1 {
			return m, fmt.Errorf("%s: %g is not a share between 0 and 1", name, v)
		}
	}
	if m.NemSMSShare+m.AttachmentShare > 1 {
		return m, errors.New("--nemsms-share plus --attachment-share exceed 1")
	}
	return m, nil
}

func newBenchMassSendCmd() *cobra.Command {
	var b benchRunOpts
	cmd := &cobra.Command{
		Use:   "mass-send",
		Short: "End to end: a realistic mass send through the whole pipeline, checked for loss and exact event counts, against a null pipeline",
		Long: `mass-send sends --messages MeMo messages (a mix with a median of about 3 KB,
some NEMSMS, a few with large attachments) through the ingest API in tar+LZMA
batches, waits until every accepted message reached the end of the pipeline
and the ClickHouse event log holds exactly the expected rows per tag, and
reports throughput, lag, latency and resources, with the rate as a ratio of a
null pipeline (same hops, sizes and partitions, no work) run on the same broker.

By default the pipeline runs in this process as memoflow run would (embedded
broker in a temporary directory unless --kafka-brokers, the ClickHouse of
--clickhouse-addr with a fresh database). With --url it measures a running
setup instead.

Exit status: 0 the run was correct, 1 messages or events were lost (whatever
the speed) or the run failed, 2 usage.`,
		Args: cobra.NoArgs,
	}
	cfg := bindConfig(cmd)
	b.register(cmd, 1000000)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		return runBench(cmd, cfg, &b, &bench.MassSend{})
	}
	return cmd
}

// runBench runs a scenario against the in-process pipeline or --url.
func runBench(cmd *cobra.Command, cfg *Config, b *benchRunOpts, sc bench.Scenario) error {
	fs := cmd.Flags()
	if err := loadConfig(cmd, cfg); err != nil {
		return err
	}
	mix, err := b.mix()
	if err != nil {
		return usageErr(err)
	}
	b.o.Mix = mix
	if b.o.Messages <= 0 {
		return usageErr(errors.New("--messages must be at least 1"))
	}
	if b.o.Direct && b.o.Live {
		return usageErr(errors.New("--direct and --live exclude each other"))
	}
	if _, err := recipientsim.ParseMix(b.protocolMix); err != nil {
		return usageErr(fmt.Errorf("--protocol-mix: %v", err))
	}
	ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	stderr := cmd.ErrOrStderr()
	b.o.Log, b.o.Progress = stderr, stderr
	if b.cpuprofile != "" {
		f, err := os.Create(b.cpuprofile)
		if err != nil {
			return usageErr(fmt.Errorf("--cpuprofile: %v", err))
		}
		defer f.Close()
		b.o.AroundLoad = func() func() {
			if err := pprof.StartCPUProfile(f); err != nil {
				fmt.Fprintf(stderr, "cpu profile: %v\n", err)
				return func() {}
			}
			return pprof.StopCPUProfile
		}
	}

	if b.prepareOnly {
		set := &bench.MessageSet{Seed: b.o.Seed, Messages: b.o.Messages, BatchSize: b.o.BatchSize, Mix: mix,
			SenderOrg: demoOrg, Day: time.Now().UTC().Truncate(24 * time.Hour)}
		if b.url != "" {
			if b.token == "" {
				b.token = os.Getenv("MEMOFLOW_TOKEN")
			}
			who, err := whoAmI(ctx, b.url, b.token)
			if err != nil {
				return err
			}
			set.SenderOrg = who.Org
		}
		last := time.Now()
		p, err := set.Prepare(ctx, b.o.CacheDir, func(done, total int) {
			if time.Since(last) > 5*time.Second || done == total {
				last = time.Now()
				fmt.Fprintf(stderr, "prepared %d/%d batches\n", done, total)
			}
		})
		if err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "prepared %d batches (%.0f MB, %.0f MB tar+LZMA) in %.1fs: %s\n", len(p.Files), float64(p.Bytes)/1e6, float64(p.LZMA)/1e6, p.Seconds, p.Dir)
		return nil
	}

	var t bench.Target
	var shutdown func()
	if b.url == "" {
		t, shutdown, err = startBenchPipeline(ctx, cmd, cfg, b)
		if err != nil {
			return err
		}
		defer shutdown()
	} else {
		if t, err = externalTarget(ctx, cfg, b); err != nil {
			return err
		}
		if !fs.Changed("seed") {
			b.o.Seed = uint64(time.Now().Unix())
			fmt.Fprintf(stderr, "seed %d (pass --seed to repeat this load against a fresh setup)\n", b.o.Seed)
		}
	}
	rep, runErr := bench.Run(ctx, sc, t, b.o)
	if rep == nil {
		return runErr
	}
	fmt.Fprintln(stderr)
	rep.Summary(cmd.OutOrStdout())
	if b.jsonOut != "" {
		if err := rep.WriteJSON(b.jsonOut); err != nil {
			return err
		}
	}
	if b.htmlOut != "" {
		if err := rep.WriteHTML(b.htmlOut); err != nil {
			return err
		}
	}
	if runErr != nil {
		return &exitError{code: 1, err: runErr}
	}
	return nil
}

// startBenchPipeline starts what `memoflow run` starts, in this process,
// with bench defaults: a temporary var dir (embedded broker data, tokens),
// a free HTTP port, a fresh ClickHouse database and quiet logs.
func startBenchPipeline(ctx context.Context, cmd *cobra.Command, cfg *Config, b *benchRunOpts) (bench.Target, func(), error) {
	fs := cmd.Flags()
	var cleanups []func()
	cleanup := func() {
		for i := len(cleanups) - 1; i >= 0; i-- {
			cleanups[i]()
		}
	}
	if !fs.Changed("var-dir") {
		d, err := os.MkdirTemp("", "memoflow-bench-var-")
		if err != nil {
			return bench.Target{}, nil, err
		}
		cfg.VarDir = d
		cleanups = append(cleanups, func() { os.RemoveAll(d) })
	}
	if !fs.Changed("broker-data-dir") {
		cfg.Broker.DataDir = filepath.Join(cfg.VarDir, "kafka")
	}
	if !fs.Changed("broker-port") {
		cfg.Broker.Port = 0
	}
	if !fs.Changed("http-addr") {
		cfg.HTTP.Addr = "127.0.0.1:0"
	}
	if !fs.Changed("log-level") {
		cfg.Log.Level = "warn"
	}
	if !fs.Changed("clickhouse-database") {
		cfg.ClickHouse.Database = fmt.Sprintf("memoflow_bench_%d", time.Now().UnixNano())
	}
	if !fs.Changed("ingest-rate-per-second") {
		// One sender system posts every batch: the per-system limit is
		// not what a capacity benchmark measures.
		cfg.Ingest.RatePerSecond, cfg.Ingest.RateBurst = 1e6, 1<<20
	}
	if !fs.Changed("route-sms-quiet-from") && !fs.Changed("route-sms-quiet-until") {
		// NemSMS quiet hours (18-08) would hold a tenth of an evening
		// run until the morning: a capacity benchmark measures the path.
		cfg.Route.SMSQuietFrom, cfg.Route.SMSQuietUntil = 0, 0
	}
	if b.tune != nil {
		b.tune(cfg, fs.Changed)
	}
	defs, err := parseStageList(b.stages)
	if err != nil {
		return bench.Target{}, nil, err
	}
	a := newApp(cfg, cmd.ErrOrStderr())
	a.generate = true
	cleanups = append(cleanups, a.close)
	fail := func(err error) (bench.Target, func(), error) { cleanup(); return bench.Target{}, nil, err }
	if err := a.http.ListenTLS(cfg.HTTP.Addr, cfg.HTTP.TLS); err != nil {
		return fail(err)
	}
	if err := a.startEmbeddedBroker(); err != nil {
		return fail(err)
	}
	if _, err := a.connectKafka(ctx); err != nil {
		return fail(err)
	}
	// The whole pipeline: a recipient simulator behind every push system
	// of a seeded registry, written before routing reads it.
	var sim *benchSim
	var recipients *bench.Recipients
	var transports *recipientsim.MixServers
	clock := &bench.OffsetClock{}
	if stageListHas(strings.Join(namesOf(defs), ","), "route") && stageListHas(strings.Join(namesOf(defs), ","), "deliver") {
		if sim, err = startBenchSim(); err != nil {
			return fail(err)
		}
		cleanups = append(cleanups, sim.close)
		if transports, err = startBenchTransports(cfg, b.protocolMix); err != nil {
			return fail(err)
		}
		cleanups = append(cleanups, transports.Close)
		if recipients, err = seedBenchRegistry(ctx, a, sim.urls, transports.ApplyAny); err != nil {
			return fail(err)
		}
	} else if b.protocolMix != "rest=100" {
		return fail(usageErr(errors.New("--protocol-mix needs the route and deliver stages in the run")))
	}
	benchScheduleClocks.Store(a, clock)
	cleanups = append(cleanups, func() { benchScheduleClocks.Delete(a) })
	pctx, cancel := context.WithCancel(ctx)
	wait, err := runStages(pctx, a, defs)
	if err != nil {
		cancel()
		return fail(err)
	}
	stopped := make(chan error, 1)
	go func() { stopped <- wait() }()
	cleanups = append(cleanups, func() {
		cancel()
		select {
		case <-stopped:
		case <-time.After(30 * time.Second):
			fmt.Fprintln(cmd.ErrOrStderr(), "bench: the pipeline did not stop within 30s")
		}
		shutdownHTTP(a)
	})
	if !b.keepDB && !cmd.Flags().Changed("clickhouse-database") {
		db := cfg.ClickHouse.Database
		cleanups = append(cleanups, func() {
			conn, err := a.clickhouse(context.Background())
			if err == nil {
				_ = conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db)
			}
		})
	}
	tok, err := os.ReadFile(filepath.Join(cfg.VarDir, "demo", "sender.token"))
	if err != nil {
		return fail(fmt.Errorf("bench: no demo sender token in %s (use a fresh --var-dir): %w", cfg.VarDir, err))
	}
	// The event log's tables must exist before the first count.
	if _, err := a.clickhouse(ctx); err != nil {
		return fail(err)
	}
	scheme := "http://"
	if cfg.HTTP.TLS.Enabled() {
		scheme = "https://"
	}
	t := bench.Target{URL: scheme + a.http.Addr(), Token: strings.TrimSpace(string(tok)), SenderOrg: demoOrg,
		Kafka: cfg.Kafka, ClickHouse: cfg.ClickHouse, Stages: namesOf(defs), Runner: cfg.Runner,
		InProcess: true, Gatherer: a.reg, Recipients: recipients, ScheduleClock: clock}
	if sim != nil {
		t.Sim = sim.sim
	}
	if transports != nil && (transports.SFTP != nil || transports.SMTP != nil) {
		t.Transports = transports
	}
	return t, cleanup, nil
}

// externalTarget describes a running setup from the flags.
func externalTarget(ctx context.Context, cfg *Config, b *benchRunOpts) (bench.Target, error) {
	if b.token == "" {
		b.token = os.Getenv("MEMOFLOW_TOKEN")
	}
	if b.token == "" {
		return bench.Target{}, usageErr(errors.New("--url needs a sender --token (or MEMOFLOW_TOKEN)"))
	}
	if cfg.Kafka.Brokers == "" {
		return bench.Target{}, usageErr(errors.New("--url needs --kafka-brokers: the bench reads lag and arrivals from Kafka and runs the null pipeline there"))
	}
	if b.stages == benchWholeStages {
		// A running setup's registry does not know the generated
		// recipients and its push systems do not point at this
		// process's simulator: check what the bench can see from
		// outside, up to memo.valid and the event log of those stages.
		b.stages = benchExternalStages
	} else if stageListHas(b.stages, "route") || stageListHas(b.stages, "deliver") {
		return bench.Target{}, usageErr(errors.New("--url with route or deliver in --stages: the bench can only check delivery in process (its registry and recipient simulator); give --stages " + benchExternalStages))
	}
	defs, err := parseStageList(b.stages)
	if err != nil {
		return bench.Target{}, err
	}
	who, err := whoAmI(ctx, b.url, b.token)
	if err != nil {
		return bench.Target{}, err
	}
	return bench.Target{URL: b.url, Token: b.token, SenderOrg: who.Org, Kafka: cfg.Kafka, ClickHouse: cfg.ClickHouse,
		Stages: namesOf(defs), Runner: cfg.Runner, MetricsURLs: b.metricsURLs}, nil
}

func newBenchSoakCmd() *cobra.Command {
	var b benchRunOpts
	sc := &bench.Soak{}
	cmd := &cobra.Command{
		Use:   "soak",
		Short: "A fixed rate for a set time: memory must stay flat; loss and the event log are checked as for mass-send",
		Long: `soak sends --rate messages per second for --duration (the mass-send mix,
batches at most a second apart) and fails when the median RSS of the last
quarter of the load exceeds that of the second quarter by more than
--max-rss-growth, as well as on any loss or event-log difference.

Exit status: 0 correct and flat, 1 otherwise, 2 usage.`,
		Args: cobra.NoArgs,
	}
	cfg := bindConfig(cmd)
	b.register(cmd, 0)
	_ = cmd.Flags().MarkHidden("messages")
	cmd.Flags().Float64Var(&sc.Rate, "rate", 500, "messages per second")
	cmd.Flags().DurationVar(&sc.Duration, "duration", 10*time.Minute, "how long to send")
	cmd.Flags().Float64Var(&sc.MaxGrowth, "max-rss-growth", 0.2, "allowed RSS growth from the second to the last quarter of the load")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if sc.Rate <= 0 || sc.Duration <= 0 {
			return usageErr(errors.New("--rate and --duration must be positive"))
		}
		if b.o.Live {
			return usageErr(errors.New("soak paces prepared batches (or --direct); --live does not pace"))
		}
		b.o.Messages = sc.Messages()
		b.o.BatchSize = sc.BatchSize(b.o.BatchSize)
		return runBench(cmd, cfg, &b, sc)
	}
	return cmd
}
