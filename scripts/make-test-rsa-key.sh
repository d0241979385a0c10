#!/bin/sh
# Regenerates tests/data/tls/rsa.key: the RSA 2048 PKCS#8 key that src/tls's
# tests sign a certificate for. rcgen's ring backend cannot generate RSA keys,
# so this one is made once with openssl and checked in. Test-only: never use it
# for anything real.
set -eu
cd "$(dirname "$0")/.."
openssl genpkey -quiet -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out tests/data/tls/rsa.key
echo "wrote tests/data/tls/rsa.key"
