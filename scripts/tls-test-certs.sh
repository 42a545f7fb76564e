#!/bin/sh
# Throwaway certificates for the TLS tests (and for trying TLS by hand), written into DIR:
#   ca.pem / ca.key            a small CA
#   server.pem / server.key    signed by it, SAN 127.0.0.1, ::1 and localhost
#   client.pem / client.key    signed by it (mTLS)
#   other-ca.pem               an unrelated CA (verification failures)
# Usage: scripts/tls-test-certs.sh DIR
set -eu
dir=${1:?usage: $0 DIR}
mkdir -p "$dir"
cd "$dir"
q() { openssl "$@" 2>/dev/null; }
q req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=ballast-test-ca \
    -keyout ca.key -out ca.pem
q req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=ballast-other-ca \
    -keyout other-ca.key -out other-ca.pem
for who in server client; do
    q req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=ballast-test-$who" \
        -keyout "$who.key" -out "$who.csr"
    if [ "$who" = server ]; then
        printf 'subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost\nextendedKeyUsage=serverAuth\n' > "$who.ext"
    else
        printf 'extendedKeyUsage=clientAuth\n' > "$who.ext"
    fi
    q x509 -req -in "$who.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile "$who.ext" -out "$who.pem"
    rm -f "$who.csr" "$who.ext"
done
rm -f ca.srl
