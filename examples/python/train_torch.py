#!/usr/bin/env python3
"""PyTorch version of the reference trainer: the same protocol as train.py (docs/trainer-protocol.md).

NOTE: this script cannot run on the project's CI machines: PyTorch is not installed there (and there
is no package index to install it from). It is therefore kept small, is checked there only with
`python3 -m py_compile`, and the protocol itself is exercised through train.py. Requires PyTorch
>= 2.0 (CPU is enough).

What it shows beyond train.py:
- a checkpoint is `torch.save` of the model and optimizer state_dicts plus the RNG states (torch's,
  Python's `random`), written to a temp file in the checkpoint directory, flushed and fsynced,
  renamed into place, and the directory fsynced, before the `checkpoint` line is printed;
- resuming uses `torch.load(..., weights_only=True)` and restores all of it;
- torch.save output is not promised to be byte-identical for identical state, so file names carry
  the attempt number and an announced file is never rewritten.

Params (EXPERIMENT_PARAMS): epochs 5, batch_size 16, lr 0.05, momentum 0.9, samples 400, features 4,
classes 3, hidden 16, seed 7, step_delay 0.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import random
import select
import signal
import stat
import struct
import sys
import threading
import time

EXIT_NONRETRYABLE = 3
ORPHAN_GRACE_SECONDS = 2.0
CHECKPOINT_FORMAT = "temporal-experiments/train_torch.py"


class Fatal(Exception):
    pass


# ---- protocol helpers (the same as in train.py, condensed) -------------------------------------

class State:
    interrupted = False
    parent_gone = False
    stdout_broken = False


def on_stop_signal(_signum, _frame):
    State.interrupted = True  # flag only: no I/O in a signal handler


def watch_stdin():
    """EOF on stdin (a pipe from the plugin) means the plugin is gone: stop, and never outlive it."""
    try:
        mode = os.fstat(0).st_mode
    except OSError:
        return
    if not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)):
        return

    def run():
        try:
            while True:
                try:
                    if not os.read(0, 65536):
                        break
                except BlockingIOError:
                    select.select([0], [], [])
        except OSError:
            pass
        State.parent_gone = State.interrupted = True
        time.sleep(ORPHAN_GRACE_SECONDS)
        os._exit(1)

    threading.Thread(target=run, daemon=True).start()


def emit(message):
    if State.stdout_broken:
        return
    try:
        sys.stdout.write(json.dumps(message, allow_nan=False, separators=(",", ":")) + "\n")
        sys.stdout.flush()
    except BrokenPipeError:
        State.stdout_broken = State.parent_gone = State.interrupted = True
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def log(text):
    try:
        print(f"train_torch.py: {text}", file=sys.stderr, flush=True)
    except OSError:
        pass


def fsync_dir(directory):
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def describe(value):
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, (int, float)):
        return f"number {value!r}"
    if isinstance(value, str):
        return json.dumps(value[:60])
    return "an array" if isinstance(value, list) else "an object"


# ---- params ------------------------------------------------------------------------------------

def _int(lo, hi):
    def check(name, v):
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise Fatal(f"params.{name}: expected an integer from {lo} to {hi}, received {describe(v)}")
        return v
    return check


def _num(lo, hi, lo_open=False, hi_open=False):
    def check(name, v):
        ok = not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v)
        ok = ok and (v > lo if lo_open else v >= lo) and (v < hi if hi_open else v <= hi)
        if not ok:
            raise Fatal(
                f"params.{name}: expected a number {'>' if lo_open else '>='} {lo} and "
                f"{'<' if hi_open else '<='} {hi}, received {describe(v)}"
            )
        return float(v)
    return check


PARAMS = {
    "epochs": (5, _int(1, 1_000_000)),
    "batch_size": (16, _int(1, 1_000_000)),
    "lr": (0.05, _num(0, 100, lo_open=True)),
    "momentum": (0.9, _num(0, 1, hi_open=True)),
    "samples": (400, _int(1, 10_000_000)),
    "features": (4, _int(1, 10_000)),
    "classes": (3, _int(2, 1_000)),
    "hidden": (16, _int(1, 100_000)),
    "seed": (7, _int(0, 2**53 - 1)),
    "step_delay": (0.0, _num(0, 3600)),
}
FINGERPRINTED = ("samples", "features", "classes", "hidden", "seed", "batch_size", "lr", "momentum")


def parse_params(text):
    try:
        raw = json.loads(text) if text.strip() else {}
    except ValueError as err:
        raise Fatal(f"EXPERIMENT_PARAMS: expected a JSON object, received invalid JSON ({err})") from None
    if not isinstance(raw, dict):
        raise Fatal(f"EXPERIMENT_PARAMS: expected a JSON object, received {describe(raw)}")
    for key in sorted(raw):
        if key not in PARAMS:
            raise Fatal(f"params.{key}: unknown parameter (expected one of {', '.join(sorted(PARAMS))})")
    return {name: (check(name, raw[name]) if name in raw else default) for name, (default, check) in PARAMS.items()}


# ---- training ----------------------------------------------------------------------------------

def main_with_torch(p):
    import torch
    import torch.nn.functional as F
    from torch import nn

    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)  # same reduction order in every attempt

    env = os.environ
    attempt_text = env.get("EXPERIMENT_ATTEMPT") or "1"
    if not attempt_text.isdigit() or int(attempt_text) < 1:
        raise Fatal(f"EXPERIMENT_ATTEMPT: expected an integer >= 1, received {describe(attempt_text)}")
    attempt = int(attempt_text)
    ckpt_dir = os.path.abspath(env.get("EXPERIMENT_CHECKPOINT_DIR") or "")
    if not env.get("EXPERIMENT_CHECKPOINT_DIR"):
        raise Fatal("EXPERIMENT_CHECKPOINT_DIR: expected the path of a directory, received nothing")
    os.makedirs(ckpt_dir, exist_ok=True)
    fp_fields = {k: p[k] for k in FINGERPRINTED}
    fp = hashlib.sha256(json.dumps(fp_fields, sort_keys=True).encode()).hexdigest()

    # Data: a function of the seed only.
    g = torch.Generator().manual_seed(p["seed"])
    centers = torch.rand(p["classes"], p["features"], generator=g, dtype=torch.float64) * 3 - 1.5
    Y = torch.randint(p["classes"], (p["samples"],), generator=g)
    X = (centers[Y] + torch.randn(p["samples"], p["features"], generator=g, dtype=torch.float64)).float()

    torch.manual_seed(p["seed"])
    random.seed(p["seed"])
    model = nn.Sequential(nn.Linear(p["features"], p["hidden"]), nn.ReLU(), nn.Linear(p["hidden"], p["classes"]))
    opt = torch.optim.SGD(model.parameters(), lr=p["lr"], momentum=p["momentum"])
    steps = -(-p["samples"] // p["batch_size"])
    epoch, step, loss_sum = 0, 0, 0.0
    last_saved = None

    resume = env.get("EXPERIMENT_RESUME_FROM") or ""
    if resume:
        try:
            ck = torch.load(resume, map_location="cpu", weights_only=True)
        except Exception as err:  # noqa: BLE001 - any load failure means the file is unusable
            raise Fatal(f"checkpoint {resume}: cannot be loaded ({type(err).__name__}: {err})") from None
        if not isinstance(ck, dict) or ck.get("format") != CHECKPOINT_FORMAT:
            raise Fatal(f"checkpoint {resume}: expected format {CHECKPOINT_FORMAT!r}")
        if ck.get("fingerprint") != fp:
            raise Fatal(f"checkpoint {resume} was written with different params ({ck.get('fingerprintParams')} vs {fp_fields})")
        epoch, step, loss_sum = int(ck["epoch"]), int(ck["step"]), float(ck["epochLossSum"])
        for name in ("EXPERIMENT_RESUME_EPOCH", "EXPERIMENT_RESUME_STEP"):
            want = epoch if name.endswith("EPOCH") else step
            if env.get(name) and env[name] != str(want):
                raise Fatal(f"{name}: expected {want} (the checkpoint's), received {describe(env[name])}")
        if epoch > p["epochs"] or (epoch == p["epochs"] and step > 0) or step >= steps:
            raise Fatal(f"checkpoint {resume} is at epoch {epoch} step {step}, outside params.epochs {p['epochs']}")
        try:
            model.load_state_dict(ck["model"])
            opt.load_state_dict(ck["optimizer"])
        except (RuntimeError, KeyError, ValueError) as err:
            raise Fatal(f"checkpoint {resume}: state does not fit the model ({err})") from None
        torch.set_rng_state(ck["rng"]["torch"])
        py_state = ck["rng"]["python"]
        random.setstate((py_state[0], tuple(py_state[1]), py_state[2]))
        last_saved = (epoch, step)
        log(f"attempt {attempt}: resuming from {resume} (epoch {epoch} step {step})")

    def evaluate():
        with torch.no_grad():
            logits = model(X)
            return F.cross_entropy(logits, Y).item(), (logits.argmax(1) == Y).double().mean().item()

    def save_checkpoint():
        nonlocal last_saved
        loss, acc = evaluate()
        state = {
            "format": CHECKPOINT_FORMAT,
            "fingerprint": fp,
            "fingerprintParams": fp_fields,
            "epoch": epoch,
            "step": step,
            "epochLossSum": loss_sum,
            "model": model.state_dict(),
            "optimizer": opt.state_dict(),
            "rng": {"torch": torch.get_rng_state(), "python": random.getstate()},
        }
        name = f"ckpt-e{epoch:04d}-s{step:06d}-a{attempt}.pt"
        final = os.path.join(ckpt_dir, name)
        tmp = os.path.join(ckpt_dir, f".tmp-{name}-{os.getpid()}")
        try:
            with open(tmp, "wb") as f:
                torch.save(state, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, final)
            fsync_dir(ckpt_dir)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        emit({"type": "checkpoint", "path": final, "epoch": epoch, "step": step,
              "metrics": {"loss": loss, "accuracy": acc}})
        last_saved = (epoch, step)

    while epoch < p["epochs"]:
        order = torch.randperm(p["samples"], generator=torch.Generator().manual_seed((p["seed"] * 1_000_003 + epoch) % 2**63))
        while step < steps:
            if State.interrupted:  # step boundary
                if last_saved != (epoch, step):
                    save_checkpoint()
                emit({"type": "interrupted", "epoch": epoch, "step": step})
                log(f"interrupted at epoch {epoch} step {step}")
                return 0
            idx = order[step * p["batch_size"]:(step + 1) * p["batch_size"]]
            model.train()
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(X[idx]), Y[idx])
            loss.backward()
            opt.step()
            batch_loss = loss.item()
            if not math.isfinite(batch_loss):
                raise Fatal(f"training diverged at epoch {epoch} step {step + 1}; lower params.lr (received {p['lr']})")
            step += 1
            loss_sum += batch_loss
            emit({"type": "progress", "epoch": epoch, "step": step, "epochs": p["epochs"],
                  "metrics": {"loss": loss_sum / step, "batchLoss": batch_loss}})
            deadline = time.monotonic() + p["step_delay"]
            while not State.interrupted and time.monotonic() < deadline:
                time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
        epoch, step, loss_sum = epoch + 1, 0, 0.0  # end of epoch e is (e + 1, 0)
        save_checkpoint()

    loss, acc = evaluate()
    h = hashlib.sha256()
    for tensor in model.state_dict().values():  # every value as a little-endian float64, in order
        values = tensor.detach().to(torch.float64).flatten().tolist()
        h.update(struct.pack(f"<{len(values)}d", *values))
    emit({"type": "result", "metrics": {"loss": loss, "accuracy": acc}, "modelSha256": h.hexdigest()})
    return 0


def main():
    signal.signal(signal.SIGTERM, on_stop_signal)  # before the slow `import torch`
    signal.signal(signal.SIGINT, on_stop_signal)
    watch_stdin()
    try:
        p = parse_params(os.environ.get("EXPERIMENT_PARAMS", ""))
        try:
            import torch  # noqa: F401
        except ImportError:
            raise Fatal("train_torch.py needs PyTorch, which is not installed for " + sys.executable) from None
        return main_with_torch(p)
    except Fatal as err:
        emit({"type": "fatal", "message": str(err)})
        log(f"fatal: {err}")
        return EXIT_NONRETRYABLE


if __name__ == "__main__":
    sys.exit(main())
