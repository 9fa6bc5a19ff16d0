#!/usr/bin/env bash
# Everything of issue 16 that needs a GPU, in one short device session (about 7 minutes on
# one H100/H200; each part has its own time limit so a crash or hang costs only that part).
# Raw JSON and logs go to $OUT (default: ./device-out). Run from the repository root with
# the CUDA environment active:
#
#     OUT=/somewhere bash bench/device_check.sh
#
# Then, on any machine:  sora-tta import-figures $OUT/gpu.json --kind H100   (or H200)
# and copy the JSON files to docs/perf/ (docs/performance.md says what each one measures).
set -u
OUT=${OUT:-device-out}
mkdir -p "$OUT"
PY=${PYTHON:-python}
# Node-local, persistent between the two bench processes: the second one measures the
# compile warm-up with a warm Inductor cache (what later jobs of a node pay).
export TORCHINDUCTOR_CACHE_DIR=${TORCHINDUCTOR_CACHE_DIR:-/tmp/sora-tta-inductor-$$}
CKPT_SCRATCH=${CKPT_SCRATCH:-/tmp/sora-tta-ck-$$}

part() {  # part NAME SECONDS COMMAND...: run with a limit, log, record the exit status
    local name=$1 limit=$2
    shift 2
    local begin=$SECONDS
    timeout --signal=TERM --kill-after=10 "$limit" "$@" >"$OUT/$name.log" 2>&1
    local rc=$?
    echo "$name rc=$rc seconds=$((SECONDS - begin))" | tee -a "$OUT/status.txt"
}

{ nvidia-smi; $PY -c "import torch; print(torch.__version__, torch.version.cuda)"; } \
    >"$OUT/device.txt" 2>&1

# 1. Per-step figures, eager and regionally compiled (cold Inductor cache), each measure on
#    its own: adaptation step (peft input cast on/off; compiled static-shape step), sampling
#    without / with float32 / with bf16 adapters, VAE, checkpoint load from local disk.
part gpu 330 $PY bench/bench_gpu.py --variants eager,compile --warmup 2 --iters 5 --vae \
    --checkpoint-load "$CKPT_SCRATCH" --json "$OUT/gpu.json"
rm -rf "$CKPT_SCRATCH"

# 2. The compiled variant again in a new process: its first calls now hit the warm cache.
part gpu_warm_cache 110 $PY bench/bench_gpu.py --variants compile --warmup 1 --iters 3 \
    --json "$OUT/gpu-compile-warm-cache.json"

# 3. Process start -> first adaptation step on the GPU (tiny family, local disk; direct vs
#    staged). The shared-file-system figure needs a cluster node: see docs/performance.md.
part startup 90 $PY bench/bench_startup.py --device cuda --height 224 --width 288 --repeats 1 \
    --json "$OUT/startup.json"

rm -rf "$TORCHINDUCTOR_CACHE_DIR"
echo "done: $(ls "$OUT")"
