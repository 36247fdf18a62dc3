package chconn_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/spf13/pflag"

	"github.com/memoflow/memoflow/internal/chconn"
	"github.com/memoflow/memoflow/internal/chconn/chtest"
	"github.com/memoflow/memoflow/pipeline"
)

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*chconn.Config)
		flag string // "" means valid
	}{
		{"defaults", func(*chconn.Config) {}, ""},
		{"no port", func(c *chconn.Config) { c.Addr = "localhost" }, "clickhouse-addr"},
		{"bad port", func(c *chconn.Config) { c.Addr = "localhost:99999" }, "clickhouse-addr"},
		{"database with dash", func(c *chconn.Config) { c.Database = "memo-flow" }, "clickhouse-database"},
		{"database injection", func(c *chconn.Config) { c.Database = "x; DROP DATABASE y" }, "clickhouse-database"},
		{"no user", func(c *chconn.Config) { c.Username = "" }, "clickhouse-username"},
		{"two passwords", func(c *chconn.Config) { c.Password, c.PasswordFile = "a", "/b" }, "clickhouse-password-file"},
		{"zero read timeout", func(c *chconn.Config) { c.ReadTimeout = 0 }, "clickhouse-read-timeout"},
		{"compression", func(c *chconn.Config) { c.Compression = "snappy" }, "clickhouse-compression"},
		{"conns", func(c *chconn.Config) { c.MaxOpenConns = 0 }, "clickhouse-max-open-conns"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := chconn.DefaultConfig()
			c.Addr = chconn.DefaultAddr
			tc.edit(&c)
			err := c.Validate()
			if tc.flag == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if !errors.Is(err, chconn.ErrInvalidConfig) || !strings.Contains(err.Error(), "--"+tc.flag+" ") {
				t.Fatalf("Validate = %v, want ErrInvalidConfig naming --%s", err, tc.flag)
			}
		})
	}
}

func TestRegisterFlags(t *testing.T) {
	var c chconn.Config
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	c.RegisterFlags(fs)
	if err := fs.Parse([]string{"--clickhouse-addr=db:9440", "--clickhouse-read-timeout=3s", "--clickhouse-database=dp"}); err != nil {
		t.Fatal(err)
	}
	if c.Addr != "db:9440" || c.ReadTimeout != 3*time.Second || c.Database != "dp" || c.Compression != "lz4" {
		t.Fatalf("parsed config = %+v", c)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestVersionAndFeatures(t *testing.T) {
	for _, tc := range []struct {
		in                 string
		ttl, token, lowCar bool
	}{
		{"18.16.1", false, false, false},
		{"19.3.4", false, false, true},
		{"20.1.2.4", true, false, true},
		{"22.1.3", true, false, true},
		{"22.2.1", true, true, true},
		{"24.8.4.13", true, true, true},
		{"26.5.1.1", true, true, true},
	} {
		v, err := chconn.ParseVersion(tc.in)
		if err != nil {
			t.Fatal(err)
		}
		f := chconn.FeaturesOf(v)
		if f.TTL != tc.ttl || f.InsertDeduplicationToken != tc.token || f.LowCardinality != tc.lowCar {
			t.Errorf("FeaturesOf(%s) = %+v", tc.in, f)
		}
	}
	if _, err := chconn.ParseVersion("banana"); err == nil {
		t.Error("ParseVersion(banana) did not fail")
	}
}

func TestClassify(t *testing.T) {
	ex := func(code int32) error {
		return fmt.Errorf("insert: %w", &clickhouse.Exception{Code: code, Message: "test"})
	}
	for _, tc := range []struct {
		name  string
		err   error
		class pipeline.Class
		code  string
	}{
		{"too many parts", ex(252), pipeline.ClassTransient, "CLICKHOUSE_252"},
		{"timeout exceeded", ex(159), pipeline.ClassTransient, "CLICKHOUSE_159"},
		{"unknown status of insert", ex(319), pipeline.ClassTransient, "CLICKHOUSE_319"},
		{"keeper", ex(999), pipeline.ClassTransient, "CLICKHOUSE_999"},
		{"unknown table", ex(60), pipeline.ClassFatal, "CLICKHOUSE_60"},
		{"unknown column", ex(16), pipeline.ClassFatal, "CLICKHOUSE_16"},
		{"syntax", ex(62), pipeline.ClassFatal, "CLICKHOUSE_62"},
		{"auth", ex(516), pipeline.ClassFatal, "CLICKHOUSE_516"},
		{"memory limit", ex(241), pipeline.ClassFatal, "CLICKHOUSE_241"},
		{"eof", fmt.Errorf("read: %w", io.EOF), pipeline.ClassTransient, "CLICKHOUSE_NETWORK"},
		{"unexpected eof", io.ErrUnexpectedEOF, pipeline.ClassTransient, "CLICKHOUSE_NETWORK"},
		{"refused", &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}, pipeline.ClassTransient, "CLICKHOUSE_NETWORK"},
		{"reset", fmt.Errorf("write: %w", syscall.ECONNRESET), pipeline.ClassTransient, "CLICKHOUSE_NETWORK"},
		{"deadline", context.DeadlineExceeded, pipeline.ClassTransient, "CLICKHOUSE_NETWORK"},
		{"pool", clickhouse.ErrAcquireConnTimeout, pipeline.ClassTransient, "CLICKHOUSE_NETWORK"},
		{"bad value", &clickhouse.OpError{Op: "AppendRow", Err: errors.New("converting")}, pipeline.ClassFatal, "CLICKHOUSE_CLIENT"},
		{"batch sent", clickhouse.ErrBatchAlreadySent, pipeline.ClassFatal, "CLICKHOUSE_CLIENT"},
		{"unknown", errors.New("something odd"), pipeline.ClassTransient, "CLICKHOUSE_UNKNOWN"},
		{"already classified", pipeline.Poison("X", errors.New("y")), pipeline.ClassPoison, "X"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := chconn.Classify(tc.err)
			if c := pipeline.ClassOf(got); c != tc.class {
				t.Errorf("class = %v, want %v", c, tc.class)
			}
			if c := pipeline.CodeOf(got); c != tc.code {
				t.Errorf("code = %q, want %q", c, tc.code)
			}
			if !errors.Is(got, tc.err) {
				t.Errorf("Classify lost the cause: %v", got)
			}
		})
	}
	if chconn.Classify(nil) != nil {
		t.Error("Classify(nil) != nil")
	}
}

func TestOpenUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now

	c := chconn.DefaultConfig()
	c.Addr = addr
	c.OpenTimeout = 500 * time.Millisecond
	start := time.Now()
	_, err = chconn.Open(context.Background(), c)
	if !errors.Is(err, chconn.ErrUnreachable) {
		t.Fatalf("Open = %v, want ErrUnreachable", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Open took %v, want about OpenTimeout", d)
	}
	want := "clickhouse at " + addr + " is not reachable: "
	if msg := err.Error(); !strings.HasPrefix(msg, want) || !strings.HasSuffix(msg, "(start it with scripts/clickhouse.sh start or set CLICKHOUSE_ADDR)") {
		t.Errorf("message = %q", msg)
	}
	if pipeline.ClassOf(chconn.Classify(err)) != pipeline.ClassTransient {
		t.Error("unreachable server should be transient")
	}
}

// TestServer runs against the real server: version, gating, and the
// classification of real exceptions.
func TestServer(t *testing.T) {
	conn, _ := chtest.Conn(t)
	ctx := context.Background()
	v, err := chconn.ServerVersion(conn)
	if err != nil {
		t.Fatal(err)
	}
	var s string
	if err := conn.QueryRow(ctx, "SELECT version()").Scan(&s); err != nil {
		t.Fatal(err)
	}
	fromSQL, err := chconn.ParseVersion(s)
	if err != nil {
		t.Fatal(err)
	}
	if fromSQL != v {
		t.Errorf("handshake version %v, SELECT version() %v", v, fromSQL)
	}
	t.Logf("server %v features %+v", v, chconn.FeaturesOf(v))

	// A gated feature must really be missing when the flag says so.
	f := chconn.FeaturesOf(v)
	db := chtest.Database(t, conn)
	err = conn.Exec(ctx, "CREATE TABLE "+db+".ttl_probe (d Date) ENGINE = MergeTree ORDER BY d TTL d + INTERVAL 1 DAY")
	if f.TTL != (err == nil) {
		t.Errorf("TTL feature %v but CREATE with TTL gave %v", f.TTL, err)
	}
	err = conn.Exec(ctx, "CREATE TABLE "+db+".dt64_probe (t DateTime64(3)) ENGINE = MergeTree ORDER BY t")
	if f.DateTime64 != (err == nil) {
		t.Errorf("DateTime64 feature %v but CREATE gave %v", f.DateTime64, err)
	}

	for _, tc := range []struct {
		query string
		code  string
	}{
		{"SELECT * FROM " + db + ".no_such_table", "CLICKHOUSE_60"},
		{"SELEC 1", "CLICKHOUSE_62"},
		{"SELECT no_such_column FROM system.one", "CLICKHOUSE_47"},
	} {
		err := chconn.Classify(conn.Exec(ctx, tc.query))
		if pipeline.ClassOf(err) != pipeline.ClassFatal || pipeline.CodeOf(err) != tc.code {
			t.Errorf("%s: %v (code %s), want fatal %s", tc.query, err, pipeline.CodeOf(err), tc.code)
		}
	}
}
