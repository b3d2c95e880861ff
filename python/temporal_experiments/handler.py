"""The original design's `CheckpointHandler`, as thin wrappers over `Run`, so that a script written
against it ports with few edits:

    handler = CheckpointHandler()                       # or CheckpointHandler(run)
    ckpt = handler.load_checkpoint(model, optimizer)    # None on a fresh start
    start_epoch = ckpt["epoch"] + 1 if ckpt else 0
    for epoch in range(start_epoch, epochs):
        ...
        if handler.interrupted:
            handler.save_checkpoint(model, optimizer, epoch, loss, step=step)
            sys.exit(handler.stopped())
        handler.save_checkpoint(model, optimizer, epoch, loss, {"val_accuracy": acc})

Files, as the user sees them: `checkpoint_epoch_N.pt` for the end of (zero-based) epoch N,
`checkpoint_epoch_N_step_S.pt` for a checkpoint S steps into epoch N, and `checkpoint_latest.pt`, a
symlink to the newest. The plugin's manifest stays the source of truth: it may prune old files
(then older links dangle), and a resume always starts from the file the plugin hands over, never
from `checkpoint_latest.pt`. A later attempt that saves the same position again with different
bytes writes `checkpoint_epoch_N-a<attempt>.pt` rather than touch an announced file.
"""
from __future__ import annotations

import os
from typing import Optional

from .protocol import FLAG, replace_symlink
from .run import Run, start

LATEST = "checkpoint_latest.pt"


class CheckpointHandler:
    def __init__(self, run: Optional[Run] = None) -> None:
        self.run = run if run is not None else start(format="torch")

    @property
    def interrupted(self) -> bool:
        """Set by SIGTERM/SIGINT (and stdin EOF); the handlers only set this flag."""
        return self.run.interrupted

    def save_checkpoint(self, model, optimizer, epoch: int, loss: float, metadata: Optional[dict] = None, *, step: Optional[int] = None, scheduler=None, sampler=None) -> str:
        """Saves model and optimizer state (plus RNG states, and scheduler/sampler when given).

        Without `step`: epoch `epoch` (zero-based) is complete, the protocol position is (epoch + 1, 0).
        With `step`: `step` steps of epoch `epoch` are done, the position is (epoch, step).
        `metadata` is stored as is (str/int/float/bool/None/lists/dicts); its numbers also become
        the checkpoint's metrics, with `loss`. Returns the file's path.
        """
        from .torch import capture  # torch is needed only here

        pos = (epoch + 1, 0) if step is None else (epoch, step)
        state = capture(model, optimizer, scheduler, sampler, epoch=pos[0], step=pos[1])
        state["loss"] = float(loss)
        state["metadata"] = dict(metadata or {})
        name = f"checkpoint_epoch_{epoch}.pt" if step is None else f"checkpoint_epoch_{epoch}_step_{step}.pt"
        metrics = {"loss": float(loss), **(metadata or {})}
        path = self.run.checkpoint(state, pos[0], pos[1], metrics, name=name)
        replace_symlink(self.run.checkpoint_dir, LATEST, os.path.basename(path))
        return path

    def load_checkpoint(self, model=None, optimizer=None, scheduler=None, sampler=None) -> Optional[dict]:
        """The checkpoint the plugin said to resume from, loaded into the given objects (RNG states
        restored too), or None on a fresh start. Keys: `epoch` (the last completed epoch, -1 if
        none), `resume_epoch`/`resume_step` (where to continue), `loss`, `metadata`,
        `model_state_dict`, `optimizer_state_dict`."""
        state = self.run.resume
        if state is None:
            return None
        if model is not None:
            from .torch import restore

            restore(state, model, optimizer, scheduler, sampler)
        resume_epoch, resume_step = self.run.position
        return {
            "epoch": resume_epoch - 1,
            "resume_epoch": resume_epoch,
            "resume_step": resume_step,
            "loss": state.get("loss"),
            "metadata": state.get("metadata", {}),
            "model_state_dict": state.get("model"),
            "optimizer_state_dict": state.get("optimizer"),
        }

    def get_resumability_hints(self) -> dict:
        """What a resume would do, for logs and dashboards."""
        epoch, step = self.run.position
        return {
            "resumable": self.run.resume is not None or self.run.last_checkpoint is not None,
            "resuming": self.run.resume is not None,
            "resume_from": self.run.resume_from,
            "resume_epoch": epoch,
            "resume_step": step,
            "attempt": self.run.attempt,
            "latest_checkpoint": self.run.last_checkpoint,
            "checkpoint_dir": self.run.checkpoint_dir,
            "interrupted": FLAG.requested,
            "interrupt_reason": FLAG.reason,
        }

    def stopped(self) -> int:
        """Prints the `interrupted` line (after a save at the current position); returns exit code 0."""
        return self.run.stopped()
