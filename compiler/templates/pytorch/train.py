

# ---------------------------------------------------------------------------
# netc's torch training engine. Everything below is the same for every model;
# `NETC` above says which model this is. It trains as netc's own runtime does
# (docs/training.md) and writes the same run directory, so `netc eval`,
# `netc infer`, `netc report` and `--resume` work on its runs.
#
#   python3 train.py --data DIR [--steps N ...]          one process
#   python3 train.py --data DIR --nproc 2                data parallel here
#   torchrun --nnodes 2 --nproc-per-node 8 --rdzv-backend c10d \
#       --rdzv-endpoint HOST:29500 train.py --data DIR   several machines
# ---------------------------------------------------------------------------

import argparse
import fcntl
import math
import os
import socket
import sys
import time
from pathlib import Path

import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

SIDE = 32
PIXELS = SIDE * SIDE * 3
RECORD = 1 + PIXELS
CIFAR10_CLASSES = [
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
]
CHECKPOINT, LOG, SETTINGS, SOURCE, LOCK = (
    "checkpoint.safetensors", "log.jsonl", "settings.json", "model.net", ".lock",
)
AVERAGED = "ema/"
MASKS, MASK = "masks.safetensors", "mask/"
MAX_BRIGHTNESS = 63.0
CONTRAST = (0.2, 1.8)
MAX_DECAY = 0.9999
DEFAULT_SEED, DEFAULT_EVAL_EVERY, DEFAULT_LOG_EVERY = 1, 1000, 10
OPTIMIZER = "optim/"
# The seed's recipe (`Recipe::SEED` in runtime/src/optim.rs): what a run's
# settings.json written before these settings existed means.
SEED_RECIPE = {
    "optimizer": "sgd", "momentum": 0.9, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8,
    "schedule": "constant", "lr_every": 0, "lr_factor": 0.1, "lr_min": 0.0, "warmup": 0,
    "smoothing": 0.0,
}
OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam", "adamw")
SCHEDULES = ("constant", "step", "cosine")
# Per optimizer, its state tensors: checkpoint slot -> torch's state key.
SLOTS = {
    "sgd": {}, "momentum": {"momentum": "momentum_buffer"},
    "nesterov": {"momentum": "momentum_buffer"},
    "adam": {"m": "exp_avg", "v": "exp_avg_sq"}, "adamw": {"m": "exp_avg", "v": "exp_avg_sq"},
}
EVAL_BATCH = 500


class Error(Exception):
    """A message for the user: printed as `error: ...`, exit status 1."""


# --- data: the readers of netc's runtime (runtime/src/data/), same errors ---


def find_layout(root):
    for d in (root, root / "cifar-10-batches-bin", root / "cifar10-jpg"):
        if (d / "data_batch_1.bin").is_file() or (d / "test_batch.bin").is_file():
            return "binary", d
        if (d / "train").is_dir() or (d / "test").is_dir():
            return "folders", d
    raise Error(
        f"{root}: no CIFAR-10 data found. Expected cifar-10-batches-bin/ (data_batch_1.bin ... "
        f"test_batch.bin) or image folders train/<class>/ and test/<class>/. Get it with "
        f"`netc data cifar10 {root}`, or extract ../shared/data/cifar10-jpg.tar.gz there"
    )


def binary_classes(d):
    try:
        names = [l.strip() for l in (d / "batches.meta.txt").read_text().splitlines()]
        names = [n for n in names if n]
    except OSError:
        names = []
    return names or list(CIFAR10_CLASSES)


def read_batch(path, classes):
    """Images N x 32 x 32 x 3 (uint8) and labels of one binary batch file."""
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as e:
        raise Error(f"{path}: cannot read: {e.strerror}") from None
    if data.size == 0 or data.size % RECORD:
        raise Error(
            f"{path}: {data.size} bytes is not a whole number of {RECORD}-byte records "
            "(1 label + 3072 pixels); the file is truncated or not a CIFAR-10 batch"
        )
    records = data.reshape(-1, RECORD)
    labels = records[:, 0]
    bad = np.nonzero(labels >= classes)[0]
    if bad.size:
        i = int(bad[0])
        raise Error(f"{path}: record {i} has label {labels[i]}, but there are {classes} classes")
    images = records[:, 1:].reshape(-1, 3, SIDE, SIDE).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels.astype(np.int64)


def class_dirs(split):
    if not split.is_dir():
        raise Error(f"{split}: no such folder")
    try:
        return sorted(p for p in split.iterdir() if p.is_dir())
    except OSError as e:
        raise Error(f"{split}: cannot list: {e.strerror}") from None


def decode(path):
    """One image as 32 x 32 RGB bytes; other sizes are scaled (bilinear)."""
    try:
        with Image.open(path) as img:
            img = img.convert("RGB")
            if img.size != (SIDE, SIDE):
                img = img.resize((SIDE, SIDE), Image.BILINEAR)
            return np.asarray(img, dtype=np.uint8)
    except Exception as e:  # PIL raises many kinds for a bad file
        raise Error(f"{path}: unreadable image: {e}") from None


def read_folder(split):
    global Image
    try:
        from PIL import Image
    except ImportError:
        raise Error(
            f"{split}: reading image folders needs Pillow: pip install pillow "
            "(binary CIFAR-10 batches need nothing more)"
        ) from None
    dirs = class_dirs(split)
    if not dirs:
        raise Error(f"{split}: no class folders; expected {split}/<class>/*.png")
    if len(dirs) > 256:
        raise Error(f"{split}: more than 256 classes")
    files, labels = [], []
    for label, d in enumerate(dirs):
        images = sorted(
            p for p in d.iterdir()
            if p.suffix.lower() in (".png", ".jpg", ".jpeg") and p.is_file()
        )
        if not images:
            raise Error(f"{d}: empty class, no .png or .jpg files")
        files += images
        labels += [label] * len(images)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        images = np.stack(list(pool.map(decode, files, chunksize=256)))
    return images, np.array(labels, dtype=np.int64), [d.name for d in dirs]


def same_classes(train, train_classes, test, test_classes):
    if train_classes == test_classes:
        return
    what = []
    for d, has, other in ((train, train_classes, test_classes), (test, test_classes, train_classes)):
        missing = [c for c in other if c not in has]
        if missing:
            what.append(f"{d} lacks {', '.join(missing)}")
    raise Error(
        f"{train} and {test} hold different classes: {'; '.join(what)}. Labels are numbered by "
        "sorted folder name, so every class needs a folder in both splits: add the missing ones "
        "or remove the extra ones"
    )


def load(root, split):
    """(images N x 32 x 32 x 3 uint8, labels, class names) of one split."""
    kind, d = find_layout(root)
    if kind == "binary":
        classes = binary_classes(d)
        files = [d / f"data_batch_{i}.bin" for i in range(1, 6)] if split == "train" else [
            d / "test_batch.bin"
        ]
        parts = [read_batch(f, len(classes)) for f in files]
        images = np.concatenate([p[0] for p in parts])
        labels = np.concatenate([p[1] for p in parts])
        return images, labels, classes
    this, other = d / split, d / ("test" if split == "train" else "train")
    images, labels, classes = read_folder(this)
    if other.is_dir():
        others = [p.name for p in class_dirs(other)]
        if split == "train":
            same_classes(this, classes, other, others)
        else:
            same_classes(other, others, this, classes)
    return images, labels, classes


def check_classes(classes, want, root):
    if len(classes) != want:
        raise Error(f"{root}: the data has {len(classes)} classes, the model outputs {want} scores")


# --- batches and augmentation (runtime/src/batches.rs, augment.rs) ---


def stream(seed, purpose, index):
    """A random stream for one purpose at one step: batch `s` depends only
    on the seed and `s`, so a resumed run sees the batches an uninterrupted
    one would, whatever the number of processes."""
    return np.random.default_rng([seed, purpose, index])


class Sampler:
    """Which examples each step's global batch holds: a shuffle per epoch."""

    def __init__(self, n, seed):
        self.n, self.seed, self.orders = n, seed, {}

    def order(self, epoch):
        if epoch not in self.orders:
            self.orders = {epoch: stream(self.seed, 1, epoch).permutation(self.n)}
        return self.orders[epoch]

    def indices(self, step, batch):
        i = step * batch + np.arange(batch)
        epochs, at = i // self.n, i % self.n
        out = np.empty(batch, dtype=np.int64)
        for e in np.unique(epochs):
            where = epochs == e
            out[where] = self.order(int(e))[at[where]]
        return out


def standardize(x):
    """(x - mean) / max(stddev, 1 / sqrt(N)) per image of N x H x W x C."""
    n = x[0].numel()
    mean = x.mean((1, 2, 3), keepdim=True)
    std = (x - mean).square().mean((1, 2, 3), keepdim=True).sqrt()
    return (x - mean) / std.clamp_min(1.0 / math.sqrt(n))


def crop(images, top, left, h, w):
    rows = (top[:, None] + torch.arange(h, device=top.device))[:, :, None]
    cols = (left[:, None] + torch.arange(w, device=top.device))[:, None, :]
    n = torch.arange(images.shape[0], device=top.device)[:, None, None]
    return images[n, rows, cols]


def train_batch(images, labels, plan, step, share):
    """This process's share (a slice) of step `step`'s global batch: images
    as N x H x W x C floats on the data's device after a random crop, flip,
    brightness and contrast (with `augment`) and per-image standardization,
    and their labels. The random draws are made for the whole global batch,
    so each example gets the same treatment whatever the number of processes."""
    b, h, w = plan["batch"], plan["height"], plan["width"]
    index = torch.from_numpy(plan["sampler"].indices(step, b)[share]).to(images.device)
    x, y = images[index], labels[index]
    if not plan["augment"]:
        return standardize(central(x, h, w)), y
    rng = stream(plan["seed"], 2, step)
    top = rng.integers(0, SIDE - h + 1, b)[share]
    left = rng.integers(0, SIDE - w + 1, b)[share]
    flip = (rng.random(b) < 0.5)[share]
    bright = rng.uniform(-MAX_BRIGHTNESS, MAX_BRIGHTNESS, b)[share]
    contrast = rng.uniform(*CONTRAST, b)[share]
    on = lambda a, dtype: torch.from_numpy(a).to(images.device, dtype)
    per_image = lambda a: on(a, torch.float32)[:, None, None, None]
    x = crop(x, on(top, torch.long), on(left, torch.long), h, w).float()
    x = torch.where(on(flip, torch.bool)[:, None, None, None], x.flip(2), x)
    x = x + per_image(bright)
    mean = x.mean((1, 2), keepdim=True)
    x = (x - mean) * per_image(contrast) + mean
    return standardize(x), y


def central(x, h, w):
    top, left = (SIDE - h) // 2, (SIDE - w) // 2
    return x[:, top : top + h, left : left + w].float()


# --- run directories (runtime/src/run.rs) ---


def absolute(p):
    return str(Path(os.path.abspath(p)))


def write_atomic(path, data):
    """Writes through `.<name>.tmp`, synced, then a rename: a crash never
    leaves a half-written file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        raise Error(f"{path}: cannot write: {e.strerror}") from None


def lock(d):
    path = d / LOCK
    try:
        f = open(path, "w")
    except OSError as e:
        raise Error(f"{path}: cannot create: {e.strerror}") from None
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise Error(
            f"{d}: another process is training this run; wait for it to finish or stop it first"
        ) from None
    return f


def new_settings(a):
    s = dict(NETC["settings"])
    if a.steps is not None:
        s["steps"] = a.steps
    if a.lr is not None:
        s["learning_rate"] = a.lr
    if a.batch_size is not None:
        s["batch_size"] = a.batch_size
    if a.augment is not None:
        s["augment"] = a.augment == "on"
    if a.average is not None:
        s["average"] = a.average == "on"
    if a.decay == "off":
        s["decay"] = 0.0
    for key, v in SEED_RECIPE.items():
        s.setdefault(key, v)  # a NETC record of an older netc
        if getattr(a, key) is not None:
            s[key] = getattr(a, key)
    return {
        "model": NETC["model"],
        "file": NETC["file"],
        "settings": s,
        "seed": DEFAULT_SEED if a.seed is None else a.seed,
        "data": absolute(a.data) if a.data else None,
        "eval_every": DEFAULT_EVAL_EVERY if a.eval_every is None else a.eval_every,
        "log_every": max(1, DEFAULT_LOG_EVERY if a.log_every is None else a.log_every),
        "init_from": absolute(a.init_from) if a.init_from else None,
        "engine": "torch",
    }


def save_settings(d, settings):
    write_atomic(d / SETTINGS, json.dumps(settings, indent=2).encode())


def create_run(runs, settings):
    base = Path(runs) / NETC["model"]
    try:
        base.mkdir(parents=True, exist_ok=True)
        taken = [int(p.name) for p in base.iterdir() if p.name.isdigit()]
    except OSError as e:
        raise Error(f"{base}: cannot create: {e.strerror}") from None
    n = max(taken, default=0) + 1
    while True:
        d = base / str(n)
        try:
            d.mkdir()
        except FileExistsError:
            n += 1
            continue
        except OSError as e:
            raise Error(f"{d}: cannot create: {e.strerror}") from None
        held = lock(d)
        write_atomic(d / SOURCE, NETC["source"].encode())
        save_settings(d, settings)
        return d, held


def same_place(a, b):
    return a == b or (os.path.exists(a) and os.path.exists(b) and os.path.samefile(a, b))


def resume_run(d, a):
    """Reopens run `d` with its own settings; `--steps` may move its end and
    `--data` give the new place of data that moved, anything else that
    contradicts the run is refused, all listed."""
    d = Path(d)
    if not (d / SETTINGS).is_file():
        raise Error(f"{d}: not a run directory (no {SETTINGS}); runs are runs/<model>/<n>/")
    held = lock(d)
    try:
        saved = json.loads((d / SETTINGS).read_text())
        fields = ("model", "file", "settings", "seed", "data", "eval_every", "log_every")
        missing = [k for k in fields if k not in saved]
        for k, v in SEED_RECIPE.items():
            saved.get("settings", {}).setdefault(k, v)
        missing += [f"settings.{k}" for k in NETC["settings"] if k not in saved.get("settings", {})]
        if missing:
            raise ValueError(f"missing field `{missing[0]}`")
    except (OSError, ValueError, AttributeError, TypeError) as e:
        raise Error(f"{d / SETTINGS}: damaged: {e}") from None
    if saved.get("model") != NETC["model"]:
        raise Error(f"{d}: a run of model {saved.get('model')}, not {NETC['model']}")
    try:
        source = (d / SOURCE).read_text()
    except OSError:
        source = ""
    if source != NETC["source"]:
        raise Error(
            f"{d}: the model's .net source changed since this run started; start a new run instead"
        )
    want = new_settings(a)
    was, now = saved["settings"], want["settings"]
    bad = []

    def differs(given, flag, asked, used):
        if given and asked != used:
            bad.append(f"{flag} {asked} (the run uses {used})")

    on = lambda b: "on" if b else "off"
    num = lambda v: f"{v:g}" if isinstance(v, float) else str(v)
    differs(a.lr is not None, "--lr", num(now["learning_rate"]), num(was["learning_rate"]))
    differs(a.batch_size is not None, "--batch-size", str(now["batch_size"]), str(was["batch_size"]))
    differs(a.seed is not None, "--seed", str(want["seed"]), str(saved["seed"]))
    differs(a.augment is not None, "--augment", on(now["augment"]), on(was["augment"]))
    differs(a.average is not None, "--average", on(now["average"]), on(was["average"]))
    differs(
        a.decay is not None, "--decay", on(a.decay == "on" and now["decay"] > 0), on(was["decay"] > 0)
    )
    for key in SEED_RECIPE:
        v = getattr(a, key)
        differs(v is not None, "--" + key.replace("_", "-"), num(now[key]), num(was[key]))
    differs(a.eval_every is not None, "--eval-every", str(want["eval_every"]), str(saved["eval_every"]))
    differs(a.log_every is not None, "--log-every", str(want["log_every"]), str(saved["log_every"]))
    if a.init_from is not None:
        used = saved.get("init_from")
        same = used is not None and same_place(used, a.init_from)
        differs(not same, "--init-from", a.init_from, used or "no --init-from")
    notes = []
    if a.data is not None and not same_place(a.data, saved["data"]):
        if os.path.exists(saved["data"]):
            differs(True, "--data", a.data, saved["data"])
        else:
            notes.append(f"the run's data {saved['data']} is gone; using {a.data} from now on")
            saved["data"] = absolute(a.data)
    elif a.data is None and not os.path.exists(saved["data"]):
        raise Error(f"{d}: the run's data {saved['data']} is gone; give its new place with --data")
    if bad:
        raise Error(
            f"{d}: a resumed run keeps its own settings, and these flags contradict them: "
            f"{', '.join(bad)}. Leave them out to continue the run, or start a new run without --resume"
        )
    if a.steps is not None and a.steps != was["steps"]:
        notes.append(f"the run now ends at step {a.steps} instead of {was['steps']}")
        saved["settings"]["steps"] = a.steps
    for p in d.iterdir():
        if p.name.startswith(".") and p.name.endswith(".tmp") and p.is_file():
            p.unlink(missing_ok=True)
    return d, held, saved, notes


def truncate_log(path, step):
    """Cuts the log back to the whole lines at or before `step`."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return
    whole = data[: data.rfind(b"\n") + 1]
    kept = []
    for line in whole.splitlines(keepends=True):
        try:
            s = json.loads(line).get("step")
        except ValueError:
            continue
        if isinstance(s, int) and 0 <= s <= step:
            kept.append(line)
    kept = b"".join(kept)
    if kept != data:
        write_atomic(path, kept)


class Log:
    """`log.jsonl`, one whole line per write: a kill never leaves half a line."""

    def __init__(self, path):
        self.path = path
        try:
            self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as e:
            raise Error(f"{path}: cannot open: {e.strerror}") from None

    def write(self, record):
        line = (json.dumps(record, separators=(",", ":")) + "\n").encode()
        try:
            os.write(self.fd, line)
        except OSError as e:
            raise Error(f"{self.path}: cannot write: {e.strerror}") from None


# --- checkpoints (runtime/src/checkpoint.rs): safetensors, netc's names ---


def tensors_of(model):
    """Every tensor of the model (buffers included) by its .net name, as numpy."""
    return {
        netc_name(model, k): v.detach().float().cpu().contiguous().numpy()
        for k, v in model.state_dict().items()
    }


def save_checkpoint(path, raw, averaged, metadata):
    """A safetensors file of `raw` and `ema/` + `averaged`, names sorted,
    metadata sorted: the same tensors always give the same bytes."""
    named = dict(raw)
    named.update({AVERAGED + k: v for k, v in (averaged or {}).items()})
    named = netc_layout(named)
    header, blobs, offset = {"__metadata__": dict(sorted(metadata.items()))}, [], 0
    for name in sorted(named):
        blob = np.ascontiguousarray(named[name], dtype="<f4").tobytes()
        header[name] = {
            "dtype": "F32",
            "shape": list(named[name].shape),
            "data_offsets": [offset, offset + len(blob)],
        }
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    write_atomic(path, len(text).to_bytes(8, "little") + text + b"".join(blobs))


def read_weights(path):
    """(raw, averaged or None, metadata) of a netc weight file, refusing
    NaN and infinite values."""
    try:
        tensors = netc_layout(read_safetensors(path))
        with open(path, "rb") as f:
            size = int.from_bytes(f.read(8), "little")
            metadata = json.loads(f.read(size)).get("__metadata__") or {}
    except OSError as e:
        raise Error(f"{path}: cannot read: {e.strerror}") from None
    except (ValueError, KeyError, TypeError) as e:
        raise Error(f"{path}: not a valid safetensors file: {e}") from None
    bad = [
        f"`{n}` ({int((~torch.isfinite(t)).sum())} of {t.numel()})"
        for n, t in sorted(tensors.items())
        if not torch.isfinite(t).all()
    ]
    if bad:
        raise Error(
            f"{path}: tensors hold NaN or infinite values: {', '.join(bad)}. These weights come "
            "from a run that diverged or a broken export; use an earlier checkpoint or retrain"
        )
    raw = {n: t for n, t in tensors.items() if not n.startswith((AVERAGED, OPTIMIZER))}
    averaged = {n[len(AVERAGED) :]: t for n, t in tensors.items() if n.startswith(AVERAGED)}
    return raw, averaged or None, metadata


def read_state(path):
    """The optimizer's state of a checkpoint by `<slot>/<name>` (`m/conv1.weight`)."""
    tensors = netc_layout(read_safetensors(path))
    return {n[len(OPTIMIZER) :]: t for n, t in tensors.items() if n.startswith(OPTIMIZER)}


def put(model, tensors, path, keep=lambda name: True):
    """Puts `tensors` into the model by .net name; lists what is missing or misshapen."""
    state, problems = model.state_dict(), []
    for key, want in state.items():
        name = netc_name(model, key)
        if not keep(name):
            continue
        t = tensors.get(name)
        if t is None:
            problems.append(f"no tensor `{name}`")
        elif tuple(t.shape) != tuple(want.shape):
            problems.append(
                f"`{name}` has shape {file_shape(name, t.shape)}, the model needs {file_shape(name, want.shape)}"
            )
        else:
            state[key] = t
    if problems:
        raise Error(
            f"{path}: does not fit this model: {'; '.join(problems)}. Weights are named after "
            "the .net layers (see docs/checkpoints.md)"
        )
    model.load_state_dict(state)


def is_statistic(name):
    return name.endswith("running_mean") or name.endswith("running_var")


def run_masks(d, raw):
    """The run's pruning masks (netc prune, runtime/src/masks.rs): its own
    masks.safetensors, or the `mask/` tensors of the weights it starts
    from, copied into the run so that a resume needs only the run."""
    path = d / MASKS
    if path.exists():
        return read_weights(path)[0]
    masks = {n[len(MASK) :]: t for n, t in (raw or {}).items() if n.startswith(MASK)}
    if masks:
        save_checkpoint(path, {n: t.numpy() for n, t in masks.items()}, None, {})
    return masks


# --- training ---


def decay_rate(step):
    return min(MAX_DECAY, (1.0 + step) / (10.0 + step))


# --- optimizer, schedule, smoothing (runtime/src/optim.rs, same formulas) ---


def check_recipe(s):
    """Refuses values no run can use, with the messages of netc's program."""
    bad = []
    for flag, key in (("--momentum", "momentum"), ("--beta1", "beta1"), ("--beta2", "beta2"),
                      ("--smoothing", "smoothing")):
        if not 0.0 <= s[key] < 1.0:
            bad.append(f"{flag} {num(s[key])} is not in [0, 1)")
    if not (math.isfinite(s["epsilon"]) and s["epsilon"] > 0):
        bad.append(f"--epsilon {num(s['epsilon'])} is not a positive number")
    if not (math.isfinite(s["lr_factor"]) and s["lr_factor"] > 0):
        bad.append(f"--lr-factor {num(s['lr_factor'])} is not a positive number")
    if not (math.isfinite(s["lr_min"]) and 0 <= s["lr_min"] <= s["learning_rate"]):
        bad.append(f"--lr-min {num(s['lr_min'])} is not between 0 and the learning rate {num(s['learning_rate'])}")
    if s["schedule"] == "step" and s["lr_every"] == 0:
        bad.append(
            "the step schedule needs the steps between decays: give --lr-every N "
            "(or lr_every=N on the model's train line)"
        )
    if bad:
        raise Error(f"bad training settings: {'; '.join(bad)}")


def num(v):
    """A number as Rust's `to_string` writes it: 0.1, 1, 1e-8 (0.00000001)."""
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e16:
        return str(int(v))
    return repr(v)


def lr_at(s, t):
    """The learning rate of the update made at step `t` (updates done before it)."""
    lr = s["learning_rate"]
    if s["schedule"] == "step":
        lr = lr * s["lr_factor"] ** (t // max(s["lr_every"], 1))
    elif s["schedule"] == "cosine":
        done = min(t, s["steps"]) / max(s["steps"], 1)
        lr = s["lr_min"] + (lr - s["lr_min"]) * (1 + math.cos(math.pi * done)) / 2
    if t < s["warmup"]:
        lr = lr * (t + 1) / s["warmup"]
    return lr


def cross_entropy(logits, y, s):
    """Summed softmax cross-entropy with label smoothing `s`: (1 - s) * -log
    p(label) + s * mean over classes of -log p, as netc's program computes it."""
    return F.cross_entropy(logits.float(), y, reduction="sum", label_smoothing=s["smoothing"])


def make_optimizer(model, s, decayed):
    """torch.optim's optimizer for the recipe. AdamW decays each weight of a
    layer marked `decay` by `decay / its size` (the gradient the L2 term
    would give) in its update; the others keep the L2 term in the loss."""
    params = list(model.parameters())
    kind = s["optimizer"]
    if kind == "sgd":
        return torch.optim.SGD(params, lr=s["learning_rate"])
    if kind in ("momentum", "nesterov"):
        return torch.optim.SGD(
            params, lr=s["learning_rate"], momentum=s["momentum"], nesterov=kind == "nesterov"
        )
    betas, eps = (s["beta1"], s["beta2"]), s["epsilon"]
    if kind == "adam":
        return torch.optim.Adam(params, lr=s["learning_rate"], betas=betas, eps=eps)
    ids = {id(p) for p in decayed}
    groups = [{"params": [p for p in params if id(p) not in ids], "weight_decay": 0.0}]
    groups += [{"params": [p], "weight_decay": s["decay"] / p.numel()} for p in decayed]
    return torch.optim.AdamW(
        [g for g in groups if g["params"]], lr=s["learning_rate"], betas=betas, eps=eps
    )


def optimizer_state(optim, model, s):
    """The optimizer's state as checkpoint tensors `<slot>/<name>`."""
    out = {}
    for key, p in model.named_parameters():
        state = optim.state.get(p, {})
        for slot, field in SLOTS[s["optimizer"]].items():
            if field in state:
                out[f"{slot}/{netc_name(model, key)}"] = state[field].detach().float().cpu().numpy()
    return out


def load_optimizer_state(optim, model, s, saved, step, path):
    """Puts a checkpoint's state back, so a resumed run continues exactly:
    every parameter's state in every slot, in its size, or none (step 0)."""
    slots = SLOTS[s["optimizer"]]
    if not slots:
        return
    if step > 0 and not saved:
        raise Error(
            f"{path}: holds no {s['optimizer'].capitalize()} optimizer state (tensors "
            f"`optim/{next(iter(slots))}/...`) although the run is at step {step}; it was not "
            "written by this run's optimizer. Start a new run"
        )
    if not saved:
        return
    named = [(netc_name(model, k), p) for k, p in model.named_parameters()]
    bad = [
        f"`optim/{slot}/{name}`" for name, p in named for slot in slots
        if f"{slot}/{name}" not in saved or saved[f"{slot}/{name}"].numel() != p.numel()
    ]
    if bad:
        raise Error(
            f"{path}: damaged: the optimizer state lacks or misshapes {', '.join(sorted(bad))}; "
            "restore it from a backup or start a new run"
        )
    for name, p in named:
        state = {
            field: saved[f"{slot}/{name}"].to(p.device, p.dtype).reshape(p.shape).clone()
            for slot, field in slots.items()
        }
        if s["optimizer"] in ("adam", "adamw"):
            state["step"] = torch.tensor(float(step))
        optim.state[p] = state


def switch(v):
    if v not in ("on", "off"):
        raise argparse.ArgumentTypeError("on or off")
    return v


def arguments(argv):
    ap = argparse.ArgumentParser(
        description=f"Train `{NETC['model']}` ({NETC['file']}) with PyTorch, as netc's runtime "
        "does, into netc's run directories."
    )
    ap.add_argument("--data", help="cifar-10-batches-bin/ or train/<class>/ and test/<class>/")
    ap.add_argument("--steps", type=int)
    ap.add_argument("--lr", type=float)
    ap.add_argument("--batch-size", type=int, help="the global batch, over all processes")
    ap.add_argument("--seed", type=int, help="initial weights, batches and augmentation [1]")
    ap.add_argument("--augment", type=switch)
    ap.add_argument("--decay", type=switch)
    ap.add_argument("--average", type=switch)
    ap.add_argument("--optimizer", choices=OPTIMIZERS, help="how the weights move [sgd]")
    ap.add_argument("--momentum", type=float, help="of momentum and nesterov [0.9]")
    ap.add_argument("--beta1", type=float, help="Adam's first-moment decay [0.9]")
    ap.add_argument("--beta2", type=float, help="Adam's second-moment decay [0.999]")
    ap.add_argument("--epsilon", type=float, help="Adam's epsilon [1e-8]")
    ap.add_argument("--schedule", choices=SCHEDULES, help="learning-rate schedule [constant]")
    ap.add_argument("--lr-every", type=int, help="steps between the step schedule's decays")
    ap.add_argument("--lr-factor", type=float, help="what the step schedule multiplies the rate by [0.1]")
    ap.add_argument("--lr-min", type=float, help="the rate the cosine schedule ends at [0]")
    ap.add_argument("--warmup", type=int, help="steps of linear warm-up of the rate [0]")
    ap.add_argument("--smoothing", type=float, help="label smoothing, in [0, 1) [0]")
    ap.add_argument("--resume", help="continue the run in this directory")
    ap.add_argument("--init-from", help="start from the weights of this safetensors file")
    ap.add_argument("--runs", default="runs", help="where run directories go")
    ap.add_argument("--checkpoint-secs", type=float, default=60)
    ap.add_argument("--eval-every", type=int, help="steps between test evaluations (0: at the end) [1000]")
    ap.add_argument("--log-every", type=int, help="steps between log lines [10]")
    ap.add_argument("--quiet", action="store_true", help="no progress line")
    ap.add_argument("--nproc", type=int, default=1, help="processes on this machine (data parallel)")
    ap.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    ap.add_argument("--threads", type=int, help="CPU threads per process [cores / processes]")
    ap.add_argument("--channels-last", action="store_true", help="NHWC activations")
    ap.add_argument("--bf16", action="store_true", help="bfloat16 autocast (default fp32)")
    a = ap.parse_args(argv)
    if a.data is None and a.resume is None:
        ap.error("give the training data: --data DIR")
    for flag, v, low in (
        ("--steps", a.steps, 0), ("--batch-size", a.batch_size, 1), ("--nproc", a.nproc, 1),
        ("--eval-every", a.eval_every, 0), ("--log-every", a.log_every, 0),
        ("--seed", a.seed, 0), ("--threads", a.threads, 1),
        ("--lr-every", a.lr_every, 1), ("--warmup", a.warmup, 0),
    ):
        if v is not None and v < low:
            ap.error(f"{flag} must be at least {low}")
    if a.lr is not None and not (math.isfinite(a.lr) and a.lr > 0):
        ap.error("--lr must be a positive number")
    return a


def setup(a, world):
    """Rank 0's part: the run directory, created or resumed, and the data
    checked. Returns what every process needs."""
    if a.resume:
        d, held, settings, notes = resume_run(a.resume, a)
    else:
        settings, notes, d, held = new_settings(a), [], None, None
    s = settings["settings"]
    check_recipe(s)
    if s["batch_size"] < world:
        raise Error(
            f"the batch of {s['batch_size']} is smaller than the {world} processes; "
            "each needs at least one example: give a larger --batch-size or fewer processes"
        )
    h, w, c = INPUT[1], INPUT[2], INPUT[0]
    if c != 3:
        raise Error(f"{NETC['file']}: the input has {c} channels; CIFAR-10 images have 3")
    if h > SIDE or w > SIDE:
        raise Error(f"{NETC['file']}: the input is {h}x{w}; CIFAR-10 images are 32x32")
    root = Path(settings["data"])
    data = {}
    for split in ("train", "test"):
        images, labels, classes = load(root, split)
        check_classes(classes, s["classes"], root)
        data[split] = (images, labels)
    step, raw, averaged, source, state = 0, None, None, None, {}
    if d is not None and (d / CHECKPOINT).exists():
        path = source = d / CHECKPOINT
        raw, averaged, meta = read_weights(path)
        state = read_state(path)
        try:
            step = int(meta["step"])
        except (KeyError, ValueError):
            shown = f"`step` = {meta['step']!r}" if "step" in meta else "no `step`"
            raise Error(
                f"{path}: damaged: its metadata holds {shown} instead of the step it was written at; "
                "restore it from a backup or start a new run"
            ) from None
        if step > s["steps"]:
            raise Error(
                f"{d}: the checkpoint is at step {step}, past the run's end at step {s['steps']}; "
                f"give --steps {step} or more"
            )
    elif settings.get("init_from"):
        source = Path(settings["init_from"])
        raw, _, _ = read_weights(source)
    if d is None:
        d, held = create_run(a.runs, settings)
    elif notes:
        save_settings(d, settings)
    for n in notes:
        print(f"note: {d}: {n}", file=sys.stderr)
    truncate_log(d / LOG, step)
    return {
        "dir": d, "lock": held, "settings": settings, "step": step,
        "raw": raw, "averaged": averaged, "source": source, "data": data, "state": state,
        "masks": run_masks(d, raw),
    }


def evaluate(model, images, labels, plan, device, memory_format):
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(labels), EVAL_BATCH):
            x = standardize(central(images[i : i + EVAL_BATCH], plan["height"], plan["width"]))
            x = x.permute(0, 3, 1, 2).contiguous(memory_format=memory_format)
            with autocast(plan, device):
                logits = model(x)
            correct += int((logits.argmax(1) == labels[i : i + EVAL_BATCH]).sum())
    model.train()
    return correct / len(labels)


# Batches measured for the averaged weights' batch-norm statistics, and the
# seed of their sampler, augmentation and dropout (runtime/src/statistics.rs).
STATISTICS_BATCHES = 40
STATISTICS_SEED = 0x5EED0B47


def measure_statistics(model, images, labels, plan, device, memory_format, batches=STATISTICS_BATCHES):
    """Batch norm's running statistics for the weights now in `model`, by
    .net name: in training mode, the plain mean over `batches` training
    batches of their own, as SWA's `update_bn` does. The moving
    average covers trained tensors only, so the statistics the live weights
    keep do not fit the averaged ones (docs/xception.md). The model is left
    holding the measured statistics."""
    norms = [m for m in model.modules() if hasattr(m, "running_mean")]
    if not norms:
        return {}
    seed = plan["seed"] ^ STATISTICS_SEED
    own = {**plan, "seed": seed, "sampler": Sampler(len(labels), seed)}
    momenta = [m.momentum for m in norms]
    model.train()
    with torch.no_grad():
        for k in range(batches):
            for m in norms:
                # TensorFlow's momentum is the share kept: k / (k + 1) makes
                # the running statistic the plain mean of the k + 1 batches.
                m.momentum = k / (k + 1.0)
            x, _ = train_batch(images, labels, own, k, slice(None))
            torch.manual_seed(int(stream(seed, 3, k).integers(2**62)))
            with autocast(plan, device):
                model(x.permute(0, 3, 1, 2).contiguous(memory_format=memory_format))
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    return {
        netc_name(model, k): t.detach().clone()
        for k, t in model.state_dict().items()
        if is_statistic(netc_name(model, k))
    }


def autocast(plan, device):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=plan["bf16"])


class Progress:
    """One line on a terminal's standard error, rewritten at each log step."""

    def __init__(self, show, total, start):
        self.show, self.total, self.start = show and sys.stderr.isatty(), total, start
        self.began, self.text = time.monotonic(), ""

    def update(self, step, message):
        if not self.show:
            return
        spent = time.monotonic() - self.began
        left = spent / max(step - self.start, 1) * (self.total - step)
        done = int(30 * step / max(self.total, 1))
        self.text = f"{'#' * done}{'-' * (30 - done)} step {step}/{self.total}  {message}  {clock(spent)} elapsed, {clock(left)} left"
        sys.stderr.write("\r\033[K" + self.text)
        sys.stderr.flush()

    def println(self, line, quiet):
        if self.show:
            sys.stderr.write("\r\033[K" + line + "\n" + self.text)
            sys.stderr.flush()
        elif not quiet:
            print(line, file=sys.stderr, flush=True)

    def finish(self):
        if self.show:
            sys.stderr.write("\n")


def clock(seconds):
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02}:{s:02}" if h else f"{m}:{s:02}"


def prune_masks(model, masks, shadow, d, device):
    """(weight, its average or None, where it is zero) for every masked weight."""
    params = {netc_name(model, k): p for k, p in model.named_parameters()}
    bad = [n for n, m in masks.items() if n not in params or tuple(m.shape) != tuple(params[n].shape)]
    if bad:
        raise Error(f"{d / MASKS}: the pruning masks do not fit this model: {', '.join(sorted(bad))}")
    return [
        (params[n], shadow[n] if shadow else None, (m == 0).to(device))
        for n, m in sorted(masks.items())
    ]


def prune_(pruned):
    with torch.no_grad():
        for p, avg, zero in pruned:
            p.masked_fill_(zero, 0.0)
            if avg is not None:
                avg.masked_fill_(zero, 0.0)


def train(a):
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    per_node = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
    cuda = a.device == "cuda" or (a.device == "auto" and torch.cuda.is_available())
    if cuda and not torch.cuda.is_available():
        raise Error("--device cuda: PyTorch sees no CUDA device here")
    device = torch.device("cuda", local % max(torch.cuda.device_count(), 1)) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    torch.set_num_threads(a.threads or max(1, (os.cpu_count() or 1) // per_node))
    if world > 1:
        dist.init_process_group("nccl" if cuda else "gloo")

    # Rank 0 opens the run and tells the others; an error there ends all.
    got = [None]
    if rank == 0:
        try:
            run = setup(a, world)
            got[0] = {k: run[k] for k in ("dir", "settings", "step", "state", "masks")}
        except Error as e:
            got[0] = {"error": str(e)}
    if world > 1:
        dist.broadcast_object_list(got, src=0)
    if "error" in got[0]:
        raise Error(got[0]["error"]) if rank == 0 else SystemExit(1)
    if rank != 0:
        run = dict(got[0])
        root = Path(run["settings"]["data"])
        run["data"] = {split: load(root, split)[:2] for split in ("train", "test")}
    settings, s = run["settings"], run["settings"]["settings"]
    d, step = Path(run["dir"]), run["step"]
    batch = s["batch_size"]

    torch.manual_seed(settings["seed"])
    model = Model().to(device)
    memory_format = torch.channels_last if a.channels_last else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    shadow = None
    if rank == 0:
        if run["raw"] is not None:
            put(model, {k: v.to(device) for k, v in run["raw"].items()}, run["source"])
        if s["average"]:
            # A checkpoint's average goes on; a new run's starts from the weights.
            avg = None
            if run["source"] == d / CHECKPOINT:
                avg = run["averaged"] or run["raw"]
            names = [netc_name(model, k) for k, _ in model.named_parameters()]
            if avg is not None:
                bad = [n for n, p in zip(names, model.parameters())
                       if n not in avg or tuple(avg[n].shape) != tuple(p.shape)]
                if bad:
                    raise Error(
                        f"{d / CHECKPOINT}: damaged: the averaged weights lack or misshape "
                        f"{', '.join('`ema/' + n + '`' for n in bad)}; restore it from a backup or start a new run"
                    )
            shadow = {
                n: torch.empty_like(p).copy_(avg[n]) if avg is not None else p.detach().clone()
                for n, p in zip(names, model.parameters())
            }
    # Pruned weights (and their averages) are put back to zero after every step.
    pruned = prune_masks(model, run["masks"], shadow, d, device)
    prune_(pruned)
    decayed = [p for k, p in model.named_parameters() if netc_name(model, k) in NETC["decayed"]]
    if s["decay"] <= 0:
        decayed = []
    net = model
    if world > 1:
        # Broadcasts rank 0's weights to every process, then averages gradients.
        net = DistributedDataParallel(model, device_ids=[device.index] if cuda else None)
    optim = make_optimizer(model, s, decayed)
    load_optimizer_state(optim, model, s, run["state"], step, d / CHECKPOINT)
    # AdamW decays the marked layers in its update; the others in the loss.
    if s["optimizer"] == "adamw":
        decayed = []

    train_images, train_labels = (torch.from_numpy(t).to(device) for t in run["data"]["train"])
    test_images, test_labels = (torch.from_numpy(t).to(device) for t in run["data"]["test"])
    plan = {
        "batch": batch, "height": INPUT[1], "width": INPUT[2], "augment": s["augment"],
        "seed": settings["seed"], "sampler": Sampler(len(train_labels), settings["seed"]),
        "bf16": a.bf16,
    }
    # Process r takes examples r, r + world, ...: shares differ by one at most,
    # and its loss is weighted so that DDP's mean of gradients is the gradient
    # of the global batch's mean loss, whatever the number of processes.
    share = slice(rank, batch, world)
    weight = world / batch
    log = Log(d / LOG) if rank == 0 else None
    progress = Progress(not a.quiet and rank == 0, s["steps"], step)
    checkpoint = d / CHECKPOINT

    def kept():
        if checkpoint.exists():
            return f"the last good checkpoint is kept in {checkpoint}"
        return "no checkpoint was written yet"

    def save(at):
        raw = tensors_of(model)
        if any(not np.isfinite(v).all() for v in raw.values()):
            raise Error(
                f"the weights stopped being finite numbers at step {at}; training stopped and {kept()}. "
                "Lower --lr or the decay factor"
            )
        avg = {n: t.detach().float().cpu().numpy() for n, t in averaged(at).items()} if shadow else None
        meta = {"step": str(at), "model": NETC["model"], "seed": str(settings["seed"]), "engine": "torch"}
        state = optimizer_state(optim, model, s)
        if state:
            # Says what the `optim/` tensors are; the seed's SGD has none.
            meta["optimizer"] = s["optimizer"]
        save_checkpoint(checkpoint, {**raw, **{OPTIMIZER + k: v for k, v in state.items()}}, avg, meta)

    def live():
        return {netc_name(model, k): t.detach().clone() for k, t in model.state_dict().items()}

    measured = [None]

    def averaged(at):
        """The averaged weights with batch norm's statistics measured for
        them, once a step (for evaluation and save); the model keeps its own."""
        if measured[0] is None or measured[0][0] != at:
            own = live()
            put(model, shadow, d, keep=lambda n: not is_statistic(n))
            try:
                stats = measure_statistics(model, train_images, train_labels, plan, device, memory_format)
            finally:
                put(model, own, d)
            measured[0] = (at, {**{n: t.detach().clone() for n, t in shadow.items()}, **stats})
        return measured[0][1]

    def test_accuracy():
        if shadow is None:
            return evaluate(model, test_images, test_labels, plan, device, memory_format)
        own = live()
        put(model, averaged(step), d)
        try:
            return evaluate(model, test_images, test_labels, plan, device, memory_format)
        finally:
            put(model, own, d)

    params = [p for p in model.parameters()]
    shadows = [shadow[netc_name(model, k)] for k, _ in model.named_parameters()] if shadow else []
    last_save, window, rates = time.monotonic(), (time.monotonic(), 0), []
    loss_value, accuracy, acc = float("nan"), None, None
    model.train()
    while step < s["steps"]:
        x, y = train_batch(train_images, train_labels, plan, step, share)
        x = x.permute(0, 3, 1, 2).contiguous(memory_format=memory_format)
        # Dropout draws from a stream of its own per step and process.
        torch.manual_seed(int(stream(settings["seed"], 3, step).integers(2**62)) + rank)
        with autocast(plan, device):
            logits = net(x)
        ce = cross_entropy(logits, y, s)
        decay = sum(p.square().sum() / (2 * p.numel()) for p in decayed) * s["decay"]
        optim.zero_grad(set_to_none=True)
        (ce * weight + decay).backward()
        # The global batch's loss and accuracy, for the log and the NaN check.
        stats = torch.stack([ce.detach(), (logits.argmax(1) == y).sum().float()]).double()
        if world > 1:
            dist.all_reduce(stats)
        loss_value = float(stats[0]) / batch + (float(decay.detach()) if decayed else 0.0)
        if not math.isfinite(loss_value):
            if rank == 0:
                progress.finish()
                log.write({"step": step, "loss": None, "error": "loss is not a number"})
            raise Error(
                f"the loss became {loss_value} at step {step}; training stopped and {kept()}. "
                "Lower --lr or the decay factor"
            )
        for group in optim.param_groups:
            group["lr"] = lr_at(s, step)
        optim.step()
        prune_(pruned)
        step += 1
        if rank != 0:
            continue
        if shadows:
            with torch.no_grad():
                torch._foreach_lerp_(shadows, params, 1.0 - decay_rate(step))
            prune_(pruned)
        window = (window[0], window[1] + batch)
        if step % settings["log_every"] == 0 or step == s["steps"]:
            rate = window[1] / max(time.monotonic() - window[0], 1e-9)
            rates.append(rate)
            window = (time.monotonic(), 0)
            accuracy = float(stats[1]) / batch
            progress.update(step, f"loss {loss_value:.3f}  acc {100 * accuracy:.0f} %  {rate:.0f} ex/s")
            log.write({"step": step, "loss": loss_value, "accuracy": accuracy, "examples_per_second": rate})
        if (settings["eval_every"] > 0 and step % settings["eval_every"] == 0) or step == s["steps"]:
            acc = test_accuracy()
            log.write({"step": step, "test_accuracy": acc, "averaged": s["average"]})
            progress.println(f"step {step}: test accuracy {100 * acc:.2f} %", a.quiet)
        if time.monotonic() - last_save >= a.checkpoint_secs and step < s["steps"]:
            try:
                save(step)
            except Error as e:
                log.write({"step": step, "error": str(e)})
                raise
            last_save = time.monotonic()
    if rank == 0:
        progress.finish()
        try:
            save(step)
        except Error as e:
            log.write({"step": step, "error": str(e)})
            raise
        rates.sort()
        print(json.dumps({
            "run": str(d), "steps": step, "loss": loss_value,
            "examples_per_second": rates[len(rates) // 2] if rates else 0.0,
            "test_accuracy": acc, "engine": "torch", "processes": world,
        }), flush=True)
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def worker(local, nproc, port, argv):
    """One of `--nproc` processes, set up as torchrun would set it up."""
    os.environ.update({
        "RANK": str(local), "LOCAL_RANK": str(local), "WORLD_SIZE": str(nproc),
        "LOCAL_WORLD_SIZE": str(nproc), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
    })
    code = main(argv)
    # Out without the interpreter's teardown, which can find Gloo's threads
    # still joinable and abort ("terminate called without an active
    # exception": one of 2 processes, once in the tests on 2026-11-28, after
    # a run that had ended). Everything this process wrote is on disk by now:
    # checkpoints are fsynced and renamed, log lines are single os.writes.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    a = arguments(argv)
    if a.nproc > 1 and "WORLD_SIZE" not in os.environ:
        import torch.multiprocessing as mp

        try:
            mp.start_processes(worker, (a.nproc, free_port(), argv), nprocs=a.nproc, start_method="spawn")
        except mp.ProcessExitedException as e:
            return e.exit_code if e.exit_code and e.exit_code > 0 else 1
        except mp.ProcessRaisedException as e:
            print(f"error: a training process failed:\n{e}", file=sys.stderr)
            return 1
        return 0
    try:
        train(a)
    except Error as e:
        if int(os.environ.get("RANK", "0")) == 0:
            print(f"error: {e}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
