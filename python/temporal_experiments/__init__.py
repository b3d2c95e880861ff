"""temporal-experiments trainer library: the trainer protocol of docs/trainer-protocol.md in Python.

The core is standard library only; `temporal_experiments.torch` (exact-resume helpers) needs PyTorch.
"""
from .handler import CheckpointHandler
from .params import Params, boolean, integer, number, parse_params, string, validate
from .protocol import EXIT_CRASH, EXIT_NONRETRYABLE, Fatal, describe, log, write_file_atomically
from .run import Run, main, start

__version__ = "0.1.0"
PROTOCOL_VERSION = 1

__all__ = [
    "CheckpointHandler",
    "EXIT_CRASH",
    "EXIT_NONRETRYABLE",
    "Fatal",
    "Params",
    "PROTOCOL_VERSION",
    "Run",
    "boolean",
    "describe",
    "integer",
    "log",
    "main",
    "number",
    "parse_params",
    "start",
    "string",
    "validate",
    "write_file_atomically",
]
