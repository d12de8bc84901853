#!/usr/bin/env bash
# The GPU check in one call, for the project's CUDA machine (one H100/H200 with torch and
# transformers, no package registry). Usage:
#
#   make gpu-wheels                     # here, with a registry: wheels into .gpu-wheels/ (git-ignored)
#   bash launch/gpu_check.sh [--out DIR] [--wheels DIR]     # there, with .gpu-wheels carried along
#   bash launch/gpu_check.sh --dry-run [--out DIR]          # any CPU machine (CI): every step, small
#
# Steps: (1) install the carried wheels into a private folder on PYTHONPATH (the machine's own torch
# and transformers stay); (2) the @pytest.mark.gpu tests: bf16 packed == unpacked with each varlen
# kernel against transformers' unpacked forward, chunked loss == plain loss, device pixel step ==
# CPU; (3) `python -m apps.bench.train`: qwen2vl_2b, bf16, seq_len 8192, ZeRO-3 world of one,
# (a) the padded HF-style baseline and (b) packed; (4) one JSON + one markdown table of all of it
# (DIR/gpu_check.json, DIR/gpu_check.md). Budget: under 8 minutes on one H100/H200.
#
# --dry-run runs the same four steps on the CPU: the wheel folder is only checked (when present) and
# the venv's own packages are used, the GPU tests run on the CPU (QVLTRAIN_GPU_TESTS_ON_CPU=1, exact
# per-segment attention), and the benchmark uses the tiny flavor on a few short packs.
set -euo pipefail
cd "$(dirname "$0")/.."

DRY_RUN=0
OUT=gpu_check
WHEELS=.gpu-wheels
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY_RUN=1 ;;
    --out) OUT=$2; shift ;;
    --wheels) WHEELS=$2; shift ;;
    *) echo "gpu_check.sh: unknown argument $1 (expected --dry-run, --out DIR, --wheels DIR)" >&2; exit 2 ;;
  esac
  shift
done
PY=${QVL_PYTHON:-python3}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1

echo "== 1/4 packages =="
if [ -d "$WHEELS" ]; then
  "$PY" launch/gpu_wheels.py --check --out "$WHEELS"
elif [ "$DRY_RUN" = 0 ]; then
  echo "no $WHEELS/: run 'make gpu-wheels' where a registry is reachable and carry the folder" >&2
  exit 2
else
  echo "(dry run: no $WHEELS/ here; using this environment's packages)"
fi
if [ "$DRY_RUN" = 0 ]; then
  SITE=${QVL_GPU_SITE:-/tmp/qvltrain-site}
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "$WHEELS"/*.whl
  export PYTHONPATH="$SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}"
  export PATH="$SITE/bin:$PATH"
else
  export QVLTRAIN_GPU_TESTS_ON_CPU=1 DS_ACCELERATOR=cpu
fi
"$PY" -c "import deepspeed, hydra, omegaconf, webdataset, wandb, decord, torch, transformers; \
print(f'torch {torch.__version__}, transformers {transformers.__version__}, deepspeed {deepspeed.__version__}, cuda {torch.cuda.is_available()}')"

echo "== 2/4 GPU tests =="
tests_status=0
"$PY" -m pytest -q -m gpu tests -p no:cacheprovider --junitxml "$OUT/gpu_tests.xml" || tests_status=$?

echo "== 3/4 training-step benchmark =="
if [ "$DRY_RUN" = 1 ]; then
  bench=(--flavor tiny --seq-len 1024 --num-tokens 2048 --warmup-steps 0 --rounds 1 --repeats 1 --no-profile)
else
  # 6 packs of 8192 tokens per pass: two timed 2B steps per variant after one warm-up step.
  bench=(--flavor qwen2vl_2b --seq-len 8192 --num-tokens 49152 --warmup-steps 1 --rounds 1 --repeats 1)
fi
"$PY" -m apps.bench.train "${bench[@]}" --out "$OUT/train_bench.json" | tee "$OUT/train_bench.txt"

echo "== 4/4 report =="
dry_flag=()
[ "$DRY_RUN" = 1 ] && dry_flag=(--dry-run)
"$PY" launch/gpu_report.py --tests "$OUT/gpu_tests.xml" --bench "$OUT/train_bench.json" --out "$OUT" "${dry_flag[@]}"
exit "$tests_status"
