#!/usr/bin/env bash
# Makes a throwaway test CA and one ECDSA P-256 server certificate signed by
# it, for the TLS benchmarks and load tests (every proxy in a run serves the
# same certificate).
#
#   scripts/tls-cert.sh DIR
#
# Writes into DIR (created if missing):
#   ca.pem        the CA certificate: wsbench --ca, k6/websocat trust it or skip checks
#   cert.pem      the server certificate (CN localhost, SAN IP 127.0.0.1, ::1,
#                 DNS localhost), valid 30 days (DAYS overrides), signed by the CA
#   key.pem       its private key (PKCS#8, unencrypted)
#   haproxy.pem   cert.pem then key.pem in one file, as HAProxy's `crt` wants
# and prints DIR. Needs the openssl command-line tool.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

dir=${1:-}
[ -n "$dir" ] || die "usage: $0 DIR"
command -v openssl >/dev/null 2>&1 || die "openssl is not installed (apt-get install openssl)"
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
# Validity of the test certificates, in days: any run is far shorter.
days=${DAYS:-30}

ossl() {
  openssl "$@" 2>"$dir/openssl.err" || {
    tail_log "$dir/openssl.err"
    die "openssl $1 failed"
  }
}

ossl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$dir/ca.key"
ossl req -x509 -new -key "$dir/ca.key" -sha256 -days "$days" -subj "/CN=wsproxy-fast bench CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -out "$dir/ca.pem"
ossl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$dir/key.pem"
ossl req -new -key "$dir/key.pem" -subj "/CN=localhost" -out "$dir/cert.csr"
cat >"$dir/cert.ext" <<'EOF'
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, IP:::1, DNS:localhost
EOF
ossl x509 -req -in "$dir/cert.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial \
  -days "$days" -sha256 -extfile "$dir/cert.ext" -out "$dir/cert.pem"
cat "$dir/cert.pem" "$dir/key.pem" >"$dir/haproxy.pem"
chmod 600 "$dir/ca.key" "$dir/key.pem" "$dir/haproxy.pem"
rm -f "$dir/cert.csr" "$dir/cert.ext" "$dir/ca.srl" "$dir/openssl.err"
echo "$dir"
