# Two commands on a fresh machine: `make run` and `make test`. See README.md.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.txt | sha1sum | cut -c1-12)

# The real services the suite runs against; override to isolate parallel runs.
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/messenger
TEST_REDIS_URL ?= redis://127.0.0.1:6379/1
export SECRET_KEY ?= test-secret-key-not-for-production-0123456789

.PHONY: run test lint check-services stack migrate bench soak clean web web-screenshots cluster cluster-bench restore-drill

$(STAMP): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)

# Embedded default: SQLite, in-memory channel layer, eager Celery. Nothing to install.
run: $(STAMP)
	mkdir -p var
	DEBUG=$${DEBUG:-1} $(PY) manage.py migrate --noinput
	DEBUG=$${DEBUG:-1} OTP_TEST_NUMBERS=$${OTP_TEST_NUMBERS-} $(VENV)/bin/uvicorn config.asgi:application \
		--host 127.0.0.1 --port $${PORT:-8000} --ws websockets-sansio --ws-per-message-deflate false --lifespan off

check-services: $(STAMP)
	@$(PY) scripts/check_services.py "$(TEST_DATABASE_URL)" "$(TEST_REDIS_URL)"

lint: $(STAMP)
	$(VENV)/bin/ruff check .

test: check-services lint
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) $(PY) manage.py makemigrations --check --dry-run
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) $(VENV)/bin/pytest $(PYTEST_ARGS)

# The real stack against PostgreSQL and Redis: ASGI server, Celery worker and beat.
stack: $(STAMP) check-services
	DATABASE_URL=$${DATABASE_URL:-$(TEST_DATABASE_URL)} REDIS_URL=$${REDIS_URL:-redis://127.0.0.1:6379/0} \
		$(PY) manage.py migrate --noinput
	DATABASE_URL=$${DATABASE_URL:-$(TEST_DATABASE_URL)} REDIS_URL=$${REDIS_URL:-redis://127.0.0.1:6379/0} \
		PATH=$(VENV)/bin:$$PATH $(VENV)/bin/honcho start -f Procfile

# A bounded mixed load with faults injected (Redis, an ASGI process and the Celery worker
# killed and restarted), then the exactly-once check. Private PostgreSQL/Redis on free
# ports of 127.0.0.1. SOAK_SECONDS shortens it (default 600).
soak: $(STAMP)
	SOAK_SECONDS=$${SOAK_SECONDS:-600} $(PY) bench/soak.py

clean:
	rm -rf $(VENV) var db.sqlite3

# Benchmarks against the real stack (PostgreSQL and Redis as for the tests); see README "Benchmarks".
bench: $(STAMP) check-services
	$(PY) -m bench.run $(BENCH_ARGS)

# The browser client (web/, TypeScript + Preact, built with Vite): rebuilds web/dist, which is
# committed and served at /app/, so `make run` needs no Node.js.
web:
	cd web && npm ci && npm run build

# Screenshots of the main screens at phone and desktop widths into docs/web/ (real stack on
# TEST_DATABASE_URL / TEST_REDIS_URL, Debian's Chromium through Playwright).
web-screenshots: $(STAMP) check-services
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) $(PY) scripts/web_screenshots.py
# The production layout on one machine (nginx, 3 uvicorn, PgBouncer, 2 Redis shards, a worker per
# queue, beat) on private services; installs nginx/PgBouncer from Debian when missing. Ctrl-C stops.
cluster: $(STAMP)
	CLUSTER_PORT=$${CLUSTER_PORT:-8080} $(PY) scripts/cluster.py up

# Throughput through nginx with 1, 2, 3 uvicorn processes, then a uvicorn and a Redis shard killed
# mid-run and the exactly-once check (bench/cluster_bench.py).
cluster-bench: $(STAMP)
	$(PY) -m bench.cluster_bench

# Backup and restore drill on a private PostgreSQL: traffic, pg_dump, drop, restore, exactly-once check.
restore-drill: $(STAMP)
	$(PY) scripts/restore_drill.py
