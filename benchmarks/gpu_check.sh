#!/usr/bin/env bash
# GPU check of the ConvNet side, for one NVIDIA GPU (PyTorch 2.4+, no network), in under
# 8 minutes: the step limits below add to 455 s, and a deadline (GPU_CHECK_BUDGET_S,
# 465 s) shortens any step that would run past it. Run from the repository root:
#
#   mkdir -p .gpu_data/fashion-mnist && cp /usr/share/datasets/fashion-mnist/*.gz .gpu_data/fashion-mnist/
#   OUT=/tmp/gpu bash benchmarks/gpu_check.sh
#
# .gpu_data/ is git-ignored: a tool that copies the working tree to the GPU machine
# leaves it behind unless told to carry it (e.g. carry: [".gpu_data"]).
#
# It probes the device (tools/gpu_probe.py: amp choice, LRN dtype, strict determinism),
# trains lenet5, lenet5-1998 and alexnet-small on Fashion-MNIST (60 000 train with 10%
# validation, official 10 000 test) through `bvc run convnet`, times alexnet-2012 training
# at 227x227 against torchvision's alexnet in a plain fp32 loop (target >= 1.5x), and the
# trainer against the canonical DataLoader loop for lenet5.
#
# What it leaves under $OUT is 5 files (the GPU machine returns at most 8):
#   gpu_check.json      every step's status, seconds and figures, rewritten whole (atomic
#                       rename) after each step: it parses whenever the script is stopped
#   gpu_check.log       commands and stderr
#   summary.md, learning_curves.png, throughput.png   (benchmarks/gpu_figures.py)
# Runs, results.sqlite, checkpoints and each step's raw output go to a scratch folder
# outside $OUT: $GPU_CHECK_SCRATCH, default a new mktemp -d folder.
#
# GPU_CHECK_DRY=1 runs every step on the CPU with tiny sizes (tests/test_gpu_check.py);
# GPU_CHECK_DATASET names another dataset (the test uses digits, which needs no files).
# GPU_CHECK_ENV_S (15) and GPU_CHECK_MIN_STEP_S (5) are for those tests too: on a busy
# CPU the first step's import of torch can need more than 15 s, and a step's time-out
# is shown in a few seconds when a step of 1 s is not skipped.
set -uo pipefail

OUT=${OUT:-benchmarks/out/gpu}
DATA=${BVC_GPU_DATA:-.gpu_data}
DATASET=${GPU_CHECK_DATASET:-fashion-mnist}
PY=${PYTHON:-python3}
BUDGET=${GPU_CHECK_BUDGET_S:-465}
FIGURES_S=15  # kept back for the figures at the end
ENV_S=${GPU_CHECK_ENV_S:-15}  # the first step's limit (a test on a busy CPU raises it)
MIN_STEP_S=${GPU_CHECK_MIN_STEP_S:-5}  # a step left less than this is skipped (tests: 1)
mkdir -p "$OUT"
SCRATCH=${GPU_CHECK_SCRATCH:-$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX")}
mkdir -p "$SCRATCH"
JSON="$OUT/gpu_check.json"
LOG="$OUT/gpu_check.log"
export PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}" BVC_DATA_DIR="$DATA" BVC_RUNS_DIR="$SCRATCH/runs"
export CUBLAS_WORKSPACE_CONFIG=${CUBLAS_WORKSPACE_CONFIG:-:4096:8}
: > "$LOG"
rm -f "$JSON"
echo "scratch: $SCRATCH" >> "$LOG"

if [[ "${GPU_CHECK_DRY:-0}" == 1 ]]; then
  DEV=cpu; SIZE=(--train-size 200); EP_L=1; EP_R=1; EP_A=1
  ALEX=(--batch-size 2 --steps 2 --warmup 1 --repeats 1)
  TR=(--images 256 --repeats 1 --synthetic); PROBE=(--batch-size 2 --models alexnet-small)
else
  DEV=cuda; SIZE=(); EP_L=30; EP_R=45; EP_A=30
  ALEX=(--batch-size 128 --steps 30 --warmup 10 --repeats 2 --compile)
  TR=(--images 10000 --repeats 3); PROBE=(--batch-size 8)
fi

# timeout runs each step in a process group of its own: stopped, this script stops it too
CHILD=
trap 'if [[ -n $CHILD ]]; then kill -TERM "$CHILD" 2> /dev/null; fi; exit 143' TERM INT HUP

step() {  # step NAME LIMIT_S COMMAND...: run under a time limit, fold its JSON into $JSON
  local name=$1 limit=$2; shift 2
  local left=$((BUDGET - FIGURES_S - SECONDS)) t0=$SECONDS status rc
  if ((limit > left)); then limit=$left; fi
  if ((limit < MIN_STEP_S)); then
    status="skipped: out of time"
  else
    echo "== $name (limit ${limit} s): $*" >> "$LOG"
    timeout --kill-after=3 "$limit" "$@" > "$SCRATCH/$name.out" 2>> "$LOG" &
    CHILD=$!
    wait "$CHILD"
    rc=$?
    CHILD=
    case $rc in
      0) status=ok ;;
      124 | 137) status="timed out after ${limit} s" ;;
      *) status="failed (exit $rc)" ;;
    esac
  fi
  "$PY" benchmarks/gpu_figures.py add "$JSON" "$name" "$status" "$((SECONDS - t0))" \
    "$SCRATCH/$name.out" 2>> "$LOG"
  echo "   $name: $status in $((SECONDS - t0)) s" | tee -a "$LOG"
}

step env "$ENV_S" "$PY" benchmarks/gpu_figures.py env
step probe 25 "$PY" tools/gpu_probe.py --device "$DEV" "${PROBE[@]}"
step models 15 "$PY" -m bovw_vs_convnet models --num-classes 1000 --channels 3 --json
RUN=("$PY" -m bovw_vs_convnet run convnet --dataset "$DATASET" --device "$DEV" --progress lines --json "${SIZE[@]}")
step run_lenet5 75 "${RUN[@]}" --model lenet5 --epochs "$EP_L"
step run_lenet5-1998 90 "${RUN[@]}" --model lenet5-1998 --epochs "$EP_R" \
  --set preset=adamw --set augment=flip --set weight_decay=0 --set tta_flip=true
step run_alexnet-small 90 "${RUN[@]}" --model alexnet-small --epochs "$EP_A" --set preset=adamw
step bench_alexnet 115 "$PY" benchmarks/bench_alexnet.py --device "$DEV" --json "${ALEX[@]}"
step bench_trainer_lenet5 30 "$PY" benchmarks/bench_trainer.py --device "$DEV" --json "${TR[@]}"
timeout "$FIGURES_S" "$PY" benchmarks/gpu_figures.py figures "$OUT" >> "$LOG" 2>&1 \
  || echo "figures FAILED" | tee -a "$LOG"
"$PY" benchmarks/gpu_figures.py add "$JSON" total done "$SECONDS" /dev/null 2>> "$LOG"
echo "total ${SECONDS} s" | tee -a "$LOG"
