#!/usr/bin/env bash
# README command 2: install packages, then build and run every test tier:
#   1. style check (clang-format)
#   2. release build: unit + conformance + postgres + redis + e2e (real binaries over HTTP, the
#      fleet fault tests included)
#   3. ASan+UBSan build (dev preset): the same tests again under the sanitizers
# PostgreSQL and Redis: scripts/with-services.sh starts a throwaway instance of each on
# 127.0.0.1 around each ctest run and removes it afterwards (tests labelled postgres/redis fail,
# never skip, without them). The fault tests start their own cluster (tests/e2e/cluster.py).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
# Share compiled objects between clones in different folders (CI builds a fresh clone).
export CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=1
export CCACHE_DIR=${CCACHE_DIR:-$HOME/.cache/ccache}
export CCACHE_MAXSIZE=${CCACHE_MAXSIZE:-5G}
JOBS=${JOBS:-$(nproc)}

echo "== style" >&2
scripts/check-format.sh

echo "== release build + tests" >&2
# BUILD_TESTS=ON explicitly: scripts/run.sh configures the same build dir without tests.
cmake --preset release -DSYNCWELL_BUILD_TESTS=ON >/dev/null
cmake --build --preset release -j "$JOBS"
scripts/with-services.sh ctest --preset release -j "$JOBS" --no-tests=error

echo "== clang-tidy" >&2
scripts/check-tidy.sh build/release

if [[ "${SYNCWELL_SKIP_SANITIZERS:-0}" != 1 ]]; then
  echo "== ASan/UBSan build + tests" >&2
  cmake --preset dev -DSYNCWELL_BUILD_TESTS=ON >/dev/null
  cmake --build --preset dev -j "$JOBS"
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    scripts/with-services.sh ctest --preset dev -j "$JOBS" --no-tests=error
fi
