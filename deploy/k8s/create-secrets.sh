#!/usr/bin/env bash
# create-secrets.sh: the Secrets memoflow's pods mount (deploy/k8s). Secrets
# stay out of git; this script makes them from files you hold, or from the
# Secrets Strimzi made for Kafka. Idempotent: it applies, so it also rotates.
#
#   NAMESPACE=memoflow \
#   CLICKHOUSE_PASSWORD_FILE=./ch-password \
#   API_TOKENS_FILE=./api-tokens.yaml \
#   BLOB_SECRET_KEY_FILE=./blob-secret-key \
#   [PSEUDONYM_KEYS_FILE=./pseudonym.keys] \
#   deploy/k8s/create-secrets.sh [--production]
#
# Secrets (name: keys, mounted by):
#   memoflow-pseudonym:   keys         every stage (--pseudonym-key-file)
#   memoflow-clickhouse:  password     eventlog, eventquery, receipts, receipts-api (--clickhouse-password-file)
#   memoflow-api-tokens:  tokens.yaml  ingest, eventquery, receipts-api (--auth-tokens-file)
#   memoflow-blob:        secret-key   every stage (--blob-s3-secret-key-file), from BLOB_SECRET_KEY_FILE
#   with --production, from API_TLS_CERT_FILE and API_TLS_KEY_FILE (e.g. from cert-manager):
#   memoflow-api-tls:     tls.crt, tls.key   ingest, eventquery, receipts-api (--http-tls-*)
#   with --production, copied from Strimzi (KAFKA_NAMESPACE, default kafka):
#   memoflow-kafka-ca:    ca.crt              from <KAFKA_CLUSTER>-cluster-ca-cert
#   memoflow-kafka-user:  username, password  from the KafkaUser <KAFKA_USER>'s Secret
#
# The pseudonym key is special: without PSEUDONYM_KEYS_FILE an existing
# Secret is kept, and only a missing one gets a new random key. Back that key
# up (docs/operations.md, "Backup"): without it no CPR can be found in the
# event log, ever. Rotate by putting a new key first in the file, old ones after.
set -euo pipefail

NAMESPACE=${NAMESPACE:-memoflow}
KAFKA_NAMESPACE=${KAFKA_NAMESPACE:-kafka}
KAFKA_CLUSTER=${KAFKA_CLUSTER:-memoflow}
KAFKA_USER=${KAFKA_USER:-memoflow}
production=0
[ "${1:-}" = "--production" ] && production=1

die() { echo "create-secrets.sh: $*" >&2; exit 1; }
need() { [ -n "${!1:-}" ] && [ -r "${!1}" ] || die "$1 must name a readable file"; }
apply() { kubectl -n "$NAMESPACE" create secret generic "$@" --dry-run=client -o yaml | kubectl apply -f -; }

command -v kubectl >/dev/null || die "kubectl is not on PATH"
kubectl get namespace "$NAMESPACE" >/dev/null 2>&1 || kubectl create namespace "$NAMESPACE"

need CLICKHOUSE_PASSWORD_FILE
need API_TOKENS_FILE
need BLOB_SECRET_KEY_FILE
apply memoflow-clickhouse --from-file=password="$CLICKHOUSE_PASSWORD_FILE"
apply memoflow-api-tokens --from-file=tokens.yaml="$API_TOKENS_FILE"
apply memoflow-blob --from-file=secret-key="$BLOB_SECRET_KEY_FILE"

if [ -n "${PSEUDONYM_KEYS_FILE:-}" ]; then
  need PSEUDONYM_KEYS_FILE
  apply memoflow-pseudonym --from-file=keys="$PSEUDONYM_KEYS_FILE"
elif kubectl -n "$NAMESPACE" get secret memoflow-pseudonym >/dev/null 2>&1; then
  echo "memoflow-pseudonym exists: kept"
else
  tmp=$(mktemp)
  trap 'rm -f "$tmp"' EXIT
  printf 'k1:%s\n' "$(head -c 32 /dev/urandom | base64 | tr -d '\n')" > "$tmp"
  apply memoflow-pseudonym --from-file=keys="$tmp"
  echo "memoflow-pseudonym: a new key was generated; back it up now:"
  echo "  kubectl -n $NAMESPACE get secret memoflow-pseudonym -o jsonpath='{.data.keys}' | base64 -d"
fi

if [ "$production" = 1 ]; then
  need API_TLS_CERT_FILE
  need API_TLS_KEY_FILE
  apply memoflow-api-tls --from-file=tls.crt="$API_TLS_CERT_FILE" --from-file=tls.key="$API_TLS_KEY_FILE"
  ca=$(kubectl -n "$KAFKA_NAMESPACE" get secret "$KAFKA_CLUSTER-cluster-ca-cert" -o jsonpath='{.data.ca\.crt}') ||
    die "no Secret $KAFKA_CLUSTER-cluster-ca-cert in $KAFKA_NAMESPACE (is the Strimzi Kafka named $KAFKA_CLUSTER?)"
  pw=$(kubectl -n "$KAFKA_NAMESPACE" get secret "$KAFKA_USER" -o jsonpath='{.data.password}') ||
    die "no Secret $KAFKA_USER in $KAFKA_NAMESPACE (create the KafkaUser $KAFKA_USER with authentication scram-sha-512)"
  dir=$(mktemp -d)
  trap 'rm -rf "$dir" "${tmp:-}"' EXIT
  printf '%s' "$ca" | base64 -d > "$dir/ca.crt"
  printf '%s' "$pw" | base64 -d > "$dir/password"
  printf '%s' "$KAFKA_USER" > "$dir/username"
  apply memoflow-kafka-ca --from-file=ca.crt="$dir/ca.crt"
  apply memoflow-kafka-user --from-file=username="$dir/username" --from-file=password="$dir/password"
fi
echo "secrets in namespace $NAMESPACE are in place"
