# Inkwell: `make run` serves the site on http://127.0.0.1:5000, `make test` runs the suite.
# Everything installs into .venv from setup.cfg; nothing is needed beforehand but python3.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 5000

.PHONY: run test browser browser-deps lint install install-test db-upgrade bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel

# Stamps, so a second `make` does not reinstall; they go stale when setup.cfg changes.
$(VENV)/.installed: $(BIN)/python setup.cfg pyproject.toml
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

# A random SECRET_KEY, written once; the file is git-ignored.
instance/config.py: | $(BIN)/python
	mkdir -p instance
	$(BIN)/python -c "import secrets; print('SECRET_KEY = %r' % secrets.token_hex(32))" > $@
	@echo "Wrote a new SECRET_KEY to $@"

db-upgrade: install instance/config.py
	$(BIN)/flask db upgrade

# Plain http on localhost, so the session cookie may not be marked Secure here.
# `flask seed --if-empty` fills an empty database with a small demo site (so only on the
# first run), and at every start prints the demo logins that still work.
# The job worker (mail delivery) runs beside the web server. A background job of a recipe's
# shell ignores Ctrl-C, so the trap stops it (gracefully, with SIGINT) when the server stops.
# Links in mail point at the address served here, unless SITE_URL says otherwise.
run: db-upgrade
	$(BIN)/flask seed --if-empty
	@export SITE_URL="$${SITE_URL:-http://$(HOST):$(PORT)}"; \
	$(BIN)/flask worker & worker=$$!; \
	trap 'kill -INT $$worker 2>/dev/null; wait $$worker 2>/dev/null' EXIT; \
	trap 'exit 130' INT TERM; \
	FLASK_SESSION_COOKIE_SECURE=false $(BIN)/flask run --host $(HOST) --port $(PORT)

# ruff (style, imports, likely bugs) and mypy (types of blog/ and bench/); configured in pyproject.toml.
# Then pip-audit for published advisories in what is installed: it needs the network, so
# without one it prints "pip-audit skipped: no network" and passes; real findings fail.
lint: install-test
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/python .ci/pip_audit.py

# axe-core (accessibility checks for the browser tests) from the npm registry, pinned in
# tests/browser/axe.py, into the git-ignored .cache/axe. Chromium itself is Debian's package.
browser-deps: install-test
	$(BIN)/python -m tests.browser.axe

# Lint, then the suite on SQLite, then again on PostgreSQL when TEST_DATABASE_URL is set. The
# browser tests (tests/browser) serve their own SQLite site whatever the database, so the
# PostgreSQL pass leaves them out rather than run them twice.
test: lint browser-deps
	env -u TEST_DATABASE_URL $(BIN)/python -m pytest
	@if [ -n "$$TEST_DATABASE_URL" ]; then \
		echo "== again on PostgreSQL: $$TEST_DATABASE_URL"; \
		$(BIN)/python -m pytest -m "not browser"; \
	fi

# Only the real-browser tests: every kind of page at 320, 390 and 1280 px in Chromium.
browser: browser-deps
	$(BIN)/python -m pytest tests/browser --no-cov

# Benchmarks (bench/), on SQLite, then on PostgreSQL when BENCH_DATABASE_URL is set (its schema
# is replaced): the newsletter's throughput to 10,000 subscribers through a local SMTP server;
# then bench.run, the issue #15 table: the home page against floors that draw the same HTML
# with the bare driver, deep pages, page size, statements per page, search, open-loop latency
# and checkout under 16 buyers, each with its goal and PASS or MISS. Its data set (100,000
# posts by `flask seed`, timed) is kept in .bench/ and rebuilt only when migrations or the
# seeder change; on PostgreSQL the newsletter's run replaces it, so it is seeded every time.
# The machine should be otherwise idle: the table prints the spread of interleaved rounds and
# the load average. BENCH_ARGS=--quick checks the harness on 2,000 posts in about a minute.
BENCH_ARGS ?=
bench: install-test
	$(BIN)/python -m bench.newsletter
	$(BIN)/python -m bench.run $(BENCH_ARGS)
	@if [ -n "$$BENCH_DATABASE_URL" ]; then \
		$(BIN)/python -m bench.newsletter --database-url "$$BENCH_DATABASE_URL" && \
		$(BIN)/python -m bench.run $(BENCH_ARGS) --database-url "$$BENCH_DATABASE_URL"; \
	fi

# Only build (or check) the benchmarks' data sets, timing `flask seed`.
.PHONY: bench-data
bench-data: install-test
	$(BIN)/python -m bench.data $(BENCH_ARGS)
	@if [ -n "$$BENCH_DATABASE_URL" ]; then \
		$(BIN)/python -m bench.data $(BENCH_ARGS) --database-url "$$BENCH_DATABASE_URL"; \
	fi

clean:
	rm -rf $(VENV) .pytest_cache .coverage htmlcov *.egg-info .cache
