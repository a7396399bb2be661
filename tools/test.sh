#!/usr/bin/env bash
# README's test command: installs what is missing, builds everything with ASan + UBSan and
# warnings as errors, and runs every test (unit, integration, format) through ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
cmake -S . -B build-sanitize -G Ninja -DCMAKE_BUILD_TYPE=Sanitize -DRINGMAIL_WERROR=ON >/dev/null
cmake --build build-sanitize
cd build-sanitize
ctest --output-on-failure --parallel 2
