#!/usr/bin/env bash
# README's run command: installs what is missing, builds (Release), makes the demo user and
# starts ringmaild on its embedded default (data in ./var, IMAPS on 127.0.0.1:1993, IMAP with
# STARTTLS on 127.0.0.1:1143).
# Extra arguments go to ringmaild.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build --target ringmaild ringmail ringmail-bench
mkdir -p -m 700 var
if [ ! -s var/demo.password ]; then
  (umask 077; head -c 64 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 16 > var/demo.password)
fi
password=$(cat var/demo.password)
if ! build/ringmail user list --data-dir var | grep -qx demo; then
  echo "$password" | build/ringmail user add demo --data-dir var >/dev/null
fi
cat <<MSG
demo user: demo
password:  $password
try:       curl --cacert var/tls/self-signed-cert.pem imaps://localhost:1993/ -u demo:$password
           (the certificate is made on the server's first start; its fingerprint is logged)
MSG
exec build/ringmaild "$@"
