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
#   [OCES_CA_FILE=./oces-ca.pem] \
#   deploy/k8s/create-secrets.sh [--production]
#
# Secrets (name: keys, mounted by):
#   memoflow-pseudonym:   keys         every stage (--pseudonym-key-file)
#   memoflow-clickhouse:  password     eventlog, eventquery, receipts, receipts-api (--clickhouse-password-file)
#   memoflow-api-tokens:  tokens.yaml  ingest, eventquery, receipts-api (--auth-tokens-file)
#   memoflow-blob:        secret-key   every stage (--blob-s3-secret-key-file), from BLOB_SECRET_KEY_FILE
#   memoflow-transport:   ssh-key, function-cert, function-key, recipient-ca
#                         deliver (--sftp-key-file, --smtp-cert-file, --smtp-key-file,
#                         --smtp-recipient-ca-file), pull-api (ssh-key only), when
#                         components/transport is included (overlays/production);
#                         from SFTP_KEY_FILE, FUNCTION_CERT_FILE, FUNCTION_KEY_FILE: all three, or none
#                         to skip it (an existing one is kept). The certificate is the real FOCES/VOCES.
#                         recipient-ca is from OCES_CA_FILE: the OCES CAs (root and issuing CAs,
#                         PEM) that SMTP recipient systems' certificates must chain to. Each block
#                         must be an unexpired CA certificate (checked with openssl when it is
#                         installed) before anything is applied. Without OCES_CA_FILE the
#                         recipient-ca of an existing Secret is kept; OCES_CA_FILE without the
#                         three key files replaces only recipient-ca of the existing Secret
#                         (rotation of the CA bundle: the private keys need not be at hand).
#                         With --production the Secret is refused without recipient-ca: a
#                         production system checks the recipient systems' certificates.
#                         Where the bundle comes from and how it rotates: docs/operations.md,
#                         "SFTP and SMTP credentials".
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
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# check_ca_bundle VAR: the file named by VAR is a PEM bundle of CA
# certificates and nothing else. deliver itself only skips blocks that are
# not certificates and never asks whether a certificate is a CA, so a
# system's own certificate, a private key or an expired CA in the bundle
# would go unnoticed until a recipient system's mail is refused.
check_ca_bundle() {
  local var=$1 f=${!1} d="$work/ca" n from to type at blocks subject enddate text bc ku
  mkdir -p "$d"
  # One file per PEM block; on stdout "N FIRST-LINE LAST-LINE TYPE" per block.
  blocks=$(awk -v d="$d" '
    /^-----BEGIN / {
      if (open) { printf "block %d (%s) has no END line\n", n, type > "/dev/stderr"; bad = 1; exit }
      n++; open = 1; from = NR; type = $0; sub(/^-----BEGIN /, "", type); sub(/-----[ \t\r]*$/, "", type)
      f = d "/" n ".pem"
    }
    open { print > f }
    /^-----END / {
      if (!open) { printf "an END line without BEGIN after block %d\n", n > "/dev/stderr"; bad = 1; exit }
      open = 0; close(f); print n, from, NR, type
    }
    END { if (!bad && open) { printf "block %d (%s) has no END line\n", n, type > "/dev/stderr"; exit 1 } if (bad) exit 1 }
  ' "$f" 2>"$work/awk.err") || die "$var is not a PEM bundle: $(cat "$work/awk.err")"
  [ -n "$blocks" ] ||
    die "$var has no PEM block: give the OCES CA certificates in PEM (-----BEGIN CERTIFICATE-----); from DER: openssl x509 -inform DER -in ca.cer -out ca.pem"
  while read -r n from to type; do
    at="block $n (lines $from-$to)"
    case "$type" in
      CERTIFICATE) ;;
      *PRIVATE\ KEY*) die "$var: $at is a $type: a private key does not belong in the CA bundle: give the CA certificates only" ;;
      "TRUSTED CERTIFICATE") die "$var: $at is an OpenSSL TRUSTED CERTIFICATE, which memoflow skips: convert it with openssl x509 -in ca.pem -out ca-plain.pem" ;;
      *) die "$var: $at is a $type, not a CERTIFICATE: the bundle holds the OCES CA certificates only" ;;
    esac
    if ! command -v openssl >/dev/null; then
      # Without openssl at least the body must be base64.
      sed '1d;$d' "$d/$n.pem" | tr -d ' \t\r' | base64 -d >/dev/null 2>&1 ||
        die "$var: $at is not base64 between its BEGIN and END lines"
      continue
    fi
    # One openssl for what is printed, one more for the validity.
    text=$(openssl x509 -in "$d/$n.pem" -noout -subject -enddate -nameopt oneline -text 2>/dev/null) ||
      die "$var: $at does not parse as an X.509 certificate (damaged or cut off in copying?)"
    subject=$(sed -n 's/^subject= *//p' <<<"$text")
    enddate=$(grep '^notAfter=' <<<"$text")
    bc=$(awk '/X509v3 Basic Constraints/ { getline; print; exit }' <<<"$text")
    [[ $bc =~ ^[[:space:]]*CA:TRUE ]] ||
      die "$var: $at ($subject) is not a CA certificate (no basicConstraints CA:TRUE): the bundle holds the OCES root and issuing CAs, not a system's or memoflow's own certificate"
    ku=$(awk '/X509v3 Key Usage/ { getline; print; exit }' <<<"$text")
    [ -z "$ku" ] || [[ $ku == *"Certificate Sign"* ]] ||
      die "$var: $at ($subject) is not allowed to sign certificates (key usage:$ku)"
    if ! openssl x509 -in "$d/$n.pem" -noout -checkend 7776000 >/dev/null; then
      openssl x509 -in "$d/$n.pem" -noout -checkend 0 >/dev/null ||
        die "$var: $at ($subject) has expired ($enddate): remove it from the bundle"
      echo "create-secrets.sh: warning: $var: $at ($subject) expires within 90 days ($enddate): get the OCES CAs' successors into the bundle" >&2
    fi
    echo "  $subject ($enddate)" >>"$work/ca.list"
  done <<<"$blocks"
  if command -v openssl >/dev/null; then
    echo "$var: $(wc -l <<<"$blocks" | tr -d ' ') CA certificates:"
    cat "$work/ca.list"
  else
    echo "create-secrets.sh: warning: openssl is not on PATH: $var was only checked to hold PEM CERTIFICATE blocks, not that each is an unexpired CA certificate; install openssl and run again" >&2
  fi
}

need CLICKHOUSE_PASSWORD_FILE
need API_TOKENS_FILE
need BLOB_SECRET_KEY_FILE
if [ "$production" = 1 ]; then
  need API_TLS_CERT_FILE
  need API_TLS_KEY_FILE
fi

# memoflow's credentials for SFTP and SMTP recipient systems. Everything is
# checked before any Secret is applied: a bad file would stop deliver at
# start, and a refusal should leave the namespace as it was.
#   transport=apply  all of memoflow-transport from the files given
#   transport=ca     only its recipient-ca, into the existing Secret
#   transport=keep   the existing Secret as it is
#   transport=none   no Secret, none there
transport_files=${SFTP_KEY_FILE:-}${FUNCTION_CERT_FILE:-}${FUNCTION_KEY_FILE:-}
if [ -n "$transport_files" ]; then
  need SFTP_KEY_FILE
  need FUNCTION_CERT_FILE
  need FUNCTION_KEY_FILE
  if command -v ssh-keygen >/dev/null; then
    # ssh-keygen refuses a key file others can read: check a private copy.
    cat "$SFTP_KEY_FILE" > "$work/ssh-key"
    chmod 600 "$work/ssh-key"
    pub=$(ssh-keygen -y -P '' -f "$work/ssh-key" 2>/dev/null) || die "SFTP_KEY_FILE is not an unencrypted SSH private key (memoflow cannot type a passphrase)"
    rm -f "$work/ssh-key"
  fi
  if command -v openssl >/dev/null; then
    certpub=$(openssl x509 -in "$FUNCTION_CERT_FILE" -noout -pubkey 2>/dev/null) || die "FUNCTION_CERT_FILE is not a PEM certificate"
    [ "$certpub" = "$(openssl pkey -in "$FUNCTION_KEY_FILE" -pubout 2>/dev/null)" ] ||
      die "FUNCTION_KEY_FILE is not the key of FUNCTION_CERT_FILE (from a .p12: openssl pkcs12 -in foces.p12 -nokeys -out cert.pem; -nocerts -nodes -out key.pem)"
    openssl x509 -in "$FUNCTION_CERT_FILE" -noout -checkend 0 >/dev/null || die "FUNCTION_CERT_FILE has expired"
    openssl x509 -in "$FUNCTION_CERT_FILE" -noout -checkend 2592000 >/dev/null ||
      echo "create-secrets.sh: warning: FUNCTION_CERT_FILE expires within 30 days: $(openssl x509 -in "$FUNCTION_CERT_FILE" -noout -enddate)" >&2
  fi
fi
ca_file=
if [ -n "${OCES_CA_FILE:-}" ]; then
  need OCES_CA_FILE
  check_ca_bundle OCES_CA_FILE
  ca_file=$OCES_CA_FILE
fi
existing_ca=
if kubectl -n "$NAMESPACE" get secret memoflow-transport >/dev/null 2>&1; then
  transport=keep
  # CA certificates are public: copying them through this disk is harmless.
  existing_ca=$(kubectl -n "$NAMESPACE" get secret memoflow-transport -o jsonpath='{.data.recipient-ca}')
else
  transport=none
fi
no_ca="with --production memoflow-transport must have recipient-ca: a production system checks that SMTP recipient systems' certificates chain to the OCES CAs. Give OCES_CA_FILE (the OCES root and issuing CAs, PEM; docs/operations.md, \"SFTP and SMTP credentials\")"
if [ -n "$transport_files" ]; then
  if [ -z "$ca_file" ] && [ -n "$existing_ca" ]; then
    printf '%s' "$existing_ca" | base64 -d > "$work/recipient-ca"
    ca_file=$work/recipient-ca
    echo "memoflow-transport: recipient-ca kept from the existing Secret (OCES_CA_FILE not given)"
  fi
  [ -n "$ca_file" ] || [ "$production" = 0 ] || die "$no_ca"
  transport=apply
elif [ -n "$ca_file" ]; then
  [ "$transport" = keep ] ||
    die "OCES_CA_FILE without the key files replaces recipient-ca of an existing memoflow-transport, and there is none in $NAMESPACE: give SFTP_KEY_FILE, FUNCTION_CERT_FILE and FUNCTION_KEY_FILE too"
  transport=ca
elif [ "$transport" = keep ] && [ -z "$existing_ca" ] && [ "$production" = 1 ]; then
  die "memoflow-transport exists without recipient-ca; $no_ca: OCES_CA_FILE without the key files adds it to the existing Secret"
fi

kubectl get namespace "$NAMESPACE" >/dev/null 2>&1 || kubectl create namespace "$NAMESPACE"
apply memoflow-clickhouse --from-file=password="$CLICKHOUSE_PASSWORD_FILE"
apply memoflow-api-tokens --from-file=tokens.yaml="$API_TOKENS_FILE"
apply memoflow-blob --from-file=secret-key="$BLOB_SECRET_KEY_FILE"

if [ -n "${PSEUDONYM_KEYS_FILE:-}" ]; then
  need PSEUDONYM_KEYS_FILE
  apply memoflow-pseudonym --from-file=keys="$PSEUDONYM_KEYS_FILE"
elif kubectl -n "$NAMESPACE" get secret memoflow-pseudonym >/dev/null 2>&1; then
  echo "memoflow-pseudonym exists: kept"
else
  printf 'k1:%s\n' "$(head -c 32 /dev/urandom | base64 | tr -d '\n')" > "$work/pseudonym.keys"
  apply memoflow-pseudonym --from-file=keys="$work/pseudonym.keys"
  echo "memoflow-pseudonym: a new key was generated; back it up now:"
  echo "  kubectl -n $NAMESPACE get secret memoflow-pseudonym -o jsonpath='{.data.keys}' | base64 -d"
fi

# memoflow-transport, as decided (and checked) above.
case "$transport" in
  apply)
    if [ -n "$ca_file" ]; then
      apply memoflow-transport --from-file=ssh-key="$SFTP_KEY_FILE" --from-file=function-cert="$FUNCTION_CERT_FILE" --from-file=function-key="$FUNCTION_KEY_FILE" --from-file=recipient-ca="$ca_file"
    else
      apply memoflow-transport --from-file=ssh-key="$SFTP_KEY_FILE" --from-file=function-cert="$FUNCTION_CERT_FILE" --from-file=function-key="$FUNCTION_KEY_FILE"
      echo "create-secrets.sh: warning: memoflow-transport has no recipient-ca (OCES_CA_FILE not given): deliver would not check SMTP systems' certificates, and components/transport, which mounts it, leaves deliver's new pods in ContainerCreating until it is there" >&2
    fi
    [ -n "${pub:-}" ] && echo "memoflow-transport: give SFTP systems this public key: $pub"
    echo "memoflow-transport: memoflow reads it at start; after a change run"
    echo "  kubectl -n $NAMESPACE rollout restart deployment/memoflow-deliver deployment/memoflow-pull-api"
    ;;
  ca)
    # A merge patch touches recipient-ca only: the SSH and function keys
    # need not be on this disk again to rotate the CA bundle.
    kubectl -n "$NAMESPACE" patch secret memoflow-transport --type=merge \
      -p "{\"data\":{\"recipient-ca\":\"$(base64 < "$ca_file" | tr -d '\n')\"}}" >/dev/null
    echo "memoflow-transport: recipient-ca replaced (the other keys are unchanged); deliver reads it at start:"
    echo "  kubectl -n $NAMESPACE rollout restart deployment/memoflow-deliver"
    ;;
  keep)
    echo "memoflow-transport exists: kept"
    [ -n "$existing_ca" ] ||
      echo "create-secrets.sh: warning: memoflow-transport has no recipient-ca: components/transport mounts it, so deliver's new pods wait in ContainerCreating; give OCES_CA_FILE (without the key files it is added to the existing Secret)" >&2
    ;;
  none)
    echo "memoflow-transport: skipped (SFTP_KEY_FILE, FUNCTION_CERT_FILE, FUNCTION_KEY_FILE, OCES_CA_FILE not given)."
    echo "  overlays/production mounts it into deliver and pull-api (components/transport): their new pods"
    echo "  wait in ContainerCreating until it exists. No SFTP or SMTP recipient systems? Remove that"
    echo "  component from overlays/production/kustomization.yaml."
    ;;
esac

if [ "$production" = 1 ]; then
  apply memoflow-api-tls --from-file=tls.crt="$API_TLS_CERT_FILE" --from-file=tls.key="$API_TLS_KEY_FILE"
  ca=$(kubectl -n "$KAFKA_NAMESPACE" get secret "$KAFKA_CLUSTER-cluster-ca-cert" -o jsonpath='{.data.ca\.crt}') ||
    die "no Secret $KAFKA_CLUSTER-cluster-ca-cert in $KAFKA_NAMESPACE (is the Strimzi Kafka named $KAFKA_CLUSTER?)"
  pw=$(kubectl -n "$KAFKA_NAMESPACE" get secret "$KAFKA_USER" -o jsonpath='{.data.password}') ||
    die "no Secret $KAFKA_USER in $KAFKA_NAMESPACE (create the KafkaUser $KAFKA_USER with authentication scram-sha-512)"
  dir=$work/kafka
  mkdir "$dir"
  printf '%s' "$ca" | base64 -d > "$dir/ca.crt"
  printf '%s' "$pw" | base64 -d > "$dir/password"
  printf '%s' "$KAFKA_USER" > "$dir/username"
  apply memoflow-kafka-ca --from-file=ca.crt="$dir/ca.crt"
  apply memoflow-kafka-user --from-file=username="$dir/username" --from-file=password="$dir/password"
fi
echo "secrets in namespace $NAMESPACE are in place"
