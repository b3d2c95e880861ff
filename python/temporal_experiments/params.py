"""Validation of EXPERIMENT_PARAMS (protocol section 10): unknown keys are an error, and every message
names the field, what was expected and what was received. Standard library only.

    SCHEMA = {
        "epochs": (5, integer(1, 1_000_000)),
        "lr": (0.1, number(0, 100, lo_open=True)),
        "hook": (None, string()),      # optional, no default: null means "not given"
    }
    p = parse_params(os.environ.get("EXPERIMENT_PARAMS", ""), SCHEMA)
    p.epochs, p.lr
"""
from __future__ import annotations

import json
import math
from typing import Any, Callable, Dict, Tuple

from .protocol import Fatal, describe

Validator = Callable[[str, Any], Any]
Schema = Dict[str, Tuple[Any, Validator]]
MAX_SAFE_INTEGER = 2**53 - 1


def integer(lo: int, hi: int) -> Validator:
    def check(name: str, value):
        ok = (
            not isinstance(value, bool)
            and (isinstance(value, int) or (isinstance(value, float) and value.is_integer()))
            and lo <= value <= hi
        )
        if not ok:
            raise Fatal(f"params.{name}: expected an integer from {lo} to {hi}, received {describe(value)}")
        return int(value)

    return check


def number(lo: float, hi: float, lo_open: bool = False, hi_open: bool = False) -> Validator:
    def check(name: str, value):
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

    return check


def boolean() -> Validator:
    def check(name: str, value):
        if not isinstance(value, bool):
            raise Fatal(f"params.{name}: expected a boolean, received {describe(value)}")
        return value

    return check


def string() -> Validator:
    def check(name: str, value):
        if not isinstance(value, str) or value == "":
            raise Fatal(f"params.{name}: expected a non-empty string, received {describe(value)}")
        return value

    return check


class Params:
    """Validated params as attributes (`p.epochs`); `as_dict()` gives them back as a dict."""

    def __init__(self, values: dict) -> None:
        self.__dict__.update(values)

    def as_dict(self) -> dict:
        return dict(self.__dict__)

    def pick(self, names) -> dict:
        return {k: getattr(self, k) for k in names}


def _reject_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


def parse_json_object(raw_text: str) -> dict:
    """EXPERIMENT_PARAMS as a dict: empty text is {}, anything but a JSON object is Fatal."""
    if raw_text.strip() == "":
        return {}
    try:
        raw = json.loads(raw_text, parse_constant=_reject_constant)
    except ValueError as err:
        raise Fatal(f"EXPERIMENT_PARAMS: expected a JSON object, received invalid JSON ({err})") from None
    if not isinstance(raw, dict):
        raise Fatal(f"EXPERIMENT_PARAMS: expected a JSON object, received {describe(raw)}")
    return raw


def validate(raw: dict, schema: Schema) -> Params:
    """Checks `raw` against `schema`; missing keys take their default."""
    unknown = sorted(k for k in raw if k not in schema)
    if unknown:
        known = ", ".join(sorted(schema))
        raise Fatal(
            f"params.{unknown[0]}: unknown parameter (expected one of {known}), received {describe(raw[unknown[0]])}"
        )
    values = {}
    for name, (default, check) in schema.items():
        # null is accepted as "not given" only for params without a default (optional hooks).
        given = name in raw and (raw[name] is not None or default is not None)
        values[name] = check(name, raw[name]) if given else default
    return Params(values)


def parse_params(raw_text: str, schema: Schema) -> Params:
    return validate(parse_json_object(raw_text), schema)
