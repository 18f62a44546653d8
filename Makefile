# crm2stream: `make run` and `make test` set up the environment when needed.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DATA ?= crm2stream-data
# The compiled core is built with cargo (rustup installs it under ~/.cargo/bin).
export PATH := $(HOME)/.cargo/bin:$(PATH)
NATIVE := native/Cargo.toml native/Cargo.lock $(wildcard native/src/*.rs)

.PHONY: venv run test lint unit bench schemas clean

venv: $(STAMP)

$(STAMP): pyproject.toml $(NATIVE)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

## run: ingest the bundled sample campaign on the embedded engine and print the tables
run: $(STAMP)
	$(BIN)/python -m crm2stream.sample --data-dir $(DATA)

## test: lint, type-check and the whole test suite (the compiled core's unit tests too)
test: $(STAMP) lint
	cargo test --quiet --release --lib --manifest-path native/Cargo.toml
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check crm2stream tests bench
	$(BIN)/ruff format --check crm2stream tests bench
	$(BIN)/mypy

## bench: 1,000,000 synthetic events through ingest and replay, against a parse+validate floor
bench: $(STAMP)
	$(BIN)/python -m bench.run

## schemas: regenerate schemas/ from the pydantic models
schemas: $(STAMP)
	$(BIN)/python -m crm2stream.schemas schemas

clean:
	rm -rf $(VENV) $(DATA) .bench native/target crm2stream/_native.*.so
