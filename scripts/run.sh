#!/usr/bin/env bash
# make run: start ClickHouse (unless CLICKHOUSE_ADDR is given) and memoflow run
# in the foreground. Ctrl-C stops memoflow and the ClickHouse this script
# started.
set -euo pipefail
bin=${1:?usage: run.sh BINARY [ARGS...]}; shift
started_ch=0
if [ -z "${CLICKHOUSE_ADDR:-}" ] && ! scripts/clickhouse.sh status >/dev/null 2>&1; then
  scripts/clickhouse.sh start
  started_ch=1
elif [ -n "${CLICKHOUSE_ADDR:-}" ]; then
  scripts/clickhouse.sh start   # only checks that it answers
fi
cleanup() {
  if [ "$started_ch" = 1 ]; then scripts/clickhouse.sh stop || true; fi
}
trap cleanup EXIT
trap 'kill -INT "$pid" 2>/dev/null || true' INT TERM
"$bin" run --var-dir "${MEMOFLOW_VAR:-./var}" "$@" &
pid=$!
set +e
wait "$pid"; rc=$?
# A trapped signal interrupts wait: wait again for memoflow's clean exit.
while kill -0 "$pid" 2>/dev/null; do wait "$pid"; rc=$?; done
exit $rc
