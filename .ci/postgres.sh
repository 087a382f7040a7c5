#!/usr/bin/env bash
# Start a throw-away PostgreSQL server on 127.0.0.1 for the tests marked `postgres`.
# Source it: `source .ci/postgres.sh && pg_start` exports MAPOGRAPH_TEST_POSTGRES_URL;
# `pg_stop` stops the server and removes its data directory.
set -u

pg_start() {
  if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  fi
  local bin
  bin=$(dirname "$(ls /usr/lib/postgresql/*/bin/initdb | sort -V | tail -n 1)")
  id -u postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
  PG_DIR=$(mktemp -d /tmp/mapograph-pg.XXXXXX)
  chown postgres "$PG_DIR"
  PG_PORT=${PG_PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
  runuser -u postgres -- "$bin/initdb" -D "$PG_DIR/data" --auth=trust -U postgres >/dev/null
  runuser -u postgres -- "$bin/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/log" -w \
    -o "-h 127.0.0.1 -p $PG_PORT -k $PG_DIR" start >/dev/null
  runuser -u postgres -- "$bin/createdb" -h 127.0.0.1 -p "$PG_PORT" -U postgres mapograph
  export PG_BIN=$bin PG_DIR PG_PORT
  export MAPOGRAPH_TEST_POSTGRES_URL="postgresql://postgres@127.0.0.1:$PG_PORT/mapograph"
  echo "postgres listening on 127.0.0.1:$PG_PORT"
}

pg_stop() {
  if [ -n "${PG_DIR:-}" ] && [ -d "$PG_DIR/data" ]; then
    runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m fast -w stop >/dev/null 2>&1 || true
    rm -rf "$PG_DIR"
  fi
}
