"""Tests of examples/python/train.py against docs/trainer-protocol.md (standard library only).

    python3 -m unittest examples/python/test_train.py

Each test runs train.py as a child process the way the plugin does: argument array, a minimal
environment plus the EXPERIMENT_* variables, stdin/stdout/stderr pipes, its own process group
(signals go to the whole group).
"""
from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
TRAIN = os.path.join(HERE, "train.py")
EXIT_NONRETRYABLE = 3


class Child:
    """train.py as a child process, with its stdout parsed into protocol messages as they arrive."""

    def __init__(self, ckpt_dir, params=None, attempt=1, resume=None, params_text=None, env=None, argv=None):
        child_env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", "/tmp"),
            "LANG": "C.UTF-8",
            "EXPERIMENT_ID": "exp-1",
            "EXPERIMENT_SESSION_ID": "session-1",
            "EXPERIMENT_ATTEMPT": str(attempt),
            "EXPERIMENT_PARAMS": params_text if params_text is not None else json.dumps(params or {}),
            "EXPERIMENT_CHECKPOINT_DIR": ckpt_dir,
            "EXPERIMENT_RESUME_FROM": resume["path"] if resume else "",
            "EXPERIMENT_RESUME_EPOCH": str(resume["epoch"]) if resume else "",
            "EXPERIMENT_RESUME_STEP": str(resume["step"]) if resume else "",
        }
        child_env.update(env or {})
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            argv or [sys.executable, TRAIN],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=child_env,
            start_new_session=True,  # like the plugin: own process group, signalled as a group
        )
        self.lines: queue.Queue = queue.Queue()
        self.messages: list = []  # every protocol message consumed so far
        self.text_lines: list = []  # stdout lines that are not protocol messages
        self.stderr_lines: list = []
        self._readers = [
            threading.Thread(target=self._read_stdout, daemon=True),
            threading.Thread(target=self._read_stderr, daemon=True),
        ]
        for t in self._readers:
            t.start()

    def _read_stdout(self):
        for raw in self.proc.stdout:
            self.lines.put(raw.decode("utf-8").rstrip("\r\n"))
        self.lines.put(None)

    def _read_stderr(self):
        for raw in self.proc.stderr:
            self.stderr_lines.append(raw.decode("utf-8", "replace").rstrip("\n"))

    def next_message(self, timeout=10.0):
        """The next protocol message, or None at EOF. Non-protocol lines are collected aside."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no message from train.py within {timeout}s; stderr: {self.stderr_lines[-5:]}")
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                self.lines.put(None)  # stay at EOF
                return None
            try:
                msg = json.loads(line)
            except ValueError:
                msg = None
            if not isinstance(msg, dict) or msg.get("type") not in ("progress", "checkpoint", "result", "fatal", "interrupted"):
                self.text_lines.append(line)
                continue
            self.messages.append(msg)
            return msg

    def wait_for(self, predicate, timeout=10.0):
        while True:
            msg = self.next_message(timeout)
            if msg is None:
                raise AssertionError(f"train.py ended before the expected message; stderr: {self.stderr_lines[-5:]}")
            if predicate(msg):
                return msg

    def signal_group(self, sig):
        os.killpg(self.proc.pid, sig)

    def finish(self, timeout=20.0):
        """Reads to EOF and waits for the exit. Returns (exit code, messages consumed in total)."""
        while self.next_message(timeout) is not None:
            pass
        code = self.proc.wait(timeout)
        for t in self._readers:
            t.join(5)
        self.elapsed = time.monotonic() - self.started
        return code, self.messages

    def kill(self):
        if self.proc.poll() is None:
            try:
                self.signal_group(signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait(10)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                stream.close()
            except OSError:
                pass


def of_type(messages, kind):
    return [m for m in messages if m["type"] == kind]


class TrainerTestCase(unittest.TestCase):
    _baseline = None

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="train-py-test-")
        self.children = []

    def tearDown(self):
        for child in self.children:
            child.kill()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def new_dir(self, name):
        path = os.path.join(self.tmp, name)
        os.makedirs(path)
        return path

    def start(self, ckpt_dir, **kwargs):
        child = Child(ckpt_dir, **kwargs)
        self.children.append(child)
        return child

    def run_to_end(self, ckpt_dir, **kwargs):
        child = self.start(ckpt_dir, **kwargs)
        code, messages = child.finish()
        return child, code, messages

    def baseline(self):
        """Result and checkpoint bytes of an uninterrupted default run (computed once per class)."""
        if TrainerTestCase._baseline is None:
            ckpt_dir = tempfile.mkdtemp(prefix="train-py-baseline-")
            try:
                child, code, messages = self.run_to_end(ckpt_dir)
                self.assertEqual(code, 0, child.stderr_lines)
                files = {}
                for name in sorted(os.listdir(ckpt_dir)):
                    with open(os.path.join(ckpt_dir, name), "rb") as f:
                        files[name] = f.read()
                TrainerTestCase._baseline = {
                    "result": of_type(messages, "result")[0],
                    "files": files,
                    "messages": messages,
                    "elapsed": child.elapsed,
                }
            finally:
                shutil.rmtree(ckpt_dir, ignore_errors=True)
        return TrainerTestCase._baseline

    def assert_same_result(self, result):
        expected = self.baseline()["result"]
        self.assertEqual(result["metrics"]["loss"], expected["metrics"]["loss"])
        self.assertEqual(result["metrics"]["accuracy"], expected["metrics"]["accuracy"])
        self.assertEqual(result["modelSha256"], expected["modelSha256"])

    def interrupt_after(self, ckpt_dir, params, epoch, step, resume=None, attempt=1):
        """Runs until a progress line at (epoch, step) or later, SIGTERMs the group, returns the tail."""
        child = self.start(ckpt_dir, params=params, resume=resume, attempt=attempt)
        child.wait_for(lambda m: m["type"] == "progress" and (m["epoch"], m["step"]) >= (epoch, step))
        child.signal_group(signal.SIGTERM)
        code, messages = child.finish()
        self.assertEqual(code, 0, child.stderr_lines)
        last = messages[-1]
        self.assertEqual(last["type"], "interrupted", messages[-3:])
        self.assertFalse(of_type(messages, "result"), "no result line after an interruption")
        position = (last["epoch"], last["step"])
        self.assertGreaterEqual(position, (epoch, step))
        checkpoints = of_type(messages, "checkpoint")
        if resume is None or (resume["epoch"], resume["step"]) != position:
            self.assertTrue(checkpoints, "an interruption saves a checkpoint first")
            ckpt = checkpoints[-1]
            self.assertEqual((ckpt["epoch"], ckpt["step"]), position)
            self.assertTrue(os.path.isfile(ckpt["path"]))
            return {"path": ckpt["path"], "epoch": ckpt["epoch"], "step": ckpt["step"]}
        return resume


class FullRunTest(TrainerTestCase):
    def test_full_run_emits_progress_checkpoints_and_result(self):
        ckpt_dir = self.new_dir("ckpt")
        child = self.start(ckpt_dir)
        seen = []
        while True:
            msg = child.next_message()
            if msg is None:
                break
            seen.append(msg)
            if msg["type"] == "checkpoint":
                # The line comes only after the file is complete: it must parse right now.
                with open(msg["path"], "rb") as f:
                    doc = json.loads(f.read())
                self.assertEqual((doc["epoch"], doc["step"]), (msg["epoch"], msg["step"]))
        code, _ = child.finish()
        self.assertEqual(code, 0, child.stderr_lines)

        progress = of_type(seen, "progress")
        self.assertEqual(len(progress), 5 * 25)
        self.assertEqual([(m["epoch"], m["step"]) for m in progress[:2]], [(0, 1), (0, 2)])
        self.assertEqual((progress[-1]["epoch"], progress[-1]["step"]), (4, 25))
        for m in progress:
            self.assertEqual(m["epochs"], 5)
            self.assertIsInstance(m["metrics"]["loss"], float)

        checkpoints = of_type(seen, "checkpoint")
        self.assertEqual([(m["epoch"], m["step"]) for m in checkpoints], [(e, 0) for e in range(1, 6)])
        for m in checkpoints:
            self.assertTrue(os.path.isabs(m["path"]))
            self.assertEqual(os.path.dirname(m["path"]), ckpt_dir)
            self.assertEqual(os.path.basename(m["path"]), f"ckpt-e{m['epoch']:04d}-s000000.json")
            self.assertEqual(set(m["metrics"]), {"loss", "accuracy"})
        # Nothing else is left in the directory: no temp files.
        self.assertEqual(sorted(os.listdir(ckpt_dir)), [f"ckpt-e{e:04d}-s000000.json" for e in range(1, 6)])

        self.assertEqual(seen[-1]["type"], "result")
        result = seen[-1]
        self.assertRegex(result["modelSha256"], r"^[0-9a-f]{64}$")
        self.assertLess(result["metrics"]["loss"], 0.75)  # it learns (log(3) = 1.0986 at the start)
        self.assertGreater(result["metrics"]["accuracy"], 0.6)
        self.assertEqual(result["metrics"]["loss"], checkpoints[-1]["metrics"]["loss"])
        self.assertLess(child.elapsed, 10)

    def test_runs_are_deterministic(self):
        _, code, messages = self.run_to_end(self.new_dir("again"))
        self.assertEqual(code, 0)
        self.assert_same_result(of_type(messages, "result")[0])
        baseline = self.baseline()
        print(f"\n  default run: {baseline['elapsed']:.2f}s; result {json.dumps(baseline['result'])}", file=sys.stderr)

    def test_resume_from_each_epoch_checkpoint_gives_the_same_result(self):
        src = self.new_dir("src")
        _, code, messages = self.run_to_end(src)
        self.assertEqual(code, 0)
        for ckpt in of_type(messages, "checkpoint")[:-1]:
            with self.subTest(epoch=ckpt["epoch"]):
                _, code, resumed = self.run_to_end(self.new_dir(f"from-{ckpt['epoch']}"), resume=ckpt, attempt=2)
                self.assertEqual(code, 0)
                first = of_type(resumed, "progress")[0]
                self.assertEqual((first["epoch"], first["step"]), (ckpt["epoch"], 1))
                self.assert_same_result(of_type(resumed, "result")[0])

    def test_resume_from_final_checkpoint_only_reports_the_result(self):
        src = self.new_dir("src")
        _, _, messages = self.run_to_end(src)
        final = of_type(messages, "checkpoint")[-1]
        _, code, resumed = self.run_to_end(self.new_dir("done"), resume=final, attempt=2)
        self.assertEqual(code, 0)
        self.assertEqual([m["type"] for m in resumed], ["result"])
        self.assert_same_result(resumed[0])

    def test_more_epochs_continue_from_a_finished_run(self):
        src = self.new_dir("src")
        _, _, messages = self.run_to_end(src)
        final = of_type(messages, "checkpoint")[-1]
        _, code, resumed = self.run_to_end(self.new_dir("more"), params={"epochs": 7}, resume=final, attempt=1)
        self.assertEqual(code, 0)
        _, _, straight = self.run_to_end(self.new_dir("seven"), params={"epochs": 7})
        self.assertEqual(of_type(resumed, "result")[0], of_type(straight, "result")[0])


class InterruptionTest(TrainerTestCase):
    def test_sigterm_checkpoints_reports_interrupted_and_resume_is_exact(self):
        ckpt_dir = self.new_dir("ckpt")
        slow = {"step_delay": 0.01}
        ckpt = self.interrupt_after(ckpt_dir, slow, epoch=1, step=10)
        self.assertNotEqual(ckpt["step"], 0, "mid-epoch checkpoint")
        self.assertEqual(os.path.basename(ckpt["path"]), f"ckpt-e{ckpt['epoch']:04d}-s{ckpt['step']:06d}.json")
        # Resume in a fresh process (step_delay is not part of the fingerprint, so drop it).
        _, code, messages = self.run_to_end(ckpt_dir, params={}, resume=ckpt, attempt=2)
        self.assertEqual(code, 0)
        first = of_type(messages, "progress")[0]
        self.assertEqual((first["epoch"], first["step"]), (ckpt["epoch"], ckpt["step"] + 1))
        self.assert_same_result(of_type(messages, "result")[0])
        # Same state at the same position gives the same bytes as the uninterrupted run.
        for name, data in self.baseline()["files"].items():
            with open(os.path.join(ckpt_dir, name), "rb") as f:
                self.assertEqual(f.read(), data, name)

    def test_several_interruptions_then_resume_match_an_uninterrupted_run(self):
        ckpt_dir = self.new_dir("ckpt")
        slow = {"step_delay": 0.005}
        resume = None
        for attempt, (epoch, step) in enumerate([(0, 3), (1, 24), (2, 7), (4, 1)], start=1):
            resume = self.interrupt_after(ckpt_dir, slow, epoch, step, resume=resume, attempt=attempt)
        _, code, messages = self.run_to_end(ckpt_dir, params=slow, resume=resume, attempt=5)
        self.assertEqual(code, 0)
        self.assert_same_result(of_type(messages, "result")[0])

    def test_sigterm_cuts_the_step_delay_short(self):
        src = self.new_dir("src")
        ckpt = self.interrupt_after(src, {"step_delay": 0.01}, epoch=0, step=5)
        child = self.start(self.new_dir("again"), params={"step_delay": 5}, resume=ckpt, attempt=2)
        child.wait_for(lambda m: m["type"] == "progress")  # one step, then a 5 s delay
        child.signal_group(signal.SIGTERM)
        code, messages = child.finish()
        self.assertEqual(code, 0)
        self.assertLess(child.elapsed, 4, "the step_delay sleep is cut short by SIGTERM")
        self.assertEqual(messages[-1], {"type": "interrupted", "epoch": ckpt["epoch"], "step": ckpt["step"] + 1})

    def test_ignore_sigterm_keeps_running_until_sigkill(self):
        child = self.start(self.new_dir("ckpt"), params={"ignore_sigterm": True, "step_delay": 0.02})
        child.wait_for(lambda m: m["type"] == "progress")
        child.signal_group(signal.SIGTERM)
        sent = time.monotonic()
        later = child.wait_for(lambda m: m["type"] == "progress" and time.monotonic() - sent > 0.5)
        self.assertIsNone(child.proc.poll(), "still running after SIGTERM")
        self.assertEqual(later["type"], "progress")
        child.signal_group(signal.SIGKILL)
        code, messages = child.finish()
        self.assertEqual(code, -signal.SIGKILL)
        self.assertFalse(of_type(messages, "interrupted"))
        self.assertFalse(of_type(messages, "result"))

    def test_stdin_eof_means_the_plugin_is_gone(self):
        child = self.start(self.new_dir("ckpt"), params={"step_delay": 0.05})
        child.wait_for(lambda m: m["type"] == "progress" and m["step"] >= 2)
        closed = time.monotonic()
        child.proc.stdin.close()
        code, messages = child.finish(timeout=5)
        self.assertLess(time.monotonic() - closed, 3)
        self.assertEqual(code, 0, child.stderr_lines)
        self.assertEqual(messages[-1]["type"], "interrupted")
        self.assertEqual(messages[-2]["type"], "checkpoint")
        self.assertTrue(any("stdin" in line for line in child.stderr_lines), child.stderr_lines)

    def test_stdin_eof_is_also_watched_when_sigterm_is_ignored(self):
        child = self.start(self.new_dir("ckpt"), params={"step_delay": 0.05, "ignore_sigterm": True})
        child.wait_for(lambda m: m["type"] == "progress")
        child.proc.stdin.close()
        code, messages = child.finish(timeout=5)
        self.assertEqual(code, 0)
        self.assertEqual(messages[-1]["type"], "interrupted")

    def test_parent_death_with_broken_stdout_exits_quietly(self):
        # The plugin died: stdin reaches EOF and stdout has no reader any more.
        env = dict(os.environ, EXPERIMENT_CHECKPOINT_DIR=self.new_dir("ckpt"), EXPERIMENT_PARAMS='{"step_delay": 0.05}')
        proc = subprocess.Popen(
            [sys.executable, TRAIN], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=env, start_new_session=True,
        )
        try:
            self.assertIn(b'"type":"progress"', proc.stdout.readline())
            proc.stdout.close()
            proc.stdin.close()
            proc.wait(timeout=5)
            err = proc.stderr.read()
            self.assertEqual(proc.returncode, 0, err)
            self.assertNotIn(b"Traceback", err)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            proc.stderr.close()


class FailureTest(TrainerTestCase):
    def fatal(self, **kwargs):
        child, code, messages = self.run_to_end(self.new_dir(f"d{len(self.children)}"), **kwargs)
        self.assertEqual(code, EXIT_NONRETRYABLE, child.stderr_lines)
        self.assertEqual([m["type"] for m in messages], ["fatal"])
        return messages[0]["message"]

    def test_bad_params_are_fatal_and_name_the_field(self):
        cases = [
            ({"lrr": 0.1}, ["params.lrr", "unknown parameter", "expected one of", "received number 0.1"]),
            ({"lr": "fast"}, ["params.lr", "expected a number > 0", 'received "fast"']),
            ({"lr": -1}, ["params.lr", "received number -1"]),
            ({"epochs": 0}, ["params.epochs", "expected an integer from 1", "received number 0"]),
            ({"epochs": 2.5}, ["params.epochs", "received number 2.5"]),
            ({"batch_size": True}, ["params.batch_size", "received boolean true"]),
            ({"samples": None}, ["params.samples", "received null"]),
            ({"ignore_sigterm": "yes"}, ["params.ignore_sigterm", "expected a boolean", 'received "yes"']),
            ({"bad_checkpoint_path": ""}, ["params.bad_checkpoint_path", "non-empty string"]),
            ({"fail_at_epoch": 5}, ["params.fail_at_epoch", "from 0 to 4", "received number 5"]),
            ({"momentum": 1}, ["params.momentum", "< 1", "received number 1"]),
        ]
        for params, fragments in cases:
            with self.subTest(params=params):
                message = self.fatal(params=params)
                for fragment in fragments:
                    self.assertIn(fragment, message)

    def test_params_must_be_a_json_object(self):
        self.assertIn("received an array", self.fatal(params_text="[1, 2]"))
        self.assertIn("invalid JSON", self.fatal(params_text="{epochs: 3}"))
        self.assertIn("invalid JSON", self.fatal(params_text='{"lr": NaN}'))

    def test_missing_checkpoint_dir_is_fatal(self):
        self.assertIn("EXPERIMENT_CHECKPOINT_DIR", self.fatal(env={"EXPERIMENT_CHECKPOINT_DIR": ""}))

    def test_incompatible_checkpoints_are_fatal(self):
        src = self.new_dir("src")
        _, _, messages = self.run_to_end(src, params={"epochs": 2})
        ckpt = of_type(messages, "checkpoint")[0]
        message = self.fatal(params={"lr": 0.2}, resume=ckpt)
        self.assertIn("different params", message)
        self.assertIn("lr: checkpoint has number 0.1, params have number 0.2", message)
        self.assertIn("EXPERIMENT_RESUME_EPOCH", self.fatal(resume=dict(ckpt, epoch=3)))
        self.assertIn("past the end", self.fatal(params={"epochs": 1}, resume=of_type(messages, "checkpoint")[1]))
        garbage = os.path.join(src, "garbage.json")
        with open(garbage, "w") as f:
            f.write("not json")
        self.assertIn("invalid JSON", self.fatal(resume={"path": garbage, "epoch": 1, "step": 0}))
        missing = os.path.join(src, "missing.json")
        self.assertIn("cannot read checkpoint", self.fatal(resume={"path": missing, "epoch": 1, "step": 0}))

    def test_fail_at_epoch_crashes_attempt_one_only_and_attempt_two_resumes(self):
        ckpt_dir = self.new_dir("ckpt")
        params = {"fail_at_epoch": 2}
        child, code, messages = self.run_to_end(ckpt_dir, params=params, attempt=1)
        self.assertEqual(code, 1)
        self.assertFalse(of_type(messages, "result"))
        self.assertEqual((messages[-1]["type"], messages[-1]["epoch"], messages[-1]["step"]), ("progress", 2, 12))
        self.assertTrue(any("fail_at_epoch" in line for line in child.stderr_lines))
        last = of_type(messages, "checkpoint")[-1]
        self.assertEqual((last["epoch"], last["step"]), (2, 0))
        _, code, resumed = self.run_to_end(ckpt_dir, params=params, resume=last, attempt=2)
        self.assertEqual(code, 0)
        self.assert_same_result(of_type(resumed, "result")[0])

    def test_bad_checkpoint_path_is_announced_once_then_real_checkpoints_follow(self):
        ckpt_dir = self.new_dir("ckpt")
        _, code, messages = self.run_to_end(ckpt_dir, params={"bad_checkpoint_path": "/etc/passwd"})
        self.assertEqual(code, 0)
        checkpoints = of_type(messages, "checkpoint")
        self.assertEqual(checkpoints[0]["path"], "/etc/passwd")
        self.assertEqual((checkpoints[0]["epoch"], checkpoints[0]["step"]), (1, 0))
        self.assertFalse(os.path.exists(os.path.join(ckpt_dir, "ckpt-e0001-s000000.json")))
        self.assertTrue(all(os.path.dirname(m["path"]) == ckpt_dir for m in checkpoints[1:]))
        self.assert_same_result(of_type(messages, "result")[0])

    def test_stdout_noise_does_not_disturb_the_protocol(self):
        child, code, messages = self.run_to_end(self.new_dir("ckpt"), params={"stdout_noise": True})
        self.assertEqual(code, 0)
        self.assertTrue(any("not JSON" in line for line in child.text_lines))
        self.assertIn("[1, 2, 3]", child.text_lines)
        self.assert_same_result(of_type(messages, "result")[0])


if __name__ == "__main__":
    unittest.main()
