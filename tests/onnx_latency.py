"""Batch-1 latency of an ONNX file in onnxruntime (CPU), for docs/export.md.

usage: python3 onnx_latency.py MODEL.onnx RUNS

Prints one JSON object: the median and 95th percentile in milliseconds of
RUNS runs on one random input, after a warm-up, with onnxruntime's default
threads (one per core) and graph optimizations.
"""

import json
import sys
import time

import numpy as np
import onnxruntime


def main(path, runs):
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    feed = session.get_inputs()[0]
    shape = [1 if isinstance(d, str) else d for d in feed.shape]
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    for _ in range(20):
        session.run(None, {feed.name: x})
    times = []
    for _ in range(int(runs)):
        start = time.perf_counter()
        session.run(None, {feed.name: x})
        times.append((time.perf_counter() - start) * 1e3)
    times.sort()
    print(json.dumps({
        "median_ms": times[len(times) // 2],
        "p95_ms": times[round((len(times) - 1) * 0.95)],
        "onnxruntime": onnxruntime.__version__,
    }))


if __name__ == "__main__":
    main(*sys.argv[1:])
