"""Collection manifests: many Stage 1 sources into one dataset; bad manifests fail before any rollout."""

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

from bm_gym.data import CollectCfg, Collector
from bm_gym.data.dataset import ExpertWindowDataset, window_stats
from bm_gym.data.hdf5 import load_episodes
from bm_gym.data.manifest import Manifest, ManifestError, collect_manifest, parts_dir, recorded_source
from bm_gym.data.state import StateLayout


def write(tmp_path, spec, name="sources.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.fixture(scope="module")
def mixed(tmp_path_factory, velocity_dir, tracking_dir):
    """Two velocity episodes (Gaussian noise) and two dance episodes (OU noise) of 2 s, in one file."""
    folder = tmp_path_factory.mktemp("mixed")
    manifest = write(folder, {"workers": 2, "seed": 3, "sources": [
        {"name": "velocity", "policy": str(velocity_dir), "episodes": 2, "episode_s": 2.0},
        {"name": "dance", "policy": str(tracking_dir), "motions": [str(tracking_dir / "motion.csv")],
         "motion_fps": 30, "episodes": 2, "episode_s": 2.0, "noise": "ou", "noise_free_share": 0.0},
    ]})  # fmt: skip
    reports = collect_manifest(Manifest.load(manifest), folder / "mixed.h5", progress=False)
    return folder, manifest, reports


def test_one_file_holds_every_source_with_names_conventions_and_joint_statistics(mixed):
    folder, _, reports = mixed
    assert [(r.name, r.episodes, r.added) for r in reports] == [("velocity", 2, 2), ("dance__motion", 2, 2)]
    episodes, attrs, stats = load_episodes(folder / "mixed.h5", include_fallen=True)
    assert [(e.index, e.source, e.motion) for e in episodes] == [
        (0, "velocity", ""), (1, "velocity", ""), (2, "dance", "motion"), (3, "dance", "motion")]  # fmt: skip
    sources = json.loads(attrs["sources"])
    terms = {name: [t["name"] for t in s["policy_conventions"]["obs_terms"]] for name, s in sources.items()}
    assert "motion_command" in terms["dance__motion"] and "motion_command" not in terms["velocity"]
    assert sources["velocity"]["collect_cfg"]["noise"] == "gaussian" and "sources:" in attrs["manifest"]
    assert all(e.motion_frames[0] >= 0 for e in episodes[2:]) and all(e.motion_frames[0] == -1 for e in episodes[:2])
    healthy = [e for e in episodes if not e.fell] or episodes
    expected = window_stats(healthy, StateLayout(), 4, 16)  # over the whole file, every source in it
    assert np.allclose(stats["state_mean"], expected["state_mean"]) and np.allclose(
        stats["action_std"], expected["action_std"]
    )


def test_collection_resumes_per_source(mixed):
    folder, manifest, _ = mixed
    before = (folder / "mixed.h5").read_bytes()
    again = collect_manifest(Manifest.load(manifest), folder / "mixed.h5", progress=False)
    assert [r.added for r in again] == [0, 0], "finished parts are kept"
    assert sorted(p.name for p in parts_dir(folder / "mixed.h5").glob("*.h5")) == ["dance__motion.h5", "velocity.h5"]
    with h5py.File(folder / "mixed.h5") as f:
        assert len(f["episodes"]) == 4
    assert len(before) > 0


def test_ou_noise_is_correlated_in_time_and_gaussian_is_not(mixed):
    folder, _, _ = mixed
    episodes, _, _ = load_episodes(folder / "mixed.h5", include_fallen=True)

    def lag1(e):  # mean over joints of the step-to-step correlation of the executed perturbation
        delta = e.applied_actions - e.actions
        return np.mean([np.corrcoef(d[:-1], d[1:])[0, 1] for d in delta.T if d.std() > 0])

    dance = [e for e in episodes if e.source == "dance"]
    assert all(lag1(e) > 0.7 for e in dance), [lag1(e) for e in dance]  # OU: exp(-theta dt) = 0.98 per step
    velocity_noisy = [e for e in episodes if e.source == "velocity" and np.any(e.applied_actions != e.actions)]
    assert all(abs(lag1(e)) < 0.3 for e in velocity_noisy)


def test_sources_are_found_again_from_any_directory(tmp_path, tracking_dir, monkeypatch):
    """A manifest given by a relative path, with paths relative to it: evaluation finds the policy and the
    motion from anywhere; a file from before absolute motion paths says what is missing and why."""
    import os

    here = tmp_path / "project"
    (here / "configs").mkdir(parents=True)
    relative = os.path.relpath(tracking_dir, here / "configs")
    write(here / "configs", {"workers": 1, "sources": [{"name": "dance", "policy": relative, "motions": [
        f"{relative}/motion.csv"], "motion_fps": 30, "episodes": 1, "episode_s": 1.0}]})  # fmt: skip
    monkeypatch.chdir(here)
    collect_manifest(Manifest.load(Path("configs/sources.yaml")), Path("mixed.h5"), progress=False)
    monkeypatch.chdir(tmp_path)
    source = recorded_source(here / "mixed.h5", "dance")
    assert source.policy == tracking_dir.resolve() and source.motion == (tracking_dir / "motion.csv").resolve()
    assert source.motion_fps == 30
    with pytest.raises(ValueError, match=r"no source 'walk'; it has \['dance'\]"):
        recorded_source(here / "mixed.h5", "walk")
    with h5py.File(here / "mixed.h5", "r+") as f:  # as written before motion_path was recorded
        sources = json.loads(f.attrs["sources"])
        del sources["dance__motion"]["motion_path"]
        f.attrs["sources"] = json.dumps(sources)
    with pytest.raises(ValueError, match="relative to where the collection ran"):
        recorded_source(here / "mixed.h5", "dance")
    monkeypatch.chdir(here)
    assert recorded_source(here / "mixed.h5", "dance").motion == (tracking_dir / "motion.csv").resolve()


def test_loader_filters_weights_sources_and_keeps_windows_well_before_a_fall(mixed, tmp_path):
    folder, _, _ = mixed
    path = folder / "mixed.h5"
    everything = ExpertWindowDataset(path, include_fallen=True)
    dance = ExpertWindowDataset(path, sources=["dance"], include_fallen=True)
    assert set(dance.sources) == {"dance"} and len(dance) < len(everything)
    weights = everything.sample_weights({"velocity": 1.0, "dance": 3.0})
    names = np.array(everything.sources)
    assert weights[names == "dance"].sum() == pytest.approx(0.75) and weights.sum() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="no episodes of source"):
        ExpertWindowDataset(path, sources=["walking"])
    with pytest.raises(ValueError, match="no windows of"):
        everything.sample_weights({"walking": 1.0})


def test_fall_margin_keeps_only_windows_that_end_long_before_the_fall(small_dataset, tmp_path):
    from bm_gym.data.hdf5 import read_episode_group, write_episode_group

    copy = tmp_path / "fallen.h5"
    copy.write_bytes(small_dataset.read_bytes())
    with h5py.File(copy, "r+") as f:
        name = sorted(f["episodes"])[0]
        episode = read_episode_group(f["episodes"][name], 0)
        episode.fell = True
        del f["episodes"][name]
        write_episode_group(f["episodes"].create_group(name), episode)
    plain = ExpertWindowDataset(copy, keep_push_futures=True)
    margin = ExpertWindowDataset(copy, fall_margin_s=1.0, keep_push_futures=True)
    kept = sum(1 for i, _ in margin.index if margin.episodes[i].fell)
    assert kept == len(episode) - 4 - 16 - 50 and len(margin) == len(plain) + kept


@pytest.mark.parametrize(
    "source, message",
    [
        ({"name": "v", "policy": "missing_policy", "episodes": 2}, "policy .*missing_policy does not exist"),
        ({"name": "v", "policy": "{velocity}", "episodes": 0}, "zero episodes"),
        ({"name": "v", "policy": "{velocity}", "hours": 0.0}, "zero episodes"),
        ({"name": "v", "policy": "{velocity}", "episodes": 2, "speed": 1}, "unknown keys \\['speed'\\]"),
        ({"name": "bad name", "policy": "{velocity}", "episodes": 2}, "'name' must be"),
        ({"name": "d", "policy": "{tracking}", "motions": ["missing.csv"], "episodes": 2}, "motion .*missing.csv"),
        ({"name": "d", "policy": "{tracking}", "motions": ["{bad_motion}"], "episodes": 2}, "does not load"),
        ({"name": "v", "policy": "{velocity}", "motions": ["{good_motion}"], "episodes": 2}, "velocity policy"),
        ({"name": "v", "policy": "{velocity}", "episodes": 2, "noise": "pink"}, "'noise' must be"),
        ({"name": "v", "policy": "{velocity}", "episodes": 2, "schedule": {"moonwalk": 1}}, "unknown keys .*moonwalk"),
        ({"name": "v", "policy": "{velocity}", "episodes": 2, "schedule": {"ramp_s": [2, 1]}}, "ramp_s must be"),
        ({"name": "v", "policy": "{velocity}", "episodes": 2, "randomization": {"wind": 1}}, "unknown keys .*wind"),
        (
            {"name": "v", "policy": "{velocity}", "episodes": 2, "randomization": {"push": {"lin_vel_xy": -1}}},
            "push: lin_vel_xy must be a finite number >= 0",
        ),
        (
            {"name": "v", "policy": "{velocity}", "episodes": 2, "randomization": {"push": {"interval_s": [3, 1]}}},
            "interval_s must be a list of 2 finite numbers >= 0 \\(low <= high\\)",
        ),
        (
            {"name": "v", "policy": "{velocity}", "episodes": 2, "randomization": {"latency_substeps": [0.5, 1]}},
            "latency_substeps must be a list of 2 integers",
        ),
        ({"name": "v", "policy": "{velocity}", "episodes": 2, "randomization": "strong"}, "'randomization' must be"),
    ],
)
def test_bad_manifests_fail_before_any_rollout(tmp_path, velocity_dir, tracking_dir, source, message):
    bad_motion = tmp_path / "short_30fps.csv"
    bad_motion.write_text("\n".join(",".join(["0.1"] * 30) for _ in range(200)))  # 23 joint columns, not 29
    fill = {"velocity": str(velocity_dir), "tracking": str(tracking_dir), "bad_motion": str(bad_motion),
            "good_motion": str(tracking_dir / "motion.csv")}  # fmt: skip
    source = {k: (v.format(**fill) if isinstance(v, str) else [m.format(**fill) for m in v] if isinstance(v, list)
                  else v) for k, v in source.items()}  # fmt: skip
    path = write(tmp_path, {"sources": [source]})
    with pytest.raises(ManifestError, match=message) as err:
        collect_manifest(Manifest.load(path), tmp_path / "out.h5", progress=False)
    assert str(path) in str(err.value)
    assert not (tmp_path / "out.h5").exists() and not parts_dir(tmp_path / "out.h5").exists()


def test_duplicate_names_and_a_bad_file_are_reported(tmp_path, velocity_dir):
    path = write(tmp_path, {"sources": [{"name": "v", "policy": str(velocity_dir), "episodes": 1}] * 2})
    with pytest.raises(ManifestError, match="repeated: \\['v'\\]"):
        Manifest.load(path)
    (tmp_path / "broken.yaml").write_text("sources: [")
    with pytest.raises(ManifestError, match="broken.yaml: not valid YAML"):
        Manifest.load(tmp_path / "broken.yaml")
    with pytest.raises(ManifestError, match="cannot read"):
        Manifest.load(tmp_path / "missing.yaml")


def test_single_policy_collections_from_before_manifests_still_resume(tmp_path, velocity_dir):
    cfg = CollectCfg(policy=str(velocity_dir), out=str(tmp_path / "v.h5"), episodes=1, episode_s=1.0, workers=1)
    Collector(cfg).run(progress=False)
    record = tmp_path / "v.h5.shards" / "collect_cfg.json"
    older = {k: v for k, v in json.loads(record.read_text()).items() if k not in ("noise", "ou_theta", "ou_sigma",
                                                                               "motion", "source")}  # fmt: skip
    record.write_text(json.dumps(older))  # as written before these settings existed
    assert Collector(cfg).run(progress=False) == 0


def test_a_source_sets_its_command_mix(tmp_path, velocity_dir):
    schedule = {"backward": 0.5, "sideways": 0.5, "segment_s": [2.0, 3.0]}
    path = write(tmp_path, {"sources": [{"name": "v", "policy": str(velocity_dir), "episodes": 2,
                                         "schedule": schedule}]})  # fmt: skip
    manifest = Manifest.load(path)
    cfg = manifest.part_cfg(manifest.parts()[0], tmp_path / "out.h5").schedule
    assert (cfg.backward, cfg.sideways, cfg.forward, cfg.segment_s) == (0.5, 0.5, 0.25, (2.0, 3.0))


def test_the_manifest_sets_the_state_layout_of_the_whole_dataset(tmp_path, velocity_dir):
    sources = [{"name": "v", "policy": str(velocity_dir), "episodes": 2}]
    manifest = Manifest.load(write(tmp_path, {"sources": sources, "state": "body-pos"}))
    assert manifest.part_cfg(manifest.parts()[0], tmp_path / "out.h5").state == "body-pos"
    assert Manifest.load(write(tmp_path, {"sources": sources})).state == "joint"
    with pytest.raises(ManifestError, match="state must be one of joint, body-pos, got 'bodies'"):
        Manifest.load(write(tmp_path, {"sources": sources, "state": "bodies"}))
    with pytest.raises(ValueError, match="CollectCfg.state"):
        CollectCfg(policy=str(velocity_dir), out=str(tmp_path / "x.h5"), state="bodies")


def test_workers_on_the_command_line_override_the_manifest(tmp_path, velocity_dir, monkeypatch, capsys):
    """One manifest serves a laptop and a 16-core machine: ``--workers`` wins over the manifest's ``workers``."""
    import tools.data

    seen = []
    monkeypatch.setattr(tools.data, "collect_manifest", lambda manifest, out, **kw: seen.append(manifest) or [])
    monkeypatch.setattr(tools.data, "validate", lambda path: "summary")
    manifest = write(tmp_path, {"workers": 2, "sources": [{"name": "v", "policy": str(velocity_dir), "episodes": 2}]})
    out = str(tmp_path / "out.h5")
    assert tools.data.main(["collect", "--manifest", str(manifest), "--out", out]) == 0
    assert tools.data.main(["collect", "--manifest", str(manifest), "--out", out, "--workers", "5"]) == 0
    assert [m.workers for m in seen] == [2, 5]
    assert tools.data.main(["collect", "--manifest", str(manifest), "--out", out, "--workers", "0"]) == 1
    assert "--workers must be a positive integer, got 0" in capsys.readouterr().err
    assert len(seen) == 2  # nothing collected with a bad worker count


def test_a_source_changes_the_randomization(tmp_path, velocity_dir):
    """Stronger pushes (the push sweep's kicks are larger than Stage 1's), a term turned off, the rest as Stage 1."""
    from bm_gym.sim import DomainRandomizationCfg, PushCfg

    path = write(tmp_path, {"sources": [
        {"name": "push", "policy": str(velocity_dir), "episodes": 1,
         "randomization": {"push": {"lin_vel_xy": 1.2, "interval_s": [2, 4]}, "foot_friction": None}},
        {"name": "off", "policy": str(velocity_dir), "episodes": 1, "randomization": False},
    ]})  # fmt: skip
    manifest = Manifest.load(path)
    push, off = (manifest.part_cfg(part, tmp_path / "out.h5") for part in manifest.parts())
    assert push.randomization == DomainRandomizationCfg(
        foot_friction=None, push=PushCfg(lin_vel_xy=1.2, interval_s=(2, 4))
    )
    assert off.randomization is None
