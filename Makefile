# Set-up is part of every target: a fresh machine needs only `make demo` / `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	# ISMRMRD schema (header validation) and the reference data generator (third-party
	# test data); best effort: the tests that need them skip, naming the package.
	@command -v ismrmrd_generate_cartesian_shepp_logan >/dev/null && [ -f /usr/share/ismrmrd/schema/ismrmrd.xsd ] \
	  || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	       && (apt-get install -y -qq ismrmrd-tools ismrmrd-schema >/dev/null 2>&1 \
	           || (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq ismrmrd-tools ismrmrd-schema >/dev/null 2>&1)) \
	     || echo "note: ismrmrd-tools/ismrmrd-schema not installed; their tests will skip"; }
	$(PY) -m venv $(VENV)
	# torch is pinned to the CPU build that lies on disk; never pull CUDA wheels here.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/kmtr-stream demo

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
