package main

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/memoflow/memoflow/pipeline"
	"github.com/memoflow/memoflow/schemas/registry"
	"github.com/memoflow/memoflow/stages/deliver"
)

// The delivery stages: "deliver" consumes memo.routed (a Sink: push,
// outbox, first failure) and, in the same process and with the same
// per-system gates, the delay topics of the redelivery schedule;
// "pull-api" serves REST pull to recipient systems from the outbox.
func init() {
	stageDefs = append(stageDefs,
		stageDef{
			name:   "deliver",
			inputs: []string{pipeline.TopicRouted},
			help:   "delivery: REST push with the seeds' redelivery schedule (delay topics memo.retry.<gap>), outbox for pull and publish/subscribe, business receipts",
			build: func(ctx context.Context, a *app) (pipeline.Stage, error) {
				d, err := a.deliverer(ctx)
				if err != nil {
					return nil, err
				}
				opts, err := a.cfg.Kafka.ClientOpts()
				if err != nil {
					return nil, usageErr(err)
				}
				if err := ensureRetryTopics(ctx, a, opts); err != nil {
					return nil, err
				}
				const group = "memoflow-deliver-retry"
				rc, err := deliver.NewRetryConsumer(d, append(opts, kgo.ClientID(a.cfg.Kafka.ClientID+"-deliver-retry")), group, a.delayOptions(group)...)
				if err != nil {
					return nil, err
				}
				a.runDelayConsumer(ctx, rc, a.log.With("stage", "deliver"), "deliver retry consumer stopped")
				return deliver.NewSink(d), nil
			},
		},
		stageDef{
			name: "pull-api",
			help: "REST pull for recipient systems: GET /apis/v1/memos/, GET and DELETE /apis/v1/memos/{id}, POST /apis/v1/memos/{id}/receipt",
			api: func(ctx context.Context, a *app) error {
				// Registry tokens first: a pull system's or a standard-
				// system selection's API key is a sha256: credential in
				// the registry (issued by the admin API).
				tokens, err := a.senderTokens(ctx)
				if err != nil {
					return err
				}
				prod, err := a.producerClient()
				if err != nil {
					return err
				}
				pseudo, err := a.pseudonymizer(a.generate)
				if err != nil {
					return err
				}
				blobs, err := a.blobStore()
				if err != nil {
					return err
				}
				view, err := a.deliverRegistry(ctx)
				if err != nil {
					return err
				}
				dir := a.cfg.Deliver.PullStoreDir
				if dir == "./var/outbox" && a.cfg.VarDir != "./var" {
					dir = filepath.Join(a.cfg.VarDir, "outbox")
				}
				store, err := deliver.OpenOutboxStore(dir)
				if err != nil {
					return err
				}
				opts, err := a.cfg.Kafka.ClientOpts()
				if err != nil {
					store.Close()
					return usageErr(err)
				}
				tail, err := deliver.StartTailer(ctx, store, append(opts, kgo.ClientID(a.cfg.Kafka.ClientID+"-outbox")), a.log.With("stage", "pull-api"))
				if err != nil {
					store.Close()
					return err
				}
				a.closers = append(a.closers, func() { tail.Close(); store.Close() })
				api := deliver.NewPullAPI(store, tokens, prod, pseudo, &deliver.RegistrySystems{View: view}, blobs,
					deliver.WithLogger(a.log.With("stage", "pull-api")), deliver.WithRegisterer(a.reg))
				// DELETE /apis/v1/memos/{id} is shared with recall (stage_schedule.go).
				api.RegisterExceptDelete(a.http.Mux)
				shareMemosDelete(a, tokens, nil, api.DeleteHandler())
				return startReceiptPoller(ctx, a, api, view)
			},
		},
		stageDef{
			name: "receipt-push",
			help: "POSTs receipts to sender systems' receipt endpoints from memo.receipts.push, retrying every 5 minutes for a day",
			// Not a pipeline stage: a delay consumer (group
			// memoflow-receipt-push) that runs until the process stops.
			api: func(ctx context.Context, a *app) error {
				view, err := a.deliverRegistry(ctx)
				if err != nil {
					return err
				}
				opts, err := a.cfg.Kafka.ClientOpts()
				if err != nil {
					return usageErr(err)
				}
				log := a.log.With("stage", "receipt-push")
				const group = "memoflow-receipt-push"
				c, err := deliver.NewReceiptPushConsumer(deliver.DefaultReceiptPushConfig(), &deliver.RegistrySenders{View: view},
					append(opts, kgo.ClientID(a.cfg.Kafka.ClientID+"-receipt-push")), group, nil, time.Now, log, a.delayOptions(group)...)
				if err != nil {
					return err
				}
				a.runDelayConsumer(ctx, c, log, "receipt push stopped")
				return nil
			},
		},
	)
}

// deliverShared is what the delivery stages of one app share: one registry
// View and one Deliverer (so the sink and the retry consumer see the same
// per-system gates). Keyed by app, since tests run several apps in one
// process.
type deliverShared struct {
	view *registry.View
	d    *deliver.Deliverer
}

var deliverDeps = struct {
	mu sync.Mutex
	m  map[*app]*deliverShared
}{m: map[*app]*deliverShared{}}

func (a *app) deliverShared() *deliverShared {
	x := deliverDeps.m[a]
	if x == nil {
		x = &deliverShared{}
		deliverDeps.m[a] = x
		a.closers = append(a.closers, func() {
			deliverDeps.mu.Lock()
			delete(deliverDeps.m, a)
			deliverDeps.mu.Unlock()
		})
	}
	return x
}

// deliverRegistry is the registry view delivery reads, started once.
func (a *app) deliverRegistry(ctx context.Context) (*registry.View, error) {
	deliverDeps.mu.Lock()
	defer deliverDeps.mu.Unlock()
	sh := a.deliverShared()
	if sh.view != nil {
		return sh.view, nil
	}
	opts, err := a.cfg.Kafka.ClientOpts()
	if err != nil {
		return nil, usageErr(err)
	}
	v, err := registry.NewView(ctx, append(opts, kgo.ClientID(a.cfg.Kafka.ClientID+"-deliver-registry")),
		registry.WithLogger(a.log.With("component", "registry-view")))
	if err != nil {
		return nil, err
	}
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := v.WaitCaughtUp(wctx); err != nil {
		v.Close()
		return nil, fmt.Errorf("registry view did not catch up: %w", err)
	}
	a.closers = append(a.closers, v.Close)
	sh.view = v
	return v, nil
}

func (a *app) deliverer(ctx context.Context) (*deliver.Deliverer, error) {
	view, err := a.deliverRegistry(ctx)
	if err != nil {
		return nil, err
	}
	deliverDeps.mu.Lock()
	defer deliverDeps.mu.Unlock()
	sh := a.deliverShared()
	if sh.d != nil {
		return sh.d, nil
	}
	pseudo, err := a.pseudonymizer(a.generate)
	if err != nil {
		return nil, err
	}
	blobs, err := a.blobStore()
	if err != nil {
		return nil, err
	}
	prod, err := a.producerClient()
	if err != nil {
		return nil, err
	}
	deact := &deliver.RegistryDeactivator{View: view, Writer: registry.NewWriter(prod, view, registry.WithPseudonymizer(pseudo))}
	dopts := []deliver.Option{deliver.WithBlobStore(blobs), deliver.WithDeactivator(deact),
		deliver.WithLogger(a.log.With("stage", "deliver")), deliver.WithRegisterer(a.reg)}
	if w := a.cfg.Deliver.JournalWindow; w > 0 {
		kopts, err := a.cfg.Kafka.ClientOpts()
		if err != nil {
			return nil, usageErr(err)
		}
		j, err := deliver.OpenJournal(ctx, append(kopts, kgo.ClientID(a.cfg.Kafka.ClientID+"-deliver-journal")),
			w, a.log.With("stage", "deliver", "component", "push-journal"), a.reg)
		if err != nil {
			return nil, err
		}
		a.closers = append(a.closers, j.Close)
		dopts = append(dopts, deliver.WithJournal(j))
	}
	d, err := deliver.NewDeliverer(a.cfg.Deliver, &deliver.RegistrySystems{View: view}, pseudo, dopts...)
	if err != nil {
		return nil, usageErr(err)
	}
	a.closers = append(a.closers, func() { _ = d.Close() })
	sh.d = d
	return d, nil
}

// startReceiptPoller polls the receipt folders of SFTP recipient systems
// from the pull-api stage (beside the outbox index the receipts are
// relayed from). It needs memoflow's SSH key too; --sftp-receipt-poll 0
// turns it off in this process.
func startReceiptPoller(ctx context.Context, a *app, api *deliver.PullAPI, view *registry.View) error {
	cfg := a.cfg.Deliver
	if cfg.SFTPReceiptPoll <= 0 {
		return nil
	}
	cl, err := deliver.NewSFTPClient(cfg)
	if err != nil {
		return usageErr(err)
	}
	if cl == nil {
		a.log.Info("SFTP receipt folders not polled: no --sftp-key-file", "stage", "pull-api")
		return nil
	}
	p, err := deliver.NewReceiptPoller(api, cl, &deliver.RegistrySystems{View: view}, cfg.SFTPReceiptPoll)
	if err != nil {
		_ = cl.Close()
		return usageErr(err)
	}
	done := make(chan struct{})
	go func() { _ = p.Run(ctx); close(done) }()
	a.closers = append(a.closers, func() {
		// The stage context ends before the closers run; a poll in flight
		// gets a moment to finish its file.
		select {
		case <-done:
		case <-time.After(5 * time.Second):
		}
		_ = cl.Close()
	})
	return nil
}

// delayOptions are how every delay consumer of this process runs (deliver
// retry, receipt push, forward timer): exactly-once under the
// transactional id <group>-<replica id>, Kafka client metrics on its
// consumer.
func (a *app) delayOptions(group string) []deliver.DelayOption {
	return []deliver.DelayOption{deliver.TransactionalID(group + "-" + a.cfg.Runner.ReplicaID), deliver.ConsumerHooks(a.kafkaMetrics())}
}

// runDelayConsumer runs c until ctx ends and closes it with the app.
func (a *app) runDelayConsumer(ctx context.Context, c interface {
	Run(context.Context) error
	Close()
}, log *slog.Logger, stopped string) {
	go func() {
		if err := c.Run(ctx); err != nil {
			log.Error(stopped, "err", err)
		}
	}()
	a.closers = append(a.closers, c.Close)
}

// ensureRetryTopics creates the schedule's delay topics (their names come
// from --deliver-schedule, so they are not in the static catalogue).
func ensureRetryTopics(ctx context.Context, a *app, opts []kgo.Opt) error {
	cl, err := kgo.NewClient(append(opts, kgo.ClientID(a.cfg.Kafka.ClientID+"-deliver-admin"))...)
	if err != nil {
		return err
	}
	defer cl.Close()
	var specs []pipeline.TopicSpec
	for _, t := range a.cfg.Deliver.RetryTopics() {
		specs = append(specs, pipeline.TopicSpec{Name: t, Purpose: "delivery attempts due after one gap of the redelivery schedule"})
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	err = pipeline.EnsureTopics(cctx, kadm.NewClient(cl), pipeline.TopicOptions{
		Partitions: a.cfg.Kafka.TopicPartitions, Replication: a.cfg.Kafka.TopicReplication,
		// Retention must outlast the longest gap plus downtime.
		Retention: 14 * 24 * time.Hour,
	}, specs...)
	if err != nil {
		return fmt.Errorf("delivery delay topics: %w", err)
	}
	return nil
}
