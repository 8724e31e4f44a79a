"""Runs every PyTorch module of the random-program test (tests/random_programs.rs).

usage: python3 random_programs.py MANIFEST

MANIFEST has one JSON object per line: {"id", "path", "input": [C, H, W]}.
For each module: compile() it, look for top-level names defined twice (a
class silently replaced by another), import it, instantiate `Model`, count
its parameters and buffers, and run a batch of two zero images through it
in eval mode. Prints one JSON object per module: {"id", "params",
"buffers", "output"} or {"id", "stage", "error"}; the Rust side compares.
"""

import ast
import importlib.util
import json
import sys
import traceback

import torch


def where(path, error):
    """The generated line an exception came from, if it came from the module."""
    frames = [f for f in traceback.extract_tb(error.__traceback__) if f.filename == path]
    if not frames:
        return ""
    f = frames[-1]
    return f" (line {f.lineno}: {f.line.strip() if f.line else ''})"


def duplicates(tree):
    """Top-level names bound twice: imports, classes, functions, constants
    (the `Model = ...` alias at the end excepted)."""
    seen, twice = set(), []
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [(a.asname or a.name).split(".")[0] for a in node.names]
        elif isinstance(node, (ast.ClassDef, ast.FunctionDef)):
            names = [node.name]
        elif isinstance(node, ast.Assign):
            names = [t.id for t in node.targets if isinstance(t, ast.Name) and t.id != "Model"]
        else:
            continue
        for name in names:
            if name in seen:
                twice.append(name)
            seen.add(name)
    return twice


def run(entry):
    path = entry["path"]
    with open(path, encoding="utf-8") as f:
        source = f.read()
    try:
        tree = ast.parse(source, path)
        compile(source, path, "exec")
    except SyntaxError as e:
        text = (e.text or "").strip()
        return {"stage": "compile", "error": f"SyntaxError: {e.msg} (line {e.lineno}: {text})"}
    twice = duplicates(tree)
    if twice:
        return {"stage": "names", "error": "defined twice at top level: " + ", ".join(f"`{n}`" for n in sorted(set(twice)))}
    stage = "import"
    try:
        spec = importlib.util.spec_from_file_location(f"netc_random_{entry['id']}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        stage = "instantiate"
        model = module.Model()
        params = sum(p.numel() for p in model.parameters())
        buffers = sum(b.numel() for b in model.buffers())
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
