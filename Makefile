# The two commands: `make run` (the whole stack on this machine) and `make test` (the suite).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run stop status test test-unit test-integration test-e2e test-browser test-faults bench install clean

$(STAMP): pyproject.toml clients/pyproject.toml
	test -x $(PY) || python3.11 -m venv $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip "setuptools<81" wheel
	$(PY) -m pip install -q -e ".[test]" -e ./clients   # clients/: the RPC client and introserv-ops
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(PY) -m deploy.local start

stop:
	$(PY) -m deploy.local stop

status:
	$(PY) -m deploy.local status

# The suites beyond the unit tests need RabbitMQ (with its management API) and, with
# TEST_DATABASE=postgres, PostgreSQL: tests/preflight.py checks them first and says in one line
# what is missing (enabling the management plugin itself where it may).
PREFLIGHT := $(PY) -m tests.preflight

test: $(STAMP)
	@$(PREFLIGHT)
	$(PY) -m pytest -q tests/unit tests/integration tests/e2e

test-unit: $(STAMP)
	$(PY) -m pytest -q tests/unit

test-integration: $(STAMP)
	@$(PREFLIGHT)
	$(PY) -m pytest -q tests/integration

test-e2e: $(STAMP)
	@$(PREFLIGHT)
	$(PY) -m pytest -q tests/e2e

# The web panel in headless Chromium (Debian's package); its own process, away from the root
# conftest's eventlet patching, which Playwright's asyncio loop cannot run under.
test-browser: $(STAMP)
	@$(PREFLIGHT)
	$(PY) -m pytest -q --confcutdir=tests/browser tests/browser

test-faults: $(STAMP)
	$(PY) -m pytest -q -rP tests/faults

bench: $(STAMP)
	$(PY) -m bench.run

clean: stop
	rm -rf var
