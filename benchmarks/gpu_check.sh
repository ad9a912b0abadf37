#!/usr/bin/env bash
# bench's CUDA paths on one GPU host, in one pass of a few minutes, for the figures in
# docs/gpu.md: the `gpu_check` sweep (BERT-base, OPT-125m and ResNet50 built from config; cast
# against autocast; Accelerate, torch.compile and DeepSpeed's fused kernels), bench's loop
# against a plain synchronised loop on the same model object (fidelity.py --same-process on
# cuda), a report, and the `gpu`-marked tests. Every phase has its own time limit, so what
# finished is kept when a later phase hangs; each writes its log under OUT_DIR.
#
# Usage: benchmarks/gpu_check.sh OUT_DIR [PRICE_PER_HOUR]
#   PRICE_PER_HOUR prices the sweep's instance (p5e.48xlarge, 8 x H200, has no on-demand list
#   price in the catalog); the default is p5.48xlarge's on-demand rate, a stated stand-in.
# Needs: python3 with torch (CUDA build), transformers, accelerate, bench's other dependencies,
# pytest with pytest-xdist and pytest-timeout; DeepSpeed and bitsandbytes where present.
set -uo pipefail
out=${1:?usage: gpu_check.sh OUT_DIR [PRICE_PER_HOUR]}
price=${2:-55.04}
py=${PYTHON:-python3}
cd "$(dirname "$0")/.."
mkdir -p "$out"
work=$(mktemp -d)
store="$work/results"
models="$work/models"
export PYTHONUNBUFFERED=1

phase() {  # phase LOG SECONDS COMMAND...: run with a limit, append to OUT_DIR/LOG.log
  local name=$1 limit=$2
  shift 2
  echo "== $name (limit ${limit}s): $*"
  local began=$SECONDS
  echo "== $*" >>"$out/$name.log"
  timeout --kill-after=10 "$limit" "$@" >>"$out/$name.log" 2>&1
  local rc=$?
  echo "== $name: exit $rc after $((SECONDS - began)) s"
  tail -n 25 "$out/$name.log"
}

{
  nvidia-smi
  nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,power.limit,driver_version --format=csv
  nproc
  "$py" -c "import torch, transformers, accelerate; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'transformers', transformers.__version__, 'accelerate', accelerate.__version__)"
  "$py" -c "import deepspeed; print('deepspeed', deepspeed.__version__)" 2>&1 | tail -1
  "$py" -c "import bitsandbytes; print('bitsandbytes', bitsandbytes.__version__)" 2>&1 | tail -1
} >"$out/host.log" 2>&1
cat "$out/host.log"

# a cell past executor.timeout_s is a `timeout` row (DeepSpeed compiles its kernels on first
# use); past the phase's limit the sweep is cut short and collect still aggregates its rows
phase sweep 360 "$py" -m bench sweep +grid=gpu_check "price_per_hour=$price" \
  "store.root=$store" "models_dir=$models" executor.timeout_s=150
sweep_dir=$(ls -d "$store"/gpu_check-* 2>/dev/null | head -n 1)
if [ -n "$sweep_dir" ]; then
  phase sweep 60 "$py" -m bench collect "$(basename "$sweep_dir")" "store.root=$store"
  phase report 60 "$py" -m bench report "$(basename "$sweep_dir")" "store.root=$store" \
    sla.p99_ms=10
  "$py" - "$sweep_dir/aggregated.parquet" >"$out/summary.txt" 2>&1 <<'EOF'
import sys

import pandas as pd

df = pd.read_parquet(sys.argv[1])
pd.set_option("display.width", 250)
pd.set_option("display.max_columns", 40)
pd.set_option("display.max_rows", 200)
columns = [
    "model", "engine", "precision", "precision_method", "batch_size", "status", "n",
    "latency_ms_p50", "latency_ms_p90", "latency_ms_p99", "latency_ms_p99_hi", "stability",
    "inferences_per_s", "tokens_per_s", "ttft_ms_p50", "tpot_ms_p50", "import_s", "load_s",
    "init_s", "peak_gpu_mem_mb", "gpu_util_pct_mean", "gpu_sm_clock_mhz_mean",
    "gpu_power_w_mean", "host_other_cpus_mean", "host_busy", "usd_per_million_inferences",
    "error",
]
print(df[[c for c in columns if c in df.columns]].to_string(index=False))
EOF
  cat "$out/summary.txt"
fi

tar czf "$out/results.tgz" -C "$work" results 2>/dev/null

phase pytest_gpu 200 "$py" -m pytest -p no:cacheprovider -m gpu -n 4 --timeout 150 -q -rA \
  tests/integration/test_devices.py tests/integration/test_scenarios.py

# bench's closed loop against a plain loop that synchronises the device, on one model object
for cell in "model=bert_base batch_size=1 precision=fp16" \
  "model=bert_base batch_size=16 precision=amp_fp16"; do
  phase fidelity 60 "$py" benchmarks/fidelity.py --same-process --threads 1 --windows 6 \
    --seconds 1 --cell "$cell device=cuda models_dir=$models"
done

echo "== done; results in $out"
