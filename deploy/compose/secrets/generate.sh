#!/usr/bin/env bash
# generate.sh: new development secrets for deploy/compose.
#
# The files next to this script are committed on purpose, so that
# `docker compose up` works on a fresh clone. They protect nothing: they are
# for a laptop. Anything reachable by others gets its own, made by running
# this script (it overwrites them all) before the first `docker compose up`.
#
# Writes:
#   clickhouse_password           memoflow's ClickHouse user (--clickhouse-password-file)
#   clickhouse_grafana_password   Grafana's read-only ClickHouse user
#   ../clickhouse/users.d/memoflow-users.xml   both users, with the SHA-256 of their passwords
#   pseudonym.keys                CPR pseudonym key (--pseudonym-key-file), "<id>:<base64 32 bytes>"
#   api-tokens.yaml               ingest's API token hashes (--auth-tokens-file)
#   sender.token, operator.token  the tokens themselves, for `memoflow send` and curl
#   minio_root_password           MinIO's root password (user: memoflow)
#   blob_secret_key               secret key of MinIO user memoflow-blobs (--blob-s3-secret-key-file)
#   grafana_admin_password        Grafana's admin password (user: admin)
#   memoflow_ssh_key, .pub        memoflow's SSH key for SFTP recipient systems (--sftp-key-file):
#                                 ed25519; the .pub line is what a system's operator installs
#   oces_ca.pem                   a development stand-in for the OCES CAs (--smtp-recipient-ca-file):
#                                 a test root CA and the issuing CA under it, both in the bundle
#                                 as the real one holds the OCES root and issuing CAs
#   oces_ca_key.pem               the test issuing CA's key, to issue more test certificates
#   function_cert.pem, function_key.pem
#                                 an RSA test certificate from the test issuing CA (then that CA)
#                                 standing in for memoflow's function certificate
#                                 (--smtp-cert-file, --smtp-key-file), which signs mail to SMTP
#                                 recipient systems
#   recipient_cert.pem, recipient_key.pem
#                                 an RSA test certificate from the test issuing CA for an SMTP
#                                 recipient system you register yourself (its `certificate`);
#                                 not mounted anywhere: deliver refuses to encrypt to one that
#                                 does not chain to oces_ca.pem (DELIVER_SMIME_CERT_INVALID)
#
# `generate.sh transport` writes only the SSH key and the certificates (a key
# rotation of the test setup; docs/operations.md, "SFTP and SMTP credentials").
# Another test system certificate from the test CA (CN and file names yours):
#   openssl req -new -newkey rsa:3072 -nodes -subj "/C=DK/O=test/CN=my test system" \
#     -keyout my_key.pem -out my.csr
#   openssl x509 -req -in my.csr -CA oces_ca.pem -CAkey oces_ca_key.pem -days 365 -sha256 \
#     -set_serial 0x$(openssl rand -hex 16) -out my_cert.pem -extfile <(printf '%s\n' \
#     basicConstraints=critical,CA:FALSE keyUsage=critical,digitalSignature,keyEncipherment)
#
# Production uses none of these: memoflow's SSH key is made once for the
# deployment and its public line handed to every SFTP system, the function
# certificate is the real FOCES/VOCES (OCES3 organisation certificate) from
# MitID Erhverv, converted from its .p12 as stages/transport/DESIGN.md says,
# and the CA bundle holds the real OCES CAs. To try those here, replace
# function_cert.pem, function_key.pem and oces_ca.pem (the bundle: PEM, the
# OCES root and issuing CAs; deploy/k8s/create-secrets.sh checks one with
# OCES_CA_FILE) and run `docker compose up -d --force-recreate deliver`.
set -euo pipefail
cd "$(dirname "$0")"
umask 077

# transport_secrets writes the SFTP key, the test CA bundle and the test
# function and recipient certificates.
transport_secrets() {
  command -v ssh-keygen >/dev/null || { echo "generate.sh: ssh-keygen is not installed (openssh-client)" >&2; exit 1; }
  command -v openssl >/dev/null || { echo "generate.sh: openssl is not installed" >&2; exit 1; }
  rm -f memoflow_ssh_key memoflow_ssh_key.pub
  ssh-keygen -q -t ed25519 -N '' -C memoflow-compose -f memoflow_ssh_key
  local t subj="/C=DK/O=memoflow compose (TEST ONLY)"
  t=$(mktemp -d)
  # The test CAs: twenty years, longer than the certificates they issue.
  # The root's key is thrown away; the issuing CA's is kept to issue more.
  openssl req -x509 -newkey rsa:3072 -nodes -sha256 -days 7300 -subj "$subj/CN=memoflow TEST OCES root CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -keyout "$t/root_key.pem" -out "$t/root.pem" 2>/dev/null
  printf '%s\n' basicConstraints=critical,CA:TRUE,pathlen:0 keyUsage=critical,keyCertSign,cRLSign \
    subjectKeyIdentifier=hash authorityKeyIdentifier=keyid > "$t/ca.ext"
  openssl req -new -newkey rsa:3072 -nodes -subj "$subj/CN=memoflow TEST OCES issuing CA" \
    -keyout oces_ca_key.pem -out "$t/ca.csr" 2>/dev/null
  openssl x509 -req -in "$t/ca.csr" -CA "$t/root.pem" -CAkey "$t/root_key.pem" -days 7300 -sha256 \
    -set_serial "0x$(openssl rand -hex 16)" -extfile "$t/ca.ext" -out "$t/issuing.pem" 2>/dev/null
  cat "$t/issuing.pem" "$t/root.pem" > oces_ca.pem
  # The function and recipient certificates, from the issuing CA. What
  # smtp.New checks: RSA, digitalSignature, valid now; keyEncipherment and
  # emailProtection as a FOCES certificate has them (a recipient system's
  # certificate needs keyEncipherment). Ten years, so the committed files
  # outlive the tests that load them.
  printf '%s\n' basicConstraints=critical,CA:FALSE keyUsage=critical,digitalSignature,nonRepudiation,keyEncipherment \
    extendedKeyUsage=emailProtection subjectKeyIdentifier=hash authorityKeyIdentifier=keyid > "$t/leaf.ext"
  leaf() { # leaf CN CERT KEY
    openssl req -new -newkey rsa:3072 -nodes -subj "$subj/CN=$1" -keyout "$3" -out "$t/leaf.csr" 2>/dev/null
    openssl x509 -req -in "$t/leaf.csr" -CA "$t/issuing.pem" -CAkey oces_ca_key.pem -days 3650 -sha256 \
      -set_serial "0x$(openssl rand -hex 16)" -extfile "$t/leaf.ext" -out "$t/leaf.pem" 2>/dev/null
    cat "$t/leaf.pem" "$t/issuing.pem" > "$2" # the certificate, then its intermediate
  }
  leaf "memoflow test function certificate" function_cert.pem function_key.pem
  leaf "memoflow test SMTP recipient system" recipient_cert.pem recipient_key.pem
  rm -rf "$t"
  chmod 644 memoflow_ssh_key memoflow_ssh_key.pub oces_ca.pem oces_ca_key.pem \
    function_cert.pem function_key.pem recipient_cert.pem recipient_key.pem
}

if [ "${1:-}" = "transport" ]; then
  transport_secrets
  echo "new SSH key, test CA bundle and test certificates written to $(pwd)"
  exit 0
fi

rand() { head -c "$1" /dev/urandom | base64 | tr -d '\n/+=' | head -c "$2"; }
sha() { printf '%s' "$1" | sha256sum | cut -d' ' -f1; }

# Password files have no trailing newline: not every reader trims one.
ch_pw=$(rand 48 32)
gf_pw=$(rand 48 32)
printf '%s' "$ch_pw" > clickhouse_password
printf '%s' "$gf_pw" > clickhouse_grafana_password
rand 48 32 > minio_root_password
rand 48 32 > blob_secret_key
rand 48 24 > grafana_admin_password
printf 'dev1:%s\n' "$(head -c 32 /dev/urandom | base64 | tr -d '\n')" > pseudonym.keys

sender="mf_$(rand 64 43)"
operator="mf_$(rand 64 43)"
printf '%s\n' "$sender" > sender.token
printf '%s\n' "$operator" > operator.token
cat > api-tokens.yaml <<YAML
# Token hashes for ingest (--auth-tokens-file). Generated by generate.sh.
- token_sha256: $(sha "$sender")
  id: demo-sender
  org: "12345678"
  roles: [sender]
- token_sha256: $(sha "$operator")
  id: demo-operator
  org: "12345678"
  roles: [operator]
YAML

cat > ../clickhouse/users.d/memoflow-users.xml <<XML
<!-- Generated by deploy/compose/secrets/generate.sh: the users memoflow and
     Grafana log in as. The passwords are in secrets/clickhouse_password and
     secrets/clickhouse_grafana_password; only their SHA-256 is here. -->
<clickhouse>
    <users>
        <memoflow>
            <password_sha256_hex>$(sha "$ch_pw")</password_sha256_hex>
            <networks><ip>::/0</ip></networks>
            <profile>default</profile>
            <quota>default</quota>
        </memoflow>
        <grafana>
            <password_sha256_hex>$(sha "$gf_pw")</password_sha256_hex>
            <networks><ip>::/0</ip></networks>
            <profile>readonly</profile>
            <quota>default</quota>
        </grafana>
    </users>
</clickhouse>
XML
transport_secrets
# The containers run as other users than the one running this script.
chmod 644 ./* ../clickhouse/users.d/memoflow-users.xml
chmod 755 generate.sh
echo "new development secrets written to $(pwd)"
