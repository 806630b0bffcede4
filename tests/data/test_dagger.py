"""DAgger-style collection: a co-driver takes stretches of an episode, the expert takes over again, and the
co-driver's steps reach training only as history."""

import json

import numpy as np
import pytest
import yaml

from bm_gym.data import CollectCfg, Collector, ExpertWindowDataset, StudentCfg
from bm_gym.data.dataset import window_starts
from bm_gym.data.hdf5 import Episode, load_episodes
from bm_gym.data.manifest import Manifest, ManifestError
from bm_gym.robot import g1

STAND = np.array(g1.DEFAULT_JOINT_POS)


class StandingCoDriver:
    """Holds the default pose; records what it was handed (in its worker process)."""

    def __init__(self) -> None:
        self.begun: list[int] = []

    def begin(self, states, actions, seed) -> None:
        assert len(states) == len(actions) >= 1 and isinstance(seed, int)
        self.begun.append(len(states))

    def act(self, state, command) -> np.ndarray:
        assert np.shape(command) == (3,)
        return STAND.copy()


def standing_co_driver(checkpoint: str, seed: int) -> StandingCoDriver:
    return StandingCoDriver()


STUDENT = StudentCfg("unused-by-the-fake", first_s=(1.0, 1.5), student_s=(0.3, 0.6), expert_s=(0.5, 1.0))


@pytest.fixture(scope="module")
def dagger(tmp_path_factory, velocity_dir):
    folder = tmp_path_factory.mktemp("dagger")
    common = dict(policy=str(velocity_dir), episodes=2, episode_s=4.0, workers=2, seed=11, randomization=None)
    with_student = CollectCfg(out=str(folder / "dagger.h5"), student=STUDENT, **common)
    expert_only = CollectCfg(out=str(folder / "expert.h5"), **common)
    Collector(with_student, standing_co_driver).run(progress=False)
    Collector(expert_only).run(progress=False)
    return folder


def test_the_student_drives_stretches_and_its_steps_are_recorded_as_executed(dagger):
    episodes, _, _ = load_episodes(dagger / "dagger.h5", include_fallen=True)
    expert_only, _, _ = load_episodes(dagger / "expert.h5", include_fallen=True)
    for episode, reference in zip(episodes, expert_only, strict=True):
        driven = episode.expert_driven
        assert driven is not None and reference.expert_driven is None
        student = ~driven
        assert student.any() and driven.any()
        lead = int(np.argmax(student))
        assert 50 <= lead <= 75, "the expert leads for first_s before the first hand-over"
        # each student stretch lasts student_s (the last one may be cut by the episode's end)
        edges = np.flatnonzero(np.diff(np.concatenate([[0], student.astype(int), [0]])))
        lengths = edges[1::2] - edges[::2]
        assert all(15 <= n <= 30 for n in lengths[:-1]) and lengths[-1] <= 30
        stand = np.broadcast_to(STAND.astype(np.float32), (student.sum(), 29))
        np.testing.assert_array_equal(episode.actions[student], stand)
        np.testing.assert_array_equal(episode.applied_actions[student], episode.actions[student])
        # the expert's lead is the expert-only episode of the same seed: the student's draws take a stream apart
        np.testing.assert_array_equal(episode.states[: lead + 1], reference.states[: lead + 1])
        np.testing.assert_array_equal(episode.commands, reference.commands)


def test_windows_never_ask_for_a_student_action_but_see_its_states(dagger):
    episodes, _, _ = load_episodes(dagger / "dagger.h5", include_fallen=True)
    seen_student_history = False
    for episode in episodes:
        starts = window_starts(episode, 4, 16)
        for t in starts:
            assert episode.expert_driven[t : t + 16].all()
        seen_student_history |= any((~episode.expert_driven[t - 4 : t]).any() for t in starts)
        everywhere = [t for t in range(4, len(episode) - 16) if episode.expert_driven[t : t + 16].all()]
        assert list(starts) == everywhere
    assert seen_student_history, "the windows right after a hand-back start from the student's steps"
    dataset = ExpertWindowDataset(dagger / "dagger.h5", include_fallen=True)
    assert len(dataset) == sum(len(window_starts(e, 4, 16)) for e in episodes)


def test_window_starts_of_an_expert_episode_are_every_step():
    episode = Episode(0, np.zeros((40, 3)), np.zeros((40, 2)), np.zeros((40, 2)), np.zeros((40, 3)),
                      np.zeros(40, np.int32), False, 0)  # fmt: skip
    np.testing.assert_array_equal(window_starts(episode, 4, 16), np.arange(4, 24))
    np.testing.assert_array_equal(window_starts(episode, 4, 16, end_cut=10), np.arange(4, 14))
    driven = np.ones(40, bool)
    driven[20] = False  # actions 5..20 and 20..35 hold it: windows at 5..20 are out
    episode.expert_driven = driven
    np.testing.assert_array_equal(window_starts(episode, 4, 16), [4, 21, 22, 23])


def test_a_student_without_a_factory_or_for_a_tracking_policy_is_refused(tmp_path, velocity_dir, tracking_dir):
    cfg = CollectCfg(policy=str(velocity_dir), out=str(tmp_path / "d.h5"), student=STUDENT)
    with pytest.raises(ValueError, match="no co-driver factory"):
        Collector(cfg)
    tracking = CollectCfg(
        policy=str(tracking_dir), out=str(tmp_path / "t.h5"), student=STUDENT, episode_s=2.0, motion_fps=30
    )
    with pytest.raises(ValueError, match="tracking policy"):
        Collector(tracking, standing_co_driver).check()
    with pytest.raises(ValueError, match="student_s"):
        StudentCfg("c", student_s=(1.0, 0.5))


@pytest.mark.parametrize(
    "student, message",
    [
        ("no/such/checkpoint", "student checkpoint .* does not exist"),
        ({"checkpoint": ".", "stretch_s": [1, 2]}, "unknown keys \\['stretch_s'\\]"),
        ({"student_s": [1, 2]}, "a checkpoint path or a mapping with 'checkpoint'"),
        (".", "has no config.json: not a checkpoint folder"),
        ({"checkpoint": "CKPT", "expert_s": [2, 1]}, "student: .*expert_s"),
    ],
)
def test_bad_students_in_a_manifest_are_named(tmp_path, velocity_dir, student, message):
    from bm_gym.diffusion import SHIPPED_CHECKPOINT

    if isinstance(student, dict) and student.get("checkpoint") == "CKPT":
        student = student | {"checkpoint": str(SHIPPED_CHECKPOINT)}
    path = tmp_path / "m.yaml"
    source = {"name": "v", "policy": str(velocity_dir), "episodes": 1, "student": student}
    path.write_text(yaml.safe_dump({"sources": [source]}))
    with pytest.raises(ManifestError, match=message) as err:
        Manifest.load(path)
    assert f"{path}: source 'v'" in str(err.value)


def test_a_manifest_student_reaches_the_part(tmp_path, velocity_dir):
    from bm_gym.diffusion import SHIPPED_CHECKPOINT

    path = tmp_path / "m.yaml"
    source = {"name": "v", "policy": str(velocity_dir), "episodes": 1,
              "student": {"checkpoint": str(SHIPPED_CHECKPOINT), "student_s": [0.5, 1.0]}}  # fmt: skip
    path.write_text(yaml.safe_dump({"sources": [source]}))
    manifest = Manifest.load(path)
    cfg = manifest.part_cfg(manifest.parts()[0], tmp_path / "out.h5")
    assert cfg.student == StudentCfg(str(SHIPPED_CHECKPOINT), student_s=(0.5, 1.0))


def test_exports_say_which_steps_a_student_drove(dagger, tmp_path, monkeypatch):
    import datasets
    import minari

    from bm_gym.data.export import export_lerobot, export_minari
    from tests.data.test_export import lerobot_features

    episodes, _, _ = load_episodes(dagger / "dagger.h5", include_fallen=True)
    out = export_lerobot(dagger / "dagger.h5", tmp_path / "lerobot")
    info = json.loads((out / "meta/info.json").read_text())
    frames = datasets.Dataset.from_parquet(sorted(str(p) for p in (out / "data").glob("*/*.parquet")),
                                           features=lerobot_features(info))  # fmt: skip
    flags = np.array(frames["action.expert_driven"])
    np.testing.assert_array_equal(flags, np.concatenate([e.expert_driven for e in episodes]))
    dataset_id = export_minari(dagger / "dagger.h5", tmp_path / "minari")
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    loaded = next(minari.load_dataset(dataset_id).iterate_episodes())
    np.testing.assert_array_equal(loaded.infos["expert_driven"], episodes[0].expert_driven)
