// Package embedded runs memoflow's embedded Kafka broker: franz-go's kfake
// with its data on disk. It is one node with no replication, one event loop
// (about one core) and 127.0.0.1-only listeners: right for a laptop, a demo
// and tests, never for production (see docs/operations.md).
package embedded

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"syscall"

	"github.com/spf13/pflag"
	"github.com/twmb/franz-go/pkg/kfake"
)

// Config of the embedded broker.
type Config struct {
	Port       int    `yaml:"port"`
	DataDir    string `yaml:"data_dir"`
	SyncWrites bool   `yaml:"sync_writes"`
	// CleanerBackoffMs is how often retention and compaction run. kfake
	// only starts that ticker for topics with topic-level retention, which
	// memoflow always sets (broker-level retention alone does nothing).
	CleanerBackoffMs int `yaml:"cleaner_backoff_ms"`
}

func (c *Config) RegisterFlags(fs *pflag.FlagSet) {
	fs.IntVar(&c.Port, "broker-port", 9092, "port of the embedded Kafka broker on 127.0.0.1")
	fs.StringVar(&c.DataDir, "broker-data-dir", "./var/kafka", "directory of the embedded broker's log segments and state")
	fs.BoolVar(&c.SyncWrites, "broker-sync-writes", false, "fsync every batch (survives power loss; slower)")
	fs.IntVar(&c.CleanerBackoffMs, "broker-cleaner-backoff-ms", 30000, "how often the embedded broker applies retention and compaction")
}

func (c *Config) Validate() error {
	if c.Port < 0 || c.Port > 65535 {
		return fmt.Errorf("broker.port: %d is not a TCP port (0..65535; 0 picks a free one)", c.Port)
	}
	if c.DataDir == "" {
		return errors.New("broker.data_dir: empty; the embedded broker keeps its data on disk, give a directory such as ./var/kafka")
	}
	if c.CleanerBackoffMs < 100 {
		return fmt.Errorf("broker.cleaner_backoff_ms: %d is too small; use at least 100", c.CleanerBackoffMs)
	}
	return nil
}

// Broker is a running embedded broker.
type Broker struct {
	c *kfake.Cluster
}

// ErrPortInUse is returned when the broker's port is taken.
var ErrPortInUse = errors.New("already in use")

// Start starts the broker and returns once it listens.
func Start(cfg Config, extra ...kfake.Opt) (*Broker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("broker data dir %s: %w", cfg.DataDir, err)
	}
	// Probe the port first: kfake's own error would be less clear.
	if cfg.Port != 0 {
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(cfg.Port))
		if err != nil {
			if errors.Is(err, syscall.EADDRINUSE) {
				return nil, fmt.Errorf("embedded broker: 127.0.0.1:%d is %w (another broker or memoflow running? stop it, or use --broker-port, or point --kafka-brokers at it)", cfg.Port, ErrPortInUse)
			}
			return nil, fmt.Errorf("embedded broker: listen on 127.0.0.1:%d: %w", cfg.Port, err)
		}
		l.Close()
	}
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.Ports(cfg.Port),
		kfake.ClusterID("memoflow-embedded"),
		kfake.DataDir(cfg.DataDir),
		kfake.DefaultNumPartitions(12),
		// Like Kafka's default auto.create.topics.enable=true, so tools
		// such as kcat work as they would against a real broker.
		kfake.AllowAutoTopicCreation(),
		kfake.BrokerConfigs(map[string]string{
			"log.cleaner.backoff.ms": strconv.Itoa(cfg.CleanerBackoffMs),
			// Room for a claim-check threshold of up to a few MB per record.
			"message.max.bytes": strconv.Itoa(16 << 20),
		}),
	}
	if cfg.SyncWrites {
		opts = append(opts, kfake.SyncWrites())
	}
	c, err := kfake.NewCluster(append(opts, extra...)...)
	if err != nil {
		return nil, fmt.Errorf("embedded broker: %w", err)
	}
	return &Broker{c: c}, nil
}

// Addrs are the listen addresses (host:port).
func (b *Broker) Addrs() []string { return b.c.ListenAddrs() }

// Cluster exposes kfake for tests (fault injection).
func (b *Broker) Cluster() *kfake.Cluster { return b.c }

// Close flushes state to disk and stops listening.
func (b *Broker) Close() { b.c.Close() }
