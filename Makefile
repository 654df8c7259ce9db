# Targets wrap plain cargo commands; `make test` is what CI runs.
.PHONY: services run test fmt lint unit bench bench-cluster soak soak-cluster fuzz

services:
	bash scripts/ensure-services.sh

run: services
	cargo run --release -- run

test: services
	cargo fmt --all -- --check
	cargo clippy --all-targets --all-features -- -D warnings
	cargo test --lib --bins --tests --all-features -- --test-threads=4

unit:
	cargo test --lib

fmt:
	cargo fmt --all

lint:
	cargo clippy --all-targets --all-features -- -D warnings

# End-to-end throughput and latency against the local services (release build).
bench: services
	cargo bench --bench e2e

# The same against a three-node RabbitMQ cluster on this machine (worker on
# one node, queues led by another); the cluster is removed afterwards.
bench-cluster: services
	bash scripts/rabbitmq-cluster.sh start
	cargo bench --bench e2e -- --cluster; rc=$$?; bash scripts/rabbitmq-cluster.sh stop; exit $$rc

# Chaos soak (benches/soak.rs): MINUTES of paced load on two worker
# replicas while faults on a seeded schedule hit them, then one JSON line
# of figures; exits 1 unless nothing was lost, applied twice, missing or out
# of order. It stops and starts the shared Postgres and RabbitMQ: run it
# when nothing else uses them. SEED=N repeats a run's schedule
# and load; PROFILE=dev uses the debug build instead of a release one.
MINUTES ?= 30
SOAK_ARGS = --minutes $(MINUTES) $(if $(SEED),--seed $(SEED))
SOAK = cargo bench --bench soak $(if $(PROFILE),--profile $(PROFILE)) --

soak: services
	$(SOAK) $(SOAK_ARGS)

# The same with the three-node cluster as the broker: a broker fault stops
# and starts one node; the cluster is removed afterwards.
soak-cluster: services
	bash scripts/rabbitmq-cluster.sh start
	$(SOAK) $(SOAK_ARGS) --cluster; rc=$$?; bash scripts/rabbitmq-cluster.sh stop; exit $$rc

# Property tests of decoding and decisions, far longer than in `make test`.
fuzz:
	PROPTEST_CASES=200000 cargo test --release --lib proptests
