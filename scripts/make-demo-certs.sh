#!/usr/bin/env bash
# Regenerates examples/certs/: a demo CA and the certificates the examples'
# TLS listeners use (example.com, www.my-api.com, localhost), ECDSA P-256,
# valid ten years. FOR DEMOS AND TESTS ONLY: the private keys are public.
# Trust examples/certs/ca.pem in a client to verify them
# (curl --cacert examples/certs/ca.pem), or skip verification
# (websocat --insecure).
#
#   scripts/make-demo-certs.sh     (needs the openssl command)
set -euo pipefail
cd "$(dirname "$0")/../examples/certs"
days=3650
ec() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

ec ca.key
openssl req -x509 -new -key ca.key -sha256 -days "$days" -subj "/CN=wsproxy-fast demo CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -out ca.pem

leaf() {
  local name=$1 san=$2
  ec "$name.key"
  openssl req -new -key "$name.key" -subj "/CN=$name" -out "$name.csr"
  openssl x509 -req -in "$name.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -sha256 \
    -days "$days" -out "$name.pem" \
    -extfile <(printf 'subjectAltName=%s\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n' "$san") \
    2>/dev/null
  rm -f "$name.csr"
}
leaf example.com "DNS:example.com,DNS:www.example.com"
leaf www.my-api.com "DNS:www.my-api.com"
leaf localhost "DNS:localhost,IP:127.0.0.1,IP:::1"
rm -f ca.srl ca.key
ls -l
