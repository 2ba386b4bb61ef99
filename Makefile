# Two commands: `make demo` and `make test`.  Both set everything up first.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
ZENREC := $(VENV)/bin/zenrec
STAMP  := $(VENV)/.installed
# a throwaway PostgreSQL on loopback for the store tests (installs Debian's postgresql if missing)
WITH_PG := bash scripts/with_postgres.sh

.PHONY: demo test test-fast test-store lint bench clean install

install: $(STAMP)

# torch first, pinned to the CPU build, so nothing pulls a multi-GB CUDA build
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[dev]'
	touch $(STAMP)

# ends by serving the demo model at http://127.0.0.1:8000 (OpenAPI at /docs) and printing the web page's
# URL (http://127.0.0.1:8000/: recommendations, feedback, the model and its leaderboard); Ctrl-C stops it
demo: $(STAMP)
	$(ZENREC) demo --out out/demo
	$(ZENREC) serve out/demo/model-ease --data out/demo/data --leaderboard out/demo/leaderboard.json \
		--host 127.0.0.1 --port 8000

# the PostgreSQL store tests must run here, not skip: ZENREC_REQUIRE_POSTGRES=1 fails them without a server;
# so must the browser tests: Debian's chromium is installed when missing, ZENREC_REQUIRE_BROWSER=1 fails them without it
test: $(STAMP)
	bash scripts/ensure_chromium.sh
	ZENREC_REQUIRE_POSTGRES=1 ZENREC_REQUIRE_BROWSER=1 $(WITH_PG) $(PY) -m pytest -q -n 2 --durations=15

test-store: $(STAMP)
	ZENREC_REQUIRE_POSTGRES=1 $(WITH_PG) $(PY) -m pytest -q tests/store --durations=5

test-fast: $(STAMP)
	$(PY) -m pytest -q -n 2 -m "not slow"

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) out .pytest_cache .hypothesis
