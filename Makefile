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

# ptxas's register and spill report is kept per CUDA source, from the last build that compiled it
# (build/ptxas/<source>.log: an incremental build recompiles only some), and all of them together
# in build/ptxas.log, which tests/test_ptxas_report.py reads. Ninja prints each command's output
# after its "[i/n] command" line.
build: $(STAMP)
	mkdir -p build/ptxas
	set -o pipefail; $(PY) setup.py --quiet build_ext --inplace 2>&1 | tee build/last-build.log
	awk '/^\[[0-9]+\/[0-9]+\]/ { out = "" } \
	     /^\[[0-9]+\/[0-9]+\] .*nvcc/ && match($$0, /-c [^ ]+\.cu /) { \
	       out = substr($$0, RSTART + 3, RLENGTH - 4); gsub("/", "_", out); \
	       out = "build/ptxas/" out ".log"; printf "" > out } \
	     out != "" && /ptxas info|bytes stack frame/ { print > out }' build/last-build.log
	if compgen -G "build/ptxas/*.log" > /dev/null; then cat build/ptxas/*.log > build/ptxas.log; fi

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
