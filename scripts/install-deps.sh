#!/usr/bin/env bash
# Installs every Debian 12 package the build, the server and the tests need. Idempotent: when all
# packages are present it does nothing (no apt-get update, no network).
set -euo pipefail

PACKAGES=(
  g++ cmake ninja-build ccache mold pkg-config make
  libboost1.81-dev libboost-json1.81-dev libboost-url1.81-dev libboost-system1.81-dev
  libssl-dev libsqlite3-dev libtomlplusplus-dev libcli11-dev libpq-dev libhiredis-dev
  postgresql-15 postgresql-client-15 redis-server util-linux
  libgtest-dev libgmock-dev
  python3 openssl procps ca-certificates curl
  clang-format clang-tidy
)
if [[ "${1:-}" == "--with-bench" ]]; then PACKAGES+=(wrk); fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if ((${#missing[@]} == 0)); then
  exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
  SUDO=sudo
else
  SUDO=
fi
echo "installing: ${missing[*]}" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
