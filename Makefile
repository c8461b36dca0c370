# billstate: `make help` lists the targets. Everything installs what it needs itself.
SHELL := /bin/bash
.DEFAULT_GOAL := help

UV_VERSION := 0.13.9
TOOLS := .cache/tools
UV := $(or $(shell command -v uv 2>/dev/null),$(TOOLS)/bin/uv)
RUN := $(UV) run --frozen
KAFKA := $(RUN) python -m billstate_devkit.localkafka
LOCAL_BOOTSTRAP := 127.0.0.1:$(or $(BILLSTATE_KAFKA_PORT),39092)

.PHONY: help
help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[1m%-18s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(TOOLS)/bin/uv:
	@echo "installing uv $(UV_VERSION) into $(TOOLS) (no uv on PATH)"
	@python3 -m venv $(TOOLS) && $(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

.PHONY: install
install: $(if $(shell command -v uv 2>/dev/null),,$(TOOLS)/bin/uv) ## install uv (if missing) and sync the locked workspace
	@$(UV) sync --frozen --all-packages --quiet

# Manifest validators (tests/test_deploy_schemas.py): the CRD schemas of Strimzi and the
# Prometheus Operator from the npm registry, installed again when the lock changes; kustomize
# from the Go module proxy where kubectl (which embeds it) is missing.
SCHEMAS := deploy/schemas
KUSTOMIZE_VERSION := v5.5.0

.PHONY: validators
validators: $(SCHEMAS)/node_modules/.package-lock.json $(if $(shell command -v kubectl 2>/dev/null),,$(TOOLS)/bin/kustomize) ## npm packages of CRD schemas; kustomize where kubectl is missing

$(SCHEMAS)/node_modules/.package-lock.json: $(SCHEMAS)/package.json $(SCHEMAS)/package-lock.json
	@command -v npm >/dev/null || { echo "validators: no npm; run make setup-system"; exit 1; }
	@npm ci --prefix $(SCHEMAS) --no-audit --no-fund --loglevel=error
	@touch $@

$(TOOLS)/bin/kustomize:
	@command -v go >/dev/null || { echo "validators: neither kubectl nor Go; install one"; exit 1; }
	@echo "installing kustomize $(KUSTOMIZE_VERSION) into $(TOOLS) (no kubectl on PATH)"
	@GOBIN=$(abspath $(TOOLS)/bin) GOTOOLCHAIN=auto go install sigs.k8s.io/kustomize/kustomize/v5@$(KUSTOMIZE_VERSION)

# Debian packages the real-part tests drive: a headless browser and its driver, a PostgreSQL server.
# Node.js and npm run the manifest validators. A command already on PATH counts as installed:
# NodeSource's nodejs brings its own npm and conflicts with Debian's.
SYSTEM_PACKAGES := chromium chromium-driver postgresql fonts-liberation fonts-wqy-microhei nodejs npm prometheus

.PHONY: setup-system
setup-system: ## install the Debian packages the tests use (Chromium, chromedriver, PostgreSQL) where missing
	@command -v dpkg-query >/dev/null || { echo "setup-system: not Debian; install $(SYSTEM_PACKAGES) yourself"; exit 0; }; \
	missing=$$(for p in $(SYSTEM_PACKAGES); do \
	  dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -qx 'install ok installed' \
	    || command -v $$p >/dev/null || echo $$p; done); \
	[ -z "$$missing" ] && exit 0; \
	sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	echo "setup-system: installing" $$missing; \
	$$sudo apt-get update -qq && \
	DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends $$missing >/dev/null

.PHONY: run
run: install ## the main job: fresh local Kafka, the four services, three simulated months, a summary
	@env -u KAFKA_BOOTSTRAP_SERVERS $(KAFKA) clean >/dev/null
	@env -u KAFKA_BOOTSTRAP_SERVERS $(KAFKA) up
	@$(RUN) billstate topics apply --bootstrap $(LOCAL_BOOTSTRAP)
	@$(RUN) billstate demo --bootstrap $(LOCAL_BOOTSTRAP) --customers 200 --days 91 --seed 2026; \
	  status=$$?; env -u KAFKA_BOOTSTRAP_SERVERS $(KAFKA) down; exit $$status

.PHONY: console
console: install ## `make run`'s demo, then the console on its data: URL and sign-in printed, until Ctrl-C
	@env -u KAFKA_BOOTSTRAP_SERVERS $(KAFKA) clean >/dev/null
	@env -u KAFKA_BOOTSTRAP_SERVERS $(KAFKA) up
	@$(RUN) billstate topics apply --bootstrap $(LOCAL_BOOTSTRAP)
	@$(RUN) billstate demo --bootstrap $(LOCAL_BOOTSTRAP) --customers 200 --days 91 --seed 2026 --console; \
	  status=$$?; env -u KAFKA_BOOTSTRAP_SERVERS $(KAFKA) down; exit $$status

# Test processes (pytest-xdist): each takes whole files and starts its own local broker or
# container (the second's ports 10 above the first's). One process on an existing cluster, which
# the tests share one after another; TEST_WORKERS=0 runs them all in pytest's own process.
TEST_WORKERS ?= $(if $(KAFKA_BOOTSTRAP_SERVERS),0,2)

.PHONY: test
test: setup-system install validators ## every test, real broker included (starts a local Kafka unless KAFKA_BOOTSTRAP_SERVERS is set)
	@$(RUN) pytest -n $(TEST_WORKERS) --dist loadfile

.PHONY: lint
lint: install ## ruff (lint and format), mypy strict, import-linter contracts
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) mypy shared/src devkit/src cli/src services/*/src bench
	$(RUN) lint-imports

.PHONY: format
format: install ## apply ruff's fixes and formatting
	$(RUN) ruff check --fix .
	$(RUN) ruff format .

.PHONY: kafka-up
kafka-up: install ## start the local single-node Kafka (KRaft) on loopback, fetching its jars once
	@$(KAFKA) up

.PHONY: kafka-down
kafka-down: install ## stop the local Kafka this project started
	@$(KAFKA) down

.PHONY: kafka-status
kafka-status: install ## say whether the local Kafka runs, and where
	@$(KAFKA) status

.PHONY: kafka-clean
kafka-clean: install ## stop the local Kafka and delete its data (the jar cache stays)
	@$(KAFKA) clean

.PHONY: topics
topics: install ## create missing catalog topics; report drift
	@$(RUN) billstate topics apply

.PHONY: schemas
schemas: install ## regenerate the JSON Schema snapshot in tests/contracts
	@$(RUN) billstate contracts schema --out tests/contracts

.PHONY: clean
clean: ## remove caches (not the Kafka jar cache)
	rm -rf .pytest_cache .mypy_cache .ruff_cache .hypothesis

.PHONY: deploy-manifests
deploy-manifests: install ## regenerate Strimzi topics from the catalog
	@$(RUN) billstate topics strimzi --out deploy/k8s/base/topics.yaml

.PHONY: bench-log
bench-log: install ## cost of one worker log line at INFO (JSON to a file), against 20 µs
	@$(RUN) python bench/bench_log.py

.PHONY: bench-replay
bench-replay: install ## replay throughput and peak memory for a realistic year of 10,000 customers
	@$(RUN) python bench/bench_replay.py

.PHONY: bench-pipeline
bench-pipeline: install ## collections worker vs a bare aiokafka loop on a real broker, and payment -> restore latency at 1,000 events/s
	@$(RUN) python bench/bench_pipeline.py

.PHONY: bench-state
bench-state: install ## one million customers in the collections worker's state: peak RSS and restart times (about 50 min)
	@$(RUN) python bench/bench_state.py

.PHONY: bench-console
bench-console: install ## the console's pages over HTTP from a store of 100,000 customers, against 200 ms / 500 ms; exits 1 on a miss (BENCH_CONSOLE_ARGS="--with-local-postgres")
	@$(RUN) python bench/console.py $(BENCH_CONSOLE_ARGS)

.PHONY: bench
bench: bench-log bench-replay bench-pipeline bench-state bench-console ## all benchmarks

.PHONY: faults
faults: install ## fault suite: a simulated history on a fresh local Kafka while services, broker, Partner Center and SMTP fail; one row per fault (5-8 min; FAULTS_ARGS="--seed 7")
	@env -u KAFKA_BOOTSTRAP_SERVERS $(RUN) python bench/faults.py $(FAULTS_ARGS)
