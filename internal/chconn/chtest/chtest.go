// Package chtest gives tests a real ClickHouse: the one at $CLICKHOUSE_ADDR,
// or a local server that scripts/clickhouse.sh starts (and leaves running,
// so later test packages reuse it; stop it with scripts/clickhouse.sh stop).
// If no server can be had the test is skipped, or fails when CI=true.
package chtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/memoflow/memoflow/internal/chconn"
)

var (
	once    sync.Once
	conn    driver.Conn
	cfg     chconn.Config
	openErr error
)

// Conn returns a connection shared by the tests of this process, and its
// config (Database is the default; use Database for a private one).
func Conn(t testing.TB) (driver.Conn, chconn.Config) {
	t.Helper()
	once.Do(func() { conn, cfg, openErr = open() })
	if openErr != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("ClickHouse is required in CI: %v", openErr)
		}
		t.Skipf("no ClickHouse for this test: %v", openErr)
	}
	return conn, cfg
}

func open() (driver.Conn, chconn.Config, error) {
	c := chconn.DefaultConfig()
	c.OpenTimeout = time.Second
	ctx := context.Background()
	if conn, err := chconn.Open(ctx, c); err == nil {
		return conn, c, nil
	}
	if os.Getenv("CLICKHOUSE_ADDR") != "" {
		// Not ours to start; the script would only check it again.
		return nil, c, fmt.Errorf("CLICKHOUSE_ADDR=%s does not answer", c.Addr)
	}
	if err := startLocal(); err != nil {
		return nil, c, err
	}
	c.OpenTimeout = 30 * time.Second
	conn, err := chconn.Open(ctx, c)
	return conn, c, err
}

// startLocal runs scripts/clickhouse.sh start with the data under the
// repository's var/ directory (so every package's tests share one server).
func startLocal() error {
	root, err := repoRoot()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute) // a first run installs the package
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(root, "scripts", "clickhouse.sh"), "start")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "MEMOFLOW_VAR="+filepath.Join(root, "var"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("scripts/clickhouse.sh start: %v: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "scripts", "clickhouse.sh")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("scripts/clickhouse.sh not found above the working directory")
		}
		dir = parent
	}
}

// Database creates an empty database memoflow_test_<random> and drops it
// when the test ends (unless KEEP_TEST_DB=1, to look at it afterwards).
func Database(t testing.TB, conn driver.Conn) string {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "memoflow_test_" + hex.EncodeToString(b[:])
	ctx := context.Background()
	if err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create test database: %v", err)
	}
	t.Cleanup(func() {
		if os.Getenv("KEEP_TEST_DB") == "1" {
			t.Logf("kept database %s", name)
			return
		}
		if err := conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name); err != nil {
			t.Errorf("drop test database %s: %v", name, err)
		}
	})
	return name
}
