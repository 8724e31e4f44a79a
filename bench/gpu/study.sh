#!/usr/bin/env bash
# The GPU part of issue 14's study, in one
# run of under 9 minutes on a machine with an NVIDIA GPU and PyTorch, made
# ready by bench/gpu/prepare-study.sh. Every training run is the script that
# `netc emit --target pytorch-train` writes, i.e. `netc train --engine torch`:
#   1. the tutorial ablation, 10k steps: tuto, tuto_augment_off,
#      tuto_average_off (the sweep's variants) and tuto32;
#   2. tuto, alex4, squeeze1, nin2 and xception, LONG steps (50k) or as
#      many as fit in TRAIN_SECS, evaluated every 2,500 steps;
#   all side by side on the one GPU. (Issue 11's GPU speed check is
#   bench/gpu/speed.sh.)
# The runs come back as runs.tgz.part-* in $OUT (cat them, then tar -xzf).
# DEVICE=cpu SHORT=20 LONG=40 TRAIN_SECS=120 DATA=dir tries it on a CPU.
set -uo pipefail
cd "$(dirname "$0")/../.."
G=${G:-target/gpu}
S=$G/study
OUT=${OUT:-$G/out}
DEVICE=${DEVICE:-cuda}
SHORT=${SHORT:-10000}
LONG=${LONG:-50000}
TRAIN_SECS=${TRAIN_SECS:-330}
W=${W:-/tmp/netc-study}
mkdir -p "$OUT" "$W"
begin=$(date +%s)
log() { echo "== $(( $(date +%s) - begin ))s $*" | tee -a "$OUT/summary.txt"; }

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.csv" 2>&1
log "$(python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.is_available())')"
if [ -z "${DATA:-}" ]; then
    tar -xzf "$G/cifar10-jpg.tar.gz" -C "$W" && DATA="$W/cifar10-jpg"
fi
log "data in $DATA"

# name steps eval_every runs_dir
train() {
    mkdir -p "$4"
    PYTHONUNBUFFERED=1 timeout "$TRAIN_SECS" python3 "$S/scripts/$1.py" --data "$DATA" \
        --steps "$2" --eval-every "$3" --device "$DEVICE" --threads 2 --runs "$4" \
        --checkpoint-secs 20 --quiet > "$W/$1-$(basename "$(dirname "$4")").json" \
        2> "$W/$1-$(basename "$(dirname "$4")").err"
    echo "exit $? $1 ($4)" >> "$OUT/summary.txt"
}
A=$W/ablation/runs
C=$W/compare/runs
for m in tuto tuto_augment_off tuto_average_off tuto32; do train $m "$SHORT" 1000 "$A" & done
for m in tuto alex4 squeeze1 nin2 xception; do train $m "$LONG" 2500 "$C" & done
# Progress: the last step each run logged.
while [ -n "$(jobs -r)" ]; do
    sleep 30
    line=""
    for f in "$A"/*/1/log.jsonl "$C"/*/1/log.jsonl; do
        [ -f "$f" ] && line="$line $(basename "$(dirname "$(dirname "$f")")"):$(tail -1 "$f" | sed 's/.*"step":\([0-9]*\).*/\1/')"
    done
    log "steps$line"
done
wait
log "training over"
for f in "$A"/*/1/log.jsonl "$C"/*/1/log.jsonl; do
    [ -f "$f" ] || continue
    echo "$f: $(grep test_accuracy "$f" | tail -1)" | tee -a "$OUT/summary.txt"
done
tail -n 3 "$W"/*.err > "$OUT/stderr-tails.txt" 2>&1
# Back in files of at most 15 MiB (the tool's limit is 16 MiB each, 8 files).
(cd "$W" && tar -czf - --exclude='.*.tmp' ablation compare) | split -b 15M - "$OUT/runs.tgz.part-"
log "packed: $(ls -s "$OUT" | tr '\n' ' ')"

log "done"
