package chconn

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// ErrUnreachable is matched (errors.Is) by the error Open returns when no
// server answered in time.
var ErrUnreachable = errors.New("clickhouse not reachable")

// UnreachableError says which address did not answer and why.
type UnreachableError struct {
	Addr string
	Err  error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("clickhouse at %s is not reachable: %v (start it with scripts/clickhouse.sh start or set CLICKHOUSE_ADDR)", e.Addr, e.Err)
}

func (e *UnreachableError) Unwrap() error        { return e.Err }
func (e *UnreachableError) Is(target error) bool { return target == ErrUnreachable }

// Open connects to ClickHouse and waits, at most cfg.OpenTimeout, until the
// server answers a ping. It fails at once on a refused login: waiting cannot
// fix credentials. The connection does not select cfg.Database (the
// migrations create it); queries qualify table names.
func Open(ctx context.Context, cfg Config) (driver.Conn, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	pw, err := cfg.password()
	if err != nil {
		return nil, err
	}
	conn, err := clickhouse.Open(cfg.options(pw))
	if err != nil {
		return nil, fmt.Errorf("clickhouse options for %s: %w", cfg.Addr, err)
	}
	if err := waitReady(ctx, conn, cfg); err != nil {
		conn.Close()
		return nil, err
	}
	return conn, nil
}

func (c Config) options(password string) *clickhouse.Options {
	method := clickhouse.CompressionLZ4
	switch c.Compression {
	case "zstd":
		method = clickhouse.CompressionZSTD
	case "none":
		method = clickhouse.CompressionNone
	}
	return &clickhouse.Options{
		Protocol:     clickhouse.Native,
		Addr:         []string{c.Addr},
		Auth:         clickhouse.Auth{Username: c.Username, Password: password},
		DialTimeout:  c.DialTimeout,
		ReadTimeout:  c.ReadTimeout,
		MaxOpenConns: c.MaxOpenConns,
		MaxIdleConns: c.MaxOpenConns,
		Compression:  &clickhouse.Compression{Method: method},
		ClientInfo: clickhouse.ClientInfo{Products: []struct{ Name, Version string }{
			{Name: "memoflow", Version: "dev"},
		}},
	}
}

func waitReady(ctx context.Context, conn driver.Conn, cfg Config) error {
	ctx, cancel := context.WithTimeout(ctx, cfg.OpenTimeout)
	defer cancel()
	const pause = 200 * time.Millisecond
	for {
		err := conn.Ping(ctx)
		if err == nil {
			return nil
		}
		if code, ok := ExceptionCode(err); ok && isAuthCode(code) {
			return fmt.Errorf("clickhouse at %s refused user %q: %w (check --clickhouse-username/--clickhouse-password-file)", cfg.Addr, cfg.Username, err)
		}
		select {
		case <-ctx.Done():
			if ctx.Err() == context.DeadlineExceeded {
				err = fmt.Errorf("no answer within %v: %w", cfg.OpenTimeout, err)
			}
			return &UnreachableError{Addr: cfg.Addr, Err: err}
		case <-time.After(pause):
		}
	}
}
