"""Shared bits of the library tests: a Run over a temporary directory, stdout captured as messages."""
from __future__ import annotations

import io
import json
import os
import shutil
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
LIBRARY = os.path.dirname(HERE)
if LIBRARY not in sys.path:
    sys.path.insert(0, LIBRARY)

from temporal_experiments.run import Run  # noqa: E402


class Stdout(io.StringIO):
    """sys.stdout stand-in that keeps the protocol messages written to it, and calls `on_line`."""

    def __init__(self, on_line=None):
        super().__init__()
        self.messages = []
        self.on_line = on_line

    def write(self, text):
        for line in text.splitlines():
            msg = json.loads(line)
            if self.on_line:
                self.on_line(msg)
            self.messages.append(msg)
        return len(text)


def env_for(ckpt_dir, params=None, attempt=1, resume=None):
    return {
        "EXPERIMENT_ID": "exp-1",
        "EXPERIMENT_SESSION_ID": "s-1",
        "EXPERIMENT_ATTEMPT": str(attempt),
        "EXPERIMENT_PARAMS": json.dumps(params or {}),
        "EXPERIMENT_CHECKPOINT_DIR": ckpt_dir,
        "EXPERIMENT_RESUME_FROM": resume["path"] if resume else "",
        "EXPERIMENT_RESUME_EPOCH": str(resume["epoch"]) if resume else "",
        "EXPERIMENT_RESUME_STEP": str(resume["step"]) if resume else "",
    }


class LibraryTestCase(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="te-lib-test-")
        self.ckpt = os.path.join(self.tmp, "ckpt")
        os.makedirs(self.ckpt)
        self.stdout = Stdout()
        self._real_stdout = sys.stdout
        sys.stdout = self.stdout

    def tearDown(self):
        sys.stdout = self._real_stdout
        shutil.rmtree(self.tmp, ignore_errors=True)

    def new_run(self, fmt="json", params=None, attempt=1, resume=None, fingerprint=None, schema=None):
        """A Run built directly (no signal handlers or stdin watcher in the test process)."""
        return Run(env_for(self.ckpt, params, attempt, resume), schema, "test", fmt, fingerprint)

    def checkpoints(self):
        return [m for m in self.stdout.messages if m["type"] == "checkpoint"]
