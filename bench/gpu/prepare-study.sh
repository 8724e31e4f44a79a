#!/usr/bin/env bash
# Prepares the GPU study of issue 14 (bench/gpu/study.sh) in target/gpu/ on
# this machine, which has Rust; the GPU machine has only Python and PyTorch.
# Then, with a GPU lent:  device run (carry target/gpu):  bash bench/gpu/study.sh
# Everything carried must stay under 64 MiB.
set -euo pipefail
cd "$(dirname "$0")/../.."
G=target/gpu
S=$G/study
netc=target/release/netc
cargo build --release -p netc
rm -rf "$S" && mkdir -p "$S/scripts"
# Part 1, the seed's tutorial ablation, as the sweep a user would run: its
# variant files (the sweep's own directory layout, so that the same `netc
# sweep` here continues from the runs the GPU made), and tuto32, the seed's
# no-augmentation model (the whole 32x32 image).
$netc sweep zoo/tuto.net --vary augment=off --vary average=off --steps 10000 \
    --engine torch --out "$S/ablation" --dry-run > /dev/null
for net in "$S"/ablation/*.net zoo/tuto32.net; do
    name=$(basename "$net" .net)
    $netc emit --target pytorch-train "$net" > "$S/scripts/$name.py"
done
# Part 2, the model comparison.
for model in tuto alex4 squeeze1 nin2 xception; do
    $netc emit --target pytorch-train "zoo/$model.net" > "$S/scripts/$model.py"
done
[ -f "$G/cifar10-jpg.tar.gz" ] || cp ../shared/data/cifar10-jpg.tar.gz "$G/"
du -sh "$G"
