import json

import numpy as np
import pytest

from bm_gym.data import StateLayout
from bm_gym.robot import g1
from bm_gym.sim import RootPose
from bm_gym.utils.math import quat_from_yaw


def test_layout_covers_the_state_vector_and_round_trips():
    layout = StateLayout()
    fields = layout.fields
    assert fields["root_pos_xy"] == slice(0, 2) and layout.dim == fields["joint_vel"].stop == 96
    assert StateLayout.from_json(layout.to_json()) == layout
    with pytest.raises(ValueError, match="does not match"):
        StateLayout.from_json(layout.to_json().replace('"joint_vel": [67, 96]', '"joint_vel": [67, 97]'))


def test_the_body_pos_layout_is_the_papers_state_and_older_files_read_as_the_joint_layout():
    body = StateLayout.named("body-pos")
    assert body.kind == "body-pos" and StateLayout().kind == "joint" and body.body_names == g1.BODY_NAMES
    assert "joint_pos" not in body.fields and body.fields["body_vel_h"].stop == body.dim == 14 + 6 * 30
    assert StateLayout.from_json(body.to_json()) == body and body.action_dim == 29
    old = json.loads(StateLayout().to_json())
    del old["joint_state"], old["body_velocities"]  # written before the option existed
    assert StateLayout.from_json(json.dumps(old)) == StateLayout()
    with pytest.raises(ValueError, match="unknown state kind 'bodies'"):
        StateLayout.named("bodies")
    with pytest.raises(ValueError, match=r"bodies the G1 does not have: \['head_link'\]"):
        StateLayout(body_names=("pelvis", "head_link"))


def test_body_pos_encoding_holds_every_body_velocity_in_the_heading_frame(backend):
    layout = StateLayout.named("body-pos")
    f = layout.fields
    backend.reset(RootPose(pos=(0, 0, 0.78), quat=tuple(quat_from_yaw(0.9))))
    state = backend.step(np.array(g1.DEFAULT_JOINT_POS))
    state.root_lin_vel_w[:] = state.body_lin_vel_w[:] = [0.3, 0.4, 0.0]  # everything moving along world (0.6, 0.8)
    s = layout.encode(state)
    heading = [0.3 * np.cos(0.9) + 0.4 * np.sin(0.9), -0.3 * np.sin(0.9) + 0.4 * np.cos(0.9), 0.0]
    np.testing.assert_allclose(s[f["body_vel_h"]].reshape(-1, 3), np.tile(heading, (30, 1)), atol=1e-4)
    np.testing.assert_allclose(s[f["lin_vel_h"]], heading, atol=1e-4)
    feet = s[f["body_pos_h"]].reshape(-1, 3)[[g1.BODY_NAMES.index(n) for n in g1.FEET]]
    assert feet[0, 1] > 0.05 > -0.05 > feet[1, 1]  # left foot on the left in the heading frame


def test_encoding_is_heading_invariant_except_for_world_position_and_yaw(backend):
    layout = StateLayout()
    f = layout.fields
    a = layout.encode(backend.reset(RootPose(pos=(0, 0, 0.78))))
    b = layout.encode(backend.reset(RootPose(pos=(3.0, -2.0, 0.78), quat=tuple(quat_from_yaw(1.2)))))
    np.testing.assert_allclose(b[f["root_pos_xy"]], [3.0, -2.0], atol=1e-6)
    np.testing.assert_allclose(b[f["root_yaw_cs"]], [np.cos(1.2), np.sin(1.2)], atol=1e-6)
    local = np.r_[f["root_height"], f["gravity_b"], f["body_pos_h"], f["joint_pos"]]
    np.testing.assert_allclose(a[local], b[local], atol=1e-5)
    pelvis = a[f["body_pos_h"]].reshape(-1, 3)[g1.KEY_BODIES.index("pelvis")]
    np.testing.assert_allclose(pelvis, [0, 0, 0.78], atol=1e-6)


def test_canonicalize_expresses_a_window_in_the_present_frame():
    layout = StateLayout()
    f = layout.fields
    yaw = np.array([0.5, 0.7, 0.9])
    states = np.zeros((3, layout.dim), np.float32)
    states[:, f["root_pos_xy"]] = [[1.0, 1.0], [1.0 + np.cos(0.7), 1.0 + np.sin(0.7)], [2.0, 3.0]]
    states[:, f["root_yaw_cs"]] = np.stack([np.cos(yaw), np.sin(yaw)], 1)
    out = layout.canonicalize(states, present=1)
    np.testing.assert_allclose(out[1, f["root_pos_xy"]], [0, 0], atol=1e-6)
    np.testing.assert_allclose(out[0, f["root_pos_xy"]], [-1, 0], atol=1e-6)  # one metre behind
    np.testing.assert_allclose(out[:, f["root_yaw_cs"]], np.stack([np.cos(yaw - 0.7), np.sin(yaw - 0.7)], 1), atol=1e-6)
