#!/usr/bin/env bash
# One prepared check for a CUDA machine (an H100 with 16 cores; no internet): is the GPU fed?
#
#   (a) generate 1440x1080 JPEGs (the Dacon photo size) in the Dacon layout, build their 256 px image cache
#   (b) `rockopt train` on resnet50, davit_base and mambaout_base: sampler_mode hnm, amp bf16,
#       channels_last, pretrained false, reading the cache; 2 epochs, the second timed (GPU_CHECK_EPOCHS=1
#       for one: its rate then counts the loop's start, loader workers and cudnn autotuning; on the
#       CPU smoke run test_efficientnet trained at 74 img/s in epoch 1 and 205 in epoch 2)
#   (c) benchmarks/throughput.py: compute-bound rate (a), loaders (b), rockopt's loop with the
#       uniform sampler (c), per backbone
#   (d) one `compile: true` run (resnet50, hnm, 2 epochs: the first pays for the compilation)
#
# (0) first, tests/test_cuda.py: the CUDA paths of the training stream and the loss hand-over;
# and prints one table: img/s of the loop vs the compute-bound model, per backbone and sampler mode.
# Budget: under 8 minutes on an H100 (each step prints its seconds, the end the total).
#
# The GPU machine's python3 has torch, timm, numpy, pandas, scikit-learn, opencv ... but not
# optuna, mlflow or albumentations: run ../shared/tools/gpu-wheels.sh once on the development
# machine (it fills .whl/), carry .whl, and this script installs them into .site/ (the line
# that script prints) before anything else. ../shared does not travel: nothing here needs it.
#
#   bash benchmarks/gpu_check.sh                      # on the GPU machine, from the repository root
#   device run: carry [".whl"], command "bash benchmarks/gpu_check.sh"   (logs and table.md in $OUT)
#   GPU_CHECK_SMOKE=1 bash benchmarks/gpu_check.sh    # a tiny CPU variant: every command, small models
#
# Settings (environment): OUT (logs; default ./gpu-check-out), GPU_CHECK_WORK (photos, cache,
# runs; default /tmp/gpu-check-work, never under OUT: thousands of files), GPU_CHECK_IMAGES,
# GPU_CHECK_BACKBONES (space-separated), GPU_CHECK_COMPILE_BACKBONE, GPU_CHECK_EPOCHS (of (b)),
# PYTHON (default: .venv/bin/python where it exists, else python3).
set -euo pipefail

T0=$SECONDS
OUT=${OUT:-./gpu-check-out}
WORK=${GPU_CHECK_WORK:-/tmp/gpu-check-work}
mkdir -p "$OUT" "$WORK"
OUT=$(cd "$OUT" && pwd)
WORK=$(cd "$WORK" && pwd)
if [[ -z ${PYTHON:-} ]]; then
  if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi

if [[ ${GPU_CHECK_SMOKE:-0} == 1 ]]; then
  # CPU: the same commands on a few photos and small models, to see that each one runs
  IMAGES=${GPU_CHECK_IMAGES:-84}  # throughput.py's loop uses 10 folds: >= 10 photos per class
  BACKBONES=${GPU_CHECK_BACKBONES:-"test_efficientnet tf_efficientnet_lite0"}
  COMPILE_BACKBONE=${GPU_CHECK_COMPILE_BACKBONE:-test_efficientnet}
  SIZE=56 CACHE=64 BATCH=8 STEPS=3
else
  IMAGES=${GPU_CHECK_IMAGES:-4800}
  BACKBONES=${GPU_CHECK_BACKBONES:-"resnet50 davit_base mambaout_base"}
  COMPILE_BACKBONE=${GPU_CHECK_COMPILE_BACKBONE:-resnet50}
  SIZE=224 CACHE=256 BATCH=128 STEPS=40
fi
EPOCHS=${GPU_CHECK_EPOCHS:-2}

step() { echo "[$((SECONDS - T0)) s] $*"; }

echo "== rockopt GPU check $(date -u +%Y-%m-%dT%H:%M:%SZ)"
if command -v nvidia-smi >/dev/null 2>&1; then
  echo "card: $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | head -1)"
else
  echo "card: none (no nvidia-smi)"
fi
echo "settings: $IMAGES photos 1440x1080, cache $CACHE px, $SIZE px, batch $BATCH, backbones: $BACKBONES; logs $OUT, work $WORK"

# wheels the GPU image lacks (../shared/tools/gpu-wheels.sh filled .whl/ on the development machine)
if [[ -d .whl ]] && ls .whl/*.whl >/dev/null 2>&1; then
  if [[ ! -f .site/.installed ]] || [[ .whl -nt .site/.installed ]]; then
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target .site .whl/*.whl
    touch .site/.installed
  fi
  export PYTHONPATH="$PWD/.site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
else
  export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONUNBUFFERED=1
export ROCKOPT_CACHE_DIR="$WORK/cache"
export MLFLOW_TRACKING_URI="sqlite:///$WORK/mlflow.db"
if ! "$PYTHON" -c "import torch, timm, optuna, mlflow, albumentations, rockopt.cli" 2>"$OUT/imports.err"; then
  cat "$OUT/imports.err"
  echo "error: missing Python packages: run ../shared/tools/gpu-wheels.sh on the development machine and carry .whl" >&2
  exit 2
fi
rm -f "$OUT/imports.err"
"$PYTHON" -c "import torch; print(f'torch {torch.__version__}, cuda available: {torch.cuda.is_available()}')"

step "(0) CUDA tests: page-locked image slots, loss hand-over"
if ! "$PYTHON" -m pytest -q -p no:cacheprovider tests/test_cuda.py > "$OUT/cuda-tests.log" 2>&1; then
  tail -30 "$OUT/cuda-tests.log"
  echo "error: tests/test_cuda.py failed; log: $OUT/cuda-tests.log" >&2
  exit 1
fi
tail -1 "$OUT/cuda-tests.log" | sed 's/^/  /'

DATA="$WORK/photos"
RESULTS="$OUT/results.tsv"  # backbone, sampler, run, epoch timed, its loop img/s, epoch 1's
printf 'backbone\tsampler\trun\tepoch\timg_s\tfirst_img_s\n' > "$RESULTS"

# epoch lines of `rockopt train` -> "E of EPOCHS<TAB>img/s" of each
epochs_of() {
  sed -nE 's#.*epoch +([0-9]+)/([0-9]+) .* ([0-9]+) img/s.*#\1 of \2\t\3#p' "$1"
}

train() {  # train BACKBONE LOG EPOCHS RUN_NAME [--set ...]
  local backbone=$1 log=$2 epochs=$3 name=$4
  shift 4
  echo "== rockopt train $backbone ($name)" >> "$log"
  "$PYTHON" -m rockopt train --data "$DATA" -q --set \
    backbone="$backbone" pretrained=false sampler_mode=hnm amp=bf16 channels_last=true \
    epochs="$epochs" batch_size=$BATCH image_size=$SIZE cache=auto save_checkpoint=false \
    out_dir="$WORK/runs" experiment=gpu-check "$@" >> "$log" 2>&1 \
    || { tail -30 "$log"; echo "error: rockopt train $backbone ($name) failed; log: $log" >&2; exit 1; }
  local tmp="$WORK/.last.log"
  sed -n "/^== rockopt train $backbone ($name)\$/,\$p" "$log" > "$tmp"
  local got first
  got=$(epochs_of "$tmp" | tail -1)
  first=$(epochs_of "$tmp" | head -1)
  [[ -n $got ]] || { echo "error: no epoch line in $log" >&2; exit 1; }
  printf '%s\thnm\t%s\t%s\t%s\n' "$backbone" "$name" "$got" "${first##*$'\t'}" >> "$RESULTS"
  step "  $backbone ($name): epoch ${got%%$'\t'*}, ${got##*$'\t'} img/s (epoch 1: ${first##*$'\t'} img/s)"
}

step "(a) photos and the $CACHE px image cache"
"$PYTHON" - "$DATA" "$IMAGES" > "$OUT/prepare.log" 2>&1 <<'EOF'
import sys, time
sys.path.insert(0, "benchmarks")
from _common import make_photo_data
t = time.perf_counter()
make_photo_data(sys.argv[1], int(sys.argv[2]))
print(f"{sys.argv[2]} photos 1440x1080 in {time.perf_counter() - t:.1f} s (made or found)")
EOF
"$PYTHON" -m rockopt data cache --data "$DATA" --size "$CACHE" -q >> "$OUT/prepare.log" 2>&1 \
  || { cat "$OUT/prepare.log"; exit 1; }
sed 's/^/  /' "$OUT/prepare.log"

step "(b) rockopt train, $EPOCHS epoch(s), hnm, bf16, channels_last"
: > "$OUT/train.log"
for b in $BACKBONES; do
  train "$b" "$OUT/train.log" "$EPOCHS" train
done

step "(c) benchmarks/throughput.py"
"$PYTHON" benchmarks/throughput.py --backbones "${BACKBONES// /,}" --image-size $SIZE --cache-size $CACHE \
  --batch-size $BATCH --images "$IMAGES" --steps $STEPS --work "$WORK" 2>&1 | tee "$OUT/throughput.log" | sed 's/^/  /'

step "(d) compile: true, $COMPILE_BACKBONE, 2 epochs"
: > "$OUT/compile.log"
train "$COMPILE_BACKBONE" "$OUT/compile.log" 2 compile compile=true

step "table"
"$PYTHON" - "$RESULTS" "$OUT/throughput.log" <<'EOF' | tee "$OUT/table.md"
import csv, sys

results, throughput = sys.argv[1:3]
compute, uniform = {}, {}
for line in open(throughput):
    cells = [c.strip() for c in line.strip().strip("|").split("|")]
    if len(cells) == 6 and cells[1].replace(",", "").isdigit():
        b, comp, _, _, real, _ = cells
        compute[b], uniform[b] = float(comp), float(real)
rows = []
for b in compute:  # throughput.py's order
    rows.append((b, "uniform", "throughput.py (c): rockopt loop, cache, epoch 2 of 2", uniform[b], None))
for r in csv.DictReader(open(results), delimiter="\t"):
    what = "rockopt train" + (", compile: true" if r["run"] == "compile" else "") + f", epoch {r['epoch']}"
    rows.append((r["backbone"], r["sampler"], what, float(r["img_s"]), float(r["first_img_s"])))
rows.sort(key=lambda r: (list(compute).index(r[0]) if r[0] in compute else len(compute), r[1] != "uniform"))
print("| backbone | sampler | loop | loop img/s | compute-bound img/s | loop / compute-bound | epoch 1 img/s |")
print("| --- | --- | --- | --- | --- | --- | --- |")
for b, mode, what, rate, first in rows:
    comp = compute.get(b)
    ratio = f"{rate / comp:.2f}" if comp else "-"
    first = f"{first:,.0f}" if first is not None else "-"
    print(f"| {b} | {mode} | {what} | {rate:,.0f} | {f'{comp:,.0f}' if comp else '-'} | {ratio} | {first} |")
print("(compute-bound: throughput.py (a), eager, synthetic batches already on the device; epoch 1 also "
      "counts the loop's start: loader workers, cudnn autotuning, and with compile: true the compilation)")
EOF
total=$((SECONDS - T0))
echo "total: $total s (goal on an H100: under 480 s)"
