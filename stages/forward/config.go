package forward

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/pflag"
)

// Config of the forward stage.
type Config struct {
	// Timeout bounds one POST to a pickup system. The POSTs of a batch run
	// inside its Kafka transaction, so Timeout + CallBudget must stay below
	// the runner's --transaction-timeout (cmd/memoflow checks it).
	Timeout time.Duration `yaml:"timeout"`
	// CallBudget: no new POST starts when the batch has run this long;
	// the records not reached go back to memo.forward unchanged (same
	// transaction), so one slow pickup system cannot stretch a batch past
	// the transaction timeout.
	CallBudget time.Duration `yaml:"call_budget"`
	// PerTarget bounds the POSTs in flight to one pickup URL; Workers
	// over all of them.
	PerTarget int `yaml:"per_target"`
	Workers   int `yaml:"workers"`
	// MaxInflightBytes bounds the MeMo bodies held for POSTs in flight
	// (a pickup takes up to 99.5 MB each). A larger body takes the whole
	// budget alone.
	MaxInflightBytes int64 `yaml:"max_inflight_bytes"`
	// RetryGap is the wait after a failed attempt; MaxAttempts the
	// attempts before the forward is given up (the letter stays in the
	// mailbox). Defaults: every 10 minutes for a day.
	RetryGap    time.Duration `yaml:"retry_gap"`
	MaxAttempts int           `yaml:"max_attempts"`
	// Cooldown: after a connection failure or a timeout, further POSTs to
	// the same URL are rescheduled without a call for this long.
	Cooldown time.Duration `yaml:"cooldown"`
	// BatchRecords bounds a batch: a crash repeats at most the POSTs of
	// one batch (same Idempotency-Key).
	BatchRecords int `yaml:"batch_records"`
	// Spread is memo.routed's key spread for providers (route's
	// --route-spread; the command copies it), so a trusted third party's
	// copy is keyed as route keys its post.
	Spread int `yaml:"-"`
	// RetryPollRecords and MaxIdle tune the timer over memo.forward.retry.
	RetryPollRecords int           `yaml:"retry_poll_records"`
	MaxIdle          time.Duration `yaml:"max_idle"`
}

// DefaultConfig returns the defaults the flags have.
func DefaultConfig() Config {
	return Config{
		Timeout: 10 * time.Second, CallBudget: 5 * time.Second, PerTarget: 4, Workers: 32,
		MaxInflightBytes: 256 << 20, RetryGap: 10 * time.Minute, MaxAttempts: 144, Cooldown: 30 * time.Second,
		BatchRecords: 100, Spread: 32, RetryPollRecords: 1000, MaxIdle: time.Second,
	}
}

// RegisterFlags binds the flags (--forward-*).
func (c *Config) RegisterFlags(fs *pflag.FlagSet) {
	d := DefaultConfig()
	*c = d
	fs.DurationVar(&c.Timeout, "forward-timeout", d.Timeout, "timeout of one POST to a company's pickup system (with --forward-call-budget below --transaction-timeout)")
	fs.DurationVar(&c.CallBudget, "forward-call-budget", d.CallBudget, "no new pickup POST starts after a forward batch ran this long; the rest go back to memo.forward")
	fs.IntVar(&c.PerTarget, "forward-per-target", d.PerTarget, "pickup POSTs in flight per pickup URL")
	fs.IntVar(&c.Workers, "forward-workers", d.Workers, "pickup POSTs in flight over all pickup URLs")
	fs.Int64Var(&c.MaxInflightBytes, "forward-max-inflight-bytes", d.MaxInflightBytes, "MeMo bytes held for pickup POSTs in flight")
	fs.DurationVar(&c.RetryGap, "forward-retry-gap", d.RetryGap, "wait after a failed pickup POST before the next attempt")
	fs.IntVar(&c.MaxAttempts, "forward-max-attempts", d.MaxAttempts, "pickup attempts before a forward is given up (the letter stays in the mailbox)")
	fs.DurationVar(&c.Cooldown, "forward-cooldown", d.Cooldown, "after a connection failure or timeout, POSTs to that pickup URL are rescheduled without a call for this long")
	fs.IntVar(&c.BatchRecords, "forward-batch-records", d.BatchRecords, "records per forward batch; a crash can repeat the POSTs of one batch (same Idempotency-Key)")
}

// Validate checks c; errors name the field and the fix.
func (c *Config) Validate() error {
	switch {
	case c.Timeout <= 0:
		return errors.New("forward.timeout: must be positive, e.g. 10s")
	case c.CallBudget <= 0:
		return errors.New("forward.call_budget: must be positive, e.g. 5s")
	case c.PerTarget < 1:
		return errors.New("forward.per_target: must be at least 1")
	case c.Workers < c.PerTarget:
		return fmt.Errorf("forward.workers: %d is below per_target %d; raise it", c.Workers, c.PerTarget)
	case c.MaxInflightBytes < 1<<20:
		return fmt.Errorf("forward.max_inflight_bytes: %d is below 1 MiB; give at least the size of a typical MeMo", c.MaxInflightBytes)
	case c.RetryGap <= 0:
		return errors.New("forward.retry_gap: must be positive, e.g. 10m")
	case c.MaxAttempts < 1:
		return errors.New("forward.max_attempts: must be at least 1 (1: no retry)")
	case c.Cooldown < 0:
		return errors.New("forward.cooldown: must not be negative (0: no cooldown)")
	case c.BatchRecords < 1:
		return errors.New("forward.batch_records: must be at least 1")
	case c.Spread < 1:
		return errors.New("forward: spread must be at least 1 (it is route.spread)")
	case c.RetryPollRecords < 1:
		return errors.New("forward.retry_poll_records: must be at least 1")
	case c.MaxIdle <= 0:
		return errors.New("forward.max_idle: must be positive, e.g. 1s")
	}
	return nil
}

// CheckTransactionTimeout reports whether a batch's calls fit in the
// runner's transaction timeout.
func (c *Config) CheckTransactionTimeout(txn time.Duration) error {
	if c.Timeout+c.CallBudget >= txn {
		return fmt.Errorf("forward.timeout + forward.call_budget (%v + %v) must stay below the transaction timeout %v (the pickup POSTs run inside the batch's transaction); lower them or raise --transaction-timeout", c.Timeout, c.CallBudget, txn)
	}
	return nil
}
