# Two commands set everything up (README): `make test` and `make bench`.
# Both create .venv (pinned torch and the requirements), build the extension in place, then run.
# A second run reuses the virtual environment and ninja's object files.

SHELL  := /bin/bash
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: test bench build gpu-check peer-test sanitize clean test-oldest-torch

test: build
	$(PY) -m pytest $(PYTEST_ARGS)

# The oldest torch we support (pyproject.toml, README), as a user's environment has it: a wheel
# built by `pip install --no-build-isolation .` into a venv of that torch (Python 3.12, as on the
# H200 machines; its build folders and in-place libraries are apart from those of make build, which
# are Python 3.11's), then a fast subset of the suite run against the installed wheel, from tests/
# so that the source folder cannot stand in for it. CI runs it after make test.
OLDEST_TORCH  := 2.11.0
OLDEST_TORCHVISION := 0.26.0
OLDEST_PYTHON ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/3.12*/bin/python3.12) python3.12)
OLDEST_VENV   := .venv-torch$(OLDEST_TORCH)
OLDEST_TESTS  := test_readme.py test_errors.py test_autograd_and_compile.py test_nn.py \
                 test_import.py \
                 test_simt.py::test_tiled_shapes_match_torch test_simt.py::test_opcheck \
                 test_simt.py::test_tensor_core_tiles_match_float64_reference \
                 test_simt.py::test_gradcheck_and_gradgradcheck
test-oldest-torch:
	test -x $(OLDEST_VENV)/bin/python || $(OLDEST_PYTHON) -m venv $(OLDEST_VENV)
	$(OLDEST_VENV)/bin/python -m pip install --quiet torch==$(OLDEST_TORCH) \
	  torchvision==$(OLDEST_TORCHVISION) ninja pytest numpy setuptools wheel
	$(OLDEST_VENV)/bin/python -m pip install --quiet --no-build-isolation .
	cd tests && ../$(OLDEST_VENV)/bin/python -m pytest -q -p no:cacheprovider $(OLDEST_TESTS)

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

# AddressSanitizer and UBSan over a bounded subset of the suite: the extension built apart in
# build-sanitize/ (CONVKERNELS_SANITIZE=1, setup.py: host code only, the CPU kernels and the emulated
# CUDA ones), run from there so that the in-place build cannot stand in for it, with the sanitizer
# runtime preloaded into python (which is not instrumented). Any report fails the run. Leaks are
# not checked: python and torch keep memory to the end by design. allocator_may_return_null: an
# impossible malloc (at::empty's) fails as without ASan, which the hostile-input tests expect;
# ASan's operator new aborts instead of throwing std::bad_alloc, so the test that needs that skips.
SANITIZE_DIR   := build-sanitize
SANITIZE_TESTS := test_errors.py test_hostile_inputs.py test_fuzz.py test_conv2d.py test_forward_ad.py \
                  test_vmap.py test_simt.py::test_matches_torch_in_float64 test_simt.py::test_channels_last \
                  test_simt.py::test_tiled_shapes_match_torch
sanitize: $(STAMP)
	CONVKERNELS_SANITIZE=1 $(PY) setup.py --quiet build --build-base $(SANITIZE_DIR) \
	  --build-lib $(SANITIZE_DIR)/lib
	cd $(SANITIZE_DIR) && \
	  LD_PRELOAD=$$($(CXX) -print-file-name=libasan.so):$$($(CXX) -print-file-name=libubsan.so) \
	  ASAN_OPTIONS=detect_leaks=0:allocator_may_return_null=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 PYTHONPATH=lib \
	  ../$(PY) -m pytest -q -p no:cacheprovider --rootdir=../tests $(PYTEST_ARGS) \
	  $(addprefix ../tests/,$(SANITIZE_TESTS))

# PyTorch's own convolution tests with F.conv2d and F.conv_transpose2d routed to ours
# (tests/peer/route_to_convkernels.py). Not in CI: the wheel has no test sources. PYTORCH_TESTS is
# the test/ folder of PyTorch's sources at the installed torch's release tag; what of it is there
# runs: nn/test_convolution.py whole, and the Conv2d / ConvTranspose2d ModuleInfo and OpInfo tests
# of test_modules.py, test_ops.py, test_ops_gradients.py and test_ops_fwd_gradients.py.
PYTORCH_TESTS ?= build/pytorch-tests/test
PEER_OPS      := nn_functional_conv2d or nn_functional_conv_transpose2d or nn_Conv2d or nn_ConvTranspose2d
PEER_PYTEST   := PYTHONPATH=tests/peer:. $(PY) -m pytest -p route_to_convkernels -p no:cacheprovider \
                 --rootdir=$(PYTORCH_TESTS) -c /dev/null -q $(PYTEST_ARGS)

peer-test: build
	$(PY) -m pip install --quiet -r requirements-peer.txt
	@test -d $(PYTORCH_TESTS) || { echo "PYTORCH_TESTS=$(PYTORCH_TESTS): no such folder"; exit 1; }
	status=0; \
	convolution=$$(ls $(PYTORCH_TESTS)/nn/test_convolution.py 2>/dev/null); \
	if [ -n "$$convolution" ]; then $(PEER_PYTEST) $$convolution || status=1; fi; \
	opinfo=$$(ls $(addprefix $(PYTORCH_TESTS)/,test_modules.py test_ops.py test_ops_gradients.py \
	                                            test_ops_fwd_gradients.py) 2>/dev/null); \
	if [ -n "$$opinfo" ]; then $(PEER_PYTEST) -k "$(PEER_OPS)" $$opinfo || status=1; fi; \
	exit $$status

# On a machine with a GPU: build, CUDA tests, compute-sanitizer, benchmark (bench/gpu_check.sh).
gpu-check:
	bash bench/gpu_check.sh

clean:
	rm -rf build build-sanitize convkernels/*.so *.egg-info
