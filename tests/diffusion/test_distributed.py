"""Data-parallel training: 2 processes (torchrun, gloo on the CPU) follow the 1-process loss curve."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file

TRAIN = ["-m", "tools.train", "--steps", "6", "--batch-size", "32", "--log-every", "1", "--val-every", "100",
         "--threads", "1", "--ema-decay", "0"]  # fmt: skip


def run(command: list[str], tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, cwd=Path(__file__).resolve().parents[2], env=env, capture_output=True, text=True,
                            timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]


def test_two_processes_train_the_same_model_as_one(small_dataset, tmp_path):
    data = ["--data", str(small_dataset)]
    run([sys.executable, *TRAIN, *data, "--out", str(tmp_path / "one")], tmp_path)
    torchrun = Path(sys.executable).with_name("torchrun")
    run([str(torchrun), "--standalone", "--nproc-per-node", "2", *TRAIN, *data, "--out", str(tmp_path / "two")],
        tmp_path)  # fmt: skip
    one = np.loadtxt(tmp_path / "one" / "losses.csv", delimiter=",")
    two = np.loadtxt(tmp_path / "two" / "losses.csv", delimiter=",")
    assert one.shape == two.shape == (6, 5)  # step, loss, state and action MSE, seconds
    assert np.allclose(one[:, :4], two[:, :4], rtol=1e-4), np.c_[one[:, 1], two[:, 1]]  # same batches, noise, updates
    a, b = (
        load_file(tmp_path / "one/checkpoint/model.safetensors"),
        load_file(tmp_path / "two/checkpoint/model.safetensors"),
    )
    assert max(float(np.abs(a[k] - b[k]).max()) for k in a) < 1e-5


def test_a_batch_that_does_not_split_over_the_processes_is_refused(small_dataset, tmp_path):
    torchrun = Path(sys.executable).with_name("torchrun")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([str(torchrun), "--standalone", "--nproc-per-node", "2", *TRAIN[:4], "--batch-size", "33",
                             "--data", str(small_dataset), "--out", str(tmp_path / "odd")],
                            cwd=Path(__file__).resolve().parents[2], env=env, capture_output=True, text=True,
                            timeout=300)  # fmt: skip
    assert result.returncode != 0 and "does not split evenly over 2 processes" in result.stderr + result.stdout


def test_loader_workers_feed_the_same_batches_in_the_same_order(small_dataset, tmp_path):
    from bm_gym.diffusion.training import TrainCfg, Trainer

    def losses(workers: int) -> np.ndarray:
        cfg = TrainCfg(data=str(small_dataset), out=str(tmp_path / f"w{workers}"), steps=5, batch_size=16,
                       val_every=100, val_fraction=0.3, log_every=1, loader_workers=workers, threads=1)  # fmt: skip
        Trainer(cfg).run(progress=False)
        return np.loadtxt(tmp_path / f"w{workers}" / "losses.csv", delimiter=",")[:, :4]

    assert np.allclose(losses(0), losses(2), rtol=1e-6)
