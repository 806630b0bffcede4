"""Shared fixtures: the real Stage 1 policies from ../shared/stage1 (never copied into the repo)."""

from __future__ import annotations

from pathlib import Path

import pytest

STAGE1 = Path(__file__).resolve().parents[1].parent / "shared" / "stage1"
VELOCITY_DIR = STAGE1 / "unitree_g1_velocity"
TRACKING_DIR = STAGE1 / "unitree_g1_mimic_dance"


@pytest.fixture(scope="session")
def velocity_dir() -> Path:
    if not VELOCITY_DIR.is_dir():
        pytest.fail(f"Stage 1 policies expected at {STAGE1} (../shared beside the checkout)")
    return VELOCITY_DIR


@pytest.fixture(scope="session")
def tracking_dir() -> Path:
    if not TRACKING_DIR.is_dir():
        pytest.fail(f"Stage 1 policies expected at {STAGE1} (../shared beside the checkout)")
    return TRACKING_DIR


@pytest.fixture
def backend():
    from bm_gym.sim import MujocoBackend

    sim = MujocoBackend()
    yield sim
    sim.close()


@pytest.fixture(scope="session")
def small_dataset(tmp_path_factory, velocity_dir) -> Path:
    """Four 4 s episodes of the velocity policy with randomization and noise (seed 7)."""
    from bm_gym.data import CollectCfg, Collector

    out = tmp_path_factory.mktemp("data") / "velocity.h5"
    cfg = CollectCfg(policy=str(velocity_dir), out=str(out), episodes=4, episode_s=4.0, workers=2, seed=7)
    Collector(cfg).run(progress=False)
    return out
