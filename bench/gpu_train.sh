#!/usr/bin/env bash
# The GPU benchmarks in one script, all in bf16 on one CUDA GPU: training (benchmark 1: fit_adapter
# vs plain Trainer vs Trainer group_by_length), inference (bench.inference: the batched Predictor
# vs the best transformers pipeline on the same model) and serving (benchmark 7: ct serve vs
# mlflow models serve vs a per-request pipeline).
#
# Installs nothing and reaches no network: it expects the repo's venv (`make venv`, with a
# CUDA build of torch 2.13 installed into .venv first, see the Makefile) or an environment
# where `pip install -e .` ran on top of a CUDA torch. Prints the JSON on stdout and keeps a
# copy in $OUT (default bench/results/gpu). A few minutes on one GPU: the steps are cheap,
# most of the time is the three processes' imports and model loads.
#
#   bench/gpu_train.sh                 # 300 steps of batch 32 (9,600 rows, one epoch)
#   STEPS=60 bench/gpu_train.sh        # the CPU benchmark's step count
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PY:-.venv/bin/python}"
STEPS="${STEPS:-300}"  # 60 steps take ~1 s on a GPU: too short to time against fixed overheads
OUT="${OUT:-bench/results/gpu}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false

"$PY" - <<'EOF'
import sys
import torch
if not torch.cuda.is_available():
    sys.exit(f"no CUDA device visible to torch {torch.__version__}: install a CUDA build of torch 2.13 into the venv")
if not torch.cuda.is_bf16_supported():
    sys.exit(f"{torch.cuda.get_device_name(0)} has no bf16 support")
print(f"GPU: {torch.cuda.get_device_name(0)}, torch {torch.__version__}", file=sys.stderr)
EOF

mkdir -p "$OUT"
"$PY" -m bench.train_throughput --device cuda --precision bf16 --steps "$STEPS" | tee "$OUT/train_throughput_gpu.json"
"$PY" -m bench.inference --device cuda --precisions fp32,bf16 | tee "$OUT/inference_gpu.json"
"$PY" -m bench.serve_load --seconds "${SERVE_SECONDS:-60}" --clients 16 | tee "$OUT/serve_load_gpu.json"
