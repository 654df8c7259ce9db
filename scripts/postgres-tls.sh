#!/usr/bin/env bash
# A throwaway Postgres server with TLS, beside the machine's own (which
# stays untouched on 5432), for the TLS tests and for an operator who wants
# to try sslmode=verify-full locally.
#
#   scripts/postgres-tls.sh start CERTDIR PORT on|off
#       initdb (once) in $LW_PG_TLS_DIR (default /tmp/lw-pg-tls), then
#       (re)start on 127.0.0.1:PORT with ssl on or off, serving
#       CERTDIR/server.pem and CERTDIR/server.key; trust authentication
#   scripts/postgres-tls.sh stop
#       stop it and delete its data
set -euo pipefail

DIR="${LW_PG_TLS_DIR:-/tmp/lw-pg-tls}"
BIN="/usr/lib/postgresql/$(ls /usr/lib/postgresql | sort -V | tail -1)/bin"

# Postgres refuses to run as root.
as_pg() {
    if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "${1:-}" in
start)
    certs=$(cd "$2" && pwd)
    port=$3
    ssl=$4
    mkdir -p "$DIR"
    [ "$(id -u)" -eq 0 ] && chown postgres "$DIR"
    if [ ! -f "$DIR/data/PG_VERSION" ]; then
        as_pg "$BIN/initdb" -D "$DIR/data" -A trust -U postgres >/dev/null
    fi
    install -m 600 "$certs/server.pem" "$DIR/data/server.crt"
    install -m 600 "$certs/server.key" "$DIR/data/server.key"
    [ "$(id -u)" -eq 0 ] && chown postgres "$DIR/data/server.crt" "$DIR/data/server.key"
    as_pg "$BIN/pg_ctl" -D "$DIR/data" -m fast stop >/dev/null 2>&1 || true
    as_pg "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/log" -w -o \
        "-p $port -k $DIR -c listen_addresses=127.0.0.1 -c ssl=$ssl -c ssl_cert_file=server.crt -c ssl_key_file=server.key -c fsync=off" \
        start >/dev/null
    ;;
stop)
    if [ -d "$DIR/data" ]; then
        as_pg "$BIN/pg_ctl" -D "$DIR/data" -m immediate stop >/dev/null 2>&1 || true
    fi
    rm -rf "$DIR"
    ;;
*)
    sed -n '2,12p' "$0"
    exit 2
    ;;
esac
