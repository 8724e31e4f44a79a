"""Runs every PyTorch module of the random-program test (tests/random_programs.rs).

usage: python3 random_programs.py MANIFEST

MANIFEST has one JSON object per line: {"id", "path", "input": [C, H, W]}.
For each module: compile() it, look for top-level names defined twice (a
class silently replaced by another), import it, instantiate `Model`, count
its parameters and floating-point buffers, and run a batch of two zero images through it
in eval mode. Prints one JSON object per module: {"id", "params",
"buffers", "output"} or {"id", "stage", "error"}; the Rust side compares.
"""

import json
import re
import sys
import traceback
import types

import torch


def where(path, error):
    """The generated line an exception came from, if it came from the module."""
    frames = [f for f in traceback.extract_tb(error.__traceback__) if f.filename == path]
    if not frames:
        return ""
    f = frames[-1]
    return f" (line {f.lineno}: {f.line.strip() if f.line else ''})"


TOP_LEVEL = re.compile(
    r"^(?:class (\w+)|def (\w+)|(\w+) =|import [\w.]+ as (\w+)|import (\w+)|from \S+ import (\w+))",
    re.M,
)


def duplicates(source):
    """Top-level names bound twice: imports, classes, functions, constants
    (the `Model = ...` alias at the end excepted). The generated module
    binds them all at the start of a line."""
    seen, twice = set(), []
    for match in TOP_LEVEL.finditer(source):
        name = next(g for g in match.groups() if g)
        if match.group(3) == "Model":
            continue
        if name in seen:
            twice.append(name)
        seen.add(name)
    return twice


def run(entry):
    path = entry["path"]
    with open(path, encoding="utf-8") as f:
        source = f.read()
    try:
        code = compile(source, path, "exec")
    except SyntaxError as e:
        text = (e.text or "").strip()
        return {"stage": "compile", "error": f"SyntaxError: {e.msg} (line {e.lineno}: {text})"}
    twice = duplicates(source)
    if twice:
        return {"stage": "names", "error": "defined twice at top level: " + ", ".join(f"`{n}`" for n in sorted(set(twice)))}
    stage = "import"
    try:
        module = types.ModuleType(f"netc_random_{entry['id']}")
        module.__file__ = path
        exec(code, module.__dict__)
        stage = "instantiate"
        model = module.Model()
        params = sum(p.numel() for p in model.parameters())
        # Running statistics; not an integer step counter such as num_batches_tracked.
        buffers = sum(b.numel() for b in model.buffers() if b.is_floating_point())
        stage = "forward"
        model.eval()
        with torch.no_grad():
            y = model(torch.zeros(2, *entry["input"]))
        return {"params": params, "buffers": buffers, "output": list(y.shape)}
    except Exception as e:  # every failure is reported, none stops the run
        message = str(e).splitlines()[0][:300] if str(e) else ""
        return {"stage": stage, "error": f"{type(e).__name__}: {message}{where(path, e)}"}


def main(manifest):
    torch.set_num_threads(1)
    torch.manual_seed(0)
    with open(manifest, encoding="utf-8") as f:
        for line in f:
            entry = json.loads(line)
            result = run(entry)
            result["id"] = entry["id"]
            print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
