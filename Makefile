VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: test lint demo clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml setup.py src/dcrmodel/warp/_kernelsum.pyx
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(VENV)/.installed

demo: $(VENV)/.installed
	$(BIN)/dcrmodel demo --out demo-output --overwrite

test: $(VENV)/.installed
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/python -m pytest -n 2 -q

lint: $(VENV)/.installed
	$(BIN)/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache
	rm -f src/dcrmodel/warp/_kernelsum.c src/dcrmodel/warp/_kernelsum.*.so
