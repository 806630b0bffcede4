"""Gymnasium's RecordVideo on the guided env: one mp4 per episode, each with every frame and none frozen."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.wrappers import RecordVideo

import bm_gym  # noqa: F401 - registers the env
from bm_gym.envs import ENV_ID
from bm_gym.utils.video import read_video, video_info

STEPS = 6  # per episode (TimeLimit)
pytest.importorskip("moviepy", reason="RecordVideo encodes with moviepy, the [video] extra (not in the Isaac Lab venv)")


def test_record_video_writes_three_consecutive_episodes_with_distinct_frames(tmp_path):
    env = gym.make(ENV_ID, render_mode="rgb_array", control_steps=5, max_episode_steps=STEPS)
    env = RecordVideo(env, str(tmp_path / "videos"), episode_trigger=lambda episode: True, name_prefix="g1")
    walk = np.array([0.6, 0.0, 0.4], dtype=np.float32)
    for episode in range(3):
        env.reset(seed=episode)
        truncated = False
        while not truncated:
            _, _, terminated, truncated, _ = env.step(walk)
            assert not terminated
    env.close()

    videos = sorted((tmp_path / "videos").glob("g1-episode-*.mp4"))
    assert [v.name for v in videos] == [f"g1-episode-{k}.mp4" for k in range(3)]
    first_frames = []
    for video in videos:
        frames = list(read_video(video))
        assert len(frames) == STEPS + 1, f"{video.name}: the reset frame and one per step"
        assert video_info(video)["size"] == (480, 360)
        for a, b in zip(frames, frames[1:], strict=False):  # a frozen renderer repeats one image (mujoco #824)
            assert np.abs(a.astype(int) - b.astype(int)).mean() > 0.05, f"{video.name}: two identical frames"
        first_frames.append(frames[0])
    assert np.abs(first_frames[0].astype(int) - first_frames[-1].astype(int)).mean() > 0, "episodes differ"
