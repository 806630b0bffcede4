import numpy as np
import pytest
import yaml

from bm_gym.robot import g1


def test_model_comes_from_the_mjlab_wheel():
    path = g1.g1_xml_path()
    assert path.name == "g1.xml" and "mjlab" in path.parts


def test_compiled_model_has_armature_effort_limits_and_stage1_gains(velocity_dir):
    model = g1.build_spec().compile()
    deploy = yaml.safe_load((velocity_dir / "deploy.yaml").read_text())
    for i, name in enumerate(g1.JOINT_NAMES):
        group = g1.actuator_group(name)
        dof = model.jnt_dofadr[model.joint(name).id]
        assert model.dof_armature[dof] == pytest.approx(group.armature)
        act = model.actuator(name)
        assert act.forcerange[1] == pytest.approx(group.effort_limit)
        # Gains derived from armature match what the policies were deployed with (to 0.1).
        assert act.gainprm[0] == pytest.approx(deploy["stiffness"][i], abs=0.06)
        assert -act.biasprm[2] == pytest.approx(deploy["damping"][i], abs=0.06)
    assert sorted(set(model.dof_armature[6:])) == sorted({0.010178, 0.025102, 0.0072195, 0.0036097, 0.00425})


def test_body_names_are_every_robot_body_in_model_order():
    model = g1.build_spec().compile()
    root = model.body(g1.ROOT_BODY).id
    robot = [model.body(i).name for i in range(model.nbody) if model.body_rootid[i] == root]
    assert list(g1.BODY_NAMES) == robot and set(g1.KEY_BODIES) <= set(g1.BODY_NAMES)


def test_joint_index_map_maps_by_name_and_rejects_unknown_names():
    names = list(reversed(g1.JOINT_NAMES))
    idx = g1.joint_index_map(names)
    assert [g1.JOINT_NAMES[i] for i in idx] == names
    with pytest.raises(KeyError, match="left_pinky_joint"):
        g1.joint_index_map(["left_pinky_joint"])
    with pytest.raises(ValueError, match="duplicate"):
        g1.joint_index_map(["waist_yaw_joint", "waist_yaw_joint"])


def test_every_joint_belongs_to_exactly_the_expected_motor_group():
    groups = {n: g1.actuator_group(n).name for n in g1.JOINT_NAMES}
    assert groups["left_knee_joint"] == "7520_22"
    assert groups["waist_yaw_joint"] == "7520_14"
    assert groups["waist_pitch_joint"] == "5020x2"
    assert groups["right_wrist_roll_joint"] == "5020"
    assert groups["right_wrist_yaw_joint"] == "4010"
    assert len(np.unique(list(groups.values()))) == 5
