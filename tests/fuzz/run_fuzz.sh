#!/usr/bin/env bash
# Runs a fuzz target (parser, sasl or mime; default parser) for a bounded time over a scratch copy
# of its seed corpus (the seeds in the repository stay as written). Exits non-zero when libFuzzer
# finds a crash, a leak, a timeout or an out-of-memory; the reproducer is left in the artifacts
# directory.
#
#   tests/fuzz/run_fuzz.sh DIR_OF_BINARY SECONDS [TARGET]
#
# RINGMAIL_FUZZ_ARTIFACTS (default DIR_OF_BINARY/fuzz-artifacts) is where reproducers go;
# RINGMAIL_FUZZ_ARGS adds libFuzzer flags (e.g. "-jobs=2 -workers=2").
set -euo pipefail

if [[ $# -lt 2 || $# -gt 3 || ! "$2" =~ ^[0-9]+$ ]]; then
  echo "usage: $0 DIR_OF_BINARY SECONDS [parser|sasl|mime]" >&2
  exit 2
fi
target="${3:-parser}"
bin="$1/${target}_fuzz"
seconds="$2"
seeds="$(cd "$(dirname "$0")" && pwd)/corpus/$target"
if [[ ! -x "$bin" ]]; then
  echo "run_fuzz.sh: no fuzz target at $bin" >&2
  exit 2
fi
artifacts="${RINGMAIL_FUZZ_ARTIFACTS:-$1/fuzz-artifacts/$target}"
mkdir -p "$artifacts"
corpus="$(mktemp -d "${TMPDIR:-/tmp}/ringmail-fuzz.XXXXXX")"
trap 'rm -rf "$corpus"' EXIT
cp "$seeds"/* "$corpus"/

# UBSan findings stop the run (the target is built with -fno-sanitize-recover) and show a stack.
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
# -max_len: room for a line past the 8192-octet limit. -timeout: one input taking this long is a
# finding (quadratic behaviour), not a slow machine.
status=0
# shellcheck disable=SC2086  # RINGMAIL_FUZZ_ARGS is a list of flags
# A fixed seed (RINGMAIL_FUZZ_SEED, default 1; 0 = random) makes a CI run repeatable: a slower
# machine runs a prefix of the same inputs.
"$bin" -seed="${RINGMAIL_FUZZ_SEED:-1}" -max_total_time="$seconds" -max_len=16384 -timeout=25 -rss_limit_mb=2048 \
  -print_final_stats=1 -artifact_prefix="$artifacts/" ${RINGMAIL_FUZZ_ARGS:-} \
  "$corpus" || status=$?
if [[ $status -ne 0 ]]; then
  echo "run_fuzz.sh: finding (exit $status); reproducers in $artifacts:" >&2
  ls -t "$artifacts" >&2 || true
  echo "reproduce with: $bin $artifacts/<file>" >&2
fi
exit "$status"
