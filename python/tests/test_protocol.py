"""The protocol side of the library: durable write order, the checkpoint line, refusal of corrupt
resume files, the interruption flag (real signals, real stdin EOF, in child processes)."""
from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import unittest
from unittest import mock

from helpers import LIBRARY, LibraryTestCase, env_for

from temporal_experiments import Fatal, integer
from temporal_experiments import protocol


class DurableWriteTest(LibraryTestCase):
    def test_temp_fsync_rename_dirfsync_then_the_checkpoint_line(self):
        events = []
        real_fsync, real_replace = os.fsync, os.replace
        final = os.path.join(self.ckpt, "ckpt-e0001-s000000.json")

        def fsync(fd):
            st = os.fstat(fd)
            kind = "dir" if stat.S_ISDIR(st.st_mode) else "file"
            # The bytes were flushed to the fd before the fsync: its size is already the full size.
            events.append((f"fsync-{kind}", st.st_size if kind == "file" else None))
            return real_fsync(fd)

        def replace(src, dst):
            events.append(("replace", os.path.basename(src), os.path.basename(dst)))
            return real_replace(src, dst)

        self.stdout.on_line = lambda msg: events.append(("line", msg["type"], os.path.exists(msg.get("path", ""))))
        run = self.new_run()
        with mock.patch("os.fsync", side_effect=fsync), mock.patch("os.replace", side_effect=replace):
            path = run.checkpoint({"w": [0.5, 1.25]}, 1, 0, {"loss": 0.5})
        self.assertEqual(path, final)
        size = os.path.getsize(final)
        self.assertEqual(
            events,
            [
                ("fsync-file", size),
                ("replace", f".tmp-ckpt-e0001-s000000.json-{os.getpid()}", "ckpt-e0001-s000000.json"),
                ("fsync-dir", None),
                ("line", "checkpoint", True),
            ],
        )
        self.assertEqual(sorted(os.listdir(self.ckpt)), ["ckpt-e0001-s000000.json"], "no temp file left")
        line = self.checkpoints()[0]
        self.assertEqual((line["epoch"], line["step"], line["metrics"]), (1, 0, {"loss": 0.5}))
        self.assertTrue(run.is_durable(1, 0))

    def test_a_failed_write_removes_the_temp_file_and_announces_nothing(self):
        run = self.new_run()
        with mock.patch("os.replace", side_effect=OSError(28, "No space left on device")):
            with self.assertRaises(OSError):
                run.checkpoint({"w": [1.0]}, 0, 3)
        self.assertEqual(os.listdir(self.ckpt), [])
        self.assertEqual(self.checkpoints(), [])
        self.assertFalse(run.is_durable(0, 3))

    def test_an_announced_file_is_never_rewritten(self):
        first = self.new_run(attempt=1)
        a = first.checkpoint({"w": [1.0]}, 1, 0)
        second = self.new_run(attempt=2)
        self.assertEqual(second.checkpoint({"w": [1.0]}, 1, 0), a, "identical bytes: the same file is announced again")
        b = second.checkpoint({"w": [2.0]}, 1, 0)
        self.assertEqual(os.path.basename(b), "ckpt-e0001-s000000-a2.json")
        with open(a) as f:
            self.assertEqual(json.load(f)["state"], {"w": [1.0]})

    def test_reserved_names_are_refused(self):
        run = self.new_run()
        for name in ("manifest.json", "ck-1.ckpt", ".tmp-x", "../x.json", "a/b.json"):
            with self.subTest(name=name), self.assertRaises(ValueError):
                run.checkpoint({}, 0, 1, name=name)


class ResumeTest(LibraryTestCase):
    def saved(self, state, fmt="json", epoch=2, step=5, fingerprint=None, params=None):
        path = self.new_run(fmt, fingerprint=fingerprint, params=params).checkpoint(state, epoch, step, {"loss": 0.25})
        return {"path": path, "epoch": epoch, "step": step}

    def test_resume_returns_the_state_and_position_exactly(self):
        state = {"w": [0.1, 1 / 3, -2.5e-300], "n": 7, "flag": True, "none": None, "nested": {"a": [1, "x"]}}
        run = self.new_run(resume=self.saved(state))
        self.assertEqual(run.resume, state)
        self.assertEqual(run.position, (2, 5))
        self.assertEqual(run.resume_metrics, {"loss": 0.25})
        self.assertTrue(run.is_durable(2, 5))

    def test_a_corrupted_file_is_refused(self):
        resume = self.saved({"w": [0.125, 0.5]})
        with open(resume["path"], "rb") as f:
            data = f.read()
        cases = {
            "a changed digit": data.replace(b"0.125", b"0.126"),
            "truncated": data[: len(data) // 2],
            "not a checkpoint": b'{"hello": 1}',
            "empty": b"",
        }
        for what, damaged in cases.items():
            with self.subTest(what=what):
                with open(resume["path"], "wb") as f:
                    f.write(damaged)
                with self.assertRaises(Fatal) as caught:
                    self.new_run(resume=resume)
                self.assertIn(resume["path"], str(caught.exception))

    def test_other_params_and_other_positions_are_refused(self):
        schema = {"lr": (0.1, lambda n, v: v), "epochs": (3, integer(1, 10))}
        resume = self.saved({}, fingerprint=["lr"], params={"lr": 0.1})
        with self.assertRaises(Fatal) as caught:
            self.new_run(resume=resume, params={"lr": 0.2}, fingerprint=["lr"], schema=schema)
        self.assertIn("lr: checkpoint has number 0.1, params have number 0.2", str(caught.exception))
        with self.assertRaises(Fatal) as caught:
            self.new_run(resume=dict(resume, step=4))
        self.assertIn("EXPERIMENT_RESUME_STEP: expected 5", str(caught.exception))
        run = self.new_run(resume=resume, params={"epochs": 2}, fingerprint=["lr"], schema=schema)
        with self.assertRaises(Fatal) as caught:
            run.check_position(2, 10)
        self.assertIn("past the end", str(caught.exception))


class LinesTest(LibraryTestCase):
    def test_progress_result_and_stopped_lines(self):
        run = self.new_run()
        run.progress(0, 1, epochs=3, loss=0.5, bad=float("nan"), flag=True)
        run.checkpoint({}, 0, 1)
        self.assertEqual(run.stopped(), 0)
        run.result({"accuracy": 0.75}, model_sha256="ab" * 32)
        with self.assertRaises(RuntimeError):
            run.result({"accuracy": 0.75})
        self.assertEqual(
            [m for m in self.stdout.messages if m["type"] != "checkpoint"],
            [
                {"type": "progress", "epoch": 0, "step": 1, "epochs": 3, "metrics": {"loss": 0.5}},
                {"type": "interrupted", "epoch": 0, "step": 1},
                {"type": "result", "metrics": {"accuracy": 0.75}, "modelSha256": "ab" * 32},
            ],
        )


class ProgressIntervalTest(LibraryTestCase):
    def test_progress_lines_closer_than_the_interval_are_dropped(self):
        run = self.new_run()
        run.progress_interval = 3600.0
        for step in range(1, 6):
            run.progress(0, step)
        self.assertEqual([m["step"] for m in self.stdout.messages], [1], "only the first within the interval")
        run.progress_interval = 0.0
        run.progress(0, 6)
        self.assertEqual([m["step"] for m in self.stdout.messages], [1, 6])


# A child process: start() installs the handlers and the stdin watcher, then the loop polls the flag.
FLAG_CHILD = """
import json, sys, time
sys.path.insert(0, {lib!r})
import temporal_experiments as te
run = te.start(format="json")
print(json.dumps({{"type": "progress", "epoch": 0, "step": 0}}), flush=True)
deadline = time.monotonic() + 20
while not run.interrupted and time.monotonic() < deadline:
    time.sleep(0.01)
sys.stderr.write(f"reason={{run.interrupt_reason}}\\n")
sys.exit(0 if run.interrupted else 9)
"""


class FlagTest(unittest.TestCase):
    def child(self, stdin):
        env = dict(os.environ, **env_for(self._dir()))
        proc = subprocess.Popen(
            [sys.executable, "-B", "-c", FLAG_CHILD.format(lib=LIBRARY)],
            stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, start_new_session=True,
        )
        self.addCleanup(self._reap, proc)
        self.assertIn(b"progress", proc.stdout.readline(), "the child started")
        return proc

    def _dir(self):
        d = tempfile.mkdtemp(prefix="te-flag-")
        self.addCleanup(shutil.rmtree, d, True)
        return d

    @staticmethod
    def _reap(proc):
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        for s in (proc.stdin, proc.stdout, proc.stderr):
            if s:
                s.close()

    def finish(self, proc):
        proc.wait(timeout=20)
        return proc.returncode, proc.stderr.read().decode()

    def test_sigterm_and_sigint_only_set_the_flag(self):
        for sig, name in ((signal.SIGTERM, "SIGTERM"), (signal.SIGINT, "SIGINT")):
            with self.subTest(signal=name):
                proc = self.child(subprocess.DEVNULL)
                os.killpg(proc.pid, sig)
                code, err = self.finish(proc)
                self.assertEqual(code, 0, err)
                self.assertIn(f"reason={name}", err)

    def test_stdin_eof_sets_the_flag(self):
        proc = self.child(subprocess.PIPE)
        proc.stdin.close()
        code, err = self.finish(proc)
        self.assertEqual(code, 0, err)
        self.assertIn("reason=stdin-eof", err)

    def test_stdin_watcher_hard_exits_when_the_loop_does_not_stop(self):
        code = f"import sys, time; sys.path.insert(0, {LIBRARY!r}); from temporal_experiments import protocol; protocol.watch_stdin(0.5); time.sleep(30)"
        proc = subprocess.Popen([sys.executable, "-B", "-c", code], stdin=subprocess.PIPE, stderr=subprocess.PIPE)
        self.addCleanup(self._reap, proc)
        time.sleep(0.3)  # let the watcher start reading (not an assertion on timing)
        proc.stdin.close()
        proc.wait(timeout=20)
        self.assertEqual(proc.returncode, protocol.EXIT_CRASH)
        self.assertIn(b"did not stop", proc.stderr.read())


if __name__ == "__main__":
    unittest.main()
