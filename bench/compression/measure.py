#!/usr/bin/env python3
"""The seed-style compression table: accuracy, non-zero parameters, bytes on
disk, operations, batch-1 latency and batch-128 throughput for each variant
of a model (float, pruned, int8, pruned + int8), measured with netc's own
commands, and one plot of accuracy against bytes on disk.

    python3 bench/compression/measure.py --data DATA --out docs/compression \\
        --family tuto zoo/tuto.net RUN "pruned 80 %" zoo/tuto.net PRUNED_RUN \\
        --family alex4 zoo/alex4.net RUN "filters -25 %" alex4_pruned.net PRUNED_RUN

Each family is a base model and one pruned variant (the same .net for
unstructured pruning, a smaller one for filter pruning). Every run is
quantized to int8 (RUN/int8.safetensors, made when missing, 1,000
calibration images, percentile). Speed: each program's `bench --int8`
(float and int8 alternating in one run), `--rounds` times, the programs of
a family taking turns; the medians are reported. A variant with the same
program as its base (unstructured pruning keeps the dense kernels) has the
base's speed by construction, and is marked so.

Bytes on disk: one float weight set as stored (dense f32, or netc's sparse
bitmask-and-values form where that is smaller, as `netc check --weights`
counts it; a run's checkpoint holds two such sets, raw and averaged), and
the int8 file's size.

Writes OUT/table.csv, OUT/table.md and OUT/accuracy-bytes.svg.
"""
import argparse
import csv
import json
import os
import statistics
import struct
import subprocess
import sys


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def run(cmd):
    log("$", " ".join(cmd))
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"measure.py: {' '.join(cmd)} failed ({r.returncode}):\n{r.stderr}")
    return r.stdout


def program(netc, net):
    return run([netc, "build", net]).strip().splitlines()[-1]


def counts(netc, net, weights):
    d = json.loads(run([netc, "check", net, "--weights", weights, "--json"]))[0]
    w = d["weights"]
    return d["ops"], w["nonzero"], min(w["dense_bytes"], w["sparse_bytes"])


def accuracy(prog, data, run_dir, int8=None):
    cmd = [prog, "eval", "--data", data, "--run", run_dir, "--json"]
    if int8:
        cmd += ["--int8", int8]
    return json.loads(run(cmd))["accuracy"]


def int8_nonzero(path):
    """Non-zero int8 weights (and float tensors) in a safetensors file."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        body = f.read()
    nonzero = 0
    for name, t in header.items():
        if name == "__metadata__" or not name.endswith((".weight", ".bias")):
            continue
        a, b = t["data_offsets"]
        raw = body[a:b]
        if t["dtype"] == "I8":
            nonzero += sum(1 for v in raw if v != 0)
        elif t["dtype"] == "F32":
            nonzero += sum(1 for (v,) in struct.iter_unpack("<f", raw) if v != 0.0)
    return nonzero


def quantized(prog, data, run_dir):
    path = os.path.join(run_dir, "int8.safetensors")
    if not os.path.exists(path):
        run([prog, "quantize", "--run", run_dir, "--data", data, "--calibrate", "1000"])
    return path


def speeds(progs, int8s, rounds, steps, latency_runs):
    """Median float and int8 throughput (batch 128) and latency per program."""
    got = {p: [] for p in progs}
    for r in range(rounds):
        order = progs if r % 2 == 0 else progs[::-1]
        for p in order:
            out = run([p, "bench", "--batch-size", "128", "--steps", str(steps),
                       "--latency-runs", str(latency_runs), "--int8", int8s[p]])
            got[p].append(json.loads(out)["int8"])
    med = lambda p, k: statistics.median(b[k] for b in got[p])
    return {
        p: {
            "float": (med(p, "float_latency_ms_median"), med(p, "float_examples_per_second")),
            "int8": (med(p, "int8_latency_ms_median"), med(p, "int8_examples_per_second")),
        }
        for p in progs
    }


def svg(rows, path):
    """Accuracy against bytes on disk (log axis), one colour per model."""
    import math
    W, H, L, R, T, B = 720, 440, 70, 190, 20, 50
    xs = [math.log10(r["bytes"]) for r in rows]
    ys = [100 * r["accuracy"] for r in rows]
    x0, x1 = math.floor(min(xs) * 4) / 4, math.ceil(max(xs) * 4) / 4
    y0, y1 = math.floor(min(ys)) - 1, math.ceil(max(ys)) + 1
    px = lambda x: L + (x - x0) / (x1 - x0) * (W - L - R)
    py = lambda y: H - B - (y - y0) / (y1 - y0) * (H - T - B)
    colours = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728"]
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
           f'<rect width="{W}" height="{H}" fill="white"/>',
           f'<line x1="{L}" y1="{H-B}" x2="{W-R}" y2="{H-B}" stroke="black"/>',
           f'<line x1="{L}" y1="{T}" x2="{L}" y2="{H-B}" stroke="black"/>']
    e = math.ceil(x0)
    while e <= x1:
        for m in (1, 2, 5):
            v = e + math.log10(m) if m > 1 else e
            if x0 <= v <= x1:
                label = f"{10 ** v / 1e6:g} MB" if 10 ** v >= 1e6 else f"{10 ** v / 1e3:g} kB"
                out.append(f'<line x1="{px(v):.1f}" y1="{T}" x2="{px(v):.1f}" y2="{H-B}" stroke="#ddd"/>')
                out.append(f'<text x="{px(v):.1f}" y="{H-B+16}" text-anchor="middle">{label}</text>')
        e += 1
    for y in range(int(y0), int(y1) + 1):
        out.append(f'<line x1="{L}" y1="{py(y):.1f}" x2="{W-R}" y2="{py(y):.1f}" stroke="#eee"/>')
        out.append(f'<text x="{L-6}" y="{py(y)+4:.1f}" text-anchor="end">{y} %</text>')
    out.append(f'<text x="{(L+W-R)/2}" y="{H-12}" text-anchor="middle">bytes on disk (log)</text>')
    out.append(f'<text x="16" y="{(T+H-B)/2}" transform="rotate(-90 16 {(T+H-B)/2})" text-anchor="middle">test accuracy</text>')
    models = list(dict.fromkeys(r["model"] for r in rows))
    placed = []  # label boxes (x0, x1, y), to move a label down off another

    def label_y(x, y, text):
        x1 = x + 7 * len(text)
        while any(a < x1 and x < b and abs(y - v) < 14 for a, b, v in placed):
            y += 14
        placed.append((x, x1, y))
        return y

    for i, m in enumerate(models):
        c = colours[i % len(colours)]
        pts = [(px(x), py(y), r) for x, y, r in zip(xs, ys, rows) if r["model"] == m]
        for x, y, r in sorted(pts, key=lambda p: p[1]):
            ly = label_y(x + 8, y - 6, r["variant"])
            out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="5" fill="{c}"/>')
            out.append(f'<text x="{x+8:.1f}" y="{ly:.1f}" fill="{c}">{r["variant"]}</text>')
        out.append(f'<circle cx="{W-R+20}" cy="{T+10+18*i}" r="5" fill="{c}"/>')
        out.append(f'<text x="{W-R+30}" y="{T+14+18*i}">{m}</text>')
    out.append("</svg>")
    with open(path + ".tmp", "w") as f:
        f.write("\n".join(out) + "\n")
    os.replace(path + ".tmp", path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--netc", default="target/release/netc")
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--family", nargs=6, action="append", default=[],
                    metavar=("MODEL", "NET", "RUN", "PRUNED_LABEL", "PRUNED_NET", "PRUNED_RUN"))
    ap.add_argument("--plot-only", action="store_true",
                    help="redraw OUT/accuracy-bytes.svg from OUT/table.csv")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--latency-runs", type=int, default=40)
    a = ap.parse_args()
    if a.plot_only:
        with open(os.path.join(a.out, "table.csv")) as f:
            rows = [dict(r, accuracy=float(r["accuracy"]), bytes=int(r["bytes"])) for r in csv.DictReader(f)]
        svg(rows, os.path.join(a.out, "accuracy-bytes.svg"))
        return
    if not a.family:
        sys.exit("measure.py: give at least one --family (or --plot-only)")
    rows = []
    for model, net, base, label, pnet, prun in a.family:
        progs, int8s, variants = [], {}, []
        for name, n, r in [("float", net, base), (label, pnet, prun)]:
            p = program(a.netc, n)
            q = quantized(p, a.data, r)
            if p not in progs:
                progs.append(p)
                int8s[p] = q
            ops, nonzero, nbytes = counts(a.netc, n, os.path.join(r, "checkpoint.safetensors"))
            variants.append((name, p, r, q, ops, nonzero, nbytes))
        sp = speeds(progs, int8s, a.rounds, a.steps, a.latency_runs)
        same = variants[0][1] == variants[1][1]
        for name, p, r, q, ops, nonzero, nbytes in variants:
            note = "same program as float" if (same and name != "float") else ""
            for kind in ("float", "int8"):
                lat, thr = sp[p][kind]
                rows.append({
                    "model": model,
                    "variant": name if kind == "float" else ("int8" if name == "float" else f"{name} + int8"),
                    "accuracy": accuracy(p, a.data, r, q if kind == "int8" else None),
                    "nonzero_params": nonzero if kind == "float" else int8_nonzero(q),
                    "bytes": nbytes if kind == "float" else os.path.getsize(q),
                    "operations": ops,
                    "latency_ms": round(lat, 3),
                    "examples_per_second": round(thr, 1),
                    "note": note,
                })
    os.makedirs(a.out, exist_ok=True)
    keys = list(rows[0].keys())
    with open(os.path.join(a.out, "table.csv.tmp"), "w", newline="") as f:
        w = csv.DictWriter(f, keys)
        w.writeheader()
        w.writerows(rows)
    os.replace(os.path.join(a.out, "table.csv.tmp"), os.path.join(a.out, "table.csv"))
    md = ["| model | variant | accuracy | non-zero params | bytes on disk | operations | batch-1 latency | batch-128 examples/s |",
          "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        star = " *" if r["note"] else ""
        md.append(f"| {r['model']} | {r['variant']} | {100 * r['accuracy']:.2f} % | {r['nonzero_params']:,} | "
                  f"{r['bytes']:,} | {r['operations']:,} | {r['latency_ms']:.3f} ms{star} | {r['examples_per_second']:,.0f}{star} |")
    with open(os.path.join(a.out, "table.md.tmp"), "w") as f:
        f.write("\n".join(md) + "\n")
    os.replace(os.path.join(a.out, "table.md.tmp"), os.path.join(a.out, "table.md"))
    svg(rows, os.path.join(a.out, "accuracy-bytes.svg"))
    print("\n".join(md))


if __name__ == "__main__":
    main()
