#!/usr/bin/env python3
"""Reference trainer for the temporal-experiments `command` trainer protocol, standard library only.

The protocol (environment, stdout JSON lines, checkpoint files, signals, exit codes) is specified in
docs/trainer-protocol.md and implemented by the trainer library in python/temporal_experiments/;
this script is a model on top of it, and what the plugin's tests run.

It trains softmax (multinomial logistic) regression on a seeded synthetic data set with mini-batch
SGD with momentum, in plain Python floats. Every attempt that resumes from one of its checkpoints
ends with the same bits as an uninterrupted run: the data set is regenerated from `seed`, the
shuffle of epoch e is derived from (seed, e), and a checkpoint (JSON, byte-identical for identical
state) holds the weights, the optimizer state and the position with floats that round-trip exactly.

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
import math
import os
import random
import signal
import struct
import sys

try:
    import temporal_experiments as te
except ImportError:  # run from a checkout: the library lives in python/ at the repository root
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python"))
    import temporal_experiments as te
from temporal_experiments.params import MAX_SAFE_INTEGER, Params, boolean, integer, number, string
from temporal_experiments.protocol import emit, write_stdout

SCHEMA = {
    # name: (default, validator)
    "epochs": (5, integer(1, 1_000_000)),
    "batch_size": (16, integer(1, 1_000_000)),
    "lr": (0.1, number(0, 100, lo_open=True)),
    "momentum": (0.9, number(0, 1, hi_open=True)),
    "samples": (400, integer(1, 10_000_000)),
    "features": (4, integer(1, 10_000)),
    "classes": (3, integer(2, 1_000)),
    "seed": (7, integer(0, MAX_SAFE_INTEGER)),
    "step_delay": (0.0, number(0, 3600)),
    "ignore_sigterm": (False, boolean()),
    "bad_checkpoint_path": (None, string()),
    "fail_at_epoch": (None, integer(0, 1_000_000)),
    "stdout_noise": (False, boolean()),
}
# The params that determine the bits of the training trajectory. A checkpoint can only be resumed by
# a run with the same values. `epochs` is not among them: resuming with more epochs trains further.
FINGERPRINTED = ("samples", "features", "classes", "seed", "batch_size", "lr", "momentum")


def fingerprint_fields(p: Params) -> dict:
    return {"model": "softmax-regression/sgd-momentum", **p.pick(FINGERPRINTED)}


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
# Checkpoint state and the training loop
# --------------------------------------------------------------------------------------------


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
        raise te.Fatal(f"checkpoint {path}: {what}: expected {rows} x {cols} finite numbers")
    return [[float(v) for v in row] for row in value]


def model_state(model: Model, epoch_loss_sum: float) -> dict:
    return {
        "weights": model.weights,
        "bias": model.bias,
        "optimizer": {"name": "sgd-momentum", "velocityWeights": model.vel_weights, "velocityBias": model.vel_bias},
        "epochLossSum": epoch_loss_sum,
    }


def restore_model(run: te.Run, p: Params):
    """The model and running epoch loss from the resume state, every field checked (Fatal if wrong)."""
    state, path = run.resume, run.resume_from
    if not isinstance(state, dict):
        raise te.Fatal(f"checkpoint {path}: state: expected an object")
    model = Model(p)
    model.weights = _float_matrix(state.get("weights"), p.classes, p.features, "weights", path)
    model.bias = _float_matrix([state.get("bias")], 1, p.classes, "bias", path)[0]
    opt = state.get("optimizer")
    if not isinstance(opt, dict) or opt.get("name") != "sgd-momentum":
        raise te.Fatal(f"checkpoint {path}: optimizer: expected sgd-momentum state")
    model.vel_weights = _float_matrix(opt.get("velocityWeights"), p.classes, p.features, "optimizer.velocityWeights", path)
    model.vel_bias = _float_matrix([opt.get("velocityBias")], 1, p.classes, "optimizer.velocityBias", path)[0]
    loss_sum = state.get("epochLossSum", 0.0)
    if isinstance(loss_sum, bool) or not isinstance(loss_sum, (int, float)) or not math.isfinite(loss_sum):
        raise te.Fatal(f"checkpoint {path}: epochLossSum: expected a finite number, received {te.describe(loss_sum)}")
    return model, float(loss_sum)


class Trainer:
    def __init__(self, run: te.Run) -> None:
        self.run, self.p = run, run.params
        self.xs, self.ys = make_dataset(self.p)
        self.steps_per_epoch = -(-self.p.samples // self.p.batch_size)
        self.model = Model(self.p)
        self.epoch, self.step, self.epoch_loss_sum = 0, 0, 0.0
        self.bad_path_pending = self.p.bad_checkpoint_path is not None

    def noise(self, text: str) -> None:
        if self.p.stdout_noise:
            write_stdout(text + "\n")

    def save_checkpoint(self) -> None:
        epoch, step = self.epoch, self.step
        loss, accuracy = self.model.evaluate(self.xs, self.ys)
        metrics = {"loss": loss, "accuracy": accuracy}
        if self.bad_path_pending:
            # Test hook: announce a path the plugin must refuse; no file is written for this one.
            self.bad_path_pending = False
            te.log(f"test hook bad_checkpoint_path: announcing {self.p.bad_checkpoint_path!r} for epoch {epoch} step {step}")
            emit({"type": "checkpoint", "path": self.p.bad_checkpoint_path, "epoch": epoch, "step": step, "metrics": metrics})
            return
        self.run.checkpoint(model_state(self.model, self.epoch_loss_sum), epoch, step, metrics)

    def stop_interrupted(self) -> int:
        if not self.run.is_durable(self.epoch, self.step):
            self.save_checkpoint()
        return self.run.stopped(self.epoch, self.step)

    def main(self) -> int:
        p, run = self.p, self.run
        if run.resume_from:
            run.check_position(p.epochs, self.steps_per_epoch)
            self.model, self.epoch_loss_sum = restore_model(run, p)
            self.epoch, self.step = run.position
            te.log(f"attempt {run.attempt}: resuming {run.experiment_id} from {run.resume_from} (epoch {self.epoch} step {self.step})")
        else:
            te.log(f"attempt {run.attempt}: fresh start of {run.experiment_id}: {p.epochs} epochs x {self.steps_per_epoch} steps")
        self.noise("train.py: this line is not JSON; the plugin logs it")
        self.noise("[1, 2, 3]")
        self.noise('{"type":"debug","note":"unknown message types are logged and ignored"}')
        fail_step = max(1, self.steps_per_epoch // 2)

        while self.epoch < p.epochs:
            order = epoch_order(p.seed, self.epoch, p.samples)
            while self.step < self.steps_per_epoch:
                if run.interrupted:  # step boundary
                    return self.stop_interrupted()
                lo = self.step * p.batch_size
                batch_loss = self.model.train_step(self.xs, self.ys, order[lo : lo + p.batch_size], p.lr, p.momentum)
                if not math.isfinite(batch_loss) or not self.model.finite():
                    raise te.Fatal(
                        f"training diverged at epoch {self.epoch} step {self.step + 1} (loss {batch_loss}); "
                        f"lower params.lr (received {te.describe(p.lr)})"
                    )
                self.step += 1
                self.epoch_loss_sum += batch_loss
                run.progress(self.epoch, self.step, epochs=p.epochs, loss=self.epoch_loss_sum / self.step, batchLoss=batch_loss)
                if p.fail_at_epoch == self.epoch and self.step == fail_step and run.attempt == 1:
                    te.log(f"test hook fail_at_epoch={p.fail_at_epoch}: simulated crash at epoch {self.epoch} step {self.step}")
                    te.log("this failure is retryable; attempt 2 resumes from the newest checkpoint")
                    return te.EXIT_CRASH
                if p.step_delay > 0:
                    run.sleep(p.step_delay)
            # End of epoch e: the state belongs to (e + 1, 0).
            self.epoch, self.step, self.epoch_loss_sum = self.epoch + 1, 0, 0.0
            self.save_checkpoint()
            self.noise(f"train.py: finished epoch {self.epoch - 1} (plain text on stdout)")

        loss, accuracy = self.model.evaluate(self.xs, self.ys)
        sha = self.model.sha256()
        run.result({"loss": loss, "accuracy": accuracy}, model_sha256=sha)
        te.log(f"done: loss {loss!r} accuracy {accuracy!r} model sha256 {sha}")
        return 0


def train(run: te.Run) -> int:
    p = run.params
    if p.fail_at_epoch is not None and p.fail_at_epoch >= p.epochs:
        raise te.Fatal(
            f"params.fail_at_epoch: expected an integer from 0 to {p.epochs - 1} (params.epochs - 1), "
            f"received {te.describe(p.fail_at_epoch)}"
        )
    if p.ignore_sigterm:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        te.log("test hook ignore_sigterm: SIGTERM is ignored; only SIGKILL stops this process")
    return Trainer(run).main()


if __name__ == "__main__":
    te.main(train, schema=SCHEMA, producer="train.py", format="json", fingerprint=fingerprint_fields)
