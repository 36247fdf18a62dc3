package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/memoflow/memoflow/bench"
	"github.com/memoflow/memoflow/internal/recipientsim"
	"github.com/memoflow/memoflow/schemas/registry"
)

// benchWholeStages is the bench's default: the whole message path
// (ingest → validate → schedule → route → deliver to the recipient
// simulator) with the event log, the receipts store and their APIs.
const benchWholeStages = "ingest,validate,schedule,route,deliver,eventlog,receipts,receipts-api,eventquery"

// benchExternalStages is what the bench checks against a running setup
// (--url): arrivals at memo.valid and the events of those stages.
const benchExternalStages = "ingest,validate,eventlog,receipts"

// benchScheduleClocks holds a bench run's schedule clock per app
// (stage_schedule.go passes it to the stage): the value-date scenario
// moves it to the value date instead of waiting for midnight.
var benchScheduleClocks sync.Map // *app → schedule.Clock

// benchSim is the in-process recipient simulator of a whole-pipeline run,
// served on benchSimListeners local ports: the registry's push systems
// take them in turn, so (as in production) systems do not share a
// host:port and deliver's per-host idle connections are per system.
type benchSim struct {
	sim  *recipientsim.Sim
	urls []string
	srvs []*http.Server
}

const benchSimListeners = 32

// startBenchSim serves a recipient simulator on free local ports.
func startBenchSim() (*benchSim, error) {
	sim, err := recipientsim.New(recipientsim.Config{})
	if err != nil {
		return nil, err
	}
	b := &benchSim{sim: sim}
	for range benchSimListeners {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.close()
			return nil, fmt.Errorf("bench: recipient simulator: %w", err)
		}
		srv := &http.Server{Handler: sim.Handler(), ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = srv.Serve(ln) }()
		b.srvs = append(b.srvs, srv)
		b.urls = append(b.urls, "http://"+ln.Addr().String())
	}
	return b, nil
}

func (b *benchSim) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, s := range b.srvs {
		_ = s.Shutdown(ctx)
	}
}

// seedBenchRegistry writes the bench registry (every system a push
// system on the simulator) before the routing stage reads it.
func seedBenchRegistry(ctx context.Context, a *app, simURLs []string, adjust func(*registry.System) error) (*bench.Recipients, error) {
	opts, err := a.cfg.Kafka.ClientOpts()
	if err != nil {
		return nil, usageErr(err)
	}
	rc := bench.DefaultBenchRegistry(simURLs...)
	rc.Adjust = adjust
	recipients, err := bench.SeedRegistry(ctx, opts, rc)
	if err != nil {
		return nil, err
	}
	a.log.Info("bench registry seeded", "citizens", len(recipients.Citizens), "companies", len(recipients.Companies),
		"push_systems", len(recipients.Systems), "simulator_ports", len(simURLs))
	return recipients, nil
}

// startBenchTransports starts the in-process SFTP and SMTP recipients a
// --protocol-mix needs (none for rest=100) and points the deliver stage
// at their keys; its ApplyAny moves the mix's share of the push systems
// to them when the registry is seeded.
func startBenchTransports(cfg *Config, mix string) (*recipientsim.MixServers, error) {
	m, err := recipientsim.ParseMix(mix)
	if err != nil {
		return nil, usageErr(fmt.Errorf("--protocol-mix: %v", err))
	}
	x, err := recipientsim.StartMix(m, filepath.Join(cfg.VarDir, "bench", "transport-keys"), filepath.Join(cfg.VarDir, "bench", "sftp"))
	if err != nil {
		return nil, fmt.Errorf("bench: SFTP/SMTP recipients: %w", err)
	}
	if x.Keys != nil {
		cfg.Deliver.SFTPKeyFile = x.Keys.SSHKeyFile
		cfg.Deliver.SMTPCertFile, cfg.Deliver.SMTPKeyFile = x.Keys.FunctionCertFile, x.Keys.FunctionKeyFile
		cfg.Deliver.SMTPFrom = "bench@memoflow.example"
	}
	if x.SMTP != nil {
		cfg.Deliver.SMTPTLSCAFile = x.SMTP.TLSCAFile
	}
	return x, nil
}

func stageListHas(list, name string) bool {
	for _, s := range strings.Split(list, ",") {
		if strings.TrimSpace(s) == name {
			return true
		}
	}
	return false
}
