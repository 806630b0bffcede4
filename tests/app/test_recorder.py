import numpy as np

from app.recorder import SessionRecorder
from bm_gym.data.hdf5 import load_episodes, validate
from bm_gym.data.state import StateLayout
from bm_gym.robot import g1


def test_session_recording_is_a_valid_dataset_and_keeps_finished_episodes(backend, tmp_path):
    path = tmp_path / "session.h5"
    recorder = SessionRecorder(path, StateLayout(), backend.control_dt)
    targets = np.array(g1.DEFAULT_JOINT_POS)
    state = backend.reset(seed=0)
    for _ in range(30):
        next_state = backend.step(targets)
        recorder.add(state, targets, (0.0, 0.0, 0.0))
        state = next_state
    recorder.end_episode(fell=False)  # e.g. the operator pressed Reset
    assert validate(path).episodes == 1  # written as soon as the episode closed
    for _ in range(25):
        recorder.add(state, targets, (0.5, 0.0, 0.0))
        state = backend.step(targets)
    recorder.close()
    summary = validate(path)
    assert (summary.episodes, summary.steps) == (2, 55)
    episodes, attrs, _ = load_episodes(path)
    assert episodes[1].commands[0, 0] == np.float32(0.5)
    assert StateLayout.from_json(attrs["state_layout"]) == StateLayout()
