# The two commands of the quickstart: `make run` and `make test`. Everything else is optional.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
PYTEST_WORKERS ?= auto

# How far the second pass of `make test` moves the wall clock ahead (days).
TIME_SHIFT_DAYS ?= 1100

.PHONY: install run test test-now test-shifted test-fast fuzz chaos check lint types imports bench clean system-packages \
        system-packages-test

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11 or newer is needed: " + sys.version' \
	  || { echo "install Python 3.11+ (Debian: apt-get install python3 python3-venv) and try again"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || scripts/ensure-packages scripts/apt-python.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) \
	  || { rm -rf $(VENV); echo "cannot create a virtualenv: apt-get install python3-venv, then run make again"; exit 1; }
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

# System packages: installed with apt-get when we are root on Debian, else the one command to run (exit 69).
# scripts/apt-*.txt are the only lists; .ci/run relies on these targets too.
system-packages:
	@scripts/ensure-packages scripts/apt-run.txt
system-packages-test:
	@scripts/ensure-packages scripts/apt-run.txt scripts/apt-test.txt

# The whole service on embedded defaults: private Redis (AOF under ./var), worker, beat, API, page preview.
run: $(STAMP) system-packages
	$(BIN)/notifier run --demo

# Every suite CI runs: unit, integration (real Redis, real workers) and e2e (browser), in parallel,
# twice: on today's clock, then with every Python process's wall clock $(TIME_SHIFT_DAYS) days ahead
# (tests/timeshift.py), so a test that compares a date literal with now fails the day it is written.
# Tests marked real_clock hand times to a process whose clock cannot be moved (Alertmanager) and run
# only in the first pass.
# The schemathesis cases share one node id, which pytest-xdist would collapse into a single test:
# that file runs on its own, without xdist.
OPENAPI_TESTS := tests/integration/test_api_openapi.py
PYTEST := $(BIN)/python -m pytest -p no:cacheprovider
test: test-now test-shifted

test-now: $(STAMP) system-packages-test
	$(PYTEST) -n $(PYTEST_WORKERS) --dist loadfile --ignore=$(OPENAPI_TESTS) $(PYTEST_ARGS)
	$(PYTEST) -q $(OPENAPI_TESTS) $(PYTEST_ARGS)

test-shifted: $(STAMP) system-packages-test
	@$(BIN)/python tests/timeshift.py install
	@echo "== the suite again, the wall clock $(TIME_SHIFT_DAYS) days ahead (tests marked real_clock excepted)"
	OUTAGE_TEST_TIME_SHIFT_DAYS=$(TIME_SHIFT_DAYS) $(PYTEST) -n $(PYTEST_WORKERS) --dist loadfile \
	  -W "ignore:Module already imported so cannot be rewritten; time_machine" \
	  --ignore=$(OPENAPI_TESTS) -m "not real_clock" $(PYTEST_ARGS)

# 10,000 hostile requests over every endpoint and console form; prints the answers counted by status.
fuzz: $(STAMP) system-packages-test
	FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-10000} $(PYTEST) -q -s tests/integration/test_fuzz.py

# The big chaos run: 1,000 notices to fake X and Graph, the worker group SIGKILLed 20 times, and one update to
# 1,000 e-mail subscribers with 5 kills (prints figures).
chaos: $(STAMP) system-packages-test
	CHAOS_INCIDENTS=$${CHAOS_INCIDENTS:-500} CHAOS_KILLS=$${CHAOS_KILLS:-20} CHAOS_SETTLE_SECONDS=$${CHAOS_SETTLE_SECONDS:-900} \
	  SUBSCRIBER_KILL_N=$${SUBSCRIBER_KILL_N:-1000} SUBSCRIBER_KILLS=$${SUBSCRIBER_KILLS:-5} \
	  $(PYTEST) -q -s -o timeout=1800 tests/chaos
	# Redis Sentinel: the master SIGKILLed during 1,000 webhooks and 1,000 staff broadcasts (prints figures)
	SENTINEL_EVENTS=$${SENTINEL_EVENTS:-500} SENTINEL_SETTLE_SECONDS=$${SENTINEL_SETTLE_SECONDS:-900} \
	  $(PYTEST) -q -s -o timeout=1800 tests/integration/test_sentinel_failover.py -k sigkill

test-fast: $(STAMP)
	$(BIN)/python -m pytest tests/unit -q -p no:cacheprovider

check: lint types imports
lint: $(STAMP)
	$(BIN)/ruff check notifier workers tests bench
types: $(STAMP)
	$(BIN)/mypy
# The layering contracts of .importlinter (drawn in docs/architecture.md); tests/unit/test_architecture.py runs them too.
imports: $(STAMP)
	$(BIN)/lint-imports --no-cache

bench: $(STAMP) system-packages
	$(BIN)/python bench/run_all.py

clean:
	rm -rf var test-artifacts .pytest_cache .mypy_cache .ruff_cache
