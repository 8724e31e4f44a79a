#!/usr/bin/env bash
# Prepares issue 11's GPU speed check (bench/gpu/speed.sh) in target/gpu/speed
# on this machine, which has Rust; the GPU machine has only Python and PyTorch.
# Then, with a GPU lent:  device run (carry target/gpu/speed):  bash bench/gpu/speed.sh
# Everything carried must stay under 64 MiB (about 20 MiB: the data tarball).
set -euo pipefail
cd "$(dirname "$0")/../.."
S=target/gpu/speed
netc=target/release/netc
cargo build --release -p netc
rm -rf "$S" && mkdir -p "$S"
for model in tuto alex4 squeeze1 nin2; do
    $netc emit --target pytorch "zoo/$model.net" > "$S/$model.py"
    $netc emit --target pytorch-train "zoo/$model.net" > "$S/${model}_train.py"
done
cp compiler/templates/pytorch/bench.py compiler/templates/pytorch/handwritten.py "$S/"
cp ../shared/data/cifar10-jpg.tar.gz "$S/"
du -sh "$S"
