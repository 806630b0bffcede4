import json
import shutil

import numpy as np
import pytest
import yaml

from bm_gym.robot import g1
from bm_gym.stage1 import Stage1Policy, from_deploy_yaml, from_onnx_metadata
from bm_gym.stage1.conventions import ObsTermSpec

from .helpers import breadth_first_joint_names, onnx_weights, save_rsl_rl_checkpoint


def test_deploy_yaml_is_read_with_all_terms(velocity_dir):
    conv = from_deploy_yaml(velocity_dir / "deploy.yaml")
    assert conv.joint_names == g1.JOINT_NAMES  # joint_ids_map is the identity
    assert [t.name for t in conv.obs_terms] == [
        "base_ang_vel",
        "projected_gravity",
        "velocity_commands",
        "joint_pos_rel",
        "joint_vel_rel",
        "last_action",
    ]
    assert conv.action_scale[0] == pytest.approx(0.55) and conv.stiffness[1] == pytest.approx(99.1)
    assert conv.command_ranges["lin_vel_x"] == (-0.5, 1.0)
    assert json.loads(conv.to_json())["joint_names"][0] == "left_hip_pitch_joint"


def test_joint_ids_map_reorders_by_motor_index(tmp_path, velocity_dir):
    cfg = yaml.safe_load((velocity_dir / "deploy.yaml").read_text())
    cfg["joint_ids_map"] = list(reversed(range(29)))
    cfg["stiffness"] = [float(i) for i in range(1, 30)]  # motor order: motor i has kp i + 1
    (tmp_path / "deploy.yaml").write_text(yaml.safe_dump(cfg))
    conv = from_deploy_yaml(tmp_path / "deploy.yaml")
    assert conv.joint_names == tuple(reversed(g1.JOINT_NAMES))
    # Gains are in motor order: policy joint k (motor 28 - k) gets motor 28 - k's value.
    np.testing.assert_array_equal(conv.stiffness, np.arange(29, 0, -1))


def _write(tmp_path, cfg, name="deploy.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.parametrize(
    "edit, message",
    [
        (
            lambda c: c.update(stiffness=c["stiffness"][:10]),
            r"stiffness has 10 values; expected 1 or 29 \(one per motor of the G1, in motor \(SDK\) order\)",
        ),
        (
            lambda c: c.update(default_joint_pos=c["default_joint_pos"][:28]),
            r"default_joint_pos has 28 values; expected 1 or 29 \(one per policy joint, in policy order\)",
        ),
        (lambda c: c["actions"]["JointPositionAction"].update(scale=[0.5, 0.5]), r"actions.JointPositionAction.scale"),
        (lambda c: c.update(joint_ids_map=list(range(28)) + [29]), r"joint_ids_map .* motor indices 0-28"),
        (lambda c: c.update(joint_ids_map=[0] * 29), r"joint_ids_map .* names a motor twice"),
        (lambda c: c.update(joint_names=["left_toe_joint"] + list(g1.JOINT_NAMES[1:])), r"joint_names.*left_toe_joint"),
        (lambda c: c["observations"]["base_ang_vel"].update(clip=[1.0]), r"observations.base_ang_vel.clip must be"),
        (lambda c: c["observations"]["base_ang_vel"].update(history_length=-2), r"history_length must be a positive"),
        (lambda c: c.update(step_dt="fast"), r"step_dt: 'fast' is not a number"),
        (lambda c: c["damping"].__setitem__(3, float("nan")), r"damping: nan is not a finite number"),
        (lambda c: c["commands"]["base_velocity"]["ranges"].update(lin_vel_x=[1.0, -1.0]), r"lin_vel_x has low > high"),
        (lambda c: c.pop("observations"), r"lacks required keys \['observations'\]"),
    ],
)
def test_bad_deploy_yaml_fields_are_named_with_the_file(tmp_path, velocity_dir, edit, message):
    cfg = yaml.safe_load((velocity_dir / "deploy.yaml").read_text())
    edit(cfg)
    path = _write(tmp_path, cfg)
    with pytest.raises(ValueError, match=message) as err:
        from_deploy_yaml(path)
    assert str(path) in str(err.value)


def test_unreadable_deploy_yaml_is_named(tmp_path):
    (tmp_path / "broken.yaml").write_text("stiffness: [1, 2\n")
    with pytest.raises(ValueError, match="cannot read deploy conventions .*broken.yaml"):
        from_deploy_yaml(tmp_path / "broken.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ValueError, match="list.yaml is not a deploy.yaml mapping"):
        from_deploy_yaml(tmp_path / "list.yaml")


def test_python_tags_are_skipped_safely_and_never_constructed(tmp_path, velocity_dir):
    text = (
        (velocity_dir / "deploy.yaml")
        .read_text()
        .replace("joint_ids: null", "joint_ids: !!python/object/apply:os.system ['touch pwned']")
    )
    path = tmp_path / "deploy.yaml"
    path.write_text(text)
    conv = from_deploy_yaml(path)  # the tagged value sits under a key the loader does not use
    assert conv.joint_names == g1.JOINT_NAMES and not (tmp_path / "pwned").exists()
    path.write_text(text.replace("step_dt: 0.02", "step_dt: !!python/object/apply:builtins.float ['0.02']"))
    with pytest.raises(ValueError, match="step_dt holds a value with the unsupported YAML tag"):
        from_deploy_yaml(path)


def _metadata(names, conv):
    """ONNX metadata the way mjlab's exporter writes it."""
    csv = lambda xs: ",".join(f"{x:.4f}" for x in xs)  # noqa: E731
    return {
        "joint_names": ",".join(names),
        "default_joint_pos": csv(conv["default"]),
        "action_scale": csv(conv["scale"]),
        "joint_stiffness": csv(conv["kp"]),
        "joint_damping": csv(conv["kd"]),
        "observation_names": "base_ang_vel,projected_gravity,velocity_commands,joint_pos_rel,joint_vel_rel,last_action",
        "observation_terms_scale": "1.0,1.0,1.0,1.0,1.0,1.0",
        "observation_terms_history_length": "1,1,1,1,1,1",
        "observation_terms_clip": "-inf;inf,-inf;inf,-inf;inf,-inf;inf,-inf;inf,-inf;inf",
    }


def test_isaaclab_joint_order_policy_drives_the_same_targets(tmp_path, velocity_dir, backend):
    """A policy exported in breadth-first (Isaac Lab) joint order gives the same joint targets after name mapping."""
    base = Stage1Policy.load(velocity_dir)
    bfs = breadth_first_joint_names()
    assert bfs != list(g1.JOINT_NAMES) and sorted(bfs) == sorted(g1.JOINT_NAMES)
    perm = g1.joint_index_map(bfs)  # bfs position -> MuJoCo index
    w = onnx_weights(velocity_dir / "policy.onnx")
    # Permute the policy's joint-indexed inputs (q, dq, last action blocks) and outputs.
    cols = np.concatenate([np.arange(9)] + [9 + k * 29 + perm for k in range(3)])
    w["actor.0.weight"] = w["actor.0.weight"][:, cols]
    w["normalizer._mean"], w["add"] = w["normalizer._mean"][:, cols], w["add"][:, cols]
    w["actor.6.weight"], w["actor.6.bias"] = w["actor.6.weight"][perm], w["actor.6.bias"][perm]
    conv = base.conventions
    meta = _metadata(bfs, {"default": conv.default_joint_pos[perm], "scale": conv.action_scale[perm],
                           "kp": conv.stiffness[perm], "kd": conv.damping[perm]})  # fmt: skip
    ckpt = save_rsl_rl_checkpoint(w, tmp_path / "model.pt", "v5")
    permuted = Stage1Policy.load(ckpt, conventions=from_onnx_metadata(meta))
    assert permuted.conventions.joint_names == tuple(bfs)
    state = backend.reset()
    for _ in range(20):
        expected = base.act(state, (0.5, 0.0, 0.2))
        got = permuted.act(state, (0.5, 0.0, 0.2))
        np.testing.assert_allclose(got, expected, atol=2e-3)  # metadata keeps 4 decimals
        state = backend.step(expected)


def test_unknown_joint_names_in_metadata_are_named(velocity_dir):
    conv = Stage1Policy.load(velocity_dir).conventions
    names = list(g1.JOINT_NAMES)
    names[5] = "left_toe_joint"
    meta = _metadata(names, {"default": conv.default_joint_pos, "scale": conv.action_scale,
                             "kp": conv.stiffness, "kd": conv.damping})  # fmt: skip
    with pytest.raises(ValueError, match="ONNX metadata: joint names: unknown G1 joint names \\['left_toe_joint'\\]"):
        from_onnx_metadata(meta)


def test_unknown_observation_term_is_named(velocity_dir):
    conv = from_deploy_yaml(velocity_dir / "deploy.yaml")
    bad = conv.__class__(**{**conv.__dict__, "obs_terms": conv.obs_terms + (ObsTermSpec("height_scan"),)})
    from bm_gym.stage1.observations import ObservationBuilder

    with pytest.raises(KeyError, match="height_scan"):
        ObservationBuilder(bad)


def test_folder_without_conventions_is_an_error(tmp_path, velocity_dir):
    for name in ("policy.onnx", "policy.onnx.data"):
        shutil.copy(velocity_dir / name, tmp_path / name)
    with pytest.raises(FileNotFoundError, match="no deployment conventions"):
        Stage1Policy.load(tmp_path)
