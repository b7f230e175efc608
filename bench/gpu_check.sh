#!/usr/bin/env bash
# make gpu-check: everything a GPU can tell us, in one run of a few minutes. Uses the machine's own
# python3 and torch (no venv, no downloads): builds for the visible GPU, runs the CUDA tests,
# compute-sanitizer (memcheck, racecheck) over a small call of every kernel, and the benchmark.
# Writes a summary and logs to bench/results/gpu-check-<date>/; where $OUT is set (the device tool,
# which brings back at most 8 files), also the summary and one archive of that folder to $OUT.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
DIR=bench/results/gpu-check-$(date +%F)
mkdir -p "$DIR"
SUMMARY="$DIR/summary.md"
status=0

step() {  # step NAME COMMAND...: runs, logs to $DIR/NAME.log, records pass/fail and seconds
  local name=$1; shift
  local start=$SECONDS
  echo "== $name: $*" | tee -a "$DIR/progress.log"
  if "$@" > "$DIR/$name.log" 2>&1; then r=pass; else r="FAIL (exit $?)"; status=1; fi
  echo "| $name | $r | $((SECONDS - start)) s |" >> "$SUMMARY"
  tail -n 5 "$DIR/$name.log"
}

{
  echo "# gpu-check $(date -u +%FT%TZ)"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null
  $PY -c "import torch; print('torch', torch.__version__, 'CUDA', torch.version.cuda, 'cuDNN', torch.backends.cudnn.version())"
  echo
  echo "| step | result | time |"
  echo "|---|---|---|"
} > "$SUMMARY"

export CONVKERNELS_CUDA=1 CONVKERNELS_SIMT=0 MAX_JOBS=${MAX_JOBS:-16}
step build $PY setup.py build_ext --inplace
step cuda-tests $PY -m pytest -q tests/test_cuda.py tests/test_conv2d.py -x
if command -v compute-sanitizer > /dev/null; then
  step memcheck compute-sanitizer --tool memcheck --error-exitcode 1 $PY bench/sanitizer_cases.py
  step racecheck compute-sanitizer --tool racecheck --error-exitcode 1 $PY bench/sanitizer_cases.py
else
  echo "| sanitizer | not run: compute-sanitizer not on PATH |  |" >> "$SUMMARY"
fi
step bench-quick $PY -m bench --quick --output "$DIR/bench-quick"
step bench-seed $PY -m bench --suite seed --dtype float32 --dtype bfloat16 --output "$DIR/bench-seed"
cat "$SUMMARY"
if [ -n "${OUT:-}" ]; then
  cp "$SUMMARY" "$OUT/"
  tar -czf "$OUT/gpu-check.tar.gz" -C "$(dirname "$DIR")" "$(basename "$DIR")"
fi
exit $status
