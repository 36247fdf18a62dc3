// Package chconn opens memoflow's ClickHouse connections and says what the
// server can do and what its errors mean: a Config with flags, Open with a
// bounded wait, the server Version and its Features, and Classify, which maps
// ClickHouse errors onto the pipeline's error classes.
package chconn

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
)

// DefaultAddr is where scripts/clickhouse.sh starts a local server.
const DefaultAddr = "127.0.0.1:9000"

// DefaultDatabase holds memoflow's tables unless configured otherwise.
const DefaultDatabase = "memoflow"

// ErrInvalidConfig is wrapped by every error Validate returns.
var ErrInvalidConfig = errors.New("invalid clickhouse config")

// Config says how to reach ClickHouse. The zero value is not usable: start
// from DefaultConfig or RegisterFlags.
type Config struct {
	// Addr is the native-protocol host:port (not the HTTP port). Defaults to
	// $CLICKHOUSE_ADDR, else 127.0.0.1:9000.
	Addr string `yaml:"addr"`
	// Database is the database memoflow's tables live in. Open does not
	// select it (it may not exist before the migrations create it): queries
	// name it explicitly.
	Database string `yaml:"database"`
	Username string `yaml:"username"`
	// Password is for development; prefer PasswordFile, which keeps the
	// secret out of the process list and the config file.
	Password     string `yaml:"password"`
	PasswordFile string `yaml:"password_file"`
	// DialTimeout bounds one TCP connect and handshake.
	DialTimeout time.Duration `yaml:"dial_timeout"`
	// ReadTimeout bounds one read from the server. It is what makes a
	// stuck query (such as an INSERT … VALUES sent through Exec, which
	// waits for data that never comes) fail instead of hanging for the
	// driver's default 300 s.
	ReadTimeout time.Duration `yaml:"read_timeout"`
	// OpenTimeout bounds how long Open waits for the server to answer a
	// ping, so a process started together with ClickHouse does not fail on
	// the server's first second.
	OpenTimeout time.Duration `yaml:"open_timeout"`
	// Compression of native blocks: lz4 (default), zstd or none.
	Compression string `yaml:"compression"`
	// MaxOpenConns caps the connection pool.
	MaxOpenConns int `yaml:"max_open_conns"`
}

// DefaultConfig returns the defaults RegisterFlags also installs.
func DefaultConfig() Config {
	addr := os.Getenv("CLICKHOUSE_ADDR")
	if addr == "" {
		addr = DefaultAddr
	}
	return Config{
		Addr:         addr,
		Database:     DefaultDatabase,
		Username:     "default",
		DialTimeout:  5 * time.Second,
		ReadTimeout:  60 * time.Second,
		OpenTimeout:  15 * time.Second,
		Compression:  "lz4",
		MaxOpenConns: 4,
	}
}

// RegisterFlags sets c to the defaults and binds every field to a flag
// named clickhouse-<field>.
func (c *Config) RegisterFlags(fs *pflag.FlagSet) {
	d := DefaultConfig()
	fs.StringVar(&c.Addr, "clickhouse-addr", d.Addr, "ClickHouse native protocol host:port (default from $CLICKHOUSE_ADDR)")
	fs.StringVar(&c.Database, "clickhouse-database", d.Database, "ClickHouse database that holds memoflow's tables")
	fs.StringVar(&c.Username, "clickhouse-username", d.Username, "ClickHouse user")
	fs.StringVar(&c.Password, "clickhouse-password", "", "ClickHouse password (prefer --clickhouse-password-file)")
	fs.StringVar(&c.PasswordFile, "clickhouse-password-file", "", "file holding the ClickHouse password")
	fs.DurationVar(&c.DialTimeout, "clickhouse-dial-timeout", d.DialTimeout, "timeout for one connect and handshake")
	fs.DurationVar(&c.ReadTimeout, "clickhouse-read-timeout", d.ReadTimeout, "timeout for one read from the server")
	fs.DurationVar(&c.OpenTimeout, "clickhouse-open-timeout", d.OpenTimeout, "how long start-up waits for ClickHouse to answer")
	fs.StringVar(&c.Compression, "clickhouse-compression", d.Compression, "block compression: lz4, zstd or none")
	fs.IntVar(&c.MaxOpenConns, "clickhouse-max-open-conns", d.MaxOpenConns, "maximum open connections")
}

// Validate reports the first unusable field, naming its flag and the fix.
func (c Config) Validate() error {
	if _, port, err := net.SplitHostPort(c.Addr); err != nil || port == "" {
		return invalid("clickhouse-addr", "must be host:port of the native protocol, got %q (e.g. %s)", c.Addr, DefaultAddr)
	} else if p, err := strconv.Atoi(port); err != nil || p <= 0 || p > 65535 {
		return invalid("clickhouse-addr", "port must be 1-65535, got %q", port)
	}
	if !IsIdentifier(c.Database) {
		return invalid("clickhouse-database", "must be a plain identifier ([A-Za-z_][A-Za-z0-9_]*), got %q", c.Database)
	}
	if c.Username == "" {
		return invalid("clickhouse-username", "must not be empty (ClickHouse's built-in user is \"default\")")
	}
	if c.Password != "" && c.PasswordFile != "" {
		return invalid("clickhouse-password-file", "set either --clickhouse-password or --clickhouse-password-file, not both")
	}
	for _, d := range []struct {
		flag string
		v    time.Duration
	}{{"clickhouse-dial-timeout", c.DialTimeout}, {"clickhouse-read-timeout", c.ReadTimeout}, {"clickhouse-open-timeout", c.OpenTimeout}} {
		if d.v <= 0 {
			return invalid(d.flag, "must be positive, got %v (e.g. 5s)", d.v)
		}
	}
	switch c.Compression {
	case "lz4", "zstd", "none":
	default:
		return invalid("clickhouse-compression", "must be lz4, zstd or none, got %q", c.Compression)
	}
	if c.MaxOpenConns < 1 {
		return invalid("clickhouse-max-open-conns", "must be at least 1, got %d", c.MaxOpenConns)
	}
	return nil
}

func invalid(flag, format string, args ...any) error {
	return fmt.Errorf("%w: --%s %s", ErrInvalidConfig, flag, fmt.Sprintf(format, args...))
}

// password returns the password, reading PasswordFile if set.
func (c Config) password() (string, error) {
	if c.PasswordFile == "" {
		return c.Password, nil
	}
	b, err := os.ReadFile(c.PasswordFile)
	if err != nil {
		return "", fmt.Errorf("%w: --clickhouse-password-file: %v", ErrInvalidConfig, err)
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

// IsIdentifier reports whether s can be used unquoted as a ClickHouse
// database or table name. Names are spliced into DDL, so anything else is
// refused rather than escaped.
func IsIdentifier(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i, r := range s {
		switch {
		case r == '_', r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z':
		case r >= '0' && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}
