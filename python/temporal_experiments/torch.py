"""PyTorch helpers for exact resume. Importing this module needs PyTorch; the rest of the library does not.

    from temporal_experiments.torch import ResumableSampler, capture, deterministic, restore, state_sha256

- `capture(...)` / `restore(...)`: model, optimizer and LR-scheduler state dicts, the RNG states of
  Python, NumPy (when imported) and torch (and CUDA's, when in use), and the sampler's position, as a
  state `Run.checkpoint` can store (tensors, lists, primitives only: it loads with weights_only=True).
- `ResumableSampler`: a shuffling sampler whose order is a function of (seed, epoch) alone and which
  can start mid-epoch, so a checkpoint after S steps resumes at batch S + 1.
- `deterministic(seed)`: makes a CPU run repeatable bit for bit (see docs/pytorch.md for the limits:
  GPU kernels, other hardware or other library versions are not covered).
- `state_sha256(model)`: the protocol's `modelSha256`, every state-dict value as little-endian float64.
"""
from __future__ import annotations

import hashlib
import os
import random
import sys
from typing import Iterator, Optional

try:
    import torch
except ImportError as err:  # pragma: no cover - exercised only where torch is missing
    raise ImportError(
        f"temporal_experiments.torch needs PyTorch, which {sys.executable} cannot import ({err}). "
        "On Debian: apt-get install python3-torch (then run /usr/bin/python3); elsewhere: pip install torch"
    ) from err

_SEED_MIX = 0x9E3779B97F4A7C15  # golden-ratio constant: spreads (seed, epoch) over the generator's seed space


# ---- RNG states -----------------------------------------------------------------------------


def rng_state() -> dict:
    """Python's, NumPy's (when numpy is imported) and torch's (CPU, and CUDA when initialised) RNG states."""
    version, internal, gauss = random.getstate()
    state = {"python": {"version": version, "state": list(internal), "gauss": gauss}, "torch": torch.get_rng_state()}
    np = sys.modules.get("numpy")
    if np is not None:
        name, keys, pos, has_gauss, cached = np.random.get_state()
        state["numpy"] = {
            "name": str(name),
            "keys": torch.from_numpy(keys.astype("int64")),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    py = state["python"]
    random.setstate((py["version"], tuple(py["state"]), py["gauss"]))
    torch.set_rng_state(state["torch"])
    if "numpy" in state:
        import numpy as np

        n = state["numpy"]
        np.random.set_state((n["name"], n["keys"].numpy().astype("uint32"), n["pos"], n["has_gauss"], n["cached_gaussian"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ---- sampler --------------------------------------------------------------------------------


class ResumableSampler(torch.utils.data.Sampler):
    """Shuffles `n` indices per epoch, from (seed, epoch) alone, and can start mid-epoch.

    Call `set_epoch(e)` before iterating each epoch. After `load_state_dict`, the first iteration of
    the saved epoch starts `offset` samples in; later epochs start at 0.
    """

    def __init__(self, n: int, seed: int, batch_size: int, shuffle: bool = True) -> None:
        self.n, self.seed, self.batch_size, self.shuffle = int(n), int(seed), int(batch_size), shuffle
        self.epoch = 0
        self._offset = 0
        self._pending: Optional[tuple] = None  # (epoch, offset) from load_state_dict

    def loader(self, dataset, **kwargs) -> "torch.utils.data.DataLoader":
        """A DataLoader over `dataset` in this sampler's order and batch size.

        It gets a private generator: a DataLoader otherwise draws a seed from torch's global RNG
        each time an epoch's iterator is created, and a run resumed mid-epoch would then draw once
        more than an uninterrupted one, shifting every random number after it (dropout masks, ...).
        """
        kwargs.setdefault("generator", torch.Generator())
        return torch.utils.data.DataLoader(dataset, batch_size=self.batch_size, sampler=self, **kwargs)

    def order(self, epoch: int) -> torch.Tensor:
        if not self.shuffle:
            return torch.arange(self.n)
        g = torch.Generator()
        g.manual_seed((self.seed * _SEED_MIX + epoch) % (2**63))
        return torch.randperm(self.n, generator=g)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        if self._pending is not None and self._pending[0] == self.epoch:
            self._offset = self._pending[1]
        else:
            self._offset = 0
        self._pending = None

    def __iter__(self) -> Iterator[int]:
        if self._pending is not None:
            self.set_epoch(self._pending[0])
        offset, self._offset = self._offset, 0
        return iter(self.order(self.epoch)[offset:].tolist())

    def __len__(self) -> int:
        pending = self._pending[1] if self._pending is not None else self._offset
        return self.n - pending

    def state_dict(self, epoch: int, step: int) -> dict:
        """The position after `step` batches of `epoch` (the sampler cannot know what was consumed:
        a DataLoader prefetches)."""
        return {"seed": self.seed, "n": self.n, "epoch": int(epoch), "offset": int(step) * self.batch_size}

    def load_state_dict(self, state: dict) -> None:
        if state["seed"] != self.seed or state["n"] != self.n:
            raise ValueError(
                f"sampler: saved for seed {state['seed']} and {state['n']} samples, this one has seed {self.seed} and {self.n}"
            )
        self._pending = (int(state["epoch"]), int(state["offset"]))


# ---- capture / restore ----------------------------------------------------------------------


def capture(model, optimizer=None, scheduler=None, sampler: Optional[ResumableSampler] = None, *, epoch: int, step: int, extra: Optional[dict] = None) -> dict:
    """Everything exact resume needs at position (epoch, step), for `Run.checkpoint`."""
    state = {"model": model.state_dict(), "rng": rng_state()}
    if optimizer is not None:
        state["optimizer"] = optimizer.state_dict()
    if scheduler is not None:
        state["scheduler"] = scheduler.state_dict()
    if sampler is not None:
        state["sampler"] = sampler.state_dict(epoch, step)
    if extra is not None:
        state["extra"] = extra
    return state


def restore(state: dict, model, optimizer=None, scheduler=None, sampler: Optional[ResumableSampler] = None) -> Optional[dict]:
    """Loads what `capture` saved into the given objects and restores the RNG states; returns `extra`."""
    model.load_state_dict(state["model"])
    if optimizer is not None:
        optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None:
        scheduler.load_state_dict(state["scheduler"])
    if sampler is not None:
        sampler.load_state_dict(state["sampler"])
    set_rng_state(state["rng"])
    return state.get("extra")


# ---- determinism and hashing ----------------------------------------------------------------


def deterministic(seed: int, threads: int = 1) -> torch.Generator:
    """Seeds Python, NumPy (when importable) and torch, fixes the thread count and turns on
    deterministic algorithms. Returns a torch.Generator seeded with `seed` for your own use.

    Bit-exact repeatability holds on CPU, with the same torch build, thread count and hardware.
    GPU kernels are not covered (see docs/pytorch.md).
    """
    random.seed(seed)
    np = sys.modules.get("numpy")
    if np is None:
        try:
            import numpy as np
        except ImportError:
            np = None
    if np is not None:
        np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    # Intra-op threads split reductions, so their count changes the bits. (Inter-op threads do not;
    # torch.set_num_interop_threads would even abort the process when called a second time.)
    torch.set_num_threads(threads)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False
    g = torch.Generator()
    g.manual_seed(seed)
    return g


def state_sha256(model_or_state_dict) -> str:
    """sha256 of every state-dict value, in state-dict order, each as little-endian IEEE-754 float64."""
    sd = model_or_state_dict.state_dict() if hasattr(model_or_state_dict, "state_dict") else model_or_state_dict
    h = hashlib.sha256()
    for value in sd.values():
        t = value.detach().cpu().to(torch.float64).contiguous().reshape(-1)
        h.update(t.numpy().astype("<f8").tobytes())
    return h.hexdigest()
