"""tools.calibrate_stop: a checkpoint's stopping distance, measured in MuJoCo and fit, then recorded with it."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bm_gym.diffusion import SHIPPED_CHECKPOINT, DiffusionPolicy
from tools.calibrate_stop import fit, stop_run

REPO = Path(__file__).resolve().parents[2]


def test_the_fit_recovers_a_stopping_model_and_never_a_negative_delay():
    speeds = np.array([0.4, 0.6, 0.8, 1.0])
    runs = [{"speed": v, "distance": v * 0.05 + v**2 / 4.0} for v in speeds]  # 0.05 s, 2 m/s^2
    assert fit(runs) == pytest.approx((0.05, 2.0))
    early = [{"speed": v, "distance": v**2 / 3.0 - 0.02 * v} for v in speeds]  # would fit a negative delay
    delay, deceleration = fit(early)
    assert delay == 0.0 and 1.4 < deceleration < 1.7
    with pytest.raises(ValueError, match="do not fit a stopping distance"):
        fit([{"speed": v, "distance": -0.1} for v in speeds])


def test_told_to_stop_the_shipped_model_goes_on_a_little_and_stands():
    run = stop_run(str(SHIPPED_CHECKPOINT), 0.6, seed=1000, walk_s=2.5, settle_s=1.5)
    assert not run["fell"] and run["speed"] > 0.3
    assert 0.0 < run["distance"] < 1.0, run


def test_set_guidance_records_a_stopping_model(tmp_path):
    folder = Path(shutil.copytree(SHIPPED_CHECKPOINT, tmp_path / "ckpt"))
    done = subprocess.run([sys.executable, "-m", "tools.checkpoint", "set-guidance", str(folder), "--stop-delay",
                           "0.05", "--stop-deceleration", "2", "--recentre-radius", "0.15"], cwd=REPO,
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr
    guidance = DiffusionPolicy.load(folder).guidance
    assert (guidance.stop_delay, guidance.stop_deceleration, guidance.recentre_radius) == (0.05, 2.0, 0.15)
    assert guidance.scale == DiffusionPolicy.load(SHIPPED_CHECKPOINT).guidance.scale  # the rest untouched
    bad = subprocess.run([sys.executable, "-m", "tools.checkpoint", "set-guidance", str(folder),
                          "--stop-deceleration", "0"], cwd=REPO, capture_output=True, text=True)  # fmt: skip
    assert bad.returncode == 2 and "GuidanceCfg.stop_deceleration" in bad.stderr
    assert json.loads((folder / "config.json").read_text())["guidance"]["stop_deceleration"] == 2.0  # unchanged
