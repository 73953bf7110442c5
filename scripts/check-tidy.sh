#!/usr/bin/env bash
# Runs clang-tidy (Debian 12's clang-tidy 14, checks in .clang-tidy) over every project source
# file in src/ using the release build's compile_commands.json. Prints every finding; fails only
# on the short WarningsAsErrors list of .clang-tidy (STYLE §16), so advice never blocks a build.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build/release}
command -v clang-tidy >/dev/null || { echo "check-tidy: clang-tidy is not installed (scripts/install-deps.sh)" >&2; exit 2; }
[[ -f "$BUILD/compile_commands.json" ]] || { echo "check-tidy: configure $BUILD first" >&2; exit 2; }
files=$(git ls-files 'src/*.cpp' 2>/dev/null || find src -name '*.cpp')
out=$(mktemp)
trap 'rm -f "$out"' EXIT
# Two at a time: each clang-tidy run parses Boost headers (2-6 s per file).
# xargs exits 123 when some clang-tidy run reported findings (fine: judged below) and 124-127
# when clang-tidy could not run at all (not fine).
rc=0
printf '%s\n' $files | xargs -P "${JOBS:-$(nproc)}" -n 1 clang-tidy -p "$BUILD" --quiet > "$out" 2>/dev/null || rc=$?
if ((rc != 0 && rc != 123)); then
  echo "check-tidy: clang-tidy failed to run (xargs exit $rc)" >&2
  exit 2
fi
warnings=$(grep -cE "^/.*warning:" "$out" || true)
if grep -qE "^/.*error:" "$out"; then
  grep -E "^/.*error:" -A3 "$out" >&2
  echo "check-tidy: $(grep -cE '^/.*error:' "$out") error(s), $warnings warning(s)" >&2
  exit 1
fi
if [[ "${TIDY_VERBOSE:-0}" == 1 ]]; then grep -E "^/.*warning:" "$out" >&2 || true; fi
echo "tidy ok ($(echo "$files" | wc -w) files, $warnings advisory warning(s); TIDY_VERBOSE=1 lists them)" >&2
