#!/usr/bin/env bash
# clickhouse.sh start|stop|status: a local ClickHouse for memoflow's development and tests.
#
#   start   If CLICKHOUSE_ADDR is set, only check that a ClickHouse answers there.
#           Otherwise run a server on 127.0.0.1:9000 (native) and 127.0.0.1:8123 (HTTP) with
#           its data under ${MEMOFLOW_VAR:-./var}/clickhouse. It uses a `clickhouse` binary on
#           PATH, else /usr/sbin/clickhouse-server, else installs Debian's clickhouse-server
#           and clickhouse-client (18.16.1 on bookworm; production runs 24+). Idempotent: a
#           server that already answers is left alone.
#   stop    Stop the server this script started (by the PID in its pid file).
#   status  Say whether a ClickHouse answers, and which version. Exit 0 if it does, 3 if not.
#
# CLICKHOUSE_TCP_PORT, CLICKHOUSE_HTTP_PORT and CLICKHOUSE_DIR (default 9000, 8123 and
# ${MEMOFLOW_VAR:-./var}/clickhouse) select another instance: tests that stop and restart a
# server run a private one this way and leave the shared one alone.
#
# The server outlives this script (setsid, output to files), so `go test` can start it once
# and later packages reuse it. Concurrent starts are serialised with flock.
set -euo pipefail

HOST=127.0.0.1
TCP_PORT=${CLICKHOUSE_TCP_PORT:-9000}
HTTP_PORT=${CLICKHOUSE_HTTP_PORT:-8123}

die() { echo "clickhouse.sh: $*" >&2; exit 1; }

var_dir=${MEMOFLOW_VAR:-./var}
CH_DIR=$(realpath -m "${CLICKHOUSE_DIR:-$var_dir/clickhouse}")
PID_FILE=$CH_DIR/server.pid
LOG_DIR=$CH_DIR/log

# port_open HOST PORT: something accepts TCP connections there.
port_open() { timeout 2 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null; }

# ch_version HOST PORT: print the server version if a ClickHouse answers on that native port.
ch_version() {
  local host=$1 port=$2
  if command -v clickhouse-client >/dev/null 2>&1; then
    timeout 5 clickhouse-client --host "$host" --port "$port" -q 'SELECT version()' 2>/dev/null && return 0
  elif command -v clickhouse >/dev/null 2>&1; then
    timeout 5 clickhouse client --host "$host" --port "$port" -q 'SELECT version()' 2>/dev/null && return 0
  fi
  # No client binary (or it failed): for our own server the HTTP port tells the same.
  if [ "$host:$port" = "$HOST:$TCP_PORT" ] && command -v curl >/dev/null 2>&1; then
    curl -fsS --max-time 2 "http://$HOST:$HTTP_PORT/?query=SELECT%20version()" 2>/dev/null && return 0
  fi
  return 1
}

# our_pid: the PID from the pid file if that process is alive and is a ClickHouse server.
our_pid() {
  [ -f "$PID_FILE" ] || return 1
  local pid
  pid=$(cat "$PID_FILE")
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q clickhouse || return 1
  echo "$pid"
}

# listener PORT: who listens on 127.0.0.1:PORT (for error messages).
listener() { ss -Hltnp "sport = :$1" 2>/dev/null | awk '{print $NF}' | head -1; }

check_external() {
  local addr=$CLICKHOUSE_ADDR host port v
  host=${addr%:*}
  port=${addr##*:}
  [ -n "$host" ] && [ -n "$port" ] && [ "$host" != "$addr" ] || die "CLICKHOUSE_ADDR=$addr is not host:port (e.g. 127.0.0.1:9000)"
  if v=$(ch_version "$host" "$port"); then
    echo "clickhouse $v answers on $addr (CLICKHOUSE_ADDR; nothing started)"
    return 0
  fi
  # Without a client binary we can only see that the port accepts connections.
  if ! command -v clickhouse-client >/dev/null 2>&1 && ! command -v clickhouse >/dev/null 2>&1 && port_open "$host" "$port"; then
    echo "something accepts connections on $addr (CLICKHOUSE_ADDR; no clickhouse-client here to ask its version)"
    return 0
  fi
  echo "clickhouse.sh: CLICKHOUSE_ADDR=$addr does not answer; start that server or unset CLICKHOUSE_ADDR to use a local one" >&2
  return 1
}

# server_cmd: print the command line prefix that runs a ClickHouse server, or fail.
server_cmd() {
  if command -v clickhouse >/dev/null 2>&1 && clickhouse server --help >/dev/null 2>&1; then
    echo "$(command -v clickhouse) server"
  elif command -v clickhouse-server >/dev/null 2>&1; then
    command -v clickhouse-server
  elif [ -x /usr/sbin/clickhouse-server ]; then
    echo /usr/sbin/clickhouse-server
  else
    return 1
  fi
}

install_debian() {
  command -v apt-get >/dev/null 2>&1 || die "no ClickHouse server binary and no apt-get to install one; install ClickHouse or set CLICKHOUSE_ADDR"
  mkdir -p "$LOG_DIR"
  local log=$LOG_DIR/install.log
  echo "installing Debian's clickhouse-server and clickhouse-client (log: $log)"
  export DEBIAN_FRONTEND=noninteractive
  if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends clickhouse-server clickhouse-client; } >"$log" 2>&1; then
    die "install of Debian's clickhouse-server failed: $(grep -E '^(E|W):' "$log" | tail -1) (full log: $log); install ClickHouse yourself or set CLICKHOUSE_ADDR"
  fi
}

write_config() {
  mkdir -p "$CH_DIR/data" "$CH_DIR/tmp" "$CH_DIR/user_files" "$CH_DIR/format_schemas" "$LOG_DIR"
  # <yandex> is the root element 18.16 knows; later versions still accept it.
  cat >"$CH_DIR/config.xml" <<XML
<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><log>$LOG_DIR/server.log</log><errorlog>$LOG_DIR/server.err.log</errorlog><size>100M</size><count>2</count></logger>
  <listen_host>$HOST</listen_host>
  <tcp_port>$TCP_PORT</tcp_port>
  <http_port>$HTTP_PORT</http_port>
  <path>$CH_DIR/data/</path>
  <tmp_path>$CH_DIR/tmp/</tmp_path>
  <user_files_path>$CH_DIR/user_files/</user_files_path>
  <format_schema_path>$CH_DIR/format_schemas/</format_schema_path>
  <users_config>$CH_DIR/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <timezone>UTC</timezone>
  <mark_cache_size>268435456</mark_cache_size>
  <max_concurrent_queries>100</max_concurrent_queries>
</yandex>
XML
  cat >"$CH_DIR/users.xml" <<XML
<?xml version="1.0"?>
<yandex>
  <profiles><default><max_memory_usage>4000000000</max_memory_usage></default></profiles>
  <users><default><password></password><networks><ip>127.0.0.1</ip><ip>::1</ip></networks><profile>default</profile><quota>default</quota></default></users>
  <quotas><default></default></quotas>
</yandex>
XML
}

start() {
  if [ -n "${CLICKHOUSE_ADDR:-}" ]; then
    check_external
    return
  fi
  mkdir -p "$CH_DIR"
  exec 9>"$CH_DIR/.lock"
  flock -w 120 9 || die "another clickhouse.sh holds $CH_DIR/.lock for over 120 s"

  local pid v
  if pid=$(our_pid) && v=$(ch_version "$HOST" "$TCP_PORT"); then
    echo "clickhouse $v already running on $HOST:$TCP_PORT (pid $pid, data $CH_DIR)"
    return 0
  fi
  if v=$(ch_version "$HOST" "$TCP_PORT"); then
    echo "clickhouse $v already answers on $HOST:$TCP_PORT (not started by this script; using it)"
    return 0
  fi
  if pid=$(our_pid); then
    # Never start a second server on the same data directory.
    die "clickhouse server pid $pid (data $CH_DIR) is alive but does not answer on $HOST:$TCP_PORT; see $LOG_DIR/server.err.log, or run: $0 stop"
  fi
  for port in $TCP_PORT $HTTP_PORT; do
    if port_open "$HOST" "$port"; then
      die "port $port on $HOST is in use by something else ($(listener "$port")); free it or set CLICKHOUSE_ADDR to a running ClickHouse"
    fi
  done

  local cmd
  if ! cmd=$(server_cmd); then
    install_debian
    cmd=$(server_cmd) || die "the install finished but no clickhouse server binary was found"
  fi
  write_config
  # setsid + redirects: the server must not hold the caller's pipes or die with its process group.
  # shellcheck disable=SC2086 # $cmd is "binary [subcommand]"
  setsid $cmd --config-file="$CH_DIR/config.xml" </dev/null >"$LOG_DIR/stdout.log" 2>&1 &
  pid=$!
  echo "$pid" >"$PID_FILE"
  for _ in $(seq 1 300); do # up to 30 s; 18.16 is ready in about 0.2 s
    if v=$(ch_version "$HOST" "$TCP_PORT"); then
      echo "clickhouse $v ready on $HOST:$TCP_PORT (pid $pid, data $CH_DIR)"
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      rm -f "$PID_FILE"
      die "clickhouse server exited at start: $(tail -3 "$LOG_DIR/server.err.log" "$LOG_DIR/stdout.log" 2>/dev/null | grep -v '^==>' | grep -v '^$' | tail -1)"
    fi
    sleep 0.1
  done
  die "clickhouse server (pid $pid) did not answer within 30 s; see $LOG_DIR/server.err.log"
}

stop() {
  if [ -n "${CLICKHOUSE_ADDR:-}" ]; then
    echo "CLICKHOUSE_ADDR is set: that server is not ours to stop"
    return 0
  fi
  local pid
  if ! pid=$(our_pid); then
    rm -f "$PID_FILE"
    echo "clickhouse not running (no live server pid in $PID_FILE)"
    return 0
  fi
  kill "$pid"
  for _ in $(seq 1 300); do # 18.16 takes about 2 s to shut down
    if ! kill -0 "$pid" 2>/dev/null; then
      rm -f "$PID_FILE"
      echo "clickhouse stopped (pid $pid)"
      return 0
    fi
    sleep 0.1
  done
  die "clickhouse (pid $pid) did not stop within 30 s; it is still running"
}

status() {
  if [ -n "${CLICKHOUSE_ADDR:-}" ]; then
    check_external || exit 3
    return 0
  fi
  local pid v
  if v=$(ch_version "$HOST" "$TCP_PORT"); then
    if pid=$(our_pid); then
      echo "clickhouse $v running on $HOST:$TCP_PORT (pid $pid, data $CH_DIR)"
    else
      echo "clickhouse $v answers on $HOST:$TCP_PORT (not started by this script)"
    fi
    return 0
  fi
  if pid=$(our_pid); then
    echo "clickhouse server pid $pid is alive but does not answer on $HOST:$TCP_PORT"
  else
    echo "clickhouse not running"
  fi
  exit 3
}

case "${1:-}" in
start) start ;;
stop) stop ;;
status) status ;;
*)
  echo "usage: $0 start|stop|status" >&2
  exit 2
  ;;
esac
