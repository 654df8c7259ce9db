#!/usr/bin/env bash
# Makes sure the local Postgres and RabbitMQ are up, starting installed but
# stopped services. Used by `make run`, `make test` and CI.
set -euo pipefail

wait_for() { # description, attempts, command...
  local what=$1 tries=$2; shift 2
  for _ in $(seq "$tries"); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 1
  done
  echo "ensure-services: $what did not come up" >&2
  return 1
}

if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
  if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
    echo "ensure-services: starting PostgreSQL" >&2
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
  fi
  wait_for PostgreSQL 60 pg_isready -h 127.0.0.1 -p 5432 -q
fi

if ! rabbitmq-diagnostics -q check_running >/dev/null 2>&1; then
  if rabbitmq-diagnostics -q ping >/dev/null 2>&1; then
    # The node runs but its application was stopped (rabbitmqctl stop_app).
    echo "ensure-services: starting the RabbitMQ application" >&2
    rabbitmqctl -q start_app || true
  elif command -v rabbitmq-server >/dev/null; then
    echo "ensure-services: starting RabbitMQ" >&2
    rabbitmq-server -detached || true
  fi
  wait_for RabbitMQ 120 rabbitmq-diagnostics -q check_running
  wait_for "RabbitMQ port 5672" 60 rabbitmq-diagnostics -q check_port_connectivity
fi
