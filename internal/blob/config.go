package blob

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/pflag"
)

// ErrInvalidConfig is wrapped by every error Validate returns.
var ErrInvalidConfig = errors.New("invalid blob config")

// Defaults of Config.
const (
	DefaultDir            = "./var/blobs"
	DefaultThresholdBytes = 512 << 10
	// MaxThresholdBytes keeps a record that carries its MeMo inline under
	// Kafka's default record limit (message.max.bytes, ~1 MB), with room
	// for headers and the envelope.
	MaxThresholdBytes = 900 << 10
	// DefaultRetention: 90 days. A message needs its body for at most
	// 5 days of hold, 8 days of redelivery and then until its recipient
	// system picks it up; blobs of delivered messages go at once (blobgc).
	DefaultRetention = 90 * 24 * time.Hour
	// MinRetention: records referring to blobs stay 7 days in Kafka.
	MinRetention = 8 * 24 * time.Hour
)

// Config chooses and configures the blob store.
type Config struct {
	// Store is "dir" or "s3".
	Store string `yaml:"store"`
	// Dir is the directory of the dir store.
	Dir string `yaml:"dir"`
	// ThresholdBytes: a MeMo larger than this goes to the store and its
	// record carries a Ref.
	ThresholdBytes int64 `yaml:"threshold_bytes"`
	// Retention: the blobgc stage deletes blobs older than this whatever
	// their message's state (0: never). It must exceed the longest a
	// message can still need its body: hold until the value date,
	// redelivery schedule, waiting for pickup (docs/operations.md).
	Retention time.Duration `yaml:"retention"`
	// SweepInterval between two age sweeps (0: 1h).
	SweepInterval time.Duration `yaml:"sweep_interval"`
	S3            S3Config      `yaml:"s3"`
}

// DefaultConfig returns the defaults RegisterFlags also installs.
func DefaultConfig() Config {
	return Config{Store: "dir", Dir: DefaultDir, ThresholdBytes: DefaultThresholdBytes,
		Retention: DefaultRetention, SweepInterval: time.Hour}
}

// RegisterFlags sets c to the defaults and binds every field to a flag
// named blob-<field>.
func (c *Config) RegisterFlags(fs *pflag.FlagSet) {
	d := DefaultConfig()
	fs.StringVar(&c.Store, "blob-store", d.Store, "claim-check blob store: dir (local directory) or s3 (S3-compatible, e.g. MinIO)")
	fs.StringVar(&c.Dir, "blob-dir", d.Dir, "directory of the dir blob store")
	fs.Int64Var(&c.ThresholdBytes, "blob-threshold-bytes", d.ThresholdBytes, "MeMos larger than this are stored as blobs and referenced from their Kafka record")
	fs.DurationVar(&c.Retention, "blob-retention", d.Retention, "the blobgc stage deletes blobs older than this, delivered or not (0: never); must exceed hold + redelivery + pickup time")
	fs.DurationVar(&c.SweepInterval, "blob-sweep-interval", d.SweepInterval, "time between two age sweeps of the blob store")
	fs.StringVar(&c.S3.Endpoint, "blob-s3-endpoint", "", "S3 endpoint host:port (no scheme)")
	fs.StringVar(&c.S3.Bucket, "blob-s3-bucket", "", "S3 bucket holding the blobs")
	fs.StringVar(&c.S3.AccessKey, "blob-s3-access-key", "", "S3 access key ID")
	fs.StringVar(&c.S3.SecretKeyFile, "blob-s3-secret-key-file", "", "file holding the S3 secret key")
	fs.BoolVar(&c.S3.UseTLS, "blob-s3-use-tls", false, "connect to S3 over https")
	fs.StringVar(&c.S3.Region, "blob-s3-region", "", "S3 region (optional for MinIO)")
}

// Validate reports the first unusable field, naming its flag and the fix.
// S3 fields are checked only when Store is s3.
func (c Config) Validate() error {
	switch c.Store {
	case "dir":
		if c.Dir == "" {
			return invalid("blob-dir", "must name a directory (default %s)", DefaultDir)
		}
	case "s3":
		if err := c.S3.Validate(); err != nil {
			return err
		}
	default:
		return invalid("blob-store", "must be dir or s3, got %q", c.Store)
	}
	if c.Retention != 0 && c.Retention < MinRetention {
		return invalid("blob-retention", "must be 0 (never) or at least %v (Kafka keeps records that refer to blobs for 7 days), got %v", MinRetention, c.Retention)
	}
	if c.SweepInterval != 0 && c.SweepInterval < time.Minute {
		return invalid("blob-sweep-interval", "must be at least 1m, got %v (default 1h)", c.SweepInterval)
	}
	if c.ThresholdBytes <= 0 || c.ThresholdBytes > MaxThresholdBytes {
		return invalid("blob-threshold-bytes", "must be 1-%d (Kafka's default record limit is ~1 MB), got %d (default %d)",
			MaxThresholdBytes, c.ThresholdBytes, DefaultThresholdBytes)
	}
	return nil
}

func invalid(flag, format string, args ...any) error {
	return fmt.Errorf("%w: --%s %s", ErrInvalidConfig, flag, fmt.Sprintf(format, args...))
}

// Open validates cfg and returns its store.
func Open(cfg Config) (Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	// Explicit nils: a nil *S3 or *Dir in a Store would not be == nil.
	if cfg.Store == "s3" {
		s, err := NewS3(cfg.S3)
		if err != nil {
			return nil, err
		}
		return s, nil
	}
	d, err := NewDir(cfg.Dir)
	if err != nil {
		return nil, err
	}
	return d, nil
}
