#!/usr/bin/env bash
# The GPU check of issue 10, in one run of a few minutes on a machine with an
# NVIDIA GPU, CUDA and PyTorch (no Rust, no internet): made ready by
# bench/gpu/prepare.sh. It writes its figures to $OUT (default target/gpu/out):
#   - netc's CUDA programs (netc build --cuda): `bench` and a short `train`;
#   - tuto and nin2 trained by the torch engine on the GPU, STEPS steps each
#     (fp32, then channels-last + bf16), examples/s and test accuracy.
# DEVICE=cpu STEPS=20 runs the torch part on a CPU, to try the script.
set -uo pipefail
cd "$(dirname "$0")/../.."
G=${G:-target/gpu}
OUT=${OUT:-$G/out}
STEPS=${STEPS:-2000}
DEVICE=${DEVICE:-cuda}
mkdir -p "$OUT"
log() { echo "== $*" | tee -a "$OUT/summary.txt"; }

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.csv" 2>&1 || true
python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.is_available())' | tee -a "$OUT/summary.txt"
python3 -c 'import PIL' 2>/dev/null || log "no Pillow: the torch engine cannot read the JPEG folders"
DATA=${DATA:-/tmp/netc-gpu-data}
mkdir -p "$DATA" && tar -xzf "$G/cifar10-jpg.tar.gz" -C "$DATA"
DATA="$DATA/cifar10-jpg"

# netc's CUDA programs first: they had never run on a GPU.
if [ "$DEVICE" = cuda ]; then
    for model in tuto nin2; do
        bin="$G/netc-model-$model-cuda"
        xz -dc "$bin.xz" > "$bin" && chmod +x "$bin"
        log "netc CUDA program: $model bench"
        timeout "${BENCH_SECS:-90}" "$bin" --device cuda bench --steps 20 --latency-runs 50 \
            > "$OUT/burn-$model-bench.json" 2> "$OUT/burn-$model-bench.err"
        log "exit $?: $(cat "$OUT/burn-$model-bench.json") $(tail -c 600 "$OUT/burn-$model-bench.err")"
        log "netc CUDA program: $model train, 200 steps"
        timeout "${TRAIN_SECS:-150}" "$bin" --device cuda train --data "$DATA" --steps 200 --eval-every 0 \
            --runs "$OUT/runs" --quiet > "$OUT/burn-$model-train.json" 2> "$OUT/burn-$model-train.err"
        log "exit $?: $(cat "$OUT/burn-$model-train.json") $(tail -c 600 "$OUT/burn-$model-train.err")"
    done
fi

for model in tuto nin2; do
    for opts in "" "--channels-last --bf16"; do
        name="$model${opts:+ $opts}"
        log "torch engine: $name, $STEPS steps on $DEVICE"
        timeout 240 python3 "$G/${model}_train.py" --data "$DATA" --steps "$STEPS" \
            --eval-every 0 --device "$DEVICE" --runs "$OUT/runs" --quiet $opts \
            > "$OUT/torch-$model${opts:+-fast}.json" 2> "$OUT/torch-$model${opts:+-fast}.err"
        log "exit $?: $(cat "$OUT/torch-$model${opts:+-fast}.json")"
    done
done

rm -rf "$OUT/runs"/*/*/checkpoint.safetensors
