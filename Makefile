# One task runner for people and CI. `make test` and `make demo` work from a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test lint typecheck pytest browser demo serve clean bench bench-check wrk

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/ruff format --check src tests bench scripts

typecheck: $(STAMP)
	$(BIN)/mypy src

# Browser tests drive Debian's Chromium (browser downloads are impossible here): install it once.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
		echo "installing Debian's chromium for the browser tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

pytest: $(STAMP) browser
	$(BIN)/pytest

test: lint typecheck pytest

# The load generator of the crowd figures, from Debian.
wrk:
	@command -v wrk >/dev/null 2>&1 || { \
		echo "installing Debian's wrk for the benchmarks"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }

# Not part of `make test`: the large organization (200 keys, 365 days) synced from the simulator
# into SQLite and PostgreSQL (kept in .bench/), then every figure of docs/benchmarks.md.
bench: $(STAMP) browser wrk
	$(BIN)/python -m bench.large_org --write

# The short form CI runs after the tests: fails when the 365-day summary has become more than
# 3x slower than recorded (a ratio to a fixed workload on the same machine, not a time limit).
bench-check: $(STAMP)
	$(BIN)/python -m bench.ci_check

# The whole app against a built-in simulated organization: no key needed.
demo: $(STAMP)
	$(BIN)/usage-tracker demo

# The app against the real API, with the settings in .env (see .env.example).
serve: $(STAMP)
	@test -f .env || { echo "create .env first: cp .env.example .env, then set OPENAI_ADMIN_KEY"; exit 1; }
	$(BIN)/usage-tracker serve

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache test-artifacts
