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
#   [SFTP_KEY_FILE=./memoflow_ssh_key FUNCTION_CERT_FILE=./cert.pem FUNCTION_KEY_FILE=./key.pem] \
#   deploy/k8s/create-secrets.sh [--production]
#
# Secrets (name: keys, mounted by):
#   memoflow-pseudonym:   keys         every stage (--pseudonym-key-file)
#   memoflow-clickhouse:  password     eventlog, eventquery, receipts, receipts-api (--clickhouse-password-file)
#   memoflow-api-tokens:  tokens.yaml  ingest, eventquery, receipts-api (--auth-tokens-file)
#   memoflow-blob:        secret-key   every stage (--blob-s3-secret-key-file), from BLOB_SECRET_KEY_FILE
#   memoflow-transport:   ssh-key, function-cert, function-key
#                         deliver (--sftp-key-file, --smtp-cert-file, --smtp-key-file), pull-api
#                         (ssh-key only), when components/transport is included (overlays/production);
#                         from SFTP_KEY_FILE, FUNCTION_CERT_FILE, FUNCTION_KEY_FILE: all three, or none
#                         to skip it (an existing one is kept). The certificate is the real FOCES/VOCES.
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

# memoflow's credentials for SFTP and SMTP recipient systems. Checked before
# they are applied: a bad file would stop deliver at start.
if [ -n "${SFTP_KEY_FILE:-}${FUNCTION_CERT_FILE:-}${FUNCTION_KEY_FILE:-}" ]; then
  need SFTP_KEY_FILE
  need FUNCTION_CERT_FILE
  need FUNCTION_KEY_FILE
  if command -v ssh-keygen >/dev/null; then
    # ssh-keygen refuses a key file others can read: check a private copy.
    k=$(mktemp)
    cat "$SFTP_KEY_FILE" > "$k"
    pub=$(ssh-keygen -y -P '' -f "$k" 2>/dev/null) || { rm -f "$k"; die "SFTP_KEY_FILE is not an unencrypted SSH private key (memoflow cannot type a passphrase)"; }
    rm -f "$k"
  fi
  if command -v openssl >/dev/null; then
    certpub=$(openssl x509 -in "$FUNCTION_CERT_FILE" -noout -pubkey 2>/dev/null) || die "FUNCTION_CERT_FILE is not a PEM certificate"
    [ "$certpub" = "$(openssl pkey -in "$FUNCTION_KEY_FILE" -pubout 2>/dev/null)" ] ||
      die "FUNCTION_KEY_FILE is not the key of FUNCTION_CERT_FILE (from a .p12: openssl pkcs12 -in foces.p12 -nokeys -out cert.pem; -nocerts -nodes -out key.pem)"
    openssl x509 -in "$FUNCTION_CERT_FILE" -noout -checkend 0 >/dev/null || die "FUNCTION_CERT_FILE has expired"
    openssl x509 -in "$FUNCTION_CERT_FILE" -noout -checkend 2592000 >/dev/null ||
      echo "create-secrets.sh: warning: FUNCTION_CERT_FILE expires within 30 days: $(openssl x509 -in "$FUNCTION_CERT_FILE" -noout -enddate)" >&2
  fi
  apply memoflow-transport --from-file=ssh-key="$SFTP_KEY_FILE" --from-file=function-cert="$FUNCTION_CERT_FILE" --from-file=function-key="$FUNCTION_KEY_FILE"
  [ -n "${pub:-}" ] && echo "memoflow-transport: give SFTP systems this public key: $pub"
  echo "memoflow-transport: memoflow reads it at start; after a change run"
  echo "  kubectl -n $NAMESPACE rollout restart deployment/memoflow-deliver deployment/memoflow-pull-api"
elif kubectl -n "$NAMESPACE" get secret memoflow-transport >/dev/null 2>&1; then
  echo "memoflow-transport exists: kept"
else
  echo "memoflow-transport: skipped (SFTP_KEY_FILE, FUNCTION_CERT_FILE, FUNCTION_KEY_FILE not given)."
  echo "  overlays/production mounts it into deliver and pull-api (components/transport): their new pods"
  echo "  wait in ContainerCreating until it exists. No SFTP or SMTP recipient systems? Remove that"
  echo "  component from overlays/production/kustomization.yaml."
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
