#!/usr/bin/env bash
# The GPU check, one script, under 8 minutes on one lent GPU:
#   pytest -m gpu, then benchmarks/gpu_check.py (fp16 MiniLM docs/s on SciFact, torch exact-search GFLOP/s against the
#   device's peak, top-k > 2048, sharding over several GPUs) -> benchmarks/results/gpu_check.{md,json}
#   (also copied to $OUT when that is set, as on the lent device machine).
#
#   bash benchmarks/gpu_check.sh --prepare   # here, with network: fill .carry/ (MiniLM in fp16, SciFact) and .whl/
#   bash benchmarks/gpu_check.sh             # on the GPU machine (carry .carry and .whl; no registry needed)
#   bash benchmarks/gpu_check.sh --dry-run   # anywhere: the same steps on the CPU with tiny sizes, report in
#                                            # ${GPU_CHECK_OUT:-runs/gpu_check_dry_run}
#
# The device image has torch and sentence-transformers but no faiss, datasets or pytrec_eval: nothing here needs them
# (the FAISS GPU tests skip without faiss; the torch index is what is measured). Wheels put in .whl/ are installed
# with --no-index first, for anything a later version of the check needs.
set -uo pipefail
cd "$(dirname "$0")/.."
mode=gpu
case "${1:-}" in
  --dry-run|--cpu) mode=cpu ;;
  --prepare) mode=prepare ;;
  "") ;;
  *) echo "usage: bash benchmarks/gpu_check.sh [--dry-run | --prepare]" >&2; exit 2 ;;
esac
PY=${PYTHON:-python3}

if [ "$mode" = prepare ]; then
  set -e
  src=${NEGMINE_MODELS:-$HOME/.cache/negmine-models}/all-MiniLM-L6-v2
  data=${NEGMINE_DATA:-../shared/data/beir}/scifact
  mkdir -p .carry/models .carry/beir
  rm -rf .carry/models/all-MiniLM-L6-v2 .carry/beir/scifact
  cp -r "$data" .carry/beir/scifact
  # the weights in fp16 (45 MB instead of 91 MB): the carried tree must stay under 64 MiB
  "$PY" - "$src" .carry/models/all-MiniLM-L6-v2 <<'EOF'
import shutil, sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

src, dst = Path(sys.argv[1]), Path(sys.argv[2])
shutil.copytree(src, dst, ignore=shutil.ignore_patterns("model.safetensors", "*.bin", "onnx", "openvino", ".git*"))
tensors = load_file(src / "model.safetensors")
save_file({k: v.half().contiguous() if v.is_floating_point() else v for k, v in tensors.items()},
          dst / "model.safetensors", metadata={"format": "pt"})
EOF
  mkdir -p .whl
  du -sh .carry .whl
  echo "now: run 'bash benchmarks/gpu_check.sh' on the device with carry ['.carry', '.whl']"
  exit 0
fi

start=$(date +%s)
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
if compgen -G ".whl/*.whl" >/dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/gpu_check_site \
    .whl/*.whl && export PYTHONPATH="$PYTHONPATH:/tmp/gpu_check_site"
fi
[ -d .carry/models ] && export NEGMINE_MODELS="${NEGMINE_MODELS:-$PWD/.carry/models}"
[ -d .carry/beir ] && export NEGMINE_DATA="${NEGMINE_DATA:-$PWD/.carry/beir}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1

if [ "$mode" = cpu ]; then
  outdir=${GPU_CHECK_OUT:-runs/gpu_check_dry_run}
  tests=${GPU_CHECK_TESTS:-tests/index/test_torch_exact.py}
  extra=(--cpu --budget-s 500)  # generous: shared CI boxes can be slow
  pytest_limit=300
  py_limit=600
else
  outdir=${GPU_CHECK_OUT:-benchmarks/results}
  tests=${GPU_CHECK_TESTS:-$(grep -rl --include='*.py' 'pytest.mark.gpu' tests | sort | tr '\n' ' ')}
  extra=(--budget-s 270)
  pytest_limit=150
  py_limit=330
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
fi
mkdir -p "$outdir"
junit=$(mktemp -d)/junit.xml
echo "[gpu_check] pytest -m gpu $tests"
# shellcheck disable=SC2086  # $tests is a list of paths
timeout "$pytest_limit" "$PY" -m pytest -m gpu -q -p no:cacheprovider --junitxml="$junit" $tests
pytest_rc=$?
echo "[gpu_check] pytest exit code $pytest_rc after $(( $(date +%s) - start )) s"
cmd="bash benchmarks/gpu_check.sh${1:+ $1}"
timeout "$py_limit" "$PY" benchmarks/gpu_check.py "${extra[@]}" --out-dir "$outdir" --junit "$junit" \
  --pytest-rc "$pytest_rc" --command "$cmd"
rc=$?
if [ -n "${OUT:-}" ] && [ -d "${OUT:-}" ]; then
  cp "$outdir"/gpu_check.md "$outdir"/gpu_check.json "$OUT"/ 2>/dev/null || true
fi
echo "[gpu_check] done in $(( $(date +%s) - start )) s (exit code $rc)"
exit "$rc"
