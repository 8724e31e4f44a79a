#!/usr/bin/env bash
# Prepares the GPU check of the torch engine and of netc's CUDA program
# (bench/gpu/check.sh) in target/gpu/, on this machine, which has Rust and
# the internet the GPU machine lacks. Then, with a GPU lent:
#   device run (carry target/gpu):  bash bench/gpu/check.sh
# Everything carried must stay under 64 MiB.
set -euo pipefail
cd "$(dirname "$0")/../.."
G=target/gpu
mkdir -p "$G/wheels"
cargo build --release -p netc
for model in tuto nin2; do
    target/release/netc emit --target pytorch-train "zoo/$model.net" > "$G/${model}_train.py"
done
# netc's CUDA programs, in a target directory of their own so the CPU
# programs of target/release are not rebuilt.
CUDA_TARGET=${CUDA_TARGET:-target/cuda}
# `netc build` prints each program's path, one line per model, in order.
mapfile -t programs < <(CARGO_TARGET_DIR="$CUDA_TARGET" target/release/netc build --cuda --out "$CUDA_TARGET/crates" zoo/tuto.net zoo/nin2.net)
# A CUDA program is 42 MB stripped: compressed (7 MB), both fit beside
# the data in what a device run carries.
for i in 0 1; do
    model=$([ $i = 0 ] && echo tuto || echo nin2)
    strip -o "$G/netc-model-$model-cuda" "${programs[$i]}"
    xz -T0 -9 -f "$G/netc-model-$model-cuda"
done
cp ../shared/data/cifar10-jpg.tar.gz "$G/"
# The torch engine reads image folders with Pillow, which the GPU image
# holds (.library/device/KINDS.md); wheels for it no longer fit.
rm -rf "$G/wheels"
du -sh "$G"
