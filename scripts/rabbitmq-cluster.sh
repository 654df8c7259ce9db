#!/usr/bin/env bash
# A three-node RabbitMQ cluster on this machine, beside the machine's own
# broker (which stays untouched on 5672): nodes lw1..lw3@localhost on AMQP
# ports 5701..5703, with their own data directories, configuration and
# Erlang cookie under $LW_CLUSTER_DIR (default /tmp/lw-rabbit-cluster).
#
#   scripts/rabbitmq-cluster.sh start        boot the three nodes and join them
#   scripts/rabbitmq-cluster.sh stop         stop them and delete their data
#   scripts/rabbitmq-cluster.sh stop-node N  stop node N (1..3), keep its data
#   scripts/rabbitmq-cluster.sh start-node N start node N again
#   scripts/rabbitmq-cluster.sh status       cluster status as node 1 sees it
#   scripts/rabbitmq-cluster.sh ctl N ARGS   rabbitmqctl against node N
#   scripts/rabbitmq-cluster.sh start-tls CERTDIR
#                                            a standalone node lw9 with AMQP on
#                                            5709 and AMQPS on 5719, its
#                                            certificate CERTDIR/server.pem and
#                                            key CERTDIR/server.key
#   scripts/rabbitmq-cluster.sh stop-tls     stop it and delete its data
#
# The tests use it (tests/cluster); an operator can use it to try the
# worker against a cluster: LIFECYCLE__AMQP__URLS=amqp://guest:guest@127.0.0.1:5701/%2f,...
#
# Pitfalls it avoids: the /usr/sbin wrappers switch to the rabbitmq user
# (its HOME, cookie and log directory), so the scripts under
# /usr/lib/rabbitmq/bin are called directly; /etc/rabbitmq/rabbitmq-env.conf
# sets NODENAME and /etc/rabbitmq/rabbitmq.conf binds 5672, so each node
# gets its own env and config files; the enabled-plugins file is empty (the
# management plugin would clash on 15672); stopped nodes are started in
# parallel (a restarting node waits for its peers).
set -euo pipefail

DIR="${LW_CLUSTER_DIR:-/tmp/lw-rabbit-cluster}"
BIN=/usr/lib/rabbitmq/bin
NODES=(1 2 3)

port() { echo $((5700 + $1)); }
name() { echo "lw$1@localhost"; }

node_env() {
    local n=$1 d="$DIR/node$1"
    export HOME="$DIR"
    export RABBITMQ_NODENAME RABBITMQ_NODE_PORT RABBITMQ_DIST_PORT RABBITMQ_CONFIG_FILE \
        RABBITMQ_CONF_ENV_FILE RABBITMQ_ENABLED_PLUGINS_FILE RABBITMQ_MNESIA_BASE \
        RABBITMQ_LOG_BASE RABBITMQ_PID_FILE RABBITMQ_NODE_IP_ADDRESS ERL_EPMD_ADDRESS
    RABBITMQ_NODENAME=$(name "$n")
    RABBITMQ_NODE_PORT=$(port "$n")
    RABBITMQ_DIST_PORT=$((25700 + n))
    RABBITMQ_CONFIG_FILE="$d/rabbitmq.conf"
    RABBITMQ_CONF_ENV_FILE="$d/rabbitmq-env.conf"
    RABBITMQ_ENABLED_PLUGINS_FILE="$d/enabled_plugins"
    RABBITMQ_MNESIA_BASE="$d/mnesia"
    RABBITMQ_LOG_BASE="$d/log"
    RABBITMQ_PID_FILE="$d/pid"
    RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
    ERL_EPMD_ADDRESS=127.0.0.1
    # A VM that fails (rabbitmqctl included) dumps here, never into the
    # caller's working directory.
    export ERL_CRASH_DUMP="$DIR/erl_crash.dump"
}

ctl() {
    local n=$1
    shift
    (node_env "$n" && "$BIN/rabbitmqctl" -n "$(name "$n")" "$@")
}

cookie() {
    mkdir -p "$DIR"
    if [ ! -f "$DIR/.erlang.cookie" ]; then
        head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$DIR/.erlang.cookie"
        chmod 400 "$DIR/.erlang.cookie"
    fi
}

# prepare_node N [extra configuration lines]
prepare_node() {
    local n=$1 d="$DIR/node$1"
    mkdir -p "$d/mnesia" "$d/log"
    cat >"$d/rabbitmq.conf" <<EOF
listeners.tcp.default = 127.0.0.1:$(port "$n")
loopback_users = none
cluster_partition_handling = pause_minority
vm_memory_high_watermark.absolute = 256MiB
disk_free_limit.absolute = 50MB
${2:-}
EOF
    : >"$d/rabbitmq-env.conf"
    echo '[].' >"$d/enabled_plugins"
}

prepare() {
    cookie
    for n in "${NODES[@]}"; do prepare_node "$n"; done
}

# Stops node N: cleanly if it answers, else by its pid (a node still
# booting does not answer, and must not outlive its data directory).
stop_node() {
    local pidfile="$DIR/node$1/pid"
    # Never started (or already removed): nothing to stop, and rabbitmqctl
    # would fail to write its cookie there.
    [ -d "$DIR/node$1" ] || return 0
    ctl "$1" shutdown >/dev/null 2>&1 || true
    if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
        kill -9 "$(cat "$pidfile")" 2>/dev/null || true
    fi
}

start_node() {
    (node_env "$1" && "$BIN/rabbitmq-server" -detached >/dev/null 2>&1)
}

# A node that has not registered with epmd yet is "not running": ask
# again until it answers, for at most a minute.
await_node() {
    local deadline=$((SECONDS + 60))
    until ctl "$1" await_startup --timeout 60 >/dev/null 2>&1; do
        if [ $SECONDS -ge $deadline ]; then
            echo "node $(name "$1") did not start; its log: $DIR/node$1/log" >&2
            return 1
        fi
        sleep 0.5
    done
}

case "${1:-}" in
start)
    prepare
    for n in "${NODES[@]}"; do start_node "$n"; done
    for n in "${NODES[@]}"; do await_node "$n"; done
    for n in 2 3; do
        if ! ctl "$n" cluster_status --formatter json 2>/dev/null | grep -q "$(name 1)"; then
            ctl "$n" stop_app >/dev/null
            ctl "$n" join_cluster "$(name 1)" >/dev/null
            ctl "$n" start_app >/dev/null
        fi
    done
    echo "cluster up: amqp://guest:guest@127.0.0.1:5701/%2f, :5702, :5703"
    ;;
stop)
    for n in "${NODES[@]}"; do stop_node "$n" & done
    wait
    rm -rf "$DIR"
    ;;
stop-node)
    ctl "$2" shutdown >/dev/null
    ;;
start-node)
    start_node "$2"
    await_node "$2"
    ;;
status)
    ctl 1 cluster_status
    ;;
start-tls)
    certs=$(cd "$2" && pwd)
    cookie
    prepare_node 9 "listeners.ssl.default = 127.0.0.1:5719
ssl_options.cacertfile = $certs/ca.pem
ssl_options.certfile = $certs/server.pem
ssl_options.keyfile = $certs/server.key
ssl_options.verify = verify_none
ssl_options.fail_if_no_peer_cert = false"
    start_node 9
    await_node 9
    ;;
stop-tls)
    stop_node 9
    rm -rf "$DIR/node9"
    ;;
ctl)
    n=$2
    shift 2
    ctl "$n" "$@"
    ;;
*)
    sed -n '2,28p' "$0"
    exit 2
    ;;
esac
