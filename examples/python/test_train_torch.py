"""Tests of examples/python/train_torch.py (real PyTorch; run with /usr/bin/python3 on Debian).

    /usr/bin/python3 -m unittest examples/python/test_train_torch.py

The child runs the way the plugin runs it (see test_train.py's Child). The plugin-level tests
(kill -9, cancel, SIGTERM of a worker) are in test/activities/pytorch.test.ts.
"""
from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from test_train import EXIT_NONRETRYABLE, TrainerTestCase, of_type  # noqa: E402
TRAIN_TORCH = os.path.join(HERE, "train_torch.py")
TIMEOUT = 120.0  # torch and sklearn take a few seconds to import on a loaded machine


class TorchTestCase(TrainerTestCase):
    _torch_baseline = None

    @classmethod
    def setUpClass(cls):
        # The baseline's checkpoints outlive each test's temporary directory: later tests resume from them.
        cls.baseline_dir = tempfile.mkdtemp(prefix="train-torch-baseline-")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.baseline_dir, ignore_errors=True)
        TorchTestCase._torch_baseline = None

    def run_torch(self, ckpt_dir, **kwargs):
        child = self.start(ckpt_dir, argv=[sys.executable, TRAIN_TORCH], **kwargs)
        code, messages = child.finish(timeout=TIMEOUT)
        return child, code, messages

    def torch_baseline(self):
        if TorchTestCase._torch_baseline is None:
            child, code, messages = self.run_torch(self.baseline_dir)
            self.assertEqual(code, 0, child.stderr_lines)
            TorchTestCase._torch_baseline = {"result": of_type(messages, "result")[0], "checkpoints": of_type(messages, "checkpoint")}
        return TorchTestCase._torch_baseline


class TrainTorchTest(TorchTestCase):
    def test_default_run_reaches_90_percent_validation_accuracy(self):
        base = self.torch_baseline()
        self.assertGreaterEqual(base["result"]["metrics"]["accuracy"], 0.90)
        self.assertRegex(base["result"]["modelSha256"], r"^[0-9a-f]{64}$")
        positions = [(m["epoch"], m["step"]) for m in base["checkpoints"]]
        self.assertIn((1, 10), positions, "mid-epoch checkpoints every 10 steps")
        self.assertEqual(positions[-1], (5, 0))
        ends = [m for m in base["checkpoints"] if m["step"] == 0]
        self.assertEqual(len(ends), 5, "one per epoch")
        self.assertTrue(all("accuracy" in m["metrics"] for m in ends), "validation accuracy every epoch")

    def test_resume_from_a_mid_epoch_checkpoint_is_bit_identical(self):
        base = self.torch_baseline()
        # The resume file lies in another run's directory (as after a fork): it is only read.
        mid = next(m for m in base["checkpoints"] if (m["epoch"], m["step"]) == (2, 30))
        child, code, messages = self.run_torch(self.new_dir("resumed"), resume=mid, attempt=2)
        self.assertEqual(code, 0, child.stderr_lines)
        self.assertEqual(messages[0]["type"], "progress")
        self.assertEqual((messages[0]["epoch"], messages[0]["step"]), (2, 31), "continues at the next batch")
        self.assertEqual(of_type(messages, "result")[0]["modelSha256"], base["result"]["modelSha256"])

    def test_sigterm_mid_epoch_checkpoints_there_and_the_resume_is_bit_identical(self):
        base = self.torch_baseline()
        ckpt_dir = self.new_dir("ckpt")
        child = self.start(ckpt_dir, argv=[sys.executable, TRAIN_TORCH], params={"step_delay": 0.01})
        child.wait_for(lambda m: m["type"] == "progress" and (m["epoch"], m["step"]) >= (1, 5), timeout=TIMEOUT)
        child.signal_group(signal.SIGTERM)
        code, messages = child.finish(timeout=TIMEOUT)
        self.assertEqual(code, 0, child.stderr_lines)
        stop = messages[-1]
        self.assertEqual(stop["type"], "interrupted")
        self.assertGreater(stop["step"], 0, "stopped mid-epoch")
        last = of_type(messages, "checkpoint")[-1]
        self.assertEqual((last["epoch"], last["step"]), (stop["epoch"], stop["step"]))
        child, code, resumed = self.run_torch(ckpt_dir, resume=last, attempt=2)
        self.assertEqual(code, 0, child.stderr_lines)
        self.assertEqual(of_type(resumed, "result")[0]["modelSha256"], base["result"]["modelSha256"])

    def test_a_time_based_cadence_checkpoints_mid_epoch_and_ends_bit_identical(self):
        base = self.torch_baseline()
        # ~45 steps of >= 2 ms per epoch, a checkpoint due every 20 ms: several per epoch, at
        # whatever step the time falls on, and none at an epoch end that is not due or the last.
        params = {"checkpoint_every": 0, "checkpoint_seconds": 0.02, "step_delay": 0.002}
        ckpt_dir = self.new_dir("timed")
        child, code, messages = self.run_torch(ckpt_dir, params=params)
        self.assertEqual(code, 0, child.stderr_lines)
        positions = [(m["epoch"], m["step"]) for m in of_type(messages, "checkpoint")]
        self.assertEqual(positions[-1], (5, 0), "the end of the last epoch is always checkpointed")
        mid = [p for p in positions if p[1] != 0]
        self.assertGreaterEqual(len(mid), 5, f"mid-epoch checkpoints by time: {positions}")
        self.assertLess(len(positions), 5 * 45, "not one per step")
        self.assertEqual(positions, sorted(set(positions)), "each position once, in order")
        self.assertEqual(of_type(messages, "result")[0]["modelSha256"], base["result"]["modelSha256"], "the cadence does not change the bits")
        # A resume from one of them, at another cadence, still ends with the same bits.
        at = next(m for m in of_type(messages, "checkpoint") if m["step"] != 0 and m["epoch"] >= 1)
        child, code, resumed = self.run_torch(self.new_dir("timed-resumed"), resume=at, attempt=2)
        self.assertEqual(code, 0, child.stderr_lines)
        self.assertEqual(of_type(resumed, "result")[0]["modelSha256"], base["result"]["modelSha256"])

    def test_bad_params_and_missing_torch_are_fatal_with_a_clear_message(self):
        child, code, messages = self.run_torch(self.new_dir("bad"), params={"lr": "fast"})
        self.assertEqual(code, EXIT_NONRETRYABLE)
        self.assertIn('params.lr: expected a number > 0 and <= 10, received "fast"', messages[0]["message"])
        # An interpreter without torch: the import is blocked the way a missing package fails.
        no_torch = "import sys, runpy; sys.modules['torch'] = None; runpy.run_path(sys.argv[1], run_name='__main__')"
        child = self.start(self.new_dir("notorch"), argv=[sys.executable, "-c", no_torch, TRAIN_TORCH])
        code, messages = child.finish(timeout=TIMEOUT)
        self.assertEqual(code, EXIT_NONRETRYABLE, child.stderr_lines)
        self.assertEqual(messages[0]["type"], "fatal")
        self.assertIn(f"PyTorch is not installed for {sys.executable}", messages[0]["message"])
        self.assertIn("apt-get install python3-torch", messages[0]["message"])


if __name__ == "__main__":
    unittest.main()
