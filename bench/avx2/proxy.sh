#!/usr/bin/env bash
# netc against PyTorch as a CPU without AVX-512 runs them, on a CPU that has
# it (an Intel Xeon): the path AMD's EPYC (Zen 3: AVX2 and FMA) takes, for
# when no such machine is at hand. A proxy, not an EPYC: the clock, caches
# and memory are the Xeon's.
#
# netc: a worktree of HEAD whose runtime builds gemm without its AVX-512
# kernels (x86-v4) and starts as panel::limit_to_avx2(true) leaves it: the
# products, poolings and dense loops on AVX2. PyTorch: oneDNN, MKL and ATen
# capped at AVX2 through their environment variables.
#
#   bash bench/avx2/proxy.sh [OUT] [netc bench options...]
set -euo pipefail
repo=$(git rev-parse --show-toplevel)
out=$(realpath -m "${1:-$repo/target/netc/bench-avx2}")
shift || true
tree=$(mktemp -d)/netc
git -C "$repo" worktree add -q --detach "$tree" HEAD
trap 'git -C "$repo" worktree remove --force "$tree"' EXIT
cd "$tree"

# Each edit must change its file: a silent no-op would measure AVX-512.
edit() {
    local file=$1 from=$2 to=$3
    grep -qF -- "$from" "$file" || { echo "proxy.sh: '$from' not in $file" >&2; exit 1; }
    python3 - "$file" "$from" "$to" <<'PY'
import sys
path, old, new = sys.argv[1:]
text = open(path).read()
open(path, "w").write(text.replace(old, new))
PY
}
edit runtime/Cargo.toml 'gemm = { version = "0.19", features = ["x86-v4"] }' 'gemm = { version = "0.19" }'
edit runtime/src/kernels/panel.rs 'static AVX2_ONLY: AtomicBool = AtomicBool::new(false);' 'static AVX2_ONLY: AtomicBool = AtomicBool::new(true);'

# The checkout's build folder, copied, saves most of a cold build.
[ -d "$repo/target/release" ] && cp -a "$repo/target" "$tree/target"
cargo build --release -q -p netc
mkdir -p "$out"
ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 \
    target/release/netc bench zoo/tuto.net zoo/alex4.net zoo/squeeze1.net zoo/nin2.net \
    --out "$out" "$@"
