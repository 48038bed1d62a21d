#!/usr/bin/env bash
# The quality sweep (bench.quality_sweep, `make bench-quality`) at the demo's full size:
# 300 rows/day, 14-day window, the configured epochs, on one CUDA GPU. On 2 CPU cores the
# full size would take several hours; the CPU sweep runs at the demo's --fast size.
#
# Installs nothing and reaches no network: it expects the repo's venv with a CUDA build of
# torch 2.13 (see the Makefile). Writes bench/results/quality_sweep_full.{json,md} and
# caches each stream in bench/results/quality_sweep_runs/ (an interrupted run resumes).
#
#   bench/gpu_quality.sh                                   # every stream
#   bench/gpu_quality.sh --only concept_change/fixed       # one
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PY:-.venv/bin/python}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
"$PY" -c 'import sys, torch; torch.cuda.is_available() or sys.exit(f"no CUDA device visible to torch {torch.__version__}")'
# One stream at a time: the GPU, not the cores, is what a second stream would share.
exec "$PY" -m bench.quality_sweep --full --jobs 1 "$@"
