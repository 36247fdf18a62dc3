package chaos

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/memoflow/memoflow/internal/auth"
)

// Options describe the topology.
type Options struct {
	// Bin is the memoflow binary.
	Bin string
	// Dir holds every process's state and log.
	Dir string
	// Stages maps a stage name to its replica count (ingest included).
	Stages map[string]int
	// ClickHouseAddr and Database are the event log's server and a
	// database of this run's own.
	ClickHouseAddr string
	Database       string
	// SenderOrg is the CVR the sender token may send as.
	SenderOrg string
	// Partitions of every topic (default 6).
	Partitions int
	// ExtraArgs are added to every stage's command line.
	ExtraArgs []string
	// ReadyTimeout bounds each start (default 60s).
	ReadyTimeout time.Duration
	// BeforeStages runs once the broker is up and before any stage
	// starts (to seed the registry the stages wait for).
	BeforeStages func(ctx context.Context, kafkaAddr string) error
}

// Topology is the running system: one broker process and the stage
// replicas, all on 127.0.0.1.
type Topology struct {
	opts        Options
	Broker      *Proc
	Replicas    map[string][]*Proc // stage name → replicas
	KafkaAddr   string
	SenderToken string
	// APIURL is the base URL of the first ingest replica.
	APIURL string

	mu sync.Mutex
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Start writes the shared secrets, starts the broker and then every
// replica, and returns when all of them printed their ready line.
func Start(ctx context.Context, o Options) (*Topology, error) {
	if o.Partitions == 0 {
		o.Partitions = 6
	}
	if o.ReadyTimeout == 0 {
		o.ReadyTimeout = 60 * time.Second
	}
	if o.Bin == "" || o.Dir == "" || o.ClickHouseAddr == "" || o.Database == "" || o.SenderOrg == "" {
		return nil, errors.New("chaos: Options need Bin, Dir, ClickHouseAddr, Database and SenderOrg")
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, err
	}
	t := &Topology{opts: o, Replicas: map[string][]*Proc{}}

	// Secrets every process shares: the pseudonym key and the token file.
	key := make([]byte, 32)
	rand.Read(key)
	keyFile := filepath.Join(o.Dir, "pseudonym.keys")
	if err := os.WriteFile(keyFile, []byte("chaos:"+base64.StdEncoding.EncodeToString(key)+"\n"), 0o600); err != nil {
		return nil, err
	}
	t.SenderToken = auth.NewToken()
	tokens := fmt.Sprintf("- token_sha256: %s\n  id: chaos-sender\n  org: %q\n  roles: [sender]\n", auth.HashToken(t.SenderToken), o.SenderOrg)
	tokenFile := filepath.Join(o.Dir, "tokens.yaml")
	if err := os.WriteFile(tokenFile, []byte(tokens), 0o600); err != nil {
		return nil, err
	}

	kport, err := freePort()
	if err != nil {
		return nil, err
	}
	hport, err := freePort()
	if err != nil {
		return nil, err
	}
	t.KafkaAddr = "127.0.0.1:" + strconv.Itoa(kport)
	t.Broker = &Proc{
		Name: "broker", Bin: o.Bin, LogPath: filepath.Join(o.Dir, "broker.log"),
		Args: []string{"broker", "--broker-port", strconv.Itoa(kport), "--broker-data-dir", filepath.Join(o.Dir, "kafka"),
			"--broker-sync-writes", "--http-addr", "127.0.0.1:" + strconv.Itoa(hport),
			"--kafka-topic-partitions", strconv.Itoa(o.Partitions), "--var-dir", filepath.Join(o.Dir, "broker-var")},
	}
	if err := t.Broker.Start(ctx, o.ReadyTimeout); err != nil {
		return nil, err
	}
	if o.BeforeStages != nil {
		if err := o.BeforeStages(ctx, t.KafkaAddr); err != nil {
			t.Broker.Stop(10 * time.Second)
			return nil, err
		}
	}

	names := make([]string, 0, len(o.Stages))
	for n := range o.Stages {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		for i := range o.Stages[name] {
			port, err := freePort()
			if err != nil {
				t.Close()
				return nil, err
			}
			id := fmt.Sprintf("%s-%d", name, i+1)
			args := []string{"stage", name,
				"--kafka-brokers", t.KafkaAddr, "--kafka-topic-partitions", strconv.Itoa(o.Partitions),
				"--http-addr", "127.0.0.1:" + strconv.Itoa(port), "--replica-id", id,
				"--clickhouse-addr", o.ClickHouseAddr, "--clickhouse-database", o.Database,
				"--pseudonym-key-file", keyFile, "--auth-tokens-file", tokenFile,
				"--var-dir", filepath.Join(o.Dir, id), "--blob-dir", filepath.Join(o.Dir, "blobs"),
			}
			p := &Proc{Name: id, Bin: o.Bin, LogPath: filepath.Join(o.Dir, id+".log"), Args: append(args, o.ExtraArgs...)}
			t.Replicas[name] = append(t.Replicas[name], p)
		}
	}
	// Start replicas concurrently: each waits for its group and topics.
	var wg sync.WaitGroup
	errs := make(chan error, len(t.all()))
	for _, p := range t.all() {
		if p == t.Broker {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := p.Start(ctx, o.ReadyTimeout); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		t.Close()
		return nil, err
	}
	if ing := t.Replicas["ingest"]; len(ing) > 0 {
		t.APIURL = strings.TrimSuffix(ing[0].ReadyField("metrics"), "/metrics")
	}
	return t, nil
}

// all lists every process, the broker first.
func (t *Topology) all() []*Proc {
	out := []*Proc{t.Broker}
	names := make([]string, 0, len(t.Replicas))
	for n := range t.Replicas {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		out = append(out, t.Replicas[n]...)
	}
	return out
}

// Close stops every process, stages first, the broker last.
func (t *Topology) Close() {
	ps := t.all()
	for _, p := range ps {
		p.setHeld(true) // Watch must not restart what Close stops
	}
	var wg sync.WaitGroup
	for _, p := range ps[1:] {
		wg.Add(1)
		go func() { defer wg.Done(); p.Stop(10 * time.Second) }()
	}
	wg.Wait()
	t.Broker.Stop(10 * time.Second)
}

// Proc returns the process with the given name ("broker", "validate-2").
func (t *Topology) Proc(name string) *Proc {
	for _, p := range t.all() {
		if p.Name == name {
			return p
		}
	}
	return nil
}

// Kill SIGKILLs the named process, waits pause, and starts it again.
func (t *Topology) Kill(ctx context.Context, name string, pause time.Duration) error {
	p := t.Proc(name)
	if p == nil {
		return fmt.Errorf("chaos: no process %q", name)
	}
	p.setHeld(true)
	defer p.setHeld(false)
	if err := p.Kill(); err != nil {
		return err
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(pause):
	}
	if p.Running() {
		return nil // a restart by Watch got there first
	}
	return p.Start(ctx, t.opts.ReadyTimeout)
}

// Watch restarts, like an orchestrator's restart policy, every process
// that exited without being killed by the schedule, and records each such
// exit on tl: a stage that gives up during a broker outage and is restarted
// is a fact of the run, shown on the report. It returns when ctx ends.
func (t *Topology) Watch(ctx context.Context, tl *Timeline) {
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		for _, p := range t.all() {
			if p.Running() || p.isHeld() {
				continue
			}
			tl.Add("exit", p.Name, "exited on its own; restarting (see its log)")
			p.setHeld(true)
			go func() {
				defer p.setHeld(false)
				if err := p.Start(ctx, t.opts.ReadyTimeout); err != nil && ctx.Err() == nil {
					tl.Add("error", p.Name, "restart failed: "+err.Error())
				}
			}()
		}
	}
}

// Logs lists the log files, for a report.
func (t *Topology) Logs() []string {
	var out []string
	for _, p := range t.all() {
		out = append(out, p.LogPath)
	}
	return out
}
