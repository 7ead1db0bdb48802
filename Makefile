# Every target creates what it needs; nothing has to be installed or
# activated by hand.  PYTHON picks the interpreter that builds the venvs.
PYTHON ?= python3
VENV ?= .venv
BENCH_VENV ?= .venv-bench
PY := $(VENV)/bin/python
BPY := $(BENCH_VENV)/bin/python
# Where pyenv exists, put every interpreter it has on PATH so that tox finds
# python3.10 ... python3.14 (tox's interpreter discovery does not see
# PYENV_VERSION through the shims); elsewhere tox uses what PATH has.
WITH_PYENV := if command -v pyenv >/dev/null 2>&1; then \
	for v in $$(pyenv versions --bare --skip-aliases 2>/dev/null); do \
	PATH="$$(pyenv root)/versions/$$v/bin:$$PATH"; done; export PATH; fi;

.PHONY: demo test tox tox-ft ft-python lint bench bench-ft soak docs clean

$(VENV)/.installed: setup.cfg setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

demo: $(VENV)/.installed
	$(PY) -m neoleasepool demo $(DEMO_ARGS)

# tools/need_chromium.sh installs headless Chromium for the status page's
# browser test where it can (apt, as root or with sudo); it never fails.
test: $(VENV)/.installed
	@sh tools/need_chromium.sh
	$(PY) -m pytest -m "not soak" $(PYTEST_ARGS)

soak: $(VENV)/.installed
	$(PY) -m pytest -m soak --timeout=0 -o faulthandler_timeout=0 -s $(PYTEST_ARGS)

$(VENV)/.tox: $(VENV)/.installed
	$(PY) -m pip install --quiet 'tox>=4'
	touch $@

tox: $(VENV)/.tox
	$(WITH_PYENV) $(VENV)/bin/tox run-parallel --parallel 2 --parallel-no-spinner

# A free-threaded CPython 3.13 ("3.13t"): found on PATH or in the cache
# (~/.cache/neoleasepool/python3.13t), else built there from Debian's
# python3.13 source package (a few minutes; needs apt, and root or sudo to
# install missing build dependencies).  Its path is the last line printed.
ft-python:
	@tools/ft_python.sh

# The suite on 3.13t with PYTHON_GIL=0 (tox env py313t, see tox.ini).
tox-ft: $(VENV)/.tox
	@ft=$$(tools/ft_python.sh) && \
	NEOLEASEPOOL_FT_PYTHON="$$ft" $(VENV)/bin/tox run -e py313t \
	--skip-missing-interpreters=false $(if $(PYTEST_ARGS),-- $(PYTEST_ARGS))

lint: $(VENV)/.tox
	$(VENV)/bin/tox run -e lint

# Sphinx in its own tox env (not in tox's default envlist: see tox.ini).
docs: $(VENV)/.tox
	$(VENV)/bin/tox run -e docs

$(BENCH_VENV)/.installed: setup.cfg setup.py
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BPY) -m pip install --quiet --upgrade pip
	$(BPY) -m pip install --quiet -e '.[dask]' 'leasepool==0.1.3' 'neotasker==0.0.41'
	touch $@

bench: $(BENCH_VENV)/.installed
	$(BPY) -m benchmarks $(BENCH_ARGS)

# The free-threading rows (benchmarks/bench_freethreading.py) on 3.13t with
# the GIL off; `make bench` skips them on a regular interpreter.
bench-ft:
	@ft=$$(tools/ft_python.sh) && PYTHONPATH=$(CURDIR) PYTHON_GIL=0 \
	"$$ft" -m benchmarks --only freethreading $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(BENCH_VENV) .tox build dist doc/_build *.egg-info .pytest_cache .mypy_cache .ruff_cache
