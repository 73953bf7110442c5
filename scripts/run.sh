#!/usr/bin/env bash
# README command 1: install packages, build the release binary, run the server embedded.
# Until the sync engine lands this is `syncwell serve` with a data directory in ./syncwell-data;
# extra arguments go to `syncwell serve` (e.g. --listen 0.0.0.0:8080).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
# Share compiled objects between clones in different folders (CI builds a fresh clone).
export CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=1
cmake --preset release -DSYNCWELL_BUILD_TESTS=OFF >/dev/null
cmake --build --preset release --target syncwell
DATA_DIR=${SYNCWELL_DATA_DIR:-./syncwell-data}
echo "data directory: $DATA_DIR (mint a token: build/release/src/app/syncwell token --data-dir $DATA_DIR --user alice)" >&2
exec build/release/src/app/syncwell serve --data-dir "$DATA_DIR" "$@"
