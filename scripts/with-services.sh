#!/usr/bin/env bash
# Runs a command with a throwaway PostgreSQL 15 and Redis 7 on 127.0.0.1 (free ports, data in a
# temporary directory), then stops both and removes the directory, whatever the command did.
#   scripts/with-services.sh ctest --preset release
# The command sees:
#   SYNCWELL_TEST_POSTGRES_URL  postgresql://postgres@127.0.0.1:<port>/postgres
#   SYNCWELL_TEST_REDIS_URL     redis://127.0.0.1:<port>
#   SYNCWELL_PG_BINDIR          PostgreSQL's server programs (e2e fault tests start their own)
# Runs as root (initdb then runs as the 'postgres' user, which refuses root) or as any other user.
set -euo pipefail

PG_BINDIR=${SYNCWELL_PG_BINDIR:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}
if [[ -z "$PG_BINDIR" || ! -x "$PG_BINDIR/initdb" ]]; then
  echo "with-services: PostgreSQL server programs not found (scripts/install-deps.sh)" >&2
  exit 2
fi
REDIS_SERVER=$(command -v redis-server || true)
if [[ -z "$REDIS_SERVER" ]]; then
  echo "with-services: redis-server not found (scripts/install-deps.sh)" >&2
  exit 2
fi

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

WORK=$(mktemp -d /tmp/syncwell-services-XXXXXX)
chmod 755 "$WORK"
PG_PID="" REDIS_PID=""
as_pg() {  # from $WORK: the postgres user may not be allowed into the caller's directory
  if [[ $(id -u) -eq 0 ]]; then (cd "$WORK" && runuser -u postgres -- "$@"); else "$@"; fi
}
cleanup() {
  local rc=$?
  if [[ -n "$PG_PID" ]] && kill -0 "$PG_PID" 2>/dev/null; then
    as_pg "$PG_BINDIR/pg_ctl" -D "$WORK/pg" -m immediate -w stop >/dev/null 2>&1 || kill -9 "$PG_PID" 2>/dev/null || true
  fi
  if [[ -n "$REDIS_PID" ]]; then kill "$REDIS_PID" 2>/dev/null || true; wait "$REDIS_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
  exit $rc
}
trap cleanup EXIT INT TERM

PG_PORT=$(free_port)
mkdir -p "$WORK/pg" "$WORK/log"
if [[ $(id -u) -eq 0 ]]; then chown postgres:postgres "$WORK/pg" "$WORK/log"; fi
as_pg "$PG_BINDIR/initdb" -D "$WORK/pg" -U postgres --auth=trust -E UTF8 --no-instructions >"$WORK/initdb.log" 2>&1 ||
  { cat "$WORK/initdb.log" >&2; exit 2; }
# Tests need speed, not durability; SYNCWELL_PG_DURABLE=1 (benchmarks) keeps PostgreSQL's
# defaults: fsync, synchronous_commit and full-page writes on.
PG_OPTS="-c listen_addresses=127.0.0.1 -p $PG_PORT -k $WORK/pg -c max_connections=300 -c shared_buffers=128MB"
if [[ "${SYNCWELL_PG_DURABLE:-0}" != 1 ]]; then
  PG_OPTS+=" -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
fi
as_pg "$PG_BINDIR/pg_ctl" -D "$WORK/pg" -l "$WORK/log/pg.log" -w -t 60 -o "$PG_OPTS" \
  start >/dev/null || { cat "$WORK/log/pg.log" >&2; exit 2; }
PG_PID=$(head -1 "$WORK/pg/postmaster.pid")

REDIS_PORT=$(free_port)
"$REDIS_SERVER" --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no \
  --dir "$WORK" --daemonize no --loglevel warning >"$WORK/redis.log" 2>&1 &
REDIS_PID=$!
for _ in $(seq 100); do
  if python3 - "$REDIS_PORT" <<'PY' 2>/dev/null; then break; fi
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=0.2)
s.sendall(b"PING\r\n"); assert s.recv(16).startswith(b"+PONG")
PY
  sleep 0.1
done

export SYNCWELL_TEST_POSTGRES_URL="postgresql://postgres@127.0.0.1:$PG_PORT/postgres"
export SYNCWELL_TEST_REDIS_URL="redis://127.0.0.1:$REDIS_PORT"
export SYNCWELL_PG_BINDIR="$PG_BINDIR"
echo "with-services: postgres $SYNCWELL_TEST_POSTGRES_URL, redis $SYNCWELL_TEST_REDIS_URL" >&2
"$@"
