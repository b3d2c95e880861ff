#!/usr/bin/env python3
"""PyTorch trainer for the temporal-experiments `command` trainer, on the trainer library
(python/temporal_experiments; the protocol is docs/trainer-protocol.md, the guide docs/pytorch.md).

A small MLP on scikit-learn's bundled digits (8x8 images, 10 classes, 1797 samples, no download),
split into train and validation sets, SGD with momentum and a step LR schedule, dropout. It checks
the validation accuracy after every epoch, checkpoints at the end of every epoch (or, with
`checkpoint_seconds`, once that much training time has passed) and every `checkpoint_every` steps
within one, and on interruption. A run that is killed, interrupted or
cancelled and then resumed, any number of times, ends with the same `modelSha256` as an
uninterrupted run (on the same CPU and torch build): the checkpoint holds the model, optimizer and
scheduler state, every RNG state and the sampler's position.

Needs PyTorch and scikit-learn: on Debian `apt-get install python3-torch python3-sklearn` and run it
with /usr/bin/python3; elsewhere `pip install torch scikit-learn`. By hand:

    mkdir -p /tmp/ckpt
    EXPERIMENT_CHECKPOINT_DIR=/tmp/ckpt /usr/bin/python3 examples/python/train_torch.py

Params (EXPERIMENT_PARAMS, every key optional):
    epochs            int >= 1      5      passes over the training set
    batch_size        int >= 1      32
    lr                number > 0    0.05   SGD learning rate
    momentum          [0, 1)        0.9
    lr_step           int >= 1      2      the LR is multiplied by lr_gamma every lr_step epochs
    lr_gamma          (0, 1]        0.5
    hidden            int >= 1      64     hidden units
    dropout           [0, 1)        0.1
    val_fraction      (0, 1)        0.2    share of the data held out for validation
    seed              int >= 0      0      split, initialisation, shuffles and dropout
    threads           int >= 1      1      torch intra-op threads (part of the fingerprint: it changes the bits)
    checkpoint_every  int >= 0      10     also checkpoint every N steps within an epoch (0: epoch ends only)
    checkpoint_seconds number >= 0  0      0: checkpoint at every epoch end. Above 0: instead, checkpoint at
                                           the first step boundary this many seconds of training after the
                                           previous checkpoint, and at the end of the last epoch
    step_delay        number >= 0   0      seconds slept after each step (tests interrupt mid-epoch)
`epochs`, `checkpoint_every`, `checkpoint_seconds` and `step_delay` are not in the checkpoint fingerprint.
"""
from __future__ import annotations

import math
import os
import sys
import time

try:
    import temporal_experiments as te
except ImportError:  # run from a checkout: the library lives in python/ at the repository root
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python"))
    import temporal_experiments as te
from temporal_experiments.params import MAX_SAFE_INTEGER, integer, number

try:
    import torch
    import torch.nn.functional as F
    from temporal_experiments.torch import ResumableSampler, capture, deterministic, restore, state_sha256
except ImportError as err:
    torch = None
    MISSING = f"PyTorch is not installed for {sys.executable} ({err}); on Debian: apt-get install python3-torch and run /usr/bin/python3; elsewhere: pip install torch"

SCHEMA = {
    "epochs": (5, integer(1, 100_000)),
    "batch_size": (32, integer(1, 100_000)),
    "lr": (0.05, number(0, 10, lo_open=True)),
    "momentum": (0.9, number(0, 1, hi_open=True)),
    "lr_step": (2, integer(1, 100_000)),
    "lr_gamma": (0.5, number(0, 1, lo_open=True)),
    "hidden": (64, integer(1, 100_000)),
    "dropout": (0.1, number(0, 1, hi_open=True)),
    "val_fraction": (0.2, number(0, 1, lo_open=True, hi_open=True)),
    "seed": (0, integer(0, MAX_SAFE_INTEGER)),
    "threads": (1, integer(1, 256)),
    "checkpoint_every": (10, integer(0, 1_000_000)),
    "checkpoint_seconds": (0.0, number(0, 86_400)),
    "step_delay": (0.0, number(0, 3600)),
}
UNFINGERPRINTED = ("epochs", "checkpoint_every", "checkpoint_seconds", "step_delay")
# A step takes about a millisecond: a progress line per step would cost the plugin more than it tells.
PROGRESS_INTERVAL = 0.05


def fingerprint(p) -> dict:
    return {"model": "digits-mlp/sgd-momentum/steplr", **{k: v for k, v in p.as_dict().items() if k not in UNFINGERPRINTED}}


def load_data(p):
    """Digits scaled to [0, 1], split by a permutation drawn from `seed` alone."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as err:
        raise te.Fatal(f"scikit-learn is not installed for {sys.executable} ({err}); on Debian: apt-get install python3-sklearn; elsewhere: pip install scikit-learn") from None
    digits = load_digits()
    x = torch.tensor(digits.data, dtype=torch.float32) / 16.0
    y = torch.tensor(digits.target, dtype=torch.int64)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(p.seed))
    n_val = max(1, int(round(len(y) * p.val_fraction)))
    val, tr = order[:n_val], order[n_val:]
    return torch.utils.data.TensorDataset(x[tr], y[tr]), (x[val], y[val])


def evaluate(model, x, y):
    model.eval()
    with torch.no_grad():
        out = model(x)
        loss = F.cross_entropy(out, y).item()
        accuracy = (out.argmax(1) == y).double().mean().item()
    model.train()
    return loss, accuracy


def train(run: te.Run) -> int:
    if torch is None:
        raise te.Fatal(MISSING)
    p = run.params
    deterministic(p.seed, p.threads)
    train_set, (val_x, val_y) = load_data(p)
    model = torch.nn.Sequential(
        torch.nn.Linear(64, p.hidden), torch.nn.ReLU(), torch.nn.Dropout(p.dropout), torch.nn.Linear(p.hidden, 10)
    )
    opt = torch.optim.SGD(model.parameters(), lr=p.lr, momentum=p.momentum)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=p.lr_step, gamma=p.lr_gamma)
    sampler = ResumableSampler(len(train_set), seed=p.seed, batch_size=p.batch_size)
    loader = sampler.loader(train_set)
    steps_per_epoch = math.ceil(len(train_set) / p.batch_size)
    run.check_position(p.epochs, steps_per_epoch)
    epoch0, step0 = run.position
    loss_sum = 0.0  # running sum of this epoch's batch losses, for the mean train loss
    if run.resume is not None:
        loss_sum = restore(run.resume, model, opt, sched, sampler)["loss_sum"]
        run.log(f"attempt {run.attempt}: resuming {run.experiment_id} at epoch {epoch0} step {step0} from {run.resume_from}")
    else:
        run.log(f"attempt {run.attempt}: fresh start of {run.experiment_id}: {p.epochs} epochs x {steps_per_epoch} steps")

    last_save = time.monotonic()

    def save(epoch, step, metrics):
        nonlocal last_save
        state = capture(model, opt, sched, sampler, epoch=epoch, step=step, extra={"loss_sum": loss_sum})
        run.checkpoint(state, epoch, step, metrics)
        last_save = time.monotonic()

    def due() -> bool:  # the time-based cadence (checkpoint_seconds > 0) asks for a checkpoint
        return p.checkpoint_seconds > 0 and time.monotonic() - last_save >= p.checkpoint_seconds

    started, cpu_started, steps = time.monotonic(), time.process_time(), 0
    val_loss, val_acc, train_loss = None, None, None
    for epoch in range(epoch0, p.epochs):
        sampler.set_epoch(epoch)
        first = step0 if epoch == epoch0 else 0
        if first == 0:
            loss_sum = 0.0
        for step, (x, y) in enumerate(loader, start=first):
            if run.interrupted:  # step boundary: `step` steps of this epoch are done
                if not run.is_durable(epoch, step):
                    save(epoch, step, {"loss": loss_sum / max(step, 1)})
                return run.stopped(epoch, step)
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            loss_sum += loss.item()
            steps += 1
            done = step + 1
            run.progress(epoch, done, epochs=p.epochs, loss=loss_sum / done)
            if done < steps_per_epoch and (due() or (p.checkpoint_every and done % p.checkpoint_every == 0)):
                save(epoch, done, {"loss": loss_sum / done})
            if p.step_delay:
                run.sleep(p.step_delay)
        sched.step()
        train_loss = loss_sum / steps_per_epoch
        val_loss, val_acc = evaluate(model, val_x, val_y)
        run.log(f"epoch {epoch}: train loss {train_loss:.4f}, validation loss {val_loss:.4f}, validation accuracy {val_acc:.4f}")
        if p.checkpoint_seconds == 0 or epoch + 1 == p.epochs or due():
            save(epoch + 1, 0, {"loss": train_loss, "valLoss": val_loss, "accuracy": val_acc})

    if val_acc is None:  # resumed from the final checkpoint: nothing left to train
        val_loss, val_acc = evaluate(model, val_x, val_y)
        train_loss = run.resume_metrics.get("loss", val_loss)
    elapsed, cpu = time.monotonic() - started, time.process_time() - cpu_started
    sha = state_sha256(model)
    metrics = {"loss": train_loss, "valLoss": val_loss, "accuracy": val_acc, "attemptSteps": steps, "attemptTrainSeconds": elapsed}
    run.result(metrics, model_sha256=sha)
    run.log(f"done: validation accuracy {val_acc!r}, {steps} steps in {elapsed!r}s (CPU {cpu!r}s), model sha256 {sha}")
    return 0


if __name__ == "__main__":
    te.main(train, schema=SCHEMA, producer="train_torch.py", format="torch", fingerprint=fingerprint, progress_interval=PROGRESS_INTERVAL)
