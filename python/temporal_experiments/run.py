"""The `Run` object: everything a trainer needs from the protocol (docs/trainer-protocol.md), so that no
trainer writes protocol lines by hand.

    import temporal_experiments as te

    def train(run: te.Run) -> int:
        epoch, step = run.position                    # (0, 0), or where the resume checkpoint is
        state = run.resume                            # what an earlier attempt passed to checkpoint()
        ...
            if run.interrupted:                       # at a step boundary
                if not run.is_durable(epoch, step):
                    run.checkpoint(state, epoch, step)
                return run.stopped()
            run.progress(epoch, step, epochs=E, loss=loss)
        ...
        run.result({"loss": loss, "accuracy": acc}, model_sha256=sha)
        return 0

    te.main(train)                                    # fatal line + exit 3 on te.Fatal
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import sys
import time
from typing import Callable, Iterable, Mapping, Optional, Tuple, Union

from . import formats
from .params import Params, Schema, parse_json_object, validate
from .protocol import (
    EXIT_NONRETRYABLE,
    FLAG,
    Fatal,
    describe,
    emit,
    install_signal_handlers,
    interruptible_sleep,
    log,
    set_log_prefix,
    watch_stdin,
    write_file_atomically,
)

FingerprintSpec = Union[None, Mapping, Iterable[str], Callable[[Params], Mapping]]
_RESERVED_PREFIXES = ("ck-", ".tmp-")
_started = {"handlers": False, "stdin": False}


def fingerprint_of(fields: Mapping) -> str:
    return hashlib.sha256(json.dumps(dict(fields), sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def finite_metrics(metrics: Optional[Mapping]) -> dict:
    """The metrics the protocol can carry: finite numbers (bools and others are dropped)."""
    out = {}
    for k, v in (metrics or {}).items():
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        if math.isfinite(v):
            out[str(k)] = float(v) if isinstance(v, float) else v
    return out


def _optional_int(env: Mapping, name: str) -> Optional[int]:
    raw = env.get(name, "")
    if raw == "":
        return None
    if not raw.isdigit():
        raise Fatal(f"{name}: expected an integer >= 0 or an empty string, received {describe(raw)}")
    return int(raw)


def _position(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name}: expected an integer >= 0, received {describe(value)}")
    return value


class Run:
    """One attempt of one experiment, as the plugin started it. Create it with `start()`."""

    def __init__(self, env: Mapping, schema: Optional[Schema], producer: str, fmt: str, fingerprint: FingerprintSpec):
        self.producer = producer
        self.experiment_id = env.get("EXPERIMENT_ID", "") or "local"
        self.session_id = env.get("EXPERIMENT_SESSION_ID", "") or "local"
        attempt = env.get("EXPERIMENT_ATTEMPT", "") or "1"
        if not attempt.isdigit() or int(attempt) < 1:
            raise Fatal(f"EXPERIMENT_ATTEMPT: expected an integer >= 1, received {describe(attempt)}")
        #: 1-based attempt number of the training activity.
        self.attempt = int(attempt)
        checkpoint_dir = env.get("EXPERIMENT_CHECKPOINT_DIR", "")
        if not checkpoint_dir:
            raise Fatal("EXPERIMENT_CHECKPOINT_DIR: expected the path of a directory, received nothing")
        #: Absolute path of the only directory checkpoints may be written to.
        self.checkpoint_dir = os.path.abspath(checkpoint_dir)
        raw = parse_json_object(env.get("EXPERIMENT_PARAMS", ""))
        #: The trainer's params: validated `Params` when a schema was given, else the raw dict.
        self.params = validate(raw, schema) if schema is not None else raw
        self.format = fmt
        self.fingerprint_params = self._fingerprint_fields(fingerprint)
        #: The state passed to `checkpoint()` by the attempt that wrote the resume file, or None.
        self.resume = None
        self.resume_from: Optional[str] = env.get("EXPERIMENT_RESUME_FROM", "") or None
        self.resume_epoch: Optional[int] = None
        self.resume_step: Optional[int] = None
        self.resume_metrics: dict = {}
        #: Path of the newest checkpoint this process announced (or the resume file).
        self.last_checkpoint: Optional[str] = self.resume_from
        self._durable: Optional[Tuple[int, int]] = None
        self._result_sent = False
        #: Seconds between two progress lines at least (0: every call prints one).
        self.progress_interval = 0.0
        self._last_progress: Optional[float] = None
        os.makedirs(self.checkpoint_dir, exist_ok=True)
        if self.resume_from:
            self._load_resume(env)

    # ---- reading the resume checkpoint ----

    def _fingerprint_fields(self, spec: FingerprintSpec) -> Optional[dict]:
        if spec is None:
            return None
        if callable(spec):
            return dict(spec(self.params))
        if isinstance(spec, Mapping):
            return dict(spec)
        names = list(spec)
        if isinstance(self.params, Params):
            return self.params.pick(names)
        return {k: self.params.get(k) for k in names}

    def _load_resume(self, env: Mapping) -> None:
        path = self.resume_from
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as err:
            raise Fatal(f"EXPERIMENT_RESUME_FROM: cannot read checkpoint {path}: {err.strerror}") from None
        doc = formats.decode(data, path)
        if self.fingerprint_params is not None and doc.get("fingerprint") != fingerprint_of(self.fingerprint_params):
            saved = doc.get("fingerprintParams") if isinstance(doc.get("fingerprintParams"), dict) else {}
            diffs = [
                f"{k}: checkpoint has {describe(saved.get(k))}, params have {describe(v)}"
                for k, v in self.fingerprint_params.items()
                if saved.get(k) != v
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
        for name, announced, actual in (("EPOCH", "EXPERIMENT_RESUME_EPOCH", epoch), ("STEP", "EXPERIMENT_RESUME_STEP", step)):
            told = _optional_int(env, announced)
            if told is not None and told != actual:
                raise Fatal(f"{announced}: expected {actual} (the checkpoint's {name.lower()}), received {told}")
        self.resume = doc.get("state")
        self.resume_epoch, self.resume_step = epoch, step
        self.resume_metrics = doc.get("metrics") if isinstance(doc.get("metrics"), dict) else {}
        self._durable = (epoch, step)  # the plugin handed it to us: it already knows it

    # ---- position and flag ----

    @property
    def position(self) -> Tuple[int, int]:
        """(epoch, step) to start from: the resume checkpoint's, or (0, 0)."""
        if self.resume_epoch is None:
            return (0, 0)
        return (self.resume_epoch, self.resume_step or 0)

    def check_position(self, epochs: int, steps_per_epoch: int) -> None:
        """Fatal if the resume position is past the end of training or beyond an epoch's steps."""
        epoch, step = self.position
        if step >= steps_per_epoch and step > 0:
            raise Fatal(f"checkpoint {self.resume_from}: step: expected less than {steps_per_epoch} steps per epoch, received {step}")
        if epoch > epochs or (epoch == epochs and step > 0):
            raise Fatal(
                f"checkpoint {self.resume_from} is at epoch {epoch} step {step}, past the end of training "
                f"(params.epochs is {epochs}); raise params.epochs to train further"
            )

    @property
    def interrupted(self) -> bool:
        """True once SIGTERM/SIGINT arrived or stdin reached EOF: stop at the next step boundary."""
        return FLAG.requested

    @property
    def interrupt_reason(self) -> Optional[str]:
        """"SIGTERM", "SIGINT", "stdin-eof", "stdout-broken", or None."""
        return FLAG.reason

    def is_durable(self, epoch: int, step: int) -> bool:
        """Whether (epoch, step) is already a checkpoint the plugin knows (announced or resumed from)."""
        return self._durable == (epoch, step)

    def sleep(self, seconds: float) -> None:
        """Sleeps, returning early when interrupted."""
        interruptible_sleep(seconds)

    # ---- protocol lines ----

    def progress(self, epoch: int, step: int, epochs: Optional[int] = None, **metrics) -> None:
        """A `progress` line: `step` steps of zero-based `epoch` are done. With `progress_interval`
        (see `start`), calls closer together than that are dropped, except the first."""
        if self.progress_interval > 0:
            now = time.monotonic()
            if self._last_progress is not None and now - self._last_progress < self.progress_interval:
                return
            self._last_progress = now
        message = {"type": "progress", "epoch": _position("epoch", epoch), "step": _position("step", step)}
        if epochs is not None:
            message["epochs"] = epochs
        if metrics:
            message["metrics"] = finite_metrics(metrics)
        emit(message)

    def checkpoint(self, state, epoch: int, step: int, metrics: Optional[Mapping] = None, name: Optional[str] = None) -> str:
        """Writes `state` durably (temp file, fsync, rename, directory fsync), then announces it.

        Position convention: the end of epoch e is (e + 1, 0). Returns the file's path.
        """
        _position("epoch", epoch)
        _position("step", step)
        clean = finite_metrics(metrics)
        doc = {
            "format": formats.FORMAT,
            "version": formats.VERSION,
            "producer": self.producer,
            "epoch": epoch,
            "step": step,
            "metrics": clean,
            "fingerprint": fingerprint_of(self.fingerprint_params) if self.fingerprint_params is not None else None,
            "fingerprintParams": self.fingerprint_params,
            "state": state,
        }
        try:
            data = formats.encode(doc, self.format)
        except TypeError as err:
            raise Fatal(str(err)) from None
        ext = "pt" if self.format == "torch" else "json"
        final = self._final_name(name or f"ckpt-e{epoch:04d}-s{step:06d}.{ext}", data)
        path = os.path.join(self.checkpoint_dir, final)
        if not os.path.exists(path):
            try:
                write_file_atomically(self.checkpoint_dir, final, data)
            except OSError as err:
                log(f"cannot write checkpoint {path}: {err}")
                raise
        emit({"type": "checkpoint", "path": path, "epoch": epoch, "step": step, "metrics": clean})
        self._durable = (epoch, step)
        self.last_checkpoint = path
        return path

    def _final_name(self, name: str, data: bytes) -> str:
        if "/" in name or name in ("", ".", "..", "manifest.json") or name.startswith(_RESERVED_PREFIXES):
            raise ValueError(f"checkpoint name: expected a plain file name not starting with ck- or .tmp-, received {name!r}")
        # An announced file belongs to the plugin and is never rewritten: reuse it when identical,
        # otherwise write under a name that carries the attempt.
        stem, dot, ext = name.rpartition(".")
        if not dot:
            stem, ext = name, ""
        candidates = [name] + [f"{stem}-a{self.attempt}{'-' + str(n) if n else ''}{dot}{ext}" for n in range(100)]
        for candidate in candidates:
            path = os.path.join(self.checkpoint_dir, candidate)
            if not os.path.lexists(path):
                return candidate
            try:
                with open(path, "rb") as f:
                    if f.read() == data:
                        return candidate
            except OSError:
                pass
        raise Fatal(f"checkpoint name {name}: 100 differing files of that name already exist in {self.checkpoint_dir}")

    def result(self, metrics: Mapping, model_sha256: Optional[str] = None) -> None:
        """The `result` line: training is complete. Print it once, then exit 0."""
        if self._result_sent:
            raise RuntimeError("result() was already called: the protocol allows one result line")
        message = {"type": "result", "metrics": finite_metrics(metrics)}
        if model_sha256 is not None:
            message["modelSha256"] = model_sha256
        emit(message)
        self._result_sent = True

    def stopped(self, epoch: Optional[int] = None, step: Optional[int] = None) -> int:
        """The `interrupted` line at the newest durable position (or the one given); returns exit code 0.

        Call it after checkpointing the current position (see `is_durable`).
        """
        durable = self._durable or (0, 0)
        at = (epoch if epoch is not None else durable[0], step if step is not None else durable[1])
        if self._durable != at:
            log(f"warning: stopping at epoch {at[0]} step {at[1]}, which is not checkpointed; those steps will be redone")
        emit({"type": "interrupted", "epoch": at[0], "step": at[1]})
        why = f"signal {FLAG.signum}" if FLAG.signum else {"stdin-eof": "stdin reaching EOF (plugin gone)", "stdout-broken": "a broken stdout (plugin gone)"}.get(FLAG.reason or "", "request")
        log(f"interrupted by {why} at epoch {at[0]} step {at[1]}; exiting 0")
        return 0

    def log(self, text: str) -> None:
        log(text)


def start(
    schema: Optional[Schema] = None,
    *,
    producer: Optional[str] = None,
    format: str = "auto",  # noqa: A002 - the natural name for callers
    fingerprint: FingerprintSpec = None,
    env: Optional[Mapping] = None,
    progress_interval: float = 0.0,
) -> Run:
    """Installs the SIGTERM/SIGINT handlers and the stdin watcher (once), reads the environment,
    validates params against `schema` (when given) and loads the resume checkpoint (when told to).

    format: "json" (standard library; byte-identical for identical state), "torch" (`torch.save`,
    loaded with weights_only=True) or "auto" (torch when importable, else json). @default "auto"
    fingerprint: the params that shape the trajectory (names, a dict, or a function of the params);
    a resume checkpoint written with other values is refused as Fatal. @default None (no check)
    progress_interval: seconds; progress lines closer together are dropped (heartbeats need a few
    per second at most, and a fast loop saves the plugin a line per step). @default 0 (every call)
    """
    producer = producer or os.path.basename(sys.argv[0] or "trainer") or "trainer"
    set_log_prefix(producer)
    if not _started["handlers"]:
        install_signal_handlers()  # first: a SIGTERM during setup must not kill us without a word
        _started["handlers"] = True
    if not _started["stdin"]:
        _started["stdin"] = watch_stdin()
    if format not in ("auto", "json", "torch"):
        raise ValueError(f"format: expected \"auto\", \"json\" or \"torch\", received {format!r}")
    fmt = ("torch" if formats.torch_available() else "json") if format == "auto" else format
    run = Run(os.environ if env is None else env, schema, producer, fmt, fingerprint)
    run.progress_interval = progress_interval
    return run


def main(train: Callable[[Run], Optional[int]], **start_kwargs) -> None:
    """Runs `train(start(**start_kwargs))` and exits with its return code; `Fatal` becomes a `fatal`
    line and exit code 3."""
    try:
        code = train(start(**start_kwargs))
    except Fatal as err:
        emit({"type": "fatal", "message": str(err)})
        log(f"fatal: {err}")
        code = EXIT_NONRETRYABLE
    sys.stdout.flush()
    sys.exit(code or 0)
