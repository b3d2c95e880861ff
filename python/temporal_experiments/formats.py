"""Checkpoint file formats. Never unpickles anything but weights: JSON (standard library) or
`torch.save` read back with `torch.load(weights_only=True)`.

A file is one document:

    {"format": "temporal-experiments/checkpoint", "version": 1, "producer": "train.py",
     "epoch": E, "step": S, "metrics": {...}, "fingerprint": "<sha256>", "fingerprintParams": {...},
     "state": <the trainer's state>, "stateSha256": "<digest of state>"}

`stateSha256` is a digest of the state's content (not of the file's bytes), recomputed on load, so
a file whose bytes were damaged after it was written is refused even where the container format
does not notice (torch's zip reader does not check CRCs).

torch 1.13's weights-only unpickler rejects Python floats (pickle opcode 71, BINFLOAT: "Unsupported
operand 71"), and with them every optimizer state_dict (`lr`, `momentum`, ...). Where that is so,
floats are stored as `{"__float__": float.hex(x)}` and turned back into floats on load, exactly.
What a torch checkpoint may hold: tensors, dict/OrderedDict, list, tuple, str, int, float, bool,
None. Anything else (numpy arrays, arbitrary objects) is refused at save time with its path named:
store RNG states and positions as tensors or lists (the torch helpers do).
"""
from __future__ import annotations

import collections
import hashlib
import io
import json

from .protocol import Fatal


def _reject_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")

FORMAT = "temporal-experiments/checkpoint"
VERSION = 1
FLOAT_TAG = "__float__"
_ZIP_MAGIC = b"PK\x03\x04"


def torch_available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def _canonical_json(value) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)


def json_digest(state) -> str:
    return hashlib.sha256(_canonical_json(state).encode()).hexdigest()


# ---- torch ----------------------------------------------------------------------------------

_float_support: bool | None = None


def torch_loads_floats() -> bool:
    """Whether this torch's `torch.load(weights_only=True)` accepts Python floats (torch >= 2 does)."""
    global _float_support
    if _float_support is None:
        import torch

        buf = io.BytesIO()
        torch.save({"x": 1.5}, buf)
        buf.seek(0)
        try:
            _float_support = torch.load(buf, weights_only=True) == {"x": 1.5}
        except Exception:  # noqa: BLE001 - torch raises pickle.UnpicklingError or RuntimeError
            _float_support = False
    return _float_support


def _numpy_scalar(value):
    if type(value).__module__ == "numpy" and hasattr(value, "item") and getattr(value, "ndim", None) == 0:
        return value.item()
    return None


def to_weights_only(value, where: str, encode_floats: bool):
    """The state as something weights-only unpickling accepts; raises TypeError naming the path."""
    import torch

    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return {FLOAT_TAG: value.hex()} if encode_floats else value
    if isinstance(value, dict):
        out = collections.OrderedDict() if isinstance(value, collections.OrderedDict) else {}
        for k, v in value.items():
            if not (k is None or isinstance(k, (bool, int, str))):
                raise TypeError(f"{where}: key {k!r}: expected a str or int key, received {type(k).__name__}")
            out[k] = to_weights_only(v, f"{where}[{k!r}]", encode_floats)
        return out
    if isinstance(value, (list, tuple)):
        items = [to_weights_only(v, f"{where}[{i}]", encode_floats) for i, v in enumerate(value)]
        return items if isinstance(value, list) else tuple(items)
    scalar = _numpy_scalar(value)
    if scalar is not None:
        return to_weights_only(scalar, where, encode_floats)
    raise TypeError(
        f"{where}: a {type(value).__module__}.{type(value).__name__} cannot be stored in a weights-only "
        "checkpoint; expected tensors, dicts, lists, tuples, str, int, float, bool or None "
        "(convert numpy arrays with torch.from_numpy or .tolist())"
    )


def from_weights_only(value):
    """Undoes the float encoding of `to_weights_only`."""
    if isinstance(value, dict):
        if len(value) == 1 and isinstance(value.get(FLOAT_TAG), str):
            return float.fromhex(value[FLOAT_TAG])
        out = collections.OrderedDict() if isinstance(value, collections.OrderedDict) else {}
        for k, v in value.items():
            out[k] = from_weights_only(v)
        return out
    if isinstance(value, list):
        return [from_weights_only(v) for v in value]
    if isinstance(value, tuple):
        return tuple(from_weights_only(v) for v in value)
    return value


def _digest_into(h, value) -> None:
    import torch

    if isinstance(value, torch.Tensor):
        t = value.detach().cpu().contiguous().reshape(-1)
        h.update(f"T{t.dtype}{tuple(value.shape)}:".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    elif isinstance(value, dict):
        h.update(f"D{len(value)}:".encode())
        for k, v in value.items():
            _digest_into(h, k)
            _digest_into(h, v)
    elif isinstance(value, (list, tuple)):
        h.update(f"{'L' if isinstance(value, list) else 'U'}{len(value)}:".encode())
        for v in value:
            _digest_into(h, v)
    elif isinstance(value, float):
        h.update(f"F{value.hex()};".encode())
    else:  # None, bool, int, str: repr is exact and distinguishes the types
        h.update(f"{type(value).__name__}{value!r};".encode())


def torch_digest(encoded_state) -> str:
    h = hashlib.sha256()
    _digest_into(h, encoded_state)
    return h.hexdigest()


# ---- files ----------------------------------------------------------------------------------


def encode(doc: dict, fmt: str) -> bytes:
    """Bytes of a checkpoint document (`state` and the header fields) in format "json" or "torch"."""
    if fmt == "json":
        try:
            out = dict(doc, stateSha256=json_digest(doc["state"]))
            return (_canonical_json(out) + "\n").encode()
        except (TypeError, ValueError) as err:
            raise TypeError(f"checkpoint state: cannot be stored as JSON ({err})") from None
    if fmt == "torch":
        import torch

        encoded = to_weights_only(doc, "checkpoint", encode_floats=not torch_loads_floats())
        encoded["stateSha256"] = torch_digest(encoded["state"])
        buf = io.BytesIO()
        torch.save(encoded, buf)
        return buf.getvalue()
    raise ValueError(f"format: expected \"json\" or \"torch\", received {fmt!r}")


def decode(data: bytes, path: str) -> dict:
    """A checkpoint document from its bytes; every problem is Fatal (retrying cannot fix a file)."""
    if data[:4] == _ZIP_MAGIC:
        doc = _decode_torch(data, path)
    else:
        try:
            doc = json.loads(data, parse_constant=_reject_constant)
        except ValueError as err:
            raise Fatal(f"checkpoint {path}: expected a JSON checkpoint, received invalid JSON ({err})") from None
        if isinstance(doc, dict) and "state" in doc and doc.get("stateSha256") != json_digest(doc["state"]):
            raise Fatal(f"checkpoint {path}: stateSha256 does not match the state: the file is corrupt")
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        got = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
        raise Fatal(f"checkpoint {path}: expected format {FORMAT!r}, received {got!r}")
    if doc.get("version") != VERSION:
        raise Fatal(f"checkpoint {path}: expected version {VERSION}, received {doc.get('version')!r}")
    return doc


def _decode_torch(data: bytes, path: str) -> dict:
    try:
        import torch
    except ImportError:
        raise Fatal(f"checkpoint {path} is a torch checkpoint, but PyTorch is not installed for this interpreter") from None
    try:
        raw = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - corrupt files raise all sorts (UnpicklingError, RuntimeError, ValueError, ...)
        raise Fatal(f"checkpoint {path}: cannot be loaded with torch.load(weights_only=True): {type(err).__name__}: {err}"[:2000]) from None
    if not isinstance(raw, dict) or "state" not in raw:
        raise Fatal(f"checkpoint {path}: expected a temporal-experiments checkpoint, received a torch file without one")
    if raw.get("stateSha256") != torch_digest(raw["state"]):
        raise Fatal(f"checkpoint {path}: stateSha256 does not match the state: the file is corrupt")
    return from_weights_only(raw)
