#!/usr/bin/env bash
# The glyphs figures that need a GPU (issue 13), for one NVIDIA GPU, no network, in under
# 9 minutes: alexnet-2012 (227x227, Kaiming init, its auto recipe: AdamW 4e-4 at batch 64,
# warm-up + cosine, clipping) on the whole glyphs set (21 514 training images, 62 classes,
# test fonts unseen), then torchvision's alexnet under the same recipe if time is left.
# Run after benchmarks/gpu_check.sh, from the repository root:
#
#   bvc data fetch glyphs --data-dir DIR                      # here, where the fonts are
#   mkdir -p .gpu_data && cp -r DIR/glyphs .gpu_data/         # 31 MB, git-ignored
#   OUT=/tmp/gpu bash benchmarks/gpu_glyphs.sh                # there (carry: [".gpu_data"])
#
# Each run is one `bvc run convnet` under a time limit (timeout sends SIGINT first: the run
# stops at a batch boundary with its checkpoint kept, not scored). Its JSON record and log
# go to $OUT (4 files); runs and checkpoints to a scratch folder outside it. The epoch
# count is fixed (GPU_GLYPHS_EPOCHS, default 20; the auto recipe would plan 37) so that
# a run at 1 000 images/s still ends inside its limit.
#
# GPU_GLYPHS_DRY=1 runs both on the CPU on 62 training images for one epoch
# (tests/test_gpu_check.py), the dataset GPU_GLYPHS_DATASET (default glyphs).
set -uo pipefail

OUT=${OUT:-benchmarks/out/gpu-glyphs}
DATA=${BVC_GPU_DATA:-.gpu_data}
PY=${PYTHON:-python3}
DATASET=${GPU_GLYPHS_DATASET:-glyphs}
EPOCHS=${GPU_GLYPHS_EPOCHS:-20}
LIMIT=${GPU_GLYPHS_LIMIT_S:-300}  # each run
SCRATCH=${GPU_GLYPHS_SCRATCH:-$(mktemp -d "${TMPDIR:-/tmp}/gpu_glyphs.XXXXXX")}
DEV=cuda
SIZE=()
if [[ "${GPU_GLYPHS_DRY:-0}" == 1 ]]; then
  DEV=cpu; EPOCHS=1; SIZE=(--train-size 62)
fi
mkdir -p "$OUT" "$SCRATCH"
export PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}"

run() {  # run NAME MODEL [--set ...]: one scored run, its record in $OUT/NAME.json
  local name=$1 model=$2; shift 2
  timeout -s INT --kill-after=20 "$LIMIT" "$PY" -m bovw_vs_convnet run convnet \
    --dataset "$DATASET" --data-dir "$DATA" --device "$DEV" --model "$model" \
    --set epochs="$EPOCHS" "${SIZE[@]}" "$@" --runs-dir "$SCRATCH/runs" \
    --progress lines --json > "$OUT/$name.json" 2> "$OUT/$name.log"
  echo "$name: exit $? after $SECONDS s" | tee -a "$OUT/$name.log"
}

run alexnet-2012 alexnet-2012
run alexnet-torchvision alexnet --set preset=auto-alexnet-2012
