#!/usr/bin/env python3
"""Reference trainer for the temporal-experiments `command` trainer protocol.

The protocol (environment, stdout JSON lines, checkpoint files, signals, exit codes) is specified in
docs/trainer-protocol.md; this script follows it exactly and is what the plugin's tests run.

It trains softmax (multinomial logistic) regression on a seeded synthetic data set with mini-batch
SGD with momentum, in plain Python floats and the standard library only. Every attempt that resumes
from one of its checkpoints ends with the same bits as an uninterrupted run: the data set is
regenerated from `seed`, the shuffle of epoch e is derived from (seed, e), and a checkpoint holds
the weights, the optimizer state and the position (epoch, step) with floats that round-trip exactly.

Run it by hand:

    mkdir -p /tmp/ckpt
    EXPERIMENT_CHECKPOINT_DIR=/tmp/ckpt EXPERIMENT_PARAMS='{"epochs": 3}' python3 train.py

Params (EXPERIMENT_PARAMS, a JSON object; every key is optional):
    epochs          int >= 1        5      passes over the data set
    batch_size      int >= 1        16     samples per step (the last step of an epoch may be smaller)
    lr              number > 0      0.1    learning rate
    momentum        0 <= number < 1 0.9    SGD momentum
    samples         int >= 1        400    data set size
    features        int >= 1        4      input features
    classes         int >= 2        3      output classes
    seed            int >= 0        7      data set, and through it everything else
    step_delay      number >= 0     0      seconds to sleep after every step (tests interrupt mid-epoch)
  Test hooks (not part of the checkpoint fingerprint, so a resumed run may drop them):
    ignore_sigterm  bool            false  ignore SIGTERM, so the plugin has to SIGKILL after its grace period
    bad_checkpoint_path  string     -      the first checkpoint line of the process names this path instead
                                           of a real file (which is then not written); later ones are real
    fail_at_epoch   int             -      on attempt 1 only, exit 1 (a retryable crash) in the middle of
                                           this zero-based epoch, after step max(1, steps_per_epoch // 2)
    stdout_noise    bool            false  also print non-protocol lines on stdout (the plugin must log them)
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
EXIT_CRASH = 1
# After stdin reaches EOF (the plugin is gone), the main loop gets this long to save and exit.
ORPHAN_GRACE_SECONDS = 2.0
# A step_delay sleep is cut into slices this long so an interruption is noticed promptly.
SLEEP_SLICE_SECONDS = 0.05

CHECKPOINT_FORMAT = "temporal-experiments/train.py"
CHECKPOINT_VERSION = 1


class Fatal(Exception):
    """A non-retryable error: reported with a `fatal` line and exit code 3."""


# --------------------------------------------------------------------------------------------
# Protocol helpers. These are independent of the model; copy them into your own trainer.
# --------------------------------------------------------------------------------------------


class _Interruption:
    requested = False  # set by the SIGTERM/SIGINT handler or the stdin watcher; read at step boundaries
    signum = 0  # the signal that asked, 0 if none
    parent_gone = False  # stdin reached EOF or stdout is broken: nobody reads our lines any more


INTERRUPT = _Interruption()
_stdout_broken = False


def _on_stop_signal(signum, _frame):
    # Only set flags here: no I/O, no locks. The training loop acts on them at the next step boundary.
    INTERRUPT.signum = signum
    INTERRUPT.requested = True


def install_signal_handlers() -> None:
    signal.signal(signal.SIGTERM, _on_stop_signal)
    signal.signal(signal.SIGINT, _on_stop_signal)


def watch_stdin() -> bool:
    """Treats EOF on stdin as "the plugin died": interrupt, and hard-exit if the loop does not stop.

    Only when stdin is a pipe or socket (what the plugin provides); a terminal or /dev/null is left
    alone so the script can be run by hand.
    """
    try:
        mode = os.fstat(0).st_mode
    except OSError:
        return False
    if not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)):
        return False

    def run() -> None:
        # os.read on the raw fd, not sys.stdin: a daemon thread blocked inside a buffered reader can
        # abort the interpreter at shutdown.
        try:
            while True:
                try:
                    chunk = os.read(0, 65536)
                except BlockingIOError:
                    select.select([0], [], [])
                    continue
                if not chunk:
                    break  # EOF: the write end is closed, i.e. the plugin process is gone
        except OSError:
            pass
        INTERRUPT.parent_gone = True
        INTERRUPT.requested = True
        time.sleep(ORPHAN_GRACE_SECONDS)
        # Still alive: the main loop is stuck somewhere. Do not outlive the plugin.
        try:
            os.write(2, b"train.py: stdin closed and the training loop did not stop; exiting\n")
        except OSError:
            pass
        os._exit(EXIT_CRASH)

    threading.Thread(target=run, name="stdin-watch", daemon=True).start()
    return True


def _silence_fd(fd: int) -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, fd)
        os.close(devnull)
    except OSError:
        pass


def emit(message: dict) -> None:
    """Writes one protocol line to stdout and flushes it. A broken pipe means the plugin is gone."""
    global _stdout_broken
    if _stdout_broken:
        return
    line = json.dumps(message, allow_nan=False, separators=(",", ":")) + "\n"
    try:
        sys.stdout.write(line)
        sys.stdout.flush()
    except BrokenPipeError:
        _stdout_broken = True
        INTERRUPT.parent_gone = True
        INTERRUPT.requested = True
        _silence_fd(sys.stdout.fileno())  # so the interpreter's final flush does not fail too


def log(text: str) -> None:
    """Human-readable log line on stderr (the plugin logs it; the last lines go into failure messages)."""
    try:
        sys.stderr.write(f"train.py: {text}\n")
        sys.stderr.flush()
    except (BrokenPipeError, OSError):
        _silence_fd(2)


def write_file_atomically(directory: str, name: str, data: bytes) -> str:
    """Temp file in the same directory, fsync, rename over the final name, fsync the directory."""
    final = os.path.join(directory, name)
    # The `.tmp-` prefix: the plugin never adopts such files and deletes stale ones left by a kill.
    tmp = os.path.join(directory, f".tmp-{name}-{os.getpid()}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0), 0o644)
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, final)
        dir_fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return final


def describe(value) -> str:
    """How a received value is named in error messages (same wording as the plugin's)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {'true' if value else 'false'}"
    if isinstance(value, (int, float)):
        return f"number {json.dumps(value) if isinstance(value, int) or math.isfinite(value) else value}"
    if isinstance(value, str):
        return json.dumps(value if len(value) <= 60 else value[:60] + "\u2026")
    if isinstance(value, list):
        return "an array"
    return "an object"


# --------------------------------------------------------------------------------------------
# Environment and params
# --------------------------------------------------------------------------------------------


class Env:
    def __init__(self) -> None:
        e = os.environ
        self.experiment_id = e.get("EXPERIMENT_ID", "") or "local"
        self.session_id = e.get("EXPERIMENT_SESSION_ID", "") or "local"
        attempt = e.get("EXPERIMENT_ATTEMPT", "") or "1"
        if not attempt.isdigit() or int(attempt) < 1:
            raise Fatal(f"EXPERIMENT_ATTEMPT: expected an integer >= 1, received {describe(attempt)}")
        self.attempt = int(attempt)
        self.params_raw = e.get("EXPERIMENT_PARAMS", "")
        self.checkpoint_dir = e.get("EXPERIMENT_CHECKPOINT_DIR", "")
        if not self.checkpoint_dir:
            raise Fatal("EXPERIMENT_CHECKPOINT_DIR: expected the path of a directory, received nothing")
        self.checkpoint_dir = os.path.abspath(self.checkpoint_dir)
        self.resume_from = e.get("EXPERIMENT_RESUME_FROM", "")
        self.resume_epoch = self._optional_int("EXPERIMENT_RESUME_EPOCH")
        self.resume_step = self._optional_int("EXPERIMENT_RESUME_STEP")

    @staticmethod
    def _optional_int(name: str):
        raw = os.environ.get(name, "")
        if raw == "":
            return None
        if not raw.isdigit():
            raise Fatal(f"{name}: expected an integer >= 0 or an empty string, received {describe(raw)}")
        return int(raw)


def _reject_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


def _int(name, value, lo, hi):
    ok = (
        not isinstance(value, bool)
        and (isinstance(value, int) or (isinstance(value, float) and value.is_integer()))
        and lo <= value <= hi
    )
    if not ok:
        raise Fatal(f"params.{name}: expected an integer from {lo} to {hi}, received {describe(value)}")
    return int(value)


def _number(name, value, lo, hi, lo_open=False, hi_open=False):
    ok = (
        not isinstance(value, bool)
        and isinstance(value, (int, float))
        and math.isfinite(value)
        and (value > lo if lo_open else value >= lo)
        and (value < hi if hi_open else value <= hi)
    )
    if not ok:
        lo_text = f"> {lo}" if lo_open else f">= {lo}"
        hi_text = f"< {hi}" if hi_open else f"<= {hi}"
        raise Fatal(f"params.{name}: expected a number {lo_text} and {hi_text}, received {describe(value)}")
    return float(value)


def _bool(name, value):
    if not isinstance(value, bool):
        raise Fatal(f"params.{name}: expected a boolean, received {describe(value)}")
    return value


def _string(name, value):
    if not isinstance(value, str) or value == "":
        raise Fatal(f"params.{name}: expected a non-empty string, received {describe(value)}")
    return value


MAX_SAFE_INTEGER = 2**53 - 1
PARAMS = {
    # name: (default, validator)
    "epochs": (5, lambda n, v: _int(n, v, 1, 1_000_000)),
    "batch_size": (16, lambda n, v: _int(n, v, 1, 1_000_000)),
    "lr": (0.1, lambda n, v: _number(n, v, 0, 100, lo_open=True)),
    "momentum": (0.9, lambda n, v: _number(n, v, 0, 1, hi_open=True)),
    "samples": (400, lambda n, v: _int(n, v, 1, 10_000_000)),
    "features": (4, lambda n, v: _int(n, v, 1, 10_000)),
    "classes": (3, lambda n, v: _int(n, v, 2, 1_000)),
    "seed": (7, lambda n, v: _int(n, v, 0, MAX_SAFE_INTEGER)),
    "step_delay": (0.0, lambda n, v: _number(n, v, 0, 3600)),
    "ignore_sigterm": (False, _bool),
    "bad_checkpoint_path": (None, _string),
    "fail_at_epoch": (None, lambda n, v: _int(n, v, 0, 1_000_000)),
    "stdout_noise": (False, _bool),
}
# The params that determine the bits of the training trajectory. A checkpoint can only be resumed by
# a run with the same values. `epochs` is not among them: resuming with more epochs trains further.
FINGERPRINTED = ("samples", "features", "classes", "seed", "batch_size", "lr", "momentum")


class Params:
    def __init__(self, values: dict) -> None:
        self.__dict__.update(values)

    def fingerprint_fields(self) -> dict:
        return {"model": "softmax-regression/sgd-momentum", **{k: getattr(self, k) for k in FINGERPRINTED}}


def parse_params(raw_text: str) -> Params:
    if raw_text.strip() == "":
        raw = {}
    else:
        try:
            raw = json.loads(raw_text, parse_constant=_reject_constant)
        except ValueError as err:
            raise Fatal(f"EXPERIMENT_PARAMS: expected a JSON object, received invalid JSON ({err})") from None
    if not isinstance(raw, dict):
        raise Fatal(f"EXPERIMENT_PARAMS: expected a JSON object, received {describe(raw)}")
    unknown = sorted(k for k in raw if k not in PARAMS)
    if unknown:
        known = ", ".join(sorted(PARAMS))
        raise Fatal(
            f"params.{unknown[0]}: unknown parameter (expected one of {known}), received {describe(raw[unknown[0]])}"
        )
    values = {}
    for name, (default, check) in PARAMS.items():
        # null is accepted as "not given" only for params without a default (the optional test hooks).
        given = name in raw and (raw[name] is not None or default is not None)
        values[name] = check(name, raw[name]) if given else default
    p = Params(values)
    if p.fail_at_epoch is not None and p.fail_at_epoch >= p.epochs:
        raise Fatal(
            f"params.fail_at_epoch: expected an integer from 0 to {p.epochs - 1} (params.epochs - 1), "
            f"received {describe(p.fail_at_epoch)}"
        )
    return p


# --------------------------------------------------------------------------------------------
# Model: softmax regression, SGD with momentum, plain Python floats.
# Sums are explicit left-to-right loops (not sum(), whose algorithm differs between Python versions).
# --------------------------------------------------------------------------------------------


def make_dataset(p: Params):
    rng = random.Random(p.seed)
    centers = [[rng.uniform(-1.5, 1.5) for _ in range(p.features)] for _ in range(p.classes)]
    xs, ys = [], []
    for _ in range(p.samples):
        y = rng.randrange(p.classes)
        x = []
        for f in range(p.features):
            noise = 0.0
            for _ in range(12):  # Irwin-Hall: roughly standard normal, from + and - only
                noise += rng.random()
            x.append(centers[y][f] + (noise - 6.0))
        xs.append(x)
        ys.append(y)
    return xs, ys


def epoch_order(seed: int, epoch: int, n: int) -> list:
    """The sample order of one epoch: a function of (seed, epoch) only, so resuming mid-epoch is exact."""
    order = list(range(n))
    random.Random(f"shuffle/{seed}/{epoch}").shuffle(order)
    return order


def _scores(weights, bias, x):
    z = []
    for c, row in enumerate(weights):
        acc = bias[c]
        for f, w in enumerate(row):
            acc += w * x[f]
        z.append(acc)
    return z


def _log_softmax_parts(z):
    m = max(z)
    exps = [math.exp(v - m) for v in z]
    total = 0.0
    for v in exps:
        total += v
    return m, exps, total


class Model:
    def __init__(self, p: Params) -> None:
        self.weights = [[0.0] * p.features for _ in range(p.classes)]
        self.bias = [0.0] * p.classes
        self.vel_weights = [[0.0] * p.features for _ in range(p.classes)]
        self.vel_bias = [0.0] * p.classes

    def train_step(self, xs, ys, batch, lr: float, momentum: float) -> float:
        """One SGD-with-momentum step on the mean cross-entropy of `batch`; returns that loss."""
        classes, features = len(self.weights), len(self.weights[0])
        grad_w = [[0.0] * features for _ in range(classes)]
        grad_b = [0.0] * classes
        loss = 0.0
        for i in batch:
            x, y = xs[i], ys[i]
            z = _scores(self.weights, self.bias, x)
            m, exps, total = _log_softmax_parts(z)
            loss += math.log(total) + m - z[y]
            for c in range(classes):
                g = exps[c] / total - (1.0 if c == y else 0.0)
                row = grad_w[c]
                for f in range(features):
                    row[f] += g * x[f]
                grad_b[c] += g
        k = float(len(batch))
        for c in range(classes):
            w_row, v_row, g_row = self.weights[c], self.vel_weights[c], grad_w[c]
            for f in range(features):
                v = momentum * v_row[f] + g_row[f] / k
                v_row[f] = v
                w_row[f] -= lr * v
            v = momentum * self.vel_bias[c] + grad_b[c] / k
            self.vel_bias[c] = v
            self.bias[c] -= lr * v
        return loss / k

    def evaluate(self, xs, ys):
        """Mean cross-entropy and accuracy over the whole data set."""
        loss, correct = 0.0, 0
        for x, y in zip(xs, ys):
            z = _scores(self.weights, self.bias, x)
            m, _, total = _log_softmax_parts(z)
            loss += math.log(total) + m - z[y]
            if z.index(max(z)) == y:
                correct += 1
        return loss / len(xs), correct / len(xs)

    def sha256(self) -> str:
        """sha256 of every weight (row by row) then every bias, each as a little-endian float64."""
        h = hashlib.sha256()
        for row in self.weights:
            h.update(struct.pack(f"<{len(row)}d", *row))
        h.update(struct.pack(f"<{len(self.bias)}d", *self.bias))
        return h.hexdigest()

    def finite(self) -> bool:
        return all(math.isfinite(v) for row in self.weights for v in row) and all(
            math.isfinite(v) for v in self.bias
        )


# --------------------------------------------------------------------------------------------
# Checkpoints
# --------------------------------------------------------------------------------------------


def fingerprint(fields: dict) -> str:
    return hashlib.sha256(json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def checkpoint_name(epoch: int, step: int) -> str:
    return f"ckpt-e{epoch:04d}-s{step:06d}.json"


def checkpoint_bytes(p: Params, model: Model, epoch: int, step: int, epoch_loss_sum: float, metrics: dict) -> bytes:
    # Deterministic: the same state at the same (epoch, step) gives the same bytes, so rewriting a
    # file that an earlier attempt announced never changes it. Python's json writes floats with
    # repr(), the shortest text that parses back to the same double.
    doc = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "fingerprint": fingerprint(p.fingerprint_fields()),
        "fingerprintParams": p.fingerprint_fields(),
        "epoch": epoch,
        "step": step,
        "weights": model.weights,
        "bias": model.bias,
        "optimizer": {"name": "sgd-momentum", "velocityWeights": model.vel_weights, "velocityBias": model.vel_bias},
        "epochLossSum": epoch_loss_sum,
        "metrics": metrics,
    }
    return (json.dumps(doc, sort_keys=True, separators=(",", ":"), allow_nan=False) + "\n").encode()


def _float_matrix(value, rows: int, cols: int, what: str, path: str):
    ok = isinstance(value, list) and len(value) == rows
    if ok:
        for row in value:
            if not (isinstance(row, list) and len(row) == cols):
                ok = False
                break
            for v in row:
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                    ok = False
                    break
    if not ok:
        raise Fatal(f"checkpoint {path}: {what}: expected {rows} x {cols} finite numbers")
    return [[float(v) for v in row] for row in value]


def load_checkpoint(path: str, env: Env, p: Params, steps_per_epoch: int):
    """Reads and validates a resume checkpoint. Every problem is Fatal: retrying cannot fix the file."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as err:
        raise Fatal(f"EXPERIMENT_RESUME_FROM: cannot read checkpoint {path}: {err.strerror}") from None
    try:
        doc = json.loads(data, parse_constant=_reject_constant)
    except ValueError as err:
        raise Fatal(f"checkpoint {path}: expected a train.py checkpoint (JSON), received invalid JSON ({err})") from None
    if not isinstance(doc, dict) or doc.get("format") != CHECKPOINT_FORMAT:
        raise Fatal(f"checkpoint {path}: expected format {CHECKPOINT_FORMAT!r}, received {describe(doc.get('format') if isinstance(doc, dict) else doc)}")
    if doc.get("version") != CHECKPOINT_VERSION:
        raise Fatal(f"checkpoint {path}: expected version {CHECKPOINT_VERSION}, received {describe(doc.get('version'))}")
    expected = p.fingerprint_fields()
    if doc.get("fingerprint") != fingerprint(expected):
        saved = doc.get("fingerprintParams") if isinstance(doc.get("fingerprintParams"), dict) else {}
        diffs = [
            f"{k}: checkpoint has {describe(saved.get(k))}, params have {describe(expected[k])}"
            for k in expected
            if saved.get(k) != expected[k]
        ]
        raise Fatal(
            f"checkpoint {path} was written with different params and cannot be resumed exactly ("
            + ("; ".join(diffs) or "fingerprint mismatch")
            + ")"
        )
    epoch, step = doc.get("epoch"), doc.get("step")
    for name, value in (("epoch", epoch), ("step", step)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise Fatal(f"checkpoint {path}: {name}: expected an integer >= 0, received {describe(value)}")
    if env.resume_epoch is not None and env.resume_epoch != epoch:
        raise Fatal(f"EXPERIMENT_RESUME_EPOCH: expected {epoch} (the checkpoint's epoch), received {env.resume_epoch}")
    if env.resume_step is not None and env.resume_step != step:
        raise Fatal(f"EXPERIMENT_RESUME_STEP: expected {step} (the checkpoint's step), received {env.resume_step}")
    if step >= steps_per_epoch:
        raise Fatal(f"checkpoint {path}: step: expected less than {steps_per_epoch} steps per epoch, received {step}")
    if epoch > p.epochs or (epoch == p.epochs and step > 0):
        raise Fatal(
            f"checkpoint {path} is at epoch {epoch} step {step}, past the end of training "
            f"(params.epochs is {p.epochs}); raise params.epochs to train further"
        )
    model = Model(p)
    model.weights = _float_matrix(doc.get("weights"), p.classes, p.features, "weights", path)
    model.bias = _float_matrix([doc.get("bias")], 1, p.classes, "bias", path)[0]
    opt = doc.get("optimizer")
    if not isinstance(opt, dict) or opt.get("name") != "sgd-momentum":
        raise Fatal(f"checkpoint {path}: optimizer: expected sgd-momentum state")
    model.vel_weights = _float_matrix(opt.get("velocityWeights"), p.classes, p.features, "optimizer.velocityWeights", path)
    model.vel_bias = _float_matrix([opt.get("velocityBias")], 1, p.classes, "optimizer.velocityBias", path)[0]
    loss_sum = doc.get("epochLossSum", 0.0)
    if isinstance(loss_sum, bool) or not isinstance(loss_sum, (int, float)) or not math.isfinite(loss_sum):
        raise Fatal(f"checkpoint {path}: epochLossSum: expected a finite number, received {describe(loss_sum)}")
    return model, epoch, step, float(loss_sum)


# --------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------


class Run:
    def __init__(self, env: Env, p: Params) -> None:
        self.env, self.p = env, p
        self.xs, self.ys = make_dataset(p)
        self.steps_per_epoch = -(-p.samples // p.batch_size)
        self.model = Model(p)
        self.epoch, self.step, self.epoch_loss_sum = 0, 0, 0.0
        self.last_saved = None  # (epoch, step) of the newest checkpoint the plugin already knows
        self.bad_path_pending = p.bad_checkpoint_path is not None

    def noise(self, text: str) -> None:
        global _stdout_broken
        if self.p.stdout_noise and not _stdout_broken:
            try:
                sys.stdout.write(text + "\n")
                sys.stdout.flush()
            except BrokenPipeError:
                _stdout_broken = INTERRUPT.parent_gone = INTERRUPT.requested = True
                _silence_fd(sys.stdout.fileno())

    def save_checkpoint(self) -> None:
        epoch, step = self.epoch, self.step
        loss, accuracy = self.model.evaluate(self.xs, self.ys)
        metrics = {"loss": loss, "accuracy": accuracy}
        if self.bad_path_pending:
            # Test hook: announce a path the plugin must refuse; no file is written for this one.
            self.bad_path_pending = False
            log(f"test hook bad_checkpoint_path: announcing {self.p.bad_checkpoint_path!r} for epoch {epoch} step {step}")
            emit({"type": "checkpoint", "path": self.p.bad_checkpoint_path, "epoch": epoch, "step": step, "metrics": metrics})
            return
        data = checkpoint_bytes(self.p, self.model, epoch, step, self.epoch_loss_sum, metrics)
        name = checkpoint_name(epoch, step)
        try:
            path = write_file_atomically(self.env.checkpoint_dir, name, data)
        except OSError as err:
            log(f"cannot write checkpoint {os.path.join(self.env.checkpoint_dir, name)}: {err}")
            raise
        emit({"type": "checkpoint", "path": path, "epoch": epoch, "step": step, "metrics": metrics})
        self.last_saved = (epoch, step)

    def stop_interrupted(self) -> int:
        if self.last_saved != (self.epoch, self.step):
            self.save_checkpoint()
        emit({"type": "interrupted", "epoch": self.epoch, "step": self.step})
        why = "stdin reached EOF (plugin gone)" if INTERRUPT.parent_gone else f"signal {INTERRUPT.signum}"
        log(f"interrupted by {why} at epoch {self.epoch} step {self.step}; exiting 0")
        return 0

    def sleep_step_delay(self) -> None:
        deadline = time.monotonic() + self.p.step_delay
        while not INTERRUPT.requested:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(left, SLEEP_SLICE_SECONDS))

    def main(self) -> int:
        p, env = self.p, self.env
        if env.resume_from:
            self.model, self.epoch, self.step, self.epoch_loss_sum = load_checkpoint(
                env.resume_from, env, p, self.steps_per_epoch
            )
            self.last_saved = (self.epoch, self.step)  # the plugin handed it to us: it already knows it
            log(f"attempt {env.attempt}: resuming {env.experiment_id} from {env.resume_from} (epoch {self.epoch} step {self.step})")
        else:
            log(f"attempt {env.attempt}: fresh start of {env.experiment_id}: {p.epochs} epochs x {self.steps_per_epoch} steps")
        self.noise("train.py: this line is not JSON; the plugin logs it")
        self.noise("[1, 2, 3]")
        self.noise('{"type":"debug","note":"unknown message types are logged and ignored"}')
        fail_step = max(1, self.steps_per_epoch // 2)

        while self.epoch < p.epochs:
            order = epoch_order(p.seed, self.epoch, p.samples)
            while self.step < self.steps_per_epoch:
                if INTERRUPT.requested:  # step boundary
                    return self.stop_interrupted()
                lo = self.step * p.batch_size
                batch_loss = self.model.train_step(self.xs, self.ys, order[lo : lo + p.batch_size], p.lr, p.momentum)
                if not math.isfinite(batch_loss) or not self.model.finite():
                    raise Fatal(
                        f"training diverged at epoch {self.epoch} step {self.step + 1} (loss {batch_loss}); "
                        f"lower params.lr (received {describe(p.lr)})"
                    )
                self.step += 1
                self.epoch_loss_sum += batch_loss
                emit({
                    "type": "progress",
                    "epoch": self.epoch,
                    "step": self.step,
                    "epochs": p.epochs,
                    "metrics": {"loss": self.epoch_loss_sum / self.step, "batchLoss": batch_loss},
                })
                if p.fail_at_epoch == self.epoch and self.step == fail_step and env.attempt == 1:
                    log(f"test hook fail_at_epoch={p.fail_at_epoch}: simulated crash at epoch {self.epoch} step {self.step}")
                    log("this failure is retryable; attempt 2 resumes from the newest checkpoint")
                    sys.stdout.flush()
                    return EXIT_CRASH
                if p.step_delay > 0:
                    self.sleep_step_delay()
            # End of epoch e: the state belongs to (e + 1, 0).
            self.epoch, self.step, self.epoch_loss_sum = self.epoch + 1, 0, 0.0
            self.save_checkpoint()
            self.noise(f"train.py: finished epoch {self.epoch - 1} (plain text on stdout)")

        loss, accuracy = self.model.evaluate(self.xs, self.ys)
        sha = self.model.sha256()
        emit({"type": "result", "metrics": {"loss": loss, "accuracy": accuracy}, "modelSha256": sha})
        log(f"done: loss {loss!r} accuracy {accuracy!r} model sha256 {sha}")
        return 0


def main() -> int:
    install_signal_handlers()  # first: a SIGTERM during setup must not kill us without a word
    watch_stdin()
    try:
        env = Env()
        p = parse_params(env.params_raw)
        if p.ignore_sigterm:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            log("test hook ignore_sigterm: SIGTERM is ignored; only SIGKILL stops this process")
        os.makedirs(env.checkpoint_dir, exist_ok=True)
        return Run(env, p).main()
    except Fatal as err:
        emit({"type": "fatal", "message": str(err)})
        log(f"fatal: {err}")
        return EXIT_NONRETRYABLE


if __name__ == "__main__":
    sys.exit(main())
