#!/usr/bin/env bash
# Issue 11 on a GPU, the GPU alone (nothing else runs beside it), made ready
# by bench/gpu/prepare-speed.sh:
#   1. the emitted module against the hand-written one (handwritten.py),
#      eager and channels-last, with bench.py --device cuda (every timer waits
#      for the GPU), the four sides of a model taking turns, ROUNDS rounds or
#      until BENCH_SECS have passed;
#   2. netc's torch training engine (the emitted module with its engine) on
#      the real data, one run at a time, fp32 and channels-last + bf16.
# Results: $OUT/bench.jsonl and $OUT/engine.jsonl; bench/gpu/speed-table.py
# turns them into docs' tables. DEVICE=cpu ROUNDS=1 STEPS=20 tries it on a CPU.
set -uo pipefail
cd "$(dirname "$0")/../.."
S=${S:-target/gpu/speed}
OUT=${OUT:-$S/out}
DEVICE=${DEVICE:-cuda}
ROUNDS=${ROUNDS:-3}
BENCH_SECS=${BENCH_SECS:-330}
STEPS=${STEPS:-3000}
W=${W:-/tmp/netc-speed}
mkdir -p "$OUT" "$W"
begin=$(date +%s)
log() { echo "== $(( $(date +%s) - begin ))s $*" | tee -a "$OUT/summary.txt"; }

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.csv" 2>&1
log "$(python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.is_available())')"
tar -xzf "$S/cifar10-jpg.tar.gz" -C "$W" &
untar=$!

until=$(( begin + BENCH_SECS ))
for round in $(seq "$ROUNDS"); do
    for m in tuto alex4 squeeze1 nin2; do
        for side in emitted handwritten; do
            for cl in "" --channels-last; do
                [ "$(date +%s)" -lt "$until" ] || break 4
                if [ $side = emitted ]; then what="$S/$m.py"; else what="--handwritten $m"; fi
                r=$(timeout 40 python3 "$S/bench.py" $what $cl --device "$DEVICE" \
                    --steps 30 --latency-runs 30 2>>"$OUT/bench.err" | tail -1)
                echo "{\"round\":$round,\"model\":\"$m\",\"side\":\"$side$cl\",\"result\":${r:-null}}" >> "$OUT/bench.jsonl"
            done
        done
    done
    log "bench round $round done"
done

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
