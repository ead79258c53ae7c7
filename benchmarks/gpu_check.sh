#!/usr/bin/env bash
# GPU check of the ConvNet side, prepared for one H100 (PyTorch 2.11, torchvision 0.26,
# no network) and budgeted to finish in under 8 minutes. Run from the repository root:
#
#   mkdir -p .gpu_data/fashion-mnist && cp /usr/share/datasets/fashion-mnist/*.gz .gpu_data/fashion-mnist/
#   PYTHONPATH=. OUT=/tmp/gpu bash benchmarks/gpu_check.sh      # .gpu_data/ travels with the call
#
# It trains lenet5, lenet5-1998 and alexnet-small on Fashion-MNIST (60 000 train with
# 10% validation, official 10 000 test) through `bvc run convnet`, times alexnet-2012
# training at 227x227 against torchvision's alexnet in a plain fp32 loop (target >= 1.5x),
# times the trainer against the canonical DataLoader loop for lenet5, and writes JSON
# records, learning_curves.png, throughput.png and summary.md under $OUT.
# GPU_CHECK_DRY=1 runs every step on the CPU with tiny sizes (a check of the script).
set -uo pipefail

OUT=${OUT:-benchmarks/out/gpu}
DATA=${BVC_GPU_DATA:-.gpu_data}
PY=${PYTHON:-python}
mkdir -p "$OUT"
export PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}" BVC_DATA_DIR="$DATA" BVC_RUNS_DIR="$OUT/runs"
LOG="$OUT/gpu_check.log"
: > "$LOG"

if [[ "${GPU_CHECK_DRY:-0}" == 1 ]]; then
  DEV=cpu; SIZE=(--train-size 300); EP_L=1; EP_R=1; EP_A=1
  ALEX=(--batch-size 2 --steps 2 --warmup 1 --repeats 1)
  TR=(--images 256 --repeats 1)
else
  DEV=cuda; SIZE=(); EP_L=30; EP_R=45; EP_A=30
  ALEX=(--batch-size 128 --steps 30 --warmup 10 --repeats 2 --compile)
  TR=(--images 10000 --repeats 3)
fi

step() {  # step NAME TIMEOUT_S COMMAND...: run, log, keep going on failure
  local name=$1 limit=$2; shift 2
  local t0=$SECONDS
  echo "== $name: $*" | tee -a "$LOG"
  if timeout "$limit" "$@" > "$OUT/$name.json" 2>> "$LOG"; then
    echo "   ok in $((SECONDS - t0)) s" | tee -a "$LOG"
  else
    echo "   FAILED (exit $?) after $((SECONDS - t0)) s" | tee -a "$LOG"
  fi
  tail -n 3 "$OUT/$name.json" | cut -c1-300 | tee -a "$LOG"
}

{ nvidia-smi || true; "$PY" -c "import torch, torchvision; print(torch.__version__, torchvision.__version__, torch.cuda.is_available())"; git rev-parse HEAD 2>/dev/null || true; } > "$OUT/env.txt" 2>&1

step models 25 "$PY" -m bovw_vs_convnet models --num-classes 1000 --channels 3 --json
RUN=("$PY" -m bovw_vs_convnet run convnet --dataset fashion-mnist --device "$DEV" --no-progress --json "${SIZE[@]}")
step run_lenet5 80 "${RUN[@]}" --model lenet5 --epochs "$EP_L"
step run_lenet5-1998 100 "${RUN[@]}" --model lenet5-1998 --epochs "$EP_R" \
  --set preset=adamw --set augment=flip --set weight_decay=0 --set tta_flip=true
step run_alexnet-small 100 "${RUN[@]}" --model alexnet-small --epochs "$EP_A" --set preset=adamw
step bench_alexnet 110 "$PY" benchmarks/bench_alexnet.py --device "$DEV" --json "${ALEX[@]}"
step bench_trainer_lenet5 40 "$PY" benchmarks/bench_trainer.py --device "$DEV" --json "${TR[@]}"
"$PY" benchmarks/gpu_figures.py "$OUT" 2>> "$LOG" | tee -a "$LOG"
echo "total ${SECONDS} s" | tee -a "$LOG"
