"""Training speed of netc's torch engine beside the seed's recipe written by
hand in PyTorch (seed_recipe.py) and netc's own program, on real data with
augmentation, in alternating rounds (this machine's speed drifts).

usage (from the repository root, after `cargo build --release`):
    python3 bench/torch/speed.py --data /tmp/cifar10-jpg [--steps 150] [--rounds 2]

Each configuration trains tuto for --steps steps and reports the median
examples/s over windows of 10 steps (start-up and data loading left out).
Every configuration starts with the allocator settings `netc train --engine
torch` and `netc bench` start PyTorch with (compiler/src/allocator.rs), so
the engine runs as netc starts it and every side alike; one more runs the
engine with glibc's allocator as it comes, to show what they are worth.
Prints a Markdown table; writes every figure to target/netc/bench/torch-speed.json.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


# compiler/src/allocator.rs's SETTINGS: a step's freed memory kept for the next.
SETTINGS = {
    "MALLOC_MMAP_THRESHOLD_": "33554432",
    "MALLOC_TRIM_THRESHOLD_": "68719476736",
    "THP_MEM_ALLOC_ENABLE": "1",
}
PLAIN = "(glibc's allocator as it comes)"


def run(cmd, name):
    env = dict(os.environ)
    if PLAIN in name:
        for key in SETTINGS:
            env.pop(key, None)
    else:
        env = {**SETTINGS, **env}
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
    if out.returncode != 0:
        sys.exit(f"failed: {' '.join(map(str, cmd))}\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])["examples_per_second"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--netc", default=str(ROOT / "target/release/netc"))
    args = ap.parse_args()
    net = "zoo/tuto.net"
    out = ROOT / "target/netc/bench"
    out.mkdir(parents=True, exist_ok=True)
    script = out / "tuto_train.py"
    emitted = subprocess.run(
        [args.netc, "emit", "--target", "pytorch-train", net],
        capture_output=True, text=True, cwd=ROOT, check=True,
    )
    script.write_text(emitted.stdout)
    program = subprocess.run(
        [args.netc, "build", net], capture_output=True, text=True, cwd=ROOT, check=True
    ).stdout.strip().splitlines()[-1]
    runs = tempfile.mkdtemp(prefix="netc-speed-")
    common = ["--data", args.data, "--steps", str(args.steps), "--eval-every", "0",
              "--runs", runs, "--quiet"]
    py = sys.executable
    configs = {
        "torch engine, 1 process": [py, script, *common],
        "torch engine, 1 process, channels-last": [py, script, *common, "--channels-last"],
        "torch engine, 2 processes": [py, script, *common, "--nproc", "2"],
        f"torch engine, 1 process {PLAIN}": [py, script, *common],
        "hand-written PyTorch": [py, ROOT / "bench/torch/seed_recipe.py", "--data", args.data,
                                 "--steps", str(args.steps)],
        "hand-written PyTorch, channels-last": [py, ROOT / "bench/torch/seed_recipe.py",
                                                "--data", args.data, "--steps", str(args.steps),
                                                "--channels-last"],
        "netc's burn program": [program, "train", *common],
    }
    figures = {name: [] for name in configs}
    for r in range(args.rounds):
        for name, cmd in configs.items():
            figures[name].append(run(cmd, name))
            print(f"round {r + 1}: {name}: {figures[name][-1]:.1f} examples/s", file=sys.stderr)
    best = max(statistics.median(figures[n]) for n in configs if n.startswith("hand-written"))
    print(f"| tuto, {args.steps} steps, median of {args.rounds} rounds | examples/s | / best hand-written |")
    print("|---|---:|---:|")
    for name, values in figures.items():
        m = statistics.median(values)
        print(f"| {name} | {m:.1f} | {m / best:.2f} |")
    (out / "torch-speed.json").write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
