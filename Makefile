# The two commands of the quickstart: `make run` and `make test`. Everything else is optional.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
PYTEST_WORKERS ?= auto

.PHONY: install run test test-fast fuzz check lint types bench clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11 or newer is needed: " + sys.version' \
	  || { echo "install Python 3.11+ (Debian: apt-get install python3 python3-venv) and try again"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) \
	  || { echo "cannot create a virtualenv: apt-get install python3-venv, then run make again"; exit 1; }
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

.PHONY: redis-check
redis-check:
	@command -v redis-server >/dev/null || { echo "redis-server is missing: sudo apt-get install redis-server (Debian/Ubuntu) or brew install redis"; exit 69; }

# The whole service on embedded defaults: private Redis (AOF under ./var), worker, beat, API, page preview.
run: $(STAMP) redis-check
	$(BIN)/notifier run --demo

# Every suite CI runs: unit, integration (real Redis, real workers) and e2e (browser), in parallel.
# The schemathesis cases share one node id, which pytest-xdist would collapse into a single test:
# that file runs on its own, without xdist.
OPENAPI_TESTS := tests/integration/test_api_openapi.py
test: $(STAMP) redis-check
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadfile -p no:cacheprovider --ignore=$(OPENAPI_TESTS) $(PYTEST_ARGS)
	$(BIN)/python -m pytest -p no:cacheprovider -q $(OPENAPI_TESTS) $(PYTEST_ARGS)

# 10,000 hostile requests over every endpoint and console form; prints the answers counted by status.
fuzz: $(STAMP) redis-check
	FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-10000} $(BIN)/python -m pytest -p no:cacheprovider -q -s tests/integration/test_fuzz.py

test-fast: $(STAMP)
	$(BIN)/python -m pytest tests/unit -q -p no:cacheprovider

check: lint types
lint: $(STAMP)
	$(BIN)/ruff check notifier workers tests bench
types: $(STAMP)
	$(BIN)/mypy

bench: $(STAMP) redis-check
	$(BIN)/python bench/run_all.py

clean:
	rm -rf var test-artifacts .pytest_cache .mypy_cache .ruff_cache
