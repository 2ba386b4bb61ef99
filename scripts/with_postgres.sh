#!/usr/bin/env bash
# Run a command with a throwaway PostgreSQL server on loopback.
#
#   scripts/with_postgres.sh CMD [ARGS...]
#
# Starts a fresh cluster in a temporary directory (127.0.0.1, a free port, its
# unix socket in that directory), creates a database, exports its URL as
# ZENREC_TEST_POSTGRES_URL, runs CMD, then stops the server and removes the
# directory, also when CMD fails or is interrupted.  Exits with CMD's status.
#
# When ZENREC_TEST_POSTGRES_URL is already set, CMD runs against that server.
# When the PostgreSQL server binaries are missing and this runs as root on
# Debian/Ubuntu, `apt-get install postgresql` provides them.  PostgreSQL
# refuses to run as root, so as root the cluster belongs to the `postgres`
# system user.
set -euo pipefail

if [ "$#" -eq 0 ]; then
    echo "usage: $0 CMD [ARGS...]" >&2
    exit 2
fi

if [ -n "${ZENREC_TEST_POSTGRES_URL:-}" ]; then
    exec "$@"
fi

log() { echo "with_postgres: $*" >&2; }

# The newest server binaries: on PATH, or Debian's versioned directories.
find_pg_bindir() {
    local initdb
    initdb=$(command -v initdb 2>/dev/null || true)
    if [ -n "$initdb" ]; then
        initdb=$(readlink -f "$initdb")
        if [ -x "$(dirname "$initdb")/pg_ctl" ] && [ -x "$(dirname "$initdb")/createdb" ]; then
            dirname "$initdb"
            return 0
        fi
    fi
    local d
    d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
    if [ -n "$d" ] && [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && [ -x "$d/createdb" ]; then
        echo "$d"
        return 0
    fi
    return 1
}

if ! PGBIN=$(find_pg_bindir); then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
        log "PostgreSQL server not found; installing Debian's postgresql package"
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y -q --no-install-recommends postgresql >/dev/null \
            || { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends postgresql >/dev/null; }
    fi
    if ! PGBIN=$(find_pg_bindir); then
        log "no PostgreSQL server binaries (initdb, pg_ctl) found; install the 'postgresql' package"
        exit 127
    fi
fi

# Who owns and runs the cluster.
if [ "$(id -u)" -eq 0 ]; then
    PGUSER_OS=postgres
    if ! id -u "$PGUSER_OS" >/dev/null 2>&1; then
        useradd --system --user-group --no-create-home --shell /usr/sbin/nologin "$PGUSER_OS"
    fi
    if command -v runuser >/dev/null 2>&1; then
        as_pg() { runuser -u "$PGUSER_OS" -- "$@"; }
    else
        as_pg() { su -s /bin/sh "$PGUSER_OS" -c "$(printf '%q ' "$@")"; }
    fi
    base=${TMPDIR:-/tmp}
    as_pg test -w "$base" -a -x "$base" 2>/dev/null || base=/tmp
else
    as_pg() { "$@"; }
    base=${TMPDIR:-/tmp}
fi

PGTMP=$(mktemp -d "$base/zenrec-pg.XXXXXX")
chmod 755 "$PGTMP"
[ "$(id -u)" -eq 0 ] && chown "$PGUSER_OS" "$PGTMP"
DATA="$PGTMP/data"
SOCK="$PGTMP/sock"
as_pg mkdir -p "$SOCK"

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [ -f "$DATA/postmaster.pid" ]; then
        as_pg "$PGBIN/pg_ctl" -D "$DATA" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$PGTMP"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

as_pg "$PGBIN/initdb" -D "$DATA" -U zenrec --auth=trust -E UTF8 --locale=C --no-sync >"$PGTMP/initdb.log" 2>&1 \
    || { cat "$PGTMP/initdb.log" >&2; log "initdb failed"; exit 1; }

free_port() {
    python3 - <<'PY'
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()
PY
}

# A port may be taken between choosing and binding it: try a few.
started=0
for _ in 1 2 3 4 5; do
    PORT=$(free_port)
    if as_pg "$PGBIN/pg_ctl" -D "$DATA" -l "$PGTMP/server.log" -w -t 60 -o \
        "-c listen_addresses=127.0.0.1 -p $PORT -k $SOCK -c max_connections=60 -c shared_buffers=32MB" \
        start >/dev/null; then
        started=1
        break
    fi
done
if [ "$started" -ne 1 ]; then
    cat "$PGTMP/server.log" >&2 || true
    log "could not start PostgreSQL"
    exit 1
fi

as_pg "$PGBIN/createdb" -h 127.0.0.1 -p "$PORT" -U zenrec zenrec_test

export ZENREC_TEST_POSTGRES_URL="postgresql+psycopg://zenrec@127.0.0.1:$PORT/zenrec_test"
log "PostgreSQL $("$PGBIN/pg_ctl" --version | awk '{print $3}') on 127.0.0.1:$PORT (data in $PGTMP)"

# CMD runs in the background so that a signal reaches the traps at once (bash
# runs a trap only after a foreground command ends); the signal is passed on.
"$@" &
child=$!
trap 'kill -TERM "$child" 2>/dev/null; wait "$child"; exit 130' INT
trap 'kill -TERM "$child" 2>/dev/null; wait "$child"; exit 143' TERM
set +e
wait "$child"
rc=$?
set -e
exit "$rc"
