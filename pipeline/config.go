package pipeline

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// KafkaConfig says how to reach Kafka. An empty Brokers means "start the
// embedded broker" in `memoflow run`.
type KafkaConfig struct {
	Brokers           string        `yaml:"brokers"`
	ClientID          string        `yaml:"client_id"`
	TLS               bool          `yaml:"tls"`
	TLSCAFile         string        `yaml:"tls_ca_file"`
	TLSCertFile       string        `yaml:"tls_cert_file"`
	TLSKeyFile        string        `yaml:"tls_key_file"`
	TLSSkipVerify     bool          `yaml:"tls_insecure_skip_verify"`
	SASLMechanism     string        `yaml:"sasl_mechanism"`
	SASLUser          string        `yaml:"sasl_user"`
	SASLPassword      string        `yaml:"sasl_password"`
	SASLPasswordFile  string        `yaml:"sasl_password_file"`
	DialTimeout       time.Duration `yaml:"dial_timeout"`
	TopicPartitions   int           `yaml:"topic_partitions"`
	TopicReplication  int           `yaml:"topic_replication"`
	EmbeddedRetention time.Duration `yaml:"embedded_retention"`
}

// RegisterFlags binds the fields to flags named kafka-*; the environment
// variable for each is MEMOFLOW_ plus the flag name in upper case with
// underscores (MEMOFLOW_KAFKA_BROKERS).
func (c *KafkaConfig) RegisterFlags(fs *pflag.FlagSet) {
	fs.StringVar(&c.Brokers, "kafka-brokers", "", "comma-separated Kafka bootstrap brokers (host:port); empty: memoflow run starts the embedded broker")
	fs.StringVar(&c.ClientID, "kafka-client-id", "memoflow", "Kafka client id")
	fs.BoolVar(&c.TLS, "kafka-tls", false, "connect to Kafka over TLS")
	fs.StringVar(&c.TLSCAFile, "kafka-tls-ca-file", "", "PEM file of CAs that sign the brokers' certificates (default: system roots)")
	fs.StringVar(&c.TLSCertFile, "kafka-tls-cert-file", "", "PEM client certificate for mutual TLS")
	fs.StringVar(&c.TLSKeyFile, "kafka-tls-key-file", "", "PEM client key for mutual TLS")
	fs.BoolVar(&c.TLSSkipVerify, "kafka-tls-insecure-skip-verify", false, "do not verify the brokers' certificates (testing only)")
	fs.StringVar(&c.SASLMechanism, "kafka-sasl-mechanism", "", "SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (empty: no SASL)")
	fs.StringVar(&c.SASLUser, "kafka-sasl-user", "", "SASL user name")
	fs.StringVar(&c.SASLPassword, "kafka-sasl-password", "", "SASL password (prefer --kafka-sasl-password-file)")
	fs.StringVar(&c.SASLPasswordFile, "kafka-sasl-password-file", "", "file holding the SASL password")
	fs.DurationVar(&c.DialTimeout, "kafka-dial-timeout", 10*time.Second, "timeout for one connection attempt to a broker")
	fs.IntVar(&c.TopicPartitions, "kafka-topic-partitions", 12, "partitions of each pipeline topic when memoflow creates it")
	fs.IntVar(&c.TopicReplication, "kafka-topic-replication", 1, "replication factor of topics memoflow creates (3 in production)")
	fs.DurationVar(&c.EmbeddedRetention, "kafka-embedded-retention", 24*time.Hour, "retention.ms of pipeline topics created on the embedded broker, so long runs do not fill the disk")
}

// Validate reports the first field that cannot work, naming the fix.
func (c *KafkaConfig) Validate() error {
	for _, b := range c.BrokerList() {
		if _, port, ok := strings.Cut(b, ":"); !ok || port == "" {
			return fmt.Errorf("kafka.brokers: %q has no port; write host:port, e.g. 127.0.0.1:9092", b)
		}
	}
	switch strings.ToUpper(c.SASLMechanism) {
	case "", "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512":
	default:
		return fmt.Errorf("kafka.sasl_mechanism: %q is not supported; use PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", c.SASLMechanism)
	}
	if c.SASLMechanism != "" && c.SASLUser == "" {
		return errors.New("kafka.sasl_user: empty while kafka.sasl_mechanism is set; set --kafka-sasl-user")
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		return errors.New("kafka.tls_cert_file and kafka.tls_key_file: set both for mutual TLS, or neither")
	}
	if c.TopicPartitions < 1 || c.TopicPartitions > 10000 {
		return fmt.Errorf("kafka.topic_partitions: %d is out of range; use 1..10000 (12 is the default)", c.TopicPartitions)
	}
	if c.TopicReplication < 1 {
		return fmt.Errorf("kafka.topic_replication: %d must be at least 1", c.TopicReplication)
	}
	if c.DialTimeout <= 0 {
		return errors.New("kafka.dial_timeout: must be positive, e.g. 10s")
	}
	return nil
}

// BrokerList splits Brokers on commas, dropping blanks.
func (c *KafkaConfig) BrokerList() []string {
	var out []string
	for _, b := range strings.Split(c.Brokers, ",") {
		if b = strings.TrimSpace(b); b != "" {
			out = append(out, b)
		}
	}
	return out
}

// ClientOpts returns the connection options shared by every client memoflow
// makes: seeds, TLS, SASL, timeouts.
func (c *KafkaConfig) ClientOpts() ([]kgo.Opt, error) {
	opts := []kgo.Opt{
		kgo.SeedBrokers(c.BrokerList()...),
		kgo.ClientID(c.ClientID),
		kgo.DialTimeout(c.DialTimeout),
	}
	if c.TLS || c.TLSCAFile != "" || c.TLSCertFile != "" {
		tc := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: c.TLSSkipVerify} //nolint:gosec // opt-in for tests
		if c.TLSCAFile != "" {
			pem, err := os.ReadFile(c.TLSCAFile)
			if err != nil {
				return nil, fmt.Errorf("kafka.tls_ca_file: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("kafka.tls_ca_file: %s holds no PEM certificate", c.TLSCAFile)
			}
			tc.RootCAs = pool
		}
		if c.TLSCertFile != "" {
			cert, err := tls.LoadX509KeyPair(c.TLSCertFile, c.TLSKeyFile)
			if err != nil {
				return nil, fmt.Errorf("kafka.tls_cert_file/tls_key_file: %w", err)
			}
			tc.Certificates = []tls.Certificate{cert}
		}
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	if c.SASLMechanism != "" {
		pass := c.SASLPassword
		if c.SASLPasswordFile != "" {
			b, err := os.ReadFile(c.SASLPasswordFile)
			if err != nil {
				return nil, fmt.Errorf("kafka.sasl_password_file: %w", err)
			}
			pass = strings.TrimSpace(string(b))
		}
		switch strings.ToUpper(c.SASLMechanism) {
		case "PLAIN":
			opts = append(opts, kgo.SASL(plain.Auth{User: c.SASLUser, Pass: pass}.AsMechanism()))
		case "SCRAM-SHA-256":
			opts = append(opts, kgo.SASL(scram.Auth{User: c.SASLUser, Pass: pass}.AsSha256Mechanism()))
		case "SCRAM-SHA-512":
			opts = append(opts, kgo.SASL(scram.Auth{User: c.SASLUser, Pass: pass}.AsSha512Mechanism()))
		}
	}
	return opts, nil
}

// RunnerConfig tunes how a stage consumes, batches and retries.
type RunnerConfig struct {
	// PollRecords bounds the records handed to a Transformer at once and
	// so the records in one transaction.
	PollRecords int `yaml:"poll_records"`
	// MaxBufferedBytes bounds what the producer holds (backpressure: Produce
	// blocks when full) and, with FetchMaxBytes, what the consumer holds.
	MaxBufferedBytes int `yaml:"max_buffered_bytes"`
	FetchMaxBytes    int `yaml:"fetch_max_bytes"`
	// Transactions selects exactly-once Kafka→Kafka hops (the default).
	Transactions bool `yaml:"transactions"`
	// SinkBatchRecords and SinkBatchWait: a Sink is called when either is
	// reached, so ClickHouse sees few large inserts.
	SinkBatchRecords int           `yaml:"sink_batch_records"`
	SinkBatchWait    time.Duration `yaml:"sink_batch_wait"`
	RetryMinBackoff  time.Duration `yaml:"retry_min_backoff"`
	RetryMaxBackoff  time.Duration `yaml:"retry_max_backoff"`
	SessionTimeout   time.Duration `yaml:"session_timeout"`
	TxnTimeout       time.Duration `yaml:"transaction_timeout"`
	// ReplicaID makes the transactional id stable across restarts of the
	// same replica, so a restarted process fences its dead predecessor and
	// aborts its open transaction at once instead of after TxnTimeout.
	ReplicaID string `yaml:"replica_id"`
}

func (c *RunnerConfig) RegisterFlags(fs *pflag.FlagSet) {
	fs.IntVar(&c.PollRecords, "poll-records", 5000, "most records a stage handles per batch (and per transaction)")
	fs.IntVar(&c.MaxBufferedBytes, "max-buffered-bytes", 64<<20, "bytes a stage's producer may buffer before Produce blocks (backpressure)")
	fs.IntVar(&c.FetchMaxBytes, "fetch-max-bytes", 32<<20, "bytes a stage may fetch per request (bounds consumer memory)")
	fs.BoolVar(&c.Transactions, "transactions", true, "exactly-once Kafka→Kafka hops (Kafka transactions)")
	fs.IntVar(&c.SinkBatchRecords, "sink-batch-records", 50000, "records a sink stage accumulates before writing")
	fs.DurationVar(&c.SinkBatchWait, "sink-batch-wait", time.Second, "longest a sink stage waits to fill a batch")
	fs.DurationVar(&c.RetryMinBackoff, "retry-min-backoff", 100*time.Millisecond, "first backoff after a transient stage error")
	fs.DurationVar(&c.RetryMaxBackoff, "retry-max-backoff", 30*time.Second, "cap of the exponential backoff after transient errors")
	fs.DurationVar(&c.SessionTimeout, "session-timeout", 10*time.Second, "consumer group session timeout: how soon a dead member's partitions move")
	fs.DurationVar(&c.TxnTimeout, "transaction-timeout", 20*time.Second, "Kafka transaction timeout: bounds how long a crashed member's open transaction blocks readers")
	fs.StringVar(&c.ReplicaID, "replica-id", defaultReplicaID(), "stable id of this replica of a stage (unique per stage across the cluster)")
}

func defaultReplicaID() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "0"
	}
	return h
}

func (c *RunnerConfig) Validate() error {
	switch {
	case c.PollRecords < 1:
		return fmt.Errorf("poll_records: %d must be at least 1 (5000 is the default)", c.PollRecords)
	case c.MaxBufferedBytes < 1<<20:
		return fmt.Errorf("max_buffered_bytes: %d is below 1 MiB; records up to 1 MB must fit", c.MaxBufferedBytes)
	case c.FetchMaxBytes < 1<<20:
		return fmt.Errorf("fetch_max_bytes: %d is below 1 MiB", c.FetchMaxBytes)
	case c.SinkBatchRecords < 1:
		return fmt.Errorf("sink_batch_records: %d must be at least 1", c.SinkBatchRecords)
	case c.SinkBatchWait <= 0:
		return errors.New("sink_batch_wait: must be positive, e.g. 1s")
	case c.RetryMinBackoff <= 0 || c.RetryMaxBackoff < c.RetryMinBackoff:
		return errors.New("retry_min_backoff/retry_max_backoff: need 0 < min <= max")
	case c.SessionTimeout < 6*time.Second:
		return fmt.Errorf("session_timeout: %s is below the brokers' usual minimum of 6s", c.SessionTimeout)
	case c.TxnTimeout < time.Second:
		return fmt.Errorf("transaction_timeout: %s is too short; use at least 1s", c.TxnTimeout)
	case c.ReplicaID == "" || strings.ContainsAny(c.ReplicaID, " /"):
		return fmt.Errorf("replica_id: %q must be non-empty without spaces or slashes", c.ReplicaID)
	}
	return nil
}
