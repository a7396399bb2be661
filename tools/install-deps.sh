#!/usr/bin/env bash
# Installs ringmail's build and test dependencies from Debian 12 packages.
# Called by tools/run.sh and tools/test.sh; does nothing when everything is present.
set -euo pipefail
pkgs=(g++ cmake ninja-build pkg-config liburing-dev libwolfssl-dev libmimalloc-dev
      libsimdjson-dev libxxhash-dev libgtest-dev libbenchmark-dev
      python3 curl isync clang-format clang-tidy clang libclang-rt-14-dev)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
# Node.js and npm drive the imapflow test. A machine may already carry a Node.js build that
# bundles npm (and conflicts with Debian's npm package): Debian's are installed only when the
# commands are missing.
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
[ ${#missing[@]} -eq 0 ] && exit 0
echo "install-deps: installing ${missing[*]}" >&2
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
