# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
# Each installs what it uses: the demo the [eval] extra (torch, transformers: it runs a model), the tests
# [dev] (every extra, plus pytest, Playwright, build, twine, uv; torch with torchvision: see TEST_TORCH).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# torch is installed first so that the extras' `torch>=2.4` is already met. The demo takes the small CPU build
# on this machine's disk (2.13.0: seconds, no download). The tests take torch 2.14.1 with torchvision 0.29.1 (a
# CUDA build that runs on the CPU, ~5.6 GB, about a minute here): lmms-eval and open_clip need torchvision, and
# with it transformers' image processors run their torchvision backend, as on a user's GPU machine.
# Override on a GPU machine, e.g. TORCH=torch TEST_TORCH="torch torchvision".
TORCH ?= torch==2.13.0
TEST_TORCH ?= torch==2.14.1 torchvision==0.29.1
export HF_HUB_OFFLINE := 1

.PHONY: demo test install install-demo dist clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(VENV)/.installed-eval: pyproject.toml | $(PY)
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[eval]"
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(PY)
	$(PY) -m pip install -q $(TEST_TORCH)
	$(PY) -m pip install -q -e ".[dev]"
	touch $@ $(VENV)/.installed-eval

install-demo: $(VENV)/.installed-eval
install: $(VENV)/.installed-dev

demo: $(VENV)/.installed-eval
	$(VENV)/bin/diffbench demo

# One test process a core (pytest-xdist), a test file a process: the suite is mostly subprocesses, JVMs
# and I/O, so two processes keep both cores busy (8.3 min instead of 12.9 on 2 cores, measured 2026-12-02).
test: $(VENV)/.installed-dev
	$(PY) -m pytest -q -n auto --dist loadfile

# A versioned wheel and sdist in dist/, checked by twine.
dist: $(VENV)/.installed-dev
	rm -rf dist
	$(PY) -m build --no-isolation -o dist .
	$(PY) -m twine check --strict dist/*

clean:
	rm -rf $(VENV) build dist .pytest_cache
