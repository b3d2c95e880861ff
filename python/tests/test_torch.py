"""The PyTorch helpers, with real torch (Debian's python3-torch: run with /usr/bin/python3).

Exact resume (model, optimizer, scheduler, RNG states, sampler position), weights-only loading,
refusal of corrupt files, the CheckpointHandler wrappers.
"""
from __future__ import annotations

import os
import random
import unittest

from helpers import LibraryTestCase

try:
    import numpy as np
    import torch
except ImportError as err:  # a clear failure, never a skip: CI installs python3-torch
    raise ImportError(f"these tests need PyTorch and NumPy ({err}); on Debian: apt-get install python3-torch, and run /usr/bin/python3") from err

from temporal_experiments import CheckpointHandler, Fatal
from temporal_experiments import formats
from temporal_experiments.torch import ResumableSampler, capture, deterministic, restore, state_sha256

N, BATCH = 40, 4


def make_setup(seed=3):
    deterministic(seed)
    model = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.ReLU(), torch.nn.Dropout(0.3), torch.nn.Linear(8, 3))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=7, gamma=0.5)
    g = torch.Generator().manual_seed(99)
    data = torch.utils.data.TensorDataset(torch.randn(N, 5, generator=g), torch.randint(0, 3, (N,), generator=g))
    sampler = ResumableSampler(N, seed=seed, batch_size=BATCH)
    loader = sampler.loader(data)
    return model, opt, sched, sampler, loader


def train(model, opt, sched, sampler, loader, epochs, start=(0, 0), stop_at=None):
    """Trains from `start`; returns the position where it stopped (stop_at) or the end."""
    epoch0, step0 = start
    for epoch in range(epoch0, epochs):
        sampler.set_epoch(epoch)
        for step, (x, y) in enumerate(loader, start=step0 if epoch == epoch0 else 0):
            if stop_at == (epoch, step):
                return (epoch, step)
            loss = torch.nn.functional.cross_entropy(model(x), y) + 1e-3 * random.random() + 1e-3 * float(np.random.rand())
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    return (epochs, 0)


class WeightsOnlyTest(LibraryTestCase):
    def test_floats_optimizer_state_and_rng_states_round_trip_exactly(self):
        model, opt, sched, sampler, loader = make_setup()
        train(model, opt, sched, sampler, loader, 1)
        state = capture(model, opt, sched, sampler, epoch=1, step=0, extra={"x": 1 / 3, "t": (1, 2.5)})
        run = self.new_run("torch")
        path = run.checkpoint(state, 1, 0, {"loss": 0.5})
        with open(path, "rb") as f:
            raw = torch.load(f, weights_only=True)  # the file itself is a plain weights-only torch file
        self.assertIn("state", raw)
        back = self.new_run("torch", resume={"path": path, "epoch": 1, "step": 0}).resume
        self.assertEqual(back["optimizer"]["param_groups"], opt.state_dict()["param_groups"])
        self.assertEqual(back["extra"], {"x": 1 / 3, "t": (1, 2.5)})
        self.assertEqual(back["rng"]["python"]["state"], list(random.getstate()[1]))
        self.assertTrue(torch.equal(back["rng"]["torch"], torch.get_rng_state()))
        self.assertEqual(back["scheduler"], sched.state_dict())
        self.assertEqual(state_sha256(back["model"]), state_sha256(model))

    def test_objects_that_need_unpickling_are_refused_at_save_time(self):
        run = self.new_run("torch")
        with self.assertRaises(Fatal) as caught:
            run.checkpoint({"rng": {"numpy": np.zeros(3)}}, 0, 1)
        self.assertIn("checkpoint['state']['rng']['numpy']", str(caught.exception))
        self.assertIn("numpy.ndarray", str(caught.exception))
        self.assertEqual(os.listdir(self.ckpt), [])

    def test_a_corrupted_torch_file_is_refused(self):
        run = self.new_run("torch")
        path = run.checkpoint({"w": torch.arange(64, dtype=torch.float64)}, 0, 2)
        with open(path, "rb") as f:
            data = f.read()
        # A byte inside the tensor's data: torch's zip reader does not notice, the state digest does.
        offset = data.index(torch.arange(64, dtype=torch.float64).numpy().tobytes()[8 * 40 : 8 * 41])
        flipped = bytearray(data)
        flipped[offset] ^= 0x01
        for what, damaged in (("a flipped bit", bytes(flipped)), ("truncated", data[: len(data) // 2])):
            with self.subTest(what=what):
                with open(path, "wb") as f:
                    f.write(damaged)
                with self.assertRaises(Fatal) as caught:
                    self.new_run("torch", resume={"path": path, "epoch": 0, "step": 2})
                self.assertIn(path, str(caught.exception))

    def test_non_weights_pickles_are_not_loaded(self):
        path = os.path.join(self.ckpt, "evil.pt")
        torch.save({"state": Exception("not a weight"), "format": formats.FORMAT, "version": 1}, path)
        with self.assertRaises(Fatal) as caught:
            self.new_run("torch", resume={"path": path, "epoch": 0, "step": 0})
        self.assertIn("weights_only=True", str(caught.exception))


class SamplerTest(LibraryTestCase):
    def test_a_mid_epoch_checkpoint_resumes_at_the_same_batch(self):
        _, _, _, sampler, loader = make_setup()
        sampler.set_epoch(2)
        batches = [y.tolist() for _, y in loader]
        indices = list(iter(ResumableSampler(N, seed=3, batch_size=BATCH).order(2).tolist()))
        self.assertEqual(len(batches), N // BATCH)
        saved = sampler.state_dict(epoch=2, step=3)

        _, _, _, fresh, fresh_loader = make_setup()
        fresh.load_state_dict(saved)
        fresh.set_epoch(2)
        resumed = [y.tolist() for _, y in fresh_loader]
        self.assertEqual(resumed, batches[3:], "the resumed epoch starts at batch 4")
        fresh.set_epoch(3)
        self.assertEqual(list(fresh), ResumableSampler(N, seed=3, batch_size=BATCH).order(3).tolist(), "the next epoch is whole")
        self.assertNotEqual(indices, ResumableSampler(N, seed=3, batch_size=BATCH).order(3).tolist(), "epochs shuffle differently")

    def test_a_state_from_another_data_set_is_refused(self):
        with self.assertRaises(ValueError):
            ResumableSampler(N + 1, seed=3, batch_size=BATCH).load_state_dict({"seed": 3, "n": N, "epoch": 0, "offset": 4})


class ExactResumeTest(LibraryTestCase):
    def test_resume_mid_epoch_ends_bit_identical_to_an_uninterrupted_run(self):
        model, opt, sched, sampler, loader = make_setup()
        train(model, opt, sched, sampler, loader, 3)
        expected = state_sha256(model)

        model, opt, sched, sampler, loader = make_setup()
        stop = train(model, opt, sched, sampler, loader, 3, stop_at=(1, 6))
        path = self.new_run("torch").checkpoint(capture(model, opt, sched, sampler, epoch=stop[0], step=stop[1]), *stop)

        model, opt, sched, sampler, loader = make_setup()
        torch.manual_seed(12345)  # disturb every RNG: restore must bring them back
        random.seed(1)
        np.random.seed(2)
        run = self.new_run("torch", resume={"path": path, "epoch": 1, "step": 6})
        restore(run.resume, model, opt, sched, sampler)
        train(model, opt, sched, sampler, loader, 3, start=run.position)
        self.assertEqual(state_sha256(model), expected)

    def test_deterministic_makes_runs_repeatable(self):
        shas = []
        for _ in range(2):
            model, opt, sched, sampler, loader = make_setup(seed=5)
            train(model, opt, sched, sampler, loader, 1)
            shas.append(state_sha256(model))
        self.assertEqual(shas[0], shas[1])
        self.assertTrue(torch.are_deterministic_algorithms_enabled())
        self.assertEqual(torch.get_num_threads(), 1)


class HandlerTest(LibraryTestCase):
    def test_versioned_and_latest_files_and_the_original_api(self):
        model, opt, sched, sampler, loader = make_setup()
        handler = CheckpointHandler(self.new_run("torch"))
        self.assertIsNone(handler.load_checkpoint(model, opt))
        self.assertFalse(handler.get_resumability_hints()["resuming"])
        train(model, opt, sched, sampler, loader, 1)
        first = handler.save_checkpoint(model, opt, 0, 0.75, {"val_accuracy": 0.5})
        mid = handler.save_checkpoint(model, opt, 1, 0.5, step=3)
        self.assertEqual(os.path.basename(first), "checkpoint_epoch_0.pt")
        self.assertEqual(os.path.basename(mid), "checkpoint_epoch_1_step_3.pt")
        self.assertEqual(os.readlink(os.path.join(self.ckpt, "checkpoint_latest.pt")), "checkpoint_epoch_1_step_3.pt")
        lines = self.checkpoints()
        self.assertEqual([(m["epoch"], m["step"]) for m in lines], [(1, 0), (1, 3)], "protocol positions")
        self.assertEqual(lines[0]["metrics"], {"loss": 0.75, "val_accuracy": 0.5})

        other, other_opt, *_ = make_setup(seed=8)
        resumed = CheckpointHandler(self.new_run("torch", attempt=2, resume={"path": first, "epoch": 1, "step": 0}))
        ckpt = resumed.load_checkpoint(other, other_opt)
        self.assertEqual((ckpt["epoch"], ckpt["resume_epoch"], ckpt["resume_step"]), (0, 1, 0))
        self.assertEqual((ckpt["loss"], ckpt["metadata"]), (0.75, {"val_accuracy": 0.5}))
        hints = resumed.get_resumability_hints()
        self.assertEqual((hints["resuming"], hints["resume_from"], hints["attempt"]), (True, first, 2))
        self.assertFalse(hints["interrupted"])


if __name__ == "__main__":
    unittest.main()
