import numpy as np
import pytest

from bm_gym.data.schedules import SEGMENT_KINDS, CommandScheduleCfg, sample_schedule, sample_segment


def test_schedules_cover_standing_walking_turning_and_stay_in_range():
    rng = np.random.default_rng(0)
    ranges = {"lin_vel_x": (-0.5, 1.0), "lin_vel_y": (-0.5, 0.5), "ang_vel_z": (-1.0, 1.0)}
    commands = np.concatenate([sample_schedule(rng, 1000, 0.02, ranges=ranges) for _ in range(50)])
    assert commands.shape == (50_000, 3)
    assert np.all(commands[:, 0] >= -0.5) and np.all(commands[:, 0] <= 1.0)
    assert np.all(np.abs(commands[:, 1:]) <= [0.5, 1.0])
    standing = np.all(commands == 0, axis=1).mean()
    turning_in_place = ((commands[:, 0] == 0) & (commands[:, 1] == 0) & (np.abs(commands[:, 2]) > 0.3)).mean()
    assert 0.05 < standing < 0.4 and turning_in_place > 0.05
    assert commands[:, 0].max() > 0.9 and commands[:, 2].min() < -0.9
    jumps = np.abs(np.diff(commands, axis=0)).max(axis=1)
    assert (jumps > 0.2).sum() > 10  # abrupt changes exist ...
    assert ((jumps > 1e-6) & (jumps < 0.05)).sum() > 1000  # ... and so do smooth ramps


def test_first_steps_stand_and_unknown_kinds_raise():
    commands = sample_schedule(np.random.default_rng(1), 200, 0.02, CommandScheduleCfg(initial_stand_s=(1.0, 1.0)))
    np.testing.assert_array_equal(commands[:50], 0.0)
    with pytest.raises(ValueError, match="unknown command segment kind"):
        sample_segment(
            "moonwalk", np.random.default_rng(0), {"lin_vel_x": (0, 1), "lin_vel_y": (0, 1), "ang_vel_z": (0, 1)}
        )


def test_the_command_mix_follows_its_weights_and_bad_mixes_are_refused():
    only_back = CommandScheduleCfg(**{k: 0.0 for k in SEGMENT_KINDS} | {"backward": 1.0}, initial_stand_s=(0.0, 0.0))
    commands = sample_schedule(np.random.default_rng(0), 2000, 0.02, only_back)
    assert np.all(commands[:, 0] <= 0) and np.all(commands[:, 1:] == 0)
    with pytest.raises(ValueError, match="segment weights"):
        CommandScheduleCfg(**{k: 0.0 for k in SEGMENT_KINDS})
    with pytest.raises(ValueError, match="CommandScheduleCfg.sideways"):
        CommandScheduleCfg(sideways=-1.0)
    with pytest.raises(ValueError, match="CommandScheduleCfg.segment_s"):
        CommandScheduleCfg(segment_s=2.0)


def test_a_speed_floor_keeps_walking_segments_away_from_standing_speeds():
    ranges = {"lin_vel_x": (-0.5, 1.0), "lin_vel_y": (-0.5, 0.5), "ang_vel_z": (-1.0, 1.0)}
    rng = np.random.default_rng(0)
    sideways = np.array([sample_segment("sideways", rng, ranges, min_speed=0.3)[1] for _ in range(400)])
    assert np.all(np.abs(sideways) >= 0.3) and (sideways > 0).mean() == pytest.approx(0.5, abs=0.08)
    backward = [sample_segment("backward", rng, ranges, min_speed=0.3)[0] for _ in range(100)]
    assert max(backward) <= -0.3 and min(backward) >= -0.5
    old = np.array([sample_segment("sideways", rng, ranges)[1] for _ in range(400)])  # None: the first datasets' mix
    assert np.abs(old).min() < 0.05
    with pytest.raises(ValueError, match="CommandScheduleCfg.min_speed"):
        CommandScheduleCfg(min_speed=-0.1)
