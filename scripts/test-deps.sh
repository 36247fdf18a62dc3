#!/usr/bin/env bash
# Installs what the test suite needs beyond Go, from Debian's packages, when
# it is missing: xmllint (MeMo conformance against the official XSDs) and kcat
# (a third-party Kafka client against the embedded broker). ClickHouse has
# its own script (scripts/clickhouse.sh).
set -euo pipefail
need=()
command -v xmllint >/dev/null 2>&1 || need+=(libxml2-utils)
command -v kcat >/dev/null 2>&1 || need+=(kcat)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] && ! command -v sudo >/dev/null 2>&1; then
  echo "test-deps: missing ${need[*]} and not root; install them with apt-get (tests that need them will skip)" >&2
  exit 0
fi
SUDO=""; [ "$(id -u)" != 0 ] && SUDO=sudo
echo "test-deps: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null || echo "test-deps: apt-get update failed" >&2
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null || {
  echo "test-deps: could not install ${need[*]}; tests that need them will skip" >&2; exit 0; }
