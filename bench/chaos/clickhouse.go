package chaos

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// ScriptClickHouse is a ClickHouse server of the chaos run alone, started
// and stopped by the project's scripts/clickhouse.sh on its own ports and
// data directory, so an outage never touches a server others use.
type ScriptClickHouse struct {
	Addr   string
	script string
	env    []string
}

// NewScriptClickHouse prepares (does not start) a server with its data
// under dir. root is the repository (it holds scripts/clickhouse.sh).
func NewScriptClickHouse(root, dir string) (*ScriptClickHouse, error) {
	tcp, err := freePort()
	if err != nil {
		return nil, err
	}
	httpPort, err := freePort()
	if err != nil {
		return nil, err
	}
	env := []string{"CLICKHOUSE_TCP_PORT=" + strconv.Itoa(tcp), "CLICKHOUSE_HTTP_PORT=" + strconv.Itoa(httpPort), "CLICKHOUSE_DIR=" + dir}
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "CLICKHOUSE_") {
			env = append(env, e)
		}
	}
	return &ScriptClickHouse{Addr: "127.0.0.1:" + strconv.Itoa(tcp), script: filepath.Join(root, "scripts", "clickhouse.sh"), env: env}, nil
}

// Start starts the server and returns when it answers.
func (c *ScriptClickHouse) Start(ctx context.Context) error { return c.run(ctx, "start") }

// Stop stops the server (clean shutdown) and returns when it is gone.
func (c *ScriptClickHouse) Stop(ctx context.Context) error { return c.run(ctx, "stop") }

func (c *ScriptClickHouse) run(ctx context.Context, verb string) error {
	cmd := exec.CommandContext(ctx, "bash", c.script, verb)
	cmd.Env = c.env
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("chaos: clickhouse.sh %s: %v: %s", verb, err, strings.TrimSpace(string(out)))
	}
	return nil
}
