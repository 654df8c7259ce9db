#!/usr/bin/env bash
# A throwaway Postgres primary with a synchronous streaming standby, beside
# the machine's own server (which stays untouched on 5432), for the
# switchover test and for an operator who wants to try a multi-host
# database.url locally. Trust authentication, 127.0.0.1 only.
#
#   scripts/postgres-pair.sh start DIR PRIMARY_PORT STANDBY_PORT
#       initdb the primary in DIR/primary, start it, pg_basebackup -R the
#       standby into DIR/standby, start it, wait until it replicates
#       synchronously
#   scripts/postgres-pair.sh stop-primary DIR
#       stop the primary (fast shutdown), as a failing server would go
#   scripts/postgres-pair.sh promote DIR
#       promote the standby to primary
#   scripts/postgres-pair.sh stop DIR
#       stop both and delete DIR
set -euo pipefail

BIN="/usr/lib/postgresql/$(ls /usr/lib/postgresql | sort -V | tail -1)/bin"

# Postgres refuses to run as root.
as_pg() {
    if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

start() {
    local dir=$1 p1=$2 p2=$3
    rm -rf "$dir"
    mkdir -p "$dir"
    [ "$(id -u)" -eq 0 ] && chown postgres "$dir"
    as_pg "$BIN/initdb" -D "$dir/primary" -A trust -U postgres >/dev/null
    cat >>"$dir/primary/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $p1
unix_socket_directories = '$dir'
wal_level = replica
max_wal_senders = 4
synchronous_standby_names = 'standby'
shared_buffers = 32MB
CONF
    as_pg "$BIN/pg_ctl" -D "$dir/primary" -l "$dir/primary.log" -w start >/dev/null
    as_pg "$BIN/pg_basebackup" -h 127.0.0.1 -p "$p1" -U postgres -D "$dir/standby" -R -X stream
    cat >>"$dir/standby/postgresql.auto.conf" <<CONF
primary_conninfo = 'host=127.0.0.1 port=$p1 user=postgres application_name=standby'
port = $p2
# Once promoted, nothing is left to wait for.
synchronous_standby_names = ''
CONF
    as_pg "$BIN/pg_ctl" -D "$dir/standby" -l "$dir/standby.log" -w start >/dev/null
    for _ in $(seq 100); do
        state=$(as_pg "$BIN/psql" -h 127.0.0.1 -p "$p1" -U postgres -Atc \
            "SELECT sync_state FROM pg_stat_replication WHERE application_name = 'standby'" 2>/dev/null || true)
        [ "$state" = "sync" ] && return 0
        sleep 0.1
    done
    echo "postgres-pair: the standby did not start replicating synchronously" >&2
    return 1
}

case "${1:-}" in
start) start "$2" "$3" "$4" ;;
stop-primary) as_pg "$BIN/pg_ctl" -D "$2/primary" -m fast stop >/dev/null ;;
promote) as_pg "$BIN/pg_ctl" -D "$2/standby" -w promote >/dev/null ;;
stop)
    for node in primary standby; do
        if [ -f "$2/$node/PG_VERSION" ]; then
            as_pg "$BIN/pg_ctl" -D "$2/$node" -m immediate stop >/dev/null 2>&1 || true
        fi
    done
    rm -rf "$2"
    ;;
*)
    sed -n '2,17p' "$0"
    exit 2
    ;;
esac
