#!/usr/bin/env bash
# Hand-written channels-last PyTorch under each allocator setting, in turns:
# glibc as it comes, the settings `netc bench` and the torch engine start
# PyTorch with (compiler/src/allocator.rs), and tcmalloc and jemalloc where
# they are installed (apt install libtcmalloc-minimal4 libjemalloc2). One
# process per measurement, as `netc bench` runs its sides.
#
#   bash bench/torch/allocators.sh [MODEL] [STEPS] [ROUNDS]
# prints one line per round: training and inference examples/s of each.
set -euo pipefail
cd "$(dirname "$0")/../.."
model=${1:-squeeze1} steps=${2:-20} rounds=${3:-3}
bench=compiler/templates/pytorch/bench.py
lib=/usr/lib/x86_64-linux-gnu
netc="MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=68719476736 THP_MEM_ALLOC_ENABLE=1"
sides=("glibc:" "netc:$netc")
[ -f $lib/libtcmalloc_minimal.so.4 ] && sides+=("tcmalloc:LD_PRELOAD=$lib/libtcmalloc_minimal.so.4")
[ -f $lib/libjemalloc.so.2 ] && sides+=("jemalloc:LD_PRELOAD=$lib/libjemalloc.so.2")
for r in $(seq "$rounds"); do
    line="$model round $r:"
    order=("${sides[@]}")
    # Even rounds run the order backwards, so a drift favours each in turn.
    if ((r % 2 == 0)); then
        order=()
        for ((i = ${#sides[@]} - 1; i >= 0; i--)); do order+=("${sides[i]}"); done
    fi
    for side in "${order[@]}"; do
        name=${side%%:*} vars=${side#*:}
        # shellcheck disable=SC2086 # the variables split into assignments
        got=$(env $vars python3 $bench --handwritten "$model" --channels-last --threads 2 \
            --steps "$steps" --latency-runs 5 |
            python3 -c "import json,sys; d=json.load(sys.stdin); print(round(d['train_examples_per_second']), round(d['infer_examples_per_second']))")
        line+=" $name $got |"
    done
    echo "$line"
done
