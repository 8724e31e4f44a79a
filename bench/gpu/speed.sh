#!/usr/bin/env bash
# Issue 11 on a GPU, the GPU alone (nothing else runs beside it), made ready
# by bench/gpu/prepare-speed.sh:
#   1. the emitted module against the hand-written one (handwritten.py),
#      eager and channels-last, with bench/torch/sides.py (every side in one
#      process, in turns, ROUNDS rounds of BENCH_STEPS steps; every timer
#      waits for the GPU);
#   2. netc's torch training engine (the emitted module with its engine) on
#      the real data, one run at a time, fp32 and channels-last + bf16.
# Results: $OUT/sides.jsonl and $OUT/engine.jsonl (docs/performance.md, "On a
# GPU"). DEVICE=cpu ROUNDS=1 BENCH_STEPS=2 STEPS=20 tries it on a CPU.
set -uo pipefail
cd "$(dirname "$0")/../.."
S=${S:-target/gpu/speed}
OUT=${OUT:-$S/out}
DEVICE=${DEVICE:-cuda}
ROUNDS=${ROUNDS:-7}
BENCH_STEPS=${BENCH_STEPS:-100}
STEPS=${STEPS:-3000}
W=${W:-/tmp/netc-speed}
mkdir -p "$OUT" "$W"
begin=$(date +%s)
log() { echo "== $(( $(date +%s) - begin ))s $*" | tee -a "$OUT/summary.txt"; }

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.csv" 2>&1
log "$(python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.is_available())')"
tar -xzf "$S/cifar10-jpg.tar.gz" -C "$W" &
untar=$!

# Every side in one process, in turns: separate 30-step processes vary by
# tens of percent from start-up alone on a GPU.
python3 bench/torch/sides.py --modules "$S" --device "$DEVICE" --rounds "$ROUNDS" \
    --steps "$BENCH_STEPS" --latency-runs 50 > "$OUT/sides.jsonl" 2> "$OUT/sides.err"
log "sides: exit $?"

wait $untar
for m in tuto alex4; do
    for opts in "" "--channels-last --bf16"; do
        PYTHONUNBUFFERED=1 timeout 90 python3 "$S/${m}_train.py" --data "$W/cifar10-jpg" \
            --steps "$STEPS" --eval-every 0 --device "$DEVICE" --runs "$W/runs" --quiet $opts \
            > "$W/engine.json" 2> "$OUT/engine-$m${opts:+-fast}.err"
        code=$?
        r=$(tail -1 "$W/engine.json")
        echo "{\"model\":\"$m\",\"options\":\"$opts\",\"exit\":$code,\"result\":${r:-null}}" >> "$OUT/engine.jsonl"
        log "engine $m $opts: exit $code"
    done
done
log "done"
