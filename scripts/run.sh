#!/usr/bin/env bash
# README command 1: install packages, build the release binary, run the main job.
#
#   scripts/run.sh                 `syncwell demo`: starts the provider simulator and the server
#                                  (embedded, no other servers), seeds 200 users, syncs their data
#                                  and proves the invariants (written = expected, 0 duplicates,
#                                  0 lost jobs); extra arguments go to the demo (--users 500,
#                                  --follow, --latency 50ms-300ms, ...).
#   scripts/run.sh serve [...]     any other syncwell subcommand instead (e.g. the server alone,
#                                  data in ./syncwell-data unless --data-dir is given).
#   scripts/run.sh cluster up      a local fleet on loopback: PostgreSQL + Redis (Debian packages,
#                                  throwaway directory), the simulator, 2 API + 2 worker processes
#                                  and a scheduler; `cluster status`, `cluster down` (docs/fleet.md).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
# Share compiled objects between clones in different folders (CI builds a fresh clone).
export CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=1
cmake --preset release -DSYNCWELL_BUILD_TESTS=OFF >/dev/null
cmake --build --preset release --target syncwell
BIN=build/release/src/app/syncwell
case "${1:-}" in
  serve)
    shift
    DATA_DIR=${SYNCWELL_DATA_DIR:-./syncwell-data}
    echo "data directory: $DATA_DIR (mint a token: $BIN token --data-dir $DATA_DIR --user alice)" >&2
    exec "$BIN" serve --data-dir "$DATA_DIR" "$@" ;;
  cluster)
    shift
    SYNCWELL_BIN="$PWD/$BIN" exec python3 tests/e2e/cluster.py "$@" ;;
  provider-sim|token|admin|config|loadgen|demo)
    exec "$BIN" "$@" ;;
  *)
    exec "$BIN" demo "$@" ;;
esac
