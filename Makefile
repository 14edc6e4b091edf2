# Hài Lòng — the two commands a new user types: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed

.PHONY: run test test-unit bench chaos fuzz install kafka-jars postgres-server web chromium wrk clean

run: install kafka-jars web  ## start Kafka, the four services and reference data; Ctrl-C stops all
	$(PY) -m deploy.dev

test: install kafka-jars postgres-server web chromium  ## the whole suite against real Kafka, PostgreSQL and SQLite
	$(PY) -m pytest $(PYTEST_ARGS)

test-unit: install  ## pure domain tests only (seconds)
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

bench: install kafka-jars wrk  ## benchmarks; results in bench/results and docs/benchmarks.md
	$(PY) -m bench

# SEED=n replays a run; CHAOS_ARGS passes options, e.g. CHAOS_ARGS="--ratings 2000 --rate 20".
chaos: install kafka-jars postgres-server web  ## faults while kiosks post, invariants, schemathesis; report in docs/reliability.md
	$(PY) -m chaos $(if $(SEED),--seed $(SEED)) $(CHAOS_ARGS)

fuzz: install kafka-jars postgres-server web  ## schemathesis against the four services only (part of make chaos)
	$(PY) -m chaos --only fuzz $(if $(SEED),--seed $(SEED)) $(CHAOS_ARGS)

install: $(INSTALLED)

$(INSTALLED): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(INSTALLED)

kafka-jars: install  ## Apache Kafka broker jars from Maven Central, cached after the first run
	$(PY) -m deploy.kafka fetch

postgres-server:  ## PostgreSQL server binaries from Debian if the machine lacks them
	bash deploy/postgres/ensure-server.sh

# The publisher's public page: front-end inputs from npm, built once (the country outline, projected).
PUBLISHER_WEB := services/publisher/web
MAP_ASSET := services/publisher/static/build/vietnam-map.json

web: $(MAP_ASSET)  ## publisher's map of Việt Nam from world-atlas + d3-geo (npm), built at build time

$(MAP_ASSET): $(PUBLISHER_WEB)/package.json $(PUBLISHER_WEB)/package-lock.json $(PUBLISHER_WEB)/build-map.mjs
	command -v npm >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm)
	cd $(PUBLISHER_WEB) && npm ci --no-audit --no-fund --loglevel=error
	node $(PUBLISHER_WEB)/build-map.mjs $@

chromium:  ## Debian's Chromium for the publisher's browser test (Playwright drives it; no browser download)
	test -x /usr/bin/chromium || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)

wrk:  ## Debian's wrk HTTP load generator (bench/intake.py) if the machine lacks it
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)

clean:  ## remove local state (databases, broker data); keeps the jar cache and the virtualenv
	rm -rf var
