# Two commands set everything up (README): `make test` and `make bench`.
# Both create .venv (pinned torch and the requirements), build the extension in place, then run.
# A second run reuses the virtual environment and ninja's object files.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: test bench build gpu-check clean

test: build
	$(PY) -m pytest $(PYTEST_ARGS)

bench: build
	$(PY) -m bench $(BENCH_ARGS)

build: $(STAMP)
	$(PY) setup.py --quiet build_ext --inplace

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
