# Two commands set everything up (README): `make test` and `make bench`.
# Both create .venv (pinned torch and the requirements), build the extension in place, then run.
# A second run reuses the virtual environment and ninja's object files.

SHELL  := /bin/bash
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: test bench build gpu-check clean

test: build
	$(PY) -m pytest $(PYTEST_ARGS)

bench: build
	$(PY) -m bench $(BENCH_ARGS)

# ptxas's register and spill report of the last build that compiled CUDA is kept in
# build/ptxas.log; tests/test_ptxas_report.py reads it.
build: $(STAMP)
	mkdir -p build
	set -o pipefail; $(PY) setup.py --quiet build_ext --inplace 2>&1 | tee build/last-build.log
	if grep -q "ptxas info" build/last-build.log; then grep -E "ptxas info|bytes stack frame" build/last-build.log > build/ptxas.log; fi

$(STAMP): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

# On a machine with a GPU: build, CUDA tests, compute-sanitizer, benchmark (bench/gpu_check.sh).
gpu-check:
	bash bench/gpu_check.sh

clean:
	rm -rf build convkernels/*.so *.egg-info
