import numpy as np
import pytest

from bm_gym.robot import g1
from bm_gym.stage1 import load_motion

from .helpers import breadth_first_joint_names


@pytest.fixture(scope="module")
def clip(tracking_dir):
    return load_motion(tracking_dir / "motion.csv", fps=30)


def test_csv_is_resampled_to_50hz(clip, tracking_dir):
    raw = np.loadtxt(tracking_dir / "motion.csv", delimiter=",")
    assert clip.fps == 50
    assert clip.duration == pytest.approx((len(raw) - 1) / 30, abs=0.02)
    # Frame 5 at 50 Hz is t=0.1 s = raw frame 3 exactly.
    np.testing.assert_allclose(clip.joint_pos[5], raw[3, 7:], atol=1e-9)
    np.testing.assert_allclose(clip.root_quat[5], raw[3, [6, 3, 4, 5]] / np.linalg.norm(raw[3, 3:7]), atol=1e-9)
    np.testing.assert_allclose(np.linalg.norm(clip.anchor_quat_w, axis=1), 1.0, atol=1e-9)
    assert np.abs(clip.joint_vel).max() < 40  # finite differences, no spikes


def test_npz_in_isaaclab_order_equals_csv(clip, tmp_path):
    bfs = breadth_first_joint_names()
    order = g1.joint_index_map(bfs)
    np.savez(tmp_path / "m.npz", fps=np.array([50.0]), joint_pos=clip.joint_pos[:, order], joint_names=np.array(bfs),
             body_pos_w=clip.root_pos[:, None], body_quat_w=clip.root_quat[:, None])  # fmt: skip
    again = load_motion(tmp_path / "m.npz")
    np.testing.assert_allclose(again.joint_pos, clip.joint_pos, atol=1e-12)
    np.testing.assert_allclose(again.anchor_quat_w, clip.anchor_quat_w, atol=1e-9)


def test_malformed_motion_files_get_clear_errors(tmp_path, clip):
    (tmp_path / "short.csv").write_text("0,0,0.8,0,0,0,1,0.1\n0,0,0.8,0,0,0,1,0.1\n")
    with pytest.raises(ValueError, match="expected 36 columns"):
        load_motion(tmp_path / "short.csv", fps=30)
    (tmp_path / "text.csv").write_text("a,b,c\n")
    with pytest.raises(ValueError, match="malformed motion CSV"):
        load_motion(tmp_path / "text.csv", fps=30)
    with pytest.raises(ValueError, match="carries no frame rate"):
        load_motion(tmp_path / "short.csv")
    np.savez(tmp_path / "anon.npz", fps=np.array([50.0]), joint_pos=clip.joint_pos,
             body_pos_w=clip.root_pos[:, None], body_quat_w=clip.root_quat[:, None])  # fmt: skip
    with pytest.raises(ValueError, match="stores no joint_names"):
        load_motion(tmp_path / "anon.npz")
    (tmp_path / "m.bvh").write_text("HIERARCHY\n")
    with pytest.raises(ValueError, match="unsupported motion format"):
        load_motion(tmp_path / "m.bvh")


def test_frame_rate_must_be_finite_and_the_length_bounded(tmp_path, tracking_dir):
    rows = (tracking_dir / "motion.csv").read_text().splitlines()[:40]
    (tmp_path / "clip.csv").write_text("\n".join(rows) + "\n")
    with pytest.raises(ValueError, match=r"clip.csv: invalid frame rate nan"):
        load_motion(tmp_path / "clip.csv", fps=float("nan"))
    with pytest.raises(ValueError, match=r"clip.csv: 40 frames at 0.0001 fps .* is the frame rate right"):
        load_motion(tmp_path / "clip.csv", fps=1e-4)


def test_csv_frame_rate_from_the_file_name(tmp_path, tracking_dir):
    rows = (tracking_dir / "motion.csv").read_text().splitlines()[:61]
    (tmp_path / "G1_Take_102.bvh_60hz.csv").write_text("\n".join(rows) + "\n")
    assert load_motion(tmp_path / "G1_Take_102.bvh_60hz.csv").duration == pytest.approx(1.0, abs=0.02)
