package deliver

import (
	"errors"
	"fmt"
	"net/mail"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
)

// DefaultSchedule is the seeds' redelivery rule ("3 times during the first
// day, then once a day for 7 days"), as offsets from the first failed
// attempt: three retries within the first 24 hours, then one a day on days
// 1 to 7. After the last one fails, the system's contact person is told and
// the sender gets a negative business receipt.
var DefaultSchedule = []time.Duration{
	1 * time.Hour, 4 * time.Hour, 12 * time.Hour,
	24 * time.Hour, 48 * time.Hour, 72 * time.Hour, 96 * time.Hour, 120 * time.Hour, 144 * time.Hour, 168 * time.Hour,
}

// Config is the delivery stage's configuration.
type Config struct {
	// Schedule lists the retry times as offsets from the first failed
	// attempt, strictly increasing. Each distinct gap between two
	// neighbours gets its own delay topic (RetryTopics).
	Schedule []time.Duration `yaml:"schedule"`
	// DeactivateAfter: a recipient system that received nothing for this
	// long when a message's schedule runs out is deactivated.
	DeactivateAfter time.Duration `yaml:"deactivate_after"`
	// Timeout bounds one HTTP push, connection to last byte.
	Timeout time.Duration `yaml:"timeout"`
	// PerSystem bounds the pushes in flight to one system; Workers bounds
	// them over all systems.
	PerSystem int `yaml:"per_system"`
	Workers   int `yaml:"workers"`
	// BreakerFailures consecutive failures open a system's circuit for
	// BreakerCooldown: its messages are rescheduled without a call.
	BreakerFailures int           `yaml:"breaker_failures"`
	BreakerCooldown time.Duration `yaml:"breaker_cooldown"`
	// BreakerTimeouts: this many consecutive timeouts (the calls still in
	// flight when one times out count too) open the circuit. A hanging
	// system costs every batch that calls it a whole timeout, so it is
	// cut off sooner than one that answers errors.
	BreakerTimeouts int `yaml:"breaker_timeouts"`
	// SlowThreshold: a system whose pushes take longer than this on
	// average has its fresh messages moved to the slow lane (slow.go);
	// 0 turns the slow lane off.
	SlowThreshold time.Duration `yaml:"slow_threshold"`
	// RetryPollRecords bounds one poll of the retry consumer.
	RetryPollRecords int `yaml:"retry_poll_records"`
	// BatchRecords bounds the records of one sink batch (below the
	// runtime's --sink-batch-records): a crash redoes the batch in hand,
	// and without the push journal repeats its acknowledged pushes, so
	// small batches mean few duplicate pushes.
	BatchRecords int `yaml:"batch_records"`
	// JournalWindow is how long the push journal remembers an
	// acknowledged push (journal.go): a batch redone within it does not
	// push those messages again. 0 turns the journal off.
	JournalWindow time.Duration `yaml:"journal_window"`
	// MaxIdle bounds how long the retry consumer waits before it looks at
	// the clock again (so an injected clock is noticed in tests).
	MaxIdle time.Duration `yaml:"max_idle"`
	// PullStoreDir holds the pull API's on-disk outbox index.
	PullStoreDir string `yaml:"pull_store_dir"`
	// PullBaseURL is the public base URL told to publish/subscribe
	// systems in notifications ("" = relative paths).
	PullBaseURL string `yaml:"pull_base_url"`

	// SFTPKeyFile is memoflow's SSH private key for SFTP recipient systems
	// (ed25519, or RSA of at least 2048 bits; unencrypted, from the secret
	// store). Empty: messages to SFTP systems fail with
	// DELIVER_TRANSPORT_CONFIG.
	SFTPKeyFile string `yaml:"sftp_key_file"`
	// SFTPReceiptPoll is how often the pull API polls SFTP systems'
	// receipt folders; 0 turns polling off in this process (run it on one
	// replica only, if you like: two replicas polling are safe).
	SFTPReceiptPoll time.Duration `yaml:"sftp_receipt_poll"`
	// SMTPCertFile and SMTPKeyFile are memoflow's function certificate
	// (FOCES/VOCES, PEM, then intermediates) and its key, which sign every
	// mail to SMTP systems. Empty: messages to SMTP systems fail with
	// DELIVER_TRANSPORT_CONFIG.
	SMTPCertFile string `yaml:"smtp_cert_file"`
	SMTPKeyFile  string `yaml:"smtp_key_file"`
	// SMTPFrom is the envelope sender and From: of the mails.
	SMTPFrom string `yaml:"smtp_from"`
	// SMTPTLSCAFile verifies the systems' mail servers (PEM); empty means
	// the system roots. SMTPRecipientCAFile, when set, is where systems'
	// certificates must chain to (the OCES CAs).
	SMTPTLSCAFile       string `yaml:"smtp_tls_ca_file"`
	SMTPRecipientCAFile string `yaml:"smtp_recipient_ca_file"`
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		Schedule:         slices.Clone(DefaultSchedule),
		DeactivateAfter:  7 * 24 * time.Hour,
		Timeout:          30 * time.Second,
		PerSystem:        8,
		Workers:          256,
		BreakerFailures:  5,
		BreakerCooldown:  30 * time.Second,
		BreakerTimeouts:  2,
		SlowThreshold:    2 * time.Second,
		RetryPollRecords: 1000,
		BatchRecords:     500,
		JournalWindow:    10 * time.Minute,
		MaxIdle:          time.Second,
		PullStoreDir:     "./var/outbox",
		SFTPReceiptPoll:  30 * time.Second,
	}
}

// RegisterFlags binds the configuration to flags named --deliver-*.
func (c *Config) RegisterFlags(fs *pflag.FlagSet) {
	d := DefaultConfig()
	*c = d
	fs.Var((*scheduleValue)(&c.Schedule), "deliver-schedule", "redelivery times after the first failed attempt, comma-separated durations, increasing (the seeds: 3 the first day, then daily for 7 days)")
	fs.DurationVar(&c.DeactivateAfter, "deliver-deactivate-after", d.DeactivateAfter, "deactivate a recipient system that received nothing for this long")
	fs.DurationVar(&c.Timeout, "deliver-timeout", d.Timeout, "timeout of one push to a recipient system")
	fs.IntVar(&c.PerSystem, "deliver-per-system", d.PerSystem, "pushes in flight per recipient system")
	fs.IntVar(&c.Workers, "deliver-workers", d.Workers, "pushes in flight over all recipient systems")
	fs.IntVar(&c.BreakerFailures, "deliver-breaker-failures", d.BreakerFailures, "consecutive failures that open a system's circuit")
	fs.IntVar(&c.BreakerTimeouts, "deliver-breaker-timeouts", d.BreakerTimeouts, "consecutive timeouts (calls in flight included) that open a system's circuit")
	fs.DurationVar(&c.BreakerCooldown, "deliver-breaker-cooldown", d.BreakerCooldown, "how long an open circuit stays open before one probe")
	fs.DurationVar(&c.SlowThreshold, "deliver-slow-threshold", d.SlowThreshold, "a recipient system whose pushes take longer than this on average gets its new messages in the slow lane (memo.retry.slow), so it does not hold up the others' batches (0: off)")
	fs.IntVar(&c.RetryPollRecords, "deliver-retry-poll-records", d.RetryPollRecords, "records per poll of the retry consumer")
	fs.IntVar(&c.BatchRecords, "deliver-batch-records", d.BatchRecords, "records per delivery batch (one transaction); with the push journal a crash repeats only the pushes in flight, without it every acknowledged push of the batch (same idempotency keys)")
	fs.DurationVar(&c.JournalWindow, "deliver-journal-window", d.JournalWindow, "how long the push journal remembers acknowledged pushes, so a batch redone after a crash or rebalance does not push them again (memory: about 80 bytes per push in the window; 0: no journal)")
	fs.StringVar(&c.PullStoreDir, "deliver-pull-store-dir", d.PullStoreDir, "directory of the pull API's on-disk outbox index")
	fs.StringVar(&c.PullBaseURL, "deliver-pull-base-url", d.PullBaseURL, "public base URL of the pull API, used in publish/subscribe notifications")
	fs.StringVar(&c.SFTPKeyFile, "sftp-key-file", "", "memoflow's SSH private key for SFTP recipient systems (ed25519 or RSA >= 2048, unencrypted); without it SFTP deliveries fail with DELIVER_TRANSPORT_CONFIG")
	fs.DurationVar(&c.SFTPReceiptPoll, "sftp-receipt-poll", d.SFTPReceiptPoll, "how often the pull API polls SFTP systems' receipt folders (0: not in this process)")
	fs.StringVar(&c.SMTPCertFile, "smtp-cert-file", "", "memoflow's function certificate (PEM, FOCES/VOCES, then intermediates) signing mail to SMTP recipient systems")
	fs.StringVar(&c.SMTPKeyFile, "smtp-key-file", "", "private key of --smtp-cert-file (PEM: PKCS#8, PKCS#1 or SEC 1)")
	fs.StringVar(&c.SMTPFrom, "smtp-from", "", "sender address of mail to SMTP recipient systems, e.g. digitalpost@memoflow.example")
	fs.StringVar(&c.SMTPTLSCAFile, "smtp-tls-ca-file", "", "CA certificates (PEM) verifying SMTP systems' mail servers (default: the system roots)")
	fs.StringVar(&c.SMTPRecipientCAFile, "smtp-recipient-ca-file", "", "CA certificates (PEM, the OCES CAs) SMTP systems' certificates must chain to (default: not checked)")
}

// Validate checks c; errors name the field and the fix.
func (c *Config) Validate() error {
	if len(c.Schedule) == 0 {
		return errors.New("deliver.schedule: empty; give at least one retry offset, e.g. 1h,4h,12h,24h")
	}
	for i, d := range c.Schedule {
		if d <= 0 {
			return fmt.Errorf("deliver.schedule[%d]: %v is not positive", i, d)
		}
		if i > 0 && d <= c.Schedule[i-1] {
			return fmt.Errorf("deliver.schedule[%d]: %v is not after %v; offsets count from the first failure and must increase", i, d, c.Schedule[i-1])
		}
	}
	switch {
	case c.DeactivateAfter <= 0:
		return errors.New("deliver.deactivate_after: must be positive, e.g. 168h")
	case c.Timeout <= 0:
		return errors.New("deliver.timeout: must be positive, e.g. 30s")
	case c.PerSystem < 1:
		return errors.New("deliver.per_system: must be at least 1")
	case c.Workers < c.PerSystem:
		return fmt.Errorf("deliver.workers: %d is below per_system %d; raise it", c.Workers, c.PerSystem)
	case c.BreakerFailures < 1:
		return errors.New("deliver.breaker_failures: must be at least 1")
	case c.BreakerTimeouts < 1:
		return errors.New("deliver.breaker_timeouts: must be at least 1")
	case c.BreakerCooldown <= 0:
		return errors.New("deliver.breaker_cooldown: must be positive, e.g. 30s")
	case c.SlowThreshold < 0:
		return fmt.Errorf("deliver.slow_threshold: %v is negative; give a duration such as 2s, or 0 to turn the slow lane off", c.SlowThreshold)
	case c.RetryPollRecords < 1:
		return errors.New("deliver.retry_poll_records: must be at least 1")
	case c.BatchRecords < 0:
		return errors.New("deliver.batch_records: must be at least 1 (0: the runtime's --sink-batch-records)")
	case c.JournalWindow < 0:
		return fmt.Errorf("deliver.journal_window: %v is negative; give a duration such as 10m, or 0 for no push journal", c.JournalWindow)
	case c.MaxIdle <= 0:
		return errors.New("deliver.max_idle: must be positive, e.g. 1s")
	case c.SFTPReceiptPoll < 0:
		return errors.New("deliver.sftp_receipt_poll: must not be negative (0 turns polling off)")
	case c.SMTPCertFile != "" && c.SMTPKeyFile == "":
		return errors.New("deliver.smtp_key_file: --smtp-cert-file is set without its key; give --smtp-key-file too")
	case c.SMTPCertFile == "" && c.SMTPKeyFile != "":
		return errors.New("deliver.smtp_cert_file: --smtp-key-file is set without its certificate; give --smtp-cert-file too")
	case c.SMTPCertFile != "" && !validMailbox(c.SMTPFrom):
		return fmt.Errorf("deliver.smtp_from: %q: give memoflow's sender address (name@domain) with --smtp-from", c.SMTPFrom)
	case c.SMTPCertFile == "" && (c.SMTPTLSCAFile != "" || c.SMTPRecipientCAFile != ""):
		return errors.New("deliver.smtp_cert_file: CA files are set but no function certificate; give --smtp-cert-file and --smtp-key-file, or drop the CA files")
	}
	return nil
}

// validMailbox: a bare address, name@domain.
func validMailbox(s string) bool {
	a, err := mail.ParseAddress(s)
	return err == nil && a.Name == "" && a.Address == s && strings.Contains(s, "@")
}

// RetryTopicPrefix names the delay topics: memo.retry.<gap>.
const RetryTopicPrefix = "memo.retry."

// HoldTopic holds first attempts route scheduled for later (NemSMS is not
// sent between 18:00 and 08:00: route sets NextAttemptMs to the next 08:00).
// Records written during one night share one due time, so this topic's
// partitions also fall due in order.
const HoldTopic = RetryTopicPrefix + "hold"

// RetryTopics returns the delay topics: the hold topic, then the
// schedule's, one per distinct gap between neighbouring attempts. Every record of one topic waits the
// same time, so a partition's records become due in the order they were
// written and its consumer only ever waits for the head.
func (c *Config) RetryTopics() []string {
	out := []string{HoldTopic}
	if c.SlowThreshold > 0 {
		out = append(out, SlowTopic) // due at once, like the hold topic's records in the day
	}
	for i := range c.Schedule {
		t := RetryTopicPrefix + durName(c.gap(i))
		if !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out
}

// gap is the wait before retry i (0-based): from the failure of the
// attempt before it.
func (c *Config) gap(i int) time.Duration {
	if i == 0 {
		return c.Schedule[0]
	}
	return c.Schedule[i] - c.Schedule[i-1]
}

// durName is a short topic-safe duration: 90s, 15m, 8h, 1h30m.
func durName(d time.Duration) string {
	switch {
	case d%time.Hour == 0:
		return strconv.FormatInt(int64(d/time.Hour), 10) + "h"
	case d%time.Minute == 0:
		return strconv.FormatInt(int64(d/time.Minute), 10) + "m"
	case d%time.Second == 0:
		return strconv.FormatInt(int64(d/time.Second), 10) + "s"
	}
	return strconv.FormatInt(int64(d/time.Millisecond), 10) + "ms"
}

type scheduleValue []time.Duration

func (s *scheduleValue) String() string {
	parts := make([]string, len(*s))
	for i, d := range *s {
		parts[i] = d.String()
	}
	return strings.Join(parts, ",")
}

func (s *scheduleValue) Set(v string) error {
	var out []time.Duration
	for _, p := range strings.Split(v, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(p))
		if err != nil {
			return fmt.Errorf("--deliver-schedule: %q: %v", p, err)
		}
		out = append(out, d)
	}
	*s = out
	return nil
}

func (s *scheduleValue) Type() string { return "durations" }
