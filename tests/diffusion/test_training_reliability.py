"""Training and checkpoints under bad input and kill -9: stop with the cause named, never half-written, never unsafe."""

import dataclasses
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from bm_gym.diffusion import CheckpointError, DiffusionPolicy
from bm_gym.diffusion.training import TrainCfg, Trainer, TrainingError

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def checkpoint(small_dataset, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run")
    cfg = TrainCfg(data=str(small_dataset), out=str(out), steps=2, batch_size=8, val_every=100, val_fraction=0.3)
    return Trainer(cfg).run(progress=False)


def _copy(checkpoint: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(checkpoint, tmp_path / "ckpt"))


def _edit_config(folder: Path, edit) -> None:
    config = json.loads((folder / "config.json").read_text())
    config = edit(config) or config
    (folder / "config.json").write_text(json.dumps(config))


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda c: [1, 2], r"config.json: expected a JSON object, got list"),
        (lambda c: c.pop("normalization") and None, r"missing or malformed keys \['normalization'\]"),
        (lambda c: c["model"]["diffusion"].update(sample_steps=0), r"sample_steps must be an integer >= 1, got 0"),
        (
            lambda c: c["model"]["diffusion"].update(sample_steps=20),
            r"sample_steps must be a divisor of train_timesteps \(50\): one of \[1, 2, 5, 10, 25, 50\], got 20",
        ),
        (lambda c: c["model"].pop("denoiser") and None, r"malformed model, state_layout or normalization"),
        (lambda c: c["normalization"]["state_std"].__setitem__(4, 0.0), r"normalization.state_std has zero"),
        (
            lambda c: c["normalization"]["action_mean"].__setitem__(0, float("nan")),
            r"normalization.action_mean must be 29 finite values",
        ),
        (lambda c: c.update(guidance=[40]), r"'guidance' must be an object of GuidanceCfg fields"),
        (lambda c: c["guidance"].update(gain=2.0), r"unknown guidance fields \['gain'\]"),
        (lambda c: c["guidance"].update(scale=-1.0), r"guidance: GuidanceCfg.scale must be a finite number >= 0"),
    ],
)
def test_bad_checkpoint_configs_are_refused_with_the_key_named(checkpoint, tmp_path, edit, message):
    folder = _copy(checkpoint, tmp_path)
    _edit_config(folder, edit)
    with pytest.raises(CheckpointError, match=message):
        DiffusionPolicy.load(folder)


def test_guidance_settings_travel_with_the_checkpoint_and_drive_its_controllers(checkpoint, tmp_path):
    from bm_gym.controller import ControllerCfg, DiffusionController
    from bm_gym.guidance import GuidanceCfg

    folder = _copy(checkpoint, tmp_path)
    assert DiffusionPolicy.load(folder).guidance == GuidanceCfg()  # a new model: the library's defaults
    weights = (folder / "ema.safetensors").read_bytes()
    out = subprocess.run([sys.executable, "-m", "tools.checkpoint", "set-guidance", str(folder), "--scale", "60",
                          "--guided-steps", "0", "--recovery-guided-steps", "5", "--velocity-ramp", "0.3"], cwd=REPO,
                         capture_output=True, text=True)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["guidance"]["scale"] == 60.0
    policy = DiffusionPolicy.load(folder)  # the weights' hashes still hold
    assert policy.guidance == GuidanceCfg(scale=60.0, guided_steps=None, recovery_guided_steps=5, velocity_ramp=0.3)
    assert (folder / "ema.safetensors").read_bytes() == weights
    plain = ControllerCfg(onnxruntime=False, fused=False)
    assert DiffusionController(policy, plain).cfg.guidance.scale == 60.0
    given = GuidanceCfg(scale=10.0)
    assert DiffusionController(policy, dataclasses.replace(plain, guidance=given)).cfg.guidance == given
    policy.save(tmp_path / "resaved")  # saving keeps them
    assert DiffusionPolicy.load(tmp_path / "resaved").guidance.scale == 60.0
    _edit_config(folder, lambda c: c.pop("guidance") and None)  # checkpoints from before the setting
    assert DiffusionPolicy.load(folder).guidance == GuidanceCfg()
    bad = subprocess.run([sys.executable, "-m", "tools.checkpoint", "set-guidance", str(folder), "--scale", "nan"],
                         cwd=REPO, capture_output=True, text=True)  # fmt: skip
    assert bad.returncode == 2 and "GuidanceCfg.scale must be a finite number" in bad.stderr
    assert DiffusionPolicy.load(folder).guidance == GuidanceCfg()  # nothing written


def test_the_ddim_step_count_travels_with_the_checkpoint(checkpoint, tmp_path):
    folder = _copy(checkpoint, tmp_path)
    assert DiffusionPolicy.load(folder).diffusion.sample_scheduler.timesteps.tolist()[0] == 45  # 10 steps of 50
    out = subprocess.run([sys.executable, "-m", "tools.checkpoint", "set-guidance", str(folder), "--sample-steps",
                          "25"], cwd=REPO, capture_output=True, text=True)  # fmt: skip
    assert out.returncode == 0, out.stderr
    policy = DiffusionPolicy.load(folder)  # the weights' hashes still hold
    assert policy.cfg.diffusion.sample_steps == 25
    assert policy.diffusion.sample_scheduler.timesteps.tolist() == list(range(48, -1, -2))
    assert policy.guidance == DiffusionPolicy.load(checkpoint).guidance  # the other settings untouched
    before = (folder / "config.json").read_text()
    bad = subprocess.run([sys.executable, "-m", "tools.checkpoint", "set-guidance", str(folder), "--sample-steps",
                          "20"], cwd=REPO, capture_output=True, text=True)  # fmt: skip
    assert bad.returncode == 2 and "sample_steps must be a divisor of train_timesteps (50)" in bad.stderr
    assert (folder / "config.json").read_text() == before  # nothing written
    bad = subprocess.run([sys.executable, "-m", "tools.eval_guidance", "--checkpoint", str(folder), "--scenario",
                          "omni", "--sample-steps", "30"], cwd=REPO, capture_output=True, text=True)  # fmt: skip
    assert bad.returncode == 2 and "--sample-steps: DiffusionCfg.sample_steps must be a divisor" in bad.stderr


def test_a_slim_copy_holds_the_ema_weights_alone_and_plans_the_same(checkpoint, tmp_path):
    slim = tmp_path / "slim"
    assert (checkpoint / "ema.safetensors").exists()
    out = subprocess.run([sys.executable, "-m", "tools.checkpoint", "slim", str(checkpoint), str(slim)], cwd=REPO,
                         capture_output=True, text=True)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert sorted(p.name for p in slim.iterdir()) == ["config.json", "model.safetensors"]
    full, small = DiffusionPolicy.load(checkpoint), DiffusionPolicy.load(slim)
    for name, weight in full.model.state_dict().items():  # the full checkpoint loads its EMA weights
        assert torch.equal(weight, small.model.state_dict()[name]), name
    assert small.guidance == full.guidance and small.layout.to_json() == full.layout.to_json()
    config = json.loads((slim / "config.json").read_text())
    assert config["slim_of"] == str(checkpoint)
    assert set(json.loads((checkpoint / "config.json").read_text())) <= set(config)  # the training record too
    again = subprocess.run([sys.executable, "-m", "tools.checkpoint", "slim", str(checkpoint), str(slim)], cwd=REPO,
                           capture_output=True, text=True)  # fmt: skip
    assert again.returncode == 2 and "exists: slim writes a new checkpoint folder" in again.stderr


def test_damaged_or_non_finite_weights_are_refused(checkpoint, tmp_path):
    folder = _copy(checkpoint, tmp_path)
    data = bytearray((folder / "model.safetensors").read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit in the raw weights, which the EMA load would never read
    (folder / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"model.safetensors does not match its sha256"):
        DiffusionPolicy.load(folder)  # loads ema.safetensors by default: the raw file is still checked
    folder = _copy(checkpoint, tmp_path / "nan")
    weights = load_file(folder / "ema.safetensors")
    name = next(iter(weights))
    weights[name][0] = float("nan")
    save_file(weights, folder / "ema.safetensors")
    _edit_config(folder, lambda c: c.pop("sha256") and None)  # an older checkpoint without hashes
    with pytest.raises(CheckpointError, match=rf"ema.safetensors: non-finite values in \['{name}'\]"):
        DiffusionPolicy.load(folder)


def test_batch_larger_than_the_dataset_is_a_clear_error(small_dataset, tmp_path):
    cfg = TrainCfg(data=str(small_dataset), out=str(tmp_path / "run"), batch_size=100_000)
    with pytest.raises(ValueError, match=r"--batch-size 100000 is larger than the \d+ training windows"):
        Trainer(cfg)


def test_non_finite_loss_stops_training_with_the_step_named(small_dataset, tmp_path, monkeypatch):
    cfg = TrainCfg(data=str(small_dataset), out=str(tmp_path / "run"), steps=10, batch_size=8, val_every=100,
                   val_fraction=0.3)  # fmt: skip
    trainer = Trainer(cfg)
    trainer.save()  # a checkpoint from before the failure
    loss = trainer.diffusion.loss

    def poisoned(model, history, future, weight, t=None, noise=None):
        value, parts = loss(model, history, future, weight, t, noise)
        return (value * float("nan"), parts) if trainer.step == 4 else (value, parts)

    monkeypatch.setattr(trainer.diffusion, "loss", poisoned)
    with pytest.raises(TrainingError, match=r"non-finite loss nan at step 5"):
        trainer.run(progress=False)
    policy = DiffusionPolicy.load(tmp_path / "run" / "checkpoint")  # the earlier checkpoint is intact and finite
    assert all(torch.isfinite(p).all() for p in policy.model.parameters())


def test_truncated_train_state_names_the_file(small_dataset, tmp_path):
    cfg = TrainCfg(data=str(small_dataset), out=str(tmp_path / "run"), steps=2, batch_size=8, val_every=100,
                   val_fraction=0.3)  # fmt: skip
    Trainer(cfg).run(progress=False)
    state = tmp_path / "run" / "train_state.pt"
    state.write_bytes(state.read_bytes()[:1000])
    with pytest.raises(ValueError, match=r"cannot resume from .*train_state.pt"):
        Trainer(cfg)


class _Planted:
    def __reduce__(self):
        return (os.system, ("touch PLANTED",))


def test_a_planted_pickle_in_the_run_folder_runs_no_code(small_dataset, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "run").mkdir()
    with open(tmp_path / "run" / "train_state.pt", "wb") as f:
        pickle.dump({"cfg": _Planted()}, f)
    cfg = TrainCfg(data=str(small_dataset), out=str(tmp_path / "run"), batch_size=8, val_fraction=0.3)
    with pytest.raises(ValueError, match="cannot resume"):
        Trainer(cfg)
    assert not (tmp_path / "PLANTED").exists()


def test_kill_9_during_training_then_rerun_resumes_and_no_checkpoint_is_half_written(small_dataset, tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "tools.train", "--data", str(small_dataset), "--out", str(out), "--steps", "400",
           "--batch-size", "8", "--checkpoint-every-s", "0.05", "--val-every", "1000", "--threads", "1"]  # fmt: skip
    rng = np.random.default_rng(0)
    for _ in range(3):  # kill at random moments, most of them inside a checkpoint write
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)  # fmt: skip
        deadline = time.monotonic() + 120
        while not (out / "train_state.pt").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(float(rng.uniform(0.2, 1.0)))
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        # Whatever the moment, a complete checkpoint exists (possibly still named checkpoint.old) and loads.
        folder = out / "checkpoint" if (out / "checkpoint").exists() else out / "checkpoint.old"
        DiffusionPolicy.load(folder)
        step = torch.load(out / "train_state.pt", weights_only=True)["step"]
        assert 0 < step < 400
    rerun = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert f"resuming {out} from step" in rerun.stdout
    resumed_from = int(rerun.stdout.split("from step")[1].split()[0])
    assert resumed_from >= step
    assert json.loads((out / "checkpoint" / "config.json").read_text())["training"]["steps"] == 400
    assert not (out / "checkpoint.old").exists() and not (out / "checkpoint.tmp").exists()


def test_size_overrides_and_a_time_limit_stop_resumably(small_dataset, tmp_path):
    """--d-model / --layers / --action-lookahead reach the checkpoint; a time limit saves a checkpoint that the
    same command resumes."""
    base = dict(data=str(small_dataset), out=str(tmp_path / "run"), steps=10_000, batch_size=8, val_every=100_000,
                val_fraction=0.3, d_model=32, layers=1, heads=2, threads=1, tokens="split",
                action_lookahead=4)  # fmt: skip
    trainer = Trainer(TrainCfg(**base, time_limit_s=0.5))
    checkpoint = trainer.run(progress=False)
    stopped_at = trainer.step
    assert 0 < stopped_at < 10_000
    policy = DiffusionPolicy.load(checkpoint)
    d = policy.cfg.denoiser
    assert (d.d_model, d.layers, d.heads, d.action_lookahead) == (32, 1, 2, 4)
    assert json.loads((checkpoint / "config.json").read_text())["training"]["steps"] == stopped_at
    resumed = Trainer(TrainCfg(**base, time_limit_s=0.5))
    assert resumed.step == stopped_at
    with pytest.raises(ValueError, match="d_model=32"):
        Trainer(TrainCfg(**{**base, "d_model": 64}))
    with pytest.raises(ValueError, match="action_lookahead=4"):
        Trainer(TrainCfg(**{**base, "action_lookahead": 16}))


def test_bad_size_overrides_name_the_field(small_dataset, tmp_path):
    with pytest.raises(ValueError, match="layers"):
        TrainCfg(data=str(small_dataset), out=str(tmp_path), layers=0)
    with pytest.raises(ValueError, match="time_limit_s"):
        TrainCfg(data=str(small_dataset), out=str(tmp_path), time_limit_s=-1.0)
    with pytest.raises(ValueError, match="action_lookahead"):
        TrainCfg(data=str(small_dataset), out=str(tmp_path), action_lookahead=-2)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_or_ctrl_c_stops_with_a_checkpoint_of_the_last_step(small_dataset, tmp_path, sig):
    """A scheduler's SIGTERM (or Ctrl-C) before any periodic save still leaves a checkpoint and a resumable state."""
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "tools.train", "--data", str(small_dataset), "--out", str(out), "--steps", "100000",
           "--batch-size", "8", "--val-every", "100000", "--threads", "1", "--log-every", "1"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not ((out / "losses.csv").exists() and (out / "losses.csv").read_text().count("\n") >= 3):
        assert time.monotonic() < deadline and proc.poll() is None, "training did not start"
        time.sleep(0.05)
    proc.send_signal(sig)
    stdout, _ = proc.communicate(timeout=120)
    assert proc.returncode == 128 + sig
    assert f"{signal.Signals(sig).name} received: stopping at step" in stdout
    step = torch.load(out / "train_state.pt", weights_only=True)["step"]
    assert 3 <= step < 100_000
    assert json.loads((out / "checkpoint" / "config.json").read_text())["training"]["steps"] == step
    assert Trainer(TrainCfg(data=str(small_dataset), out=str(out), steps=100_000, batch_size=8)).step == step


def test_kept_checkpoints_load_and_a_new_step_total_is_announced(small_dataset, tmp_path, capsys):
    """--keep-every keeps one loadable checkpoint per N steps; resuming with another --steps says how the
    learning rate moves (the cosine schedule follows the new total)."""
    base = {"data": str(small_dataset), "out": str(tmp_path / "run"), "batch_size": 8, "val_every": 100,
            "val_fraction": 0.3, "warmup_steps": 1}  # fmt: skip
    Trainer(TrainCfg(**base, steps=4, keep_every=2)).run(progress=False)
    kept = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    assert kept == ["step_0000002", "step_0000004"]
    first = DiffusionPolicy.load(tmp_path / "run" / "checkpoints" / "step_0000002")
    latest = DiffusionPolicy.load(tmp_path / "run" / "checkpoint")
    assert any(not torch.equal(a, b) for a, b in zip(first.model.state_dict().values(),
                                                      latest.model.state_dict().values(), strict=True))  # fmt: skip
    capsys.readouterr()
    Trainer(TrainCfg(**base, steps=8, keep_every=2))
    assert "was a run of 4 steps, now 8: at step 4 the learning rate goes from" in capsys.readouterr().out
    with pytest.raises(ValueError, match="keep_every"):
        TrainCfg(**base, keep_every=-1)


def test_init_fine_tunes_from_a_checkpoint_with_its_weights_and_normalization(checkpoint, small_dataset, tmp_path):
    """--init starts from a checkpoint's weights and keeps its normalization (what the weights expect), and
    refuses a checkpoint whose model does not fit the run, naming both."""
    start = DiffusionPolicy.load(checkpoint)
    shifted = DiffusionPolicy.load(checkpoint)
    shifted.normalizer.state_mean = shifted.normalizer.state_mean + 1.0  # not the data's statistics
    shifted.save(tmp_path / "start")
    base = {"data": str(small_dataset), "batch_size": 8, "val_every": 100, "val_fraction": 0.3}
    trainer = Trainer(TrainCfg(**base, out=str(tmp_path / "tuned"), steps=1, init=str(tmp_path / "start")))
    for ours, theirs in zip(trainer.model.state_dict().values(), start.model.state_dict().values(), strict=True):
        assert torch.equal(ours, theirs)
    np.testing.assert_array_equal(trainer.train_set.state_mean, shifted.normalizer.state_mean)
    tuned = DiffusionPolicy.load(trainer.run(progress=False))
    np.testing.assert_array_equal(tuned.normalizer.state_mean, shifted.normalizer.state_mean)
    with pytest.raises(ValueError, match="--init .*denoiser"):
        Trainer(TrainCfg(**base, out=str(tmp_path / "wide"), steps=1, d_model=64, init=str(tmp_path / "start")))
