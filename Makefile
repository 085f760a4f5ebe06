# One task runner for people and CI. `make test` and `make demo` work from a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test lint typecheck pytest browser demo serve clean bench

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

# Not part of `make test`: the large organization (200 keys, 365 days) synced from the simulator
# (kept in .bench/), then reads timed; writes docs/benchmarks.md.
bench: $(STAMP)
	$(BIN)/python bench/large_org.py --write

# The whole app against a built-in simulated organization: no key needed.
demo: $(STAMP)
	$(BIN)/usage-tracker demo

# The app against the real API, with the settings in .env (see .env.example).
serve: $(STAMP)
	@test -f .env || { echo "create .env first: cp .env.example .env, then set OPENAI_ADMIN_KEY"; exit 1; }
	$(BIN)/usage-tracker serve

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache test-artifacts
