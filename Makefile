# crm2stream: `make run` and `make test` set up the environment when needed.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# .installed: the package and what it runs on; .installed-dev: the test and lint tools too
# (`make run` needs only the first, so a new user's first run builds less).
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev
DATA ?= crm2stream-data
# The compiled core is built with cargo (rustup installs it under ~/.cargo/bin).
export PATH := $(HOME)/.cargo/bin:$(PATH)
NATIVE := native/Cargo.toml native/Cargo.lock $(wildcard native/src/*.rs)
# The browser tests drive Debian's Chromium (installed with apt when missing).
CHROMIUM ?= /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: venv run sample test check lint bench schemas browser clean

venv: $(DEV_STAMP)

PIP := $(BIN)/pip install --quiet --disable-pip-version-check
# the pins of pyproject.toml's dependency lists, as requirements files
PINS = $(BIN)/python -c "import sys, tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; print('\n'.join(p['dependencies'] if sys.argv[1] == 'run' else p['optional-dependencies']['dev']))"

# The dependencies install while the compiled core builds (it takes most of the time).
$(STAMP): pyproject.toml $(NATIVE)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PINS) run > $(VENV)/requirements.txt
	$(PIP) -r $(VENV)/requirements.txt & deps=$$!; \
	  $(PIP) --no-deps -e . || { wait $$deps; exit 1; }; wait $$deps
	touch $@

# the dev extra's pins, installed without building the package again
$(DEV_STAMP): $(STAMP)
	$(PINS) dev > $(VENV)/dev-requirements.txt
	$(PIP) -r $(VENV)/dev-requirements.txt
	touch $@

## run: the demo campaign played into the embedded engine, with the live dashboard
run: $(STAMP)
	$(BIN)/crm2stream demo

## sample: ingest the bundled sample campaign into $(DATA) and print the tables
sample: $(STAMP)
	$(BIN)/python -m crm2stream.sample --data-dir $(DATA)

## test: lint, type-check and the whole test suite (the compiled core's unit tests and the
## browser tests too)
test: $(DEV_STAMP) lint browser
	cargo test --quiet --release --lib --manifest-path native/Cargo.toml
	CRM2STREAM_CHROMIUM=$(CHROMIUM) $(BIN)/python -m pytest

## check: lint, type-check and the unit tests, Rust and Python (no broker, browser or
## server: the quick loop while working; `make test` runs everything)
check: $(DEV_STAMP) lint
	cargo test --quiet --release --lib --manifest-path native/Cargo.toml
	$(BIN)/python -m pytest -q $(UNIT_TESTS)

# the tests that start nothing: the contract, the spec against the core, the core's parts
UNIT_TESTS = tests/core tests/spec tests/test_native.py tests/test_native_allocator.py \
  tests/test_schemas.py \
  tests/test_topology.py tests/engine/test_publication.py tests/engine/test_segments.py \
  tests/engine/test_lines.py tests/engine/test_compaction.py tests/kafka/test_chunks.py \
  tests/test_layers.py tests/test_docs.py tests/engine/test_core.py tests/api/test_readmodel.py \
  tests/bench

browser:
	@test -x $(CHROMIUM) || { echo "installing Debian's chromium for the browser tests"; \
	  $(SUDO) apt-get install -y --no-install-recommends chromium || { \
	  $(SUDO) apt-get update && $(SUDO) apt-get install -y --no-install-recommends chromium; }; }

lint: $(DEV_STAMP)
	$(BIN)/ruff check crm2stream tests bench examples
	$(BIN)/ruff format --check crm2stream tests bench examples
	$(BIN)/mypy
	$(BIN)/mypy --strict examples/marketing_automation.py
	cargo fmt --check --manifest-path native/Cargo.toml
	cargo clippy --quiet --release --all-targets --manifest-path native/Cargo.toml -- -D warnings

## bench: 1,000,000 synthetic events through ingest and replay, against a parse+validate floor
bench: $(DEV_STAMP)
	$(BIN)/python -m bench.run

## schemas: regenerate schemas/ from the pydantic models
schemas: $(DEV_STAMP)
	$(BIN)/python -m crm2stream.schemas schemas

clean:
	rm -rf $(VENV) $(DATA) .bench native/target crm2stream/_native.*.so
