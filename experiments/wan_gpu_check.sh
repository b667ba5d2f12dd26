#!/usr/bin/env bash
# What model=wan needs a GPU to verify, on tiny random components (no weights are downloaded):
#   1. the tests' equalities on the GPU in float32 and bfloat16 (streaming VAE decode vs one-shot, text encoder
#      and transformer vs the CPU): experiments/wan_gpu_check.py;
#   2. a short `run.py model=wan` on a tiny random config in bfloat16 with DySink, its generation figures
#      (frames/s, seconds per chunk for transformer / VAE / metrics, peak GPU memory);
#   3. the generation benchmark (cost per chunk at the start and later) on the same config.
# Usage, from the repository root of an installed checkout:
#   bash experiments/wan_gpu_check.sh [OUT_DIR]
# DEVICE=cpu runs the same steps on the CPU (a dry run); FRAMES and LATE_CHUNK shorten steps 2 and 3.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-outputs/wan_gpu_check}
DEVICE=${DEVICE:-cuda}
PY=${PYTHON:-python}
FRAMES=${FRAMES:-201}
LATE_CHUNK=${LATE_CHUNK:-1000}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p "$OUT"

if [ "$DEVICE" = cuda ]; then
  $PY -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device: run on a GPU machine or set DEVICE=cpu')"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
fi

echo "== 1. tiny-config equalities on $DEVICE"
$PY experiments/wan_gpu_check.py --device "$DEVICE" --out "$OUT"

echo "== 2. run.py model=wan, tiny random config, $DEVICE, bfloat16, DySink"
read -r -a TINY <<< "$($PY -m tests.wan_fixtures "$OUT/tiny_wan" --latent-size 8 | tail -n 1)"
$PY run.py "${TINY[@]}" model.device="$DEVICE" model.dtype=bfloat16 sink=dysink \
  "prompt=a wingsuit flyer racing through a mountain valley" num_frames="$FRAMES" logger=none \
  hydra.run.dir="$OUT/run"
$PY - "$OUT/run/summary.json" <<'PYEOF'
import json, sys
s = json.load(open(sys.argv[1]))
print(f"frames {s['frames']} of {s['frames_requested']}, {s['generation_fps']:.1f} frames/s")
for key, value in s["generation"].items():
    if key.startswith(("seconds", "peak")):
        print(f"  {key:28s} {value}")
PYEOF

echo "== 3. generation benchmark, $DEVICE, bfloat16"
$PY -m lolbench.bench generation "${TINY[@]}" model.device="$DEVICE" model.dtype=bfloat16 \
  --late-chunk "$LATE_CHUNK" | tee "$OUT/bench.txt"
echo "done: $OUT"
