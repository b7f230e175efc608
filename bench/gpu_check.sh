#!/usr/bin/env bash
# make gpu-check: everything one visit to a GPU machine can tell us, in steps with time limits.
# Uses the machine's own python3 and torch (no venv, no downloads). The plan of a visit (steps,
# limits, measured times, the calls of one visit) is in the README's section "On a GPU".
#
#   GPU_CHECK_STEPS  the steps to run, in this order (default: all of them):
#                    build tests sanitize ceilings bench tune ncu
#                    e.g. GPU_CHECK_STEPS="bench ncu" for a second call on a warm machine
#                    that kept the first call's build.
#   GPU_CHECK_BENCH  arguments of the bench step (default: the README's visit subset)
#   GPU_CHECK_TUNE   arguments of the tune step, which writes tile_table.json (default: resnet50,
#                    channels_last, bfloat16 and float32 with TF32)
#   PYTHON           the interpreter (default: python3)
#
# Writes bench/results/gpu-check-<date>/ (ignored by git, so a warm machine keeps it from call to
# call; commit a visit's results under a name of their own): summary.md (a row per step: result,
# seconds, limit), a log per step, the bench's tables and charts. Where $OUT is set (the device tool brings back what
# a command leaves there), summary.md and an archive of the folder are copied there after every
# step, so a call cut short still returns everything finished before the cut.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
PY=${PYTHON:-python3}
STEPS=${GPU_CHECK_STEPS:-build tests sanitize ceilings bench tune ncu}
BENCH_ARGS=${GPU_CHECK_BENCH:---suite seed --suite resnet50 --suite mobilenet_v2 --dtype float32 --dtype bfloat16 --tf32 --layout nchw --rounds 1 --min-run-time 0.02}
TUNE_ARGS=${GPU_CHECK_TUNE:---suite resnet50 --dtype bfloat16 --dtype float32 --tf32 --layout channels_last \
  --min-run-time 0.01}
DIR=bench/results/gpu-check-$(date +%F)
mkdir -p "$DIR"
SUMMARY="$DIR/summary.md"
status=0

publish() {  # the summary and an archive of the results folder to $OUT, where the tool reads them
  [ -n "${OUT:-}" ] || return 0
  cp "$SUMMARY" "$OUT/"
  tar -czf "$OUT/gpu-check.tar.gz" -C "$(dirname "$DIR")" "$(basename "$DIR")"
}

step() {  # step NAME LIMIT_SECONDS COMMAND...: runs under a time limit, logs to $DIR/NAME.log
  local name=$1 limit=$2; shift 2
  local start=$SECONDS r
  echo "== $name (limit ${limit} s): $*" | tee -a "$DIR/progress.log"
  timeout --signal=INT --kill-after=15 "$limit" "$@" > "$DIR/$name.log" 2>&1
  case $? in
    0) r=pass ;;
    124|137) r="TIMEOUT"; status=1 ;;
    *) r="FAIL (exit $?)"; status=1 ;;
  esac
  echo "| $name | $r | $((SECONDS - start)) s | $limit s |" >> "$SUMMARY"
  tail -n 8 "$DIR/$name.log"
  publish
  [ "$r" = pass ]
}

wanted() { [[ " $STEPS " == *" $1 "* ]]; }

compute_sanitizer() {  # on PATH, beside nvcc, or under the CUDA home
  local nvcc candidates
  nvcc=$(command -v nvcc || true)
  candidates=("$(command -v compute-sanitizer || true)")
  [ -n "$nvcc" ] && candidates+=("$(dirname "$nvcc")/compute-sanitizer" "$(dirname "$nvcc")/../compute-sanitizer/compute-sanitizer")
  for home in "${CUDA_HOME:-}" "${CUDA_PATH:-}" /usr/local/cuda; do
    [ -n "$home" ] && candidates+=("$home/bin/compute-sanitizer" "$home/compute-sanitizer/compute-sanitizer")
  done
  for c in "${candidates[@]}"; do [ -n "$c" ] && [ -x "$c" ] && { echo "$c"; return; }; done
}

{
  echo "# gpu-check $(date -u +%FT%TZ): $STEPS"
  echo
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv,noheader 2>&1
  "$PY" -c "import torch; print('torch', torch.__version__, 'CUDA', torch.version.cuda, 'cuDNN', torch.backends.cudnn.version())"
  echo "nvcc: $(command -v nvcc) ($(nvcc --version 2>/dev/null | tail -n 1)); ninja: $(command -v ninja)"
  echo
  echo "| step | result | time | limit |"
  echo "|---|---|---|---|"
} >> "$SUMMARY"

export CONVKERNELS_CUDA=1 CONVKERNELS_SIMT=0 MAX_JOBS=${MAX_JOBS:-$(nproc)}
if wanted build; then
  # make build's ptxas reports come along: tests/test_ptxas_report.py reads build/ptxas.log.
  if ! step build 300 make build PY="$PY" STAMP= VENV=; then
    echo "build failed: nothing else can run" | tee -a "$SUMMARY"
    publish
    exit 1
  fi
  cp build/ptxas.log "$DIR/ptxas.log" 2>/dev/null
fi
if ! error=$("$PY" -c "import convkernels" 2>&1); then
  # shellcheck disable=SC2016  # the backticks are markdown
  printf 'convkernels does not import (no build?): only the build step can run\n\n```\n%s\n```\n' \
    "$(tail -n 5 <<< "$error")" | tee -a "$SUMMARY"
  publish
  exit 1
fi

# A failure cap rather than -x: one visit should show every kind of failure, not the first.
wanted tests && step tests 180 "$PY" -m pytest -q -p no:cacheprovider --maxfail=30 \
  tests/test_cuda.py tests/test_ptxas_report.py tests/test_sass.py

if wanted sanitize; then
  SANITIZER=$(compute_sanitizer)
  if [ -z "$SANITIZER" ]; then
    echo "| sanitize | not run: no compute-sanitizer on PATH, beside nvcc or under the CUDA home | | |" >> "$SUMMARY"
  else
    # Torch's caching allocator hides out-of-bounds accesses inside its blocks from memcheck.
    PYTORCH_NO_CUDA_MEMORY_CACHING=1 step memcheck 90 "$SANITIZER" --tool memcheck --error-exitcode 1 \
      "$PY" -m bench.sanitizer_cases
    step racecheck 90 "$SANITIZER" --tool racecheck --error-exitcode 1 "$PY" -m bench.sanitizer_cases
    step synccheck 60 "$SANITIZER" --tool synccheck --error-exitcode 1 "$PY" -m bench.sanitizer_cases
  fi
fi

wanted ceilings && step ceilings 120 "$PY" -m bench.ceilings --output "$DIR/ceilings.md"
# shellcheck disable=SC2086  # BENCH_ARGS is a list of arguments
wanted bench && step bench 300 "$PY" -m bench $BENCH_ARGS --output "$DIR/bench"
# shellcheck disable=SC2086  # TUNE_ARGS is a list of arguments
wanted tune && step tune 180 "$PY" -m bench --tune "$DIR/tile_table.json" $TUNE_ARGS

if wanted ncu; then
  if command -v ncu > /dev/null; then
    step ncu 120 ncu --clock-control none --kernel-name-base demangled --kernel-name regex:convkernels \
      --metrics "$($PY -m bench.ncu_cases --metrics)" --csv --log-file "$DIR/ncu.csv" "$PY" -m bench.ncu_cases
    "$PY" -m bench.ncu_report "$DIR/ncu.csv" > "$DIR/ncu.md"
  else
    echo "| ncu | not run: ncu not on PATH | | |" >> "$SUMMARY"
  fi
fi

cat "$SUMMARY"
publish
exit $status
