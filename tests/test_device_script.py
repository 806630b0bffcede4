"""scripts/device_run.sh, the one-command GPU lease, run here on the CPU as a smoke test (what a lease runs, small)."""

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

from bm_gym.diffusion import DiffusionPolicy

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "device_run.sh"
VELOCITY = REPO.parent / "shared" / "stage1" / "unitree_g1_velocity"


def _lease(tmp_path: Path, manifest: Path, *train_args: str, **env_extra: str) -> subprocess.CompletedProcess:
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    env = {**os.environ, "OUT": str(out), "WORK": str(tmp_path / "work"), "DEVICE": "cpu", "SKIP_INSTALL": "1",
           "PYTHON": sys.executable, "EVAL_ONLY": "joystick", "EVAL_MAX_EPISODES": "1", "EVAL_S": "90",
           "LOADER_WORKERS": "0", **env_extra}  # fmt: skip
    return subprocess.run(["bash", str(SCRIPT), "lease", str(manifest), "400", *train_args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=400)  # fmt: skip


def test_a_lease_trains_two_runs_evaluates_both_and_sends_back_figures_and_checkpoints(tmp_path):
    manifest = tmp_path / "tiny.yaml"
    manifest.write_text(f"workers: 1\nseed: 0\nsources:\n  - name: velocity\n    policy: {VELOCITY}\n"
                        "    episodes: 2\n    episode_s: 4\n")  # fmt: skip
    first_run = ("--preset", "cpu", "--steps", "20", "--batch-size", "8", "--log-every", "5")
    done = _lease(tmp_path, manifest, *first_run, "--also", "--d-model", "64",
                  EVAL_SOURCES="velocity", EVAL_EPISODES="1", EVAL_SECONDS="2",
                  GUIDANCE="--scale 55 --velocity-ramp 0.4")  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    out = tmp_path / "out"
    log = (out / "lease.log").read_text()
    assert "== done in" in log and "training 2 run(s) at once" in log
    assert len(list(out.iterdir())) <= 8  # the device tool brings back at most 8 files
    with tarfile.open(out / "results.tar") as tar:
        tar.extractall(tmp_path / "results", filter="data")
    for run, width in (("run1", 128), ("run2", 64)):
        results = tmp_path / "results" / run
        evaluation = json.loads((results / "eval.json").read_text())
        assert evaluation["scenarios"]["joystick"]["metrics"]["episodes"] == 1
        assert evaluation["guidance"]["scale"] == 55  # evaluated with the settings recorded in the checkpoint
        assert len(json.loads((results / "source_velocity.json").read_text())) == 1
        assert (results / "losses.csv").read_text().count("\n") > 1
        assert json.loads((results / "train_cfg.json").read_text())["d_model"] == (None if width == 128 else 64)
    (tmp_path / "ckpt.tar").write_bytes(b"".join(p.read_bytes() for p in sorted(out.glob("ckpt.tar.part*"))))
    with tarfile.open(tmp_path / "ckpt.tar") as tar:
        tar.extractall(tmp_path / "back", filter="data")
    for run, width in (("run1", 128), ("run2", 64)):
        back = tmp_path / "back" / run / "checkpoint"
        assert not (back / "ema.safetensors").exists()  # slimmed: the EMA weights alone, as model.safetensors
        policy = DiffusionPolicy.load(back)
        assert policy.cfg.denoiser.d_model == width
        assert (policy.guidance.scale, policy.guidance.velocity_ramp) == (55, 0.4)


def test_a_missing_manifest_or_budget_stops_at_once_with_the_reason(tmp_path):
    done = _lease(tmp_path, tmp_path / "nowhere.yaml")
    assert done.returncode == 2 and "no manifest at" in done.stdout + done.stderr
    bare = subprocess.run(["bash", str(SCRIPT), "lease"], cwd=REPO, env={**os.environ, "OUT": str(tmp_path)},
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert bare.returncode != 0 and "MANIFEST" in bare.stdout + bare.stderr
