"""Isaac Lab 3 backend: the same G1, obstacles and readout as :class:`MujocoBackend`, kit-less on Newton.

Runs in the Isaac Lab venv (Python 3.12, ``bash scripts/setup.sh --isaaclab``). Physics is Newton's MuJoCo
solver, either C MuJoCo inside Newton (``solver="mujoco_cpu"``, one world, the fast path on a CPU) or
MuJoCo-Warp kernels (``"mujoco_warp"``, many worlds on a GPU, slow on Warp's CPU device). Isaac Lab owns the
scene: the G1 articulation with implicit PD actuators carrying the MuJoCo backend's gains, armature and
effort limits, a static ground box, and a pre-spawned pool of static box and cylinder colliders (Newton's model
is final after ``sim.reset()``, so obstacles are moved in and out and resized, never added). docs/isaaclab.md
says what differs from the MuJoCo backend and which Newton methods are patched.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from bm_gym.obstacles import Cylinder, Obstacle
from bm_gym.robot import g1
from bm_gym.sim.backend import RobotState, RootPose
from bm_gym.sim.mujoco_backend import (
    MujocoBackend,
    MujocoBackendCfg,
    ObstaclePoolFull,
    check_obstacle_capacity,
    obstacle_kind,
)
from bm_gym.sim.randomization import DomainRandomizationCfg
from bm_gym.utils.math import quat_from_yaw

SOLVERS = ("mujoco_cpu", "mujoco_warp")
_HIDDEN_Z = -50.0
_ROBOT = "/World/envs/env_0/Robot"


@dataclass(frozen=True)
class IsaacLabBackendCfg:
    """Physics settings matching :class:`MujocoBackendCfg`: 5 ms steps, 4 per 50 Hz control step."""

    sim_dt: float = 0.005
    decimation: int = 4
    solver: str = "mujoco_cpu"  # one of SOLVERS
    solver_iterations: int = 10
    ls_iterations: int = 20
    obstacle_pool: int = 12  # per shape; every slot is a body in the Newton model, so fewer than MuJoCo's 24
    randomization: DomainRandomizationCfg | None = None
    device: str = "cpu"
    njmax: int = 400  # constraint rows per world (MuJoCo-Warp preallocates)
    nconmax: int = 150  # contacts per world

    @property
    def control_dt(self) -> float:
        return self.sim_dt * self.decimation

    def __post_init__(self) -> None:
        if self.solver not in SOLVERS:
            raise ValueError(f"IsaacLabBackendCfg.solver must be one of {SOLVERS}, got {self.solver!r}")


def _patch_newton_for_mujoco_cpu() -> None:
    """Let Isaac Lab use Newton's C-MuJoCo path (``SolverMuJoCo(use_mujoco_cpu=True)``).

    newton 1.6.1, ``newton/_src/solvers/mujoco/solver_mujoco.py``, ``SolverMuJoCo.get_max_contact_count``
    (line 5490) raises ``NotImplementedError`` on that path, and Isaac Lab's ``NewtonManager`` calls it while
    initialising the solver. The contact capacity of C MuJoCo is the model's ``nconmax`` (or its arena
    when that is -1); Isaac Lab only sizes a contacts buffer with it.
    """
    from newton.solvers import SolverMuJoCo

    if getattr(SolverMuJoCo.get_max_contact_count, "_bm_gym_patched", False):
        return
    original = SolverMuJoCo.get_max_contact_count

    def get_max_contact_count(self) -> int:
        if not self.use_mujoco_cpu:
            return original(self)
        return max(int(self.mj_model.nconmax), 1000)

    get_max_contact_count._bm_gym_patched = True
    SolverMuJoCo.get_max_contact_count = get_max_contact_count


def _scene_cfg(cfg: IsaacLabBackendCfg, usd_path: str):
    import isaaclab.sim as sim_utils
    from isaaclab.actuators import ImplicitActuatorCfg
    from isaaclab.assets import ArticulationCfg, AssetBaseCfg
    from isaaclab.scene import InteractiveSceneCfg

    actuators = {
        group.name: ImplicitActuatorCfg(
            joint_names_expr=[group.joint_pattern], stiffness=group.stiffness, damping=group.damping,
            joint_effort_limit=group.effort_limit, armature=group.armature,
        )
        for group in g1.ACTUATOR_GROUPS
    }  # fmt: skip
    robot = ArticulationCfg(
        prim_path="{ENV_REGEX_NS}/Robot",
        spawn=sim_utils.UsdFileCfg(usd_path=usd_path),
        init_state=ArticulationCfg.InitialStateCfg(
            pos=(0.0, 0.0, g1.DEFAULT_ROOT_HEIGHT),
            joint_pos=dict(zip(g1.JOINT_NAMES, g1.DEFAULT_JOINT_POS, strict=True)),
        ),
        actuators=actuators,
    )
    # No GroundPlaneCfg: it downloads its USD from a content server. A static 200 m box is the floor.
    fields = {
        "ground": AssetBaseCfg(
            prim_path="/World/ground",
            spawn=sim_utils.CuboidCfg(size=(200.0, 200.0, 1.0), collision_props=sim_utils.UsdPhysicsCollisionCfg()),
            init_state=AssetBaseCfg.InitialStateCfg(pos=(0.0, 0.0, -0.5)),
        ),
        "robot": robot,
    }
    collider = sim_utils.UsdPhysicsCollisionCfg()
    for i in range(cfg.obstacle_pool):
        for kind in ("box", "cylinder"):
            # Static colliders of unit size, like the MuJoCo backend's mocap pool: each slot is moved and resized
            # by editing its shape in Newton's model. (Kinematic rigid objects become free bodies with a huge
            # locking armature in MuJoCo: a robot walking into one was thrown metres.)
            shape = (
                sim_utils.CuboidCfg(size=(1.0, 1.0, 1.0), collision_props=collider)
                if kind == "box"
                else sim_utils.CylinderCfg(radius=0.5, height=1.0, collision_props=collider)
            )
            fields[f"obstacle_{kind}_{i}"] = AssetBaseCfg(
                prim_path=f"/World/obstacle_{kind}_{i}",
                spawn=shape,
                init_state=AssetBaseCfg.InitialStateCfg(pos=_parked_position(kind, i)),
            )
    scene = InteractiveSceneCfg(num_envs=1, env_spacing=2.0)
    for name, entity in fields.items():  # InteractiveScene spawns every non-field attribute of its cfg
        setattr(scene, name, entity)
    return scene


def _parked_position(kind: str, slot: int) -> tuple[float, float, float]:
    """Far below the floor, spread out so that parked obstacles never touch each other."""
    return (3.0 * slot, 3.0 if kind == "box" else -3.0, _HIDDEN_Z)


class IsaacLabBackend:
    """A G1 in an Isaac Lab scene on Newton, with the :class:`~bm_gym.sim.SimBackend` contract.

    One per process: Isaac Lab's simulation context is a process-wide singleton.
    """

    _alive = False

    def __init__(self, cfg: IsaacLabBackendCfg | None = None) -> None:
        if IsaacLabBackend._alive:
            raise RuntimeError("an IsaacLabBackend already exists in this process (Isaac Lab's simulation is a "
                               "process-wide singleton); close() it first")  # fmt: skip
        self.cfg = cfg = cfg or IsaacLabBackendCfg()
        try:
            import isaaclab.sim as sim_utils
            import torch
            from isaaclab.utils import instantiate
            from isaaclab_newton.physics import MJWarpSolverCfg, NewtonCfg, NewtonManager
        except ImportError as exc:
            raise ModuleNotFoundError(
                "the Isaac Lab backend needs Isaac Lab 3 (Python 3.12): run `bash scripts/setup.sh --isaaclab` and "
                f"use .venv-isaaclab/bin/python ({exc})"
            ) from exc
        from bm_gym.sim.isaaclab_asset import g1_usd_path

        self._torch = torch
        self.joint_names = g1.JOINT_NAMES
        self.body_names = g1.KEY_BODIES
        self.control_dt = cfg.control_dt
        cpu_solver = cfg.solver == "mujoco_cpu"
        if cpu_solver:
            _patch_newton_for_mujoco_cpu()
        solver_cfg = MJWarpSolverCfg(
            use_mujoco_cpu=cpu_solver, integrator="implicitfast", cone="pyramidal", iterations=cfg.solver_iterations,
            ls_iterations=cfg.ls_iterations, njmax=cfg.njmax, nconmax=cfg.nconmax, tolerance=1e-8,  # MuJoCo's
        )  # fmt: skip
        self._sim = sim_utils.SimulationContext(
            sim_utils.SimulationCfg(
                dt=cfg.sim_dt, device=cfg.device,
                physics=NewtonCfg(solver_cfg=solver_cfg, num_substeps=1, use_cuda_graph=cfg.device.startswith("cuda")),
            )
        )  # fmt: skip
        IsaacLabBackend._alive = True
        self._scene = instantiate(_scene_cfg(cfg, str(g1_usd_path())))
        self._sim.reset()
        self._manager = NewtonManager
        self._robot = self._scene["robot"]

        robot_joints = list(self._robot.joint_names)
        self._to_lab = np.array([robot_joints.index(n) for n in self.joint_names])  # ours -> Isaac Lab order
        robot_bodies = list(self._robot.body_names)
        self._key_body_ids = np.array([robot_bodies.index(n) for n in self.body_names])
        self._map_newton_bodies()
        if cpu_solver:
            import mujoco

            # The obstacle colliders are world-body geoms moved after compilation; MuJoCo's midphase prunes geom
            # pairs with the world body's bounding-volume tree built at compile time, so it would miss them.
            self._manager._solver.mj_model.opt.disableflags |= mujoco.mjtDisableBit.mjDSBL_MIDPHASE

        group_of = [g1.actuator_group(n) for n in self.joint_names]
        self._nominal_kp = np.array([g.stiffness for g in group_of])
        self._nominal_kd = np.array([g.damping for g in group_of])
        self._nominal_mass = self._robot.data.body_mass.torch.clone()
        self._nominal_com = self._robot.data.body_com_pos_b.torch.clone()
        model = self._manager.get_model()
        self._nominal_mu = model.shape_material_mu.numpy().copy()

        self._handles: dict[int, tuple[str, int, Obstacle]] = {}
        self._next_handle = 0
        self._rng = np.random.default_rng()
        self._randomization = cfg.randomization
        self._latency = 0
        self._joint_bias = np.zeros(len(self.joint_names))
        self._next_push_time = math.inf
        self._prev_targets = np.array(g1.DEFAULT_JOINT_POS)
        self._time = 0.0
        self._mirror: MujocoBackend | None = None
        self._obstacle_version = 0  # bumped on every obstacle change; the mirror scene follows it
        self._mirror_version = -1

    # -- Newton's view of the scene -----------------------------------------------------------------

    def _map_newton_bodies(self) -> None:
        """Which MuJoCo geoms (inside Newton's solver) are the robot's, its feet, the ground and each obstacle slot."""
        model, solver = self._manager.get_model(), self._manager._solver
        body_labels, shape_labels = list(model.body_label), list(model.shape_label)
        shape_body = model.shape_body.numpy()
        geom_shape = solver.mjc_geom_to_newton_shape.numpy()[0]
        shape_geom = {int(shape): geom for geom, shape in enumerate(geom_shape) if shape >= 0}

        def body_name(shape: int) -> str:
            body = shape_body[shape]
            return body_labels[body] if body >= 0 else ""

        ngeom = len(geom_shape)
        self._geom_robot = np.zeros(ngeom, dtype=bool)
        self._geom_ground = np.zeros(ngeom, dtype=bool)
        self._geom_foot_side = np.full(ngeom, -1)
        for geom, shape in enumerate(geom_shape):
            if shape < 0:
                continue
            name = body_name(shape)
            self._geom_robot[geom] = name.startswith(_ROBOT + "/")
            self._geom_ground[geom] = shape_labels[shape].startswith("/World/ground/")
            leaf = name.rsplit("/", 1)[-1]
            if self._geom_robot[geom] and leaf in g1.FEET:
                self._geom_foot_side[geom] = g1.FEET.index(leaf)
        self._slot_shape = {}
        for kind in ("box", "cylinder"):
            for i in range(self.cfg.obstacle_pool):
                prefix = f"/World/obstacle_{kind}_{i}/"
                self._slot_shape[(kind, i)] = next(k for k, lab in enumerate(shape_labels) if lab.startswith(prefix))
        self._slot_geoms = np.array([shape_geom[shape] for shape in self._slot_shape.values()])
        self._geom_obstacle = np.zeros(ngeom, dtype=bool)
        self._geom_obstacle[self._slot_geoms] = True
        self._foot_geoms = np.flatnonzero(self._geom_foot_side >= 0)
        self._foot_shapes = geom_shape[self._foot_geoms]

    def _contact_geoms(self) -> np.ndarray:
        """[n, 2] MuJoCo geom pairs of every contact in the solver now."""
        solver = self._manager._solver
        if self.cfg.solver == "mujoco_cpu":
            return solver.mj_data.contact.geom[: solver.mj_data.ncon]
        n = int(solver.mjw_data.nacon.numpy()[0])
        return solver.mjw_data.contact.geom.numpy()[:n]

    # -- simulation ---------------------------------------------------------------------------------

    def reset(
        self,
        root: RootPose | None = None,
        joint_pos: np.ndarray | None = None,
        joint_vel: np.ndarray | None = None,
        seed: int | None = None,
    ) -> RobotState:
        torch = self._torch
        root = root or RootPose()
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        joint_pos = np.asarray(g1.DEFAULT_JOINT_POS if joint_pos is None else joint_pos, dtype=np.float64)
        joint_vel = np.zeros(len(self.joint_names)) if joint_vel is None else np.asarray(joint_vel, float)
        for name, value in (("joint_pos", joint_pos), ("joint_vel", joint_vel)):
            if value.shape != (len(self.joint_names),) or not np.all(np.isfinite(value)):
                raise ValueError(f"{name} must be {len(self.joint_names)} finite values, got shape {value.shape}")
        quat = np.asarray(root.quat, float) / np.linalg.norm(root.quat)
        pose = torch.tensor([[*root.pos, quat[1], quat[2], quat[3], quat[0]]], dtype=torch.float32)  # xyzw
        r = self._robot
        r.write_root_link_pose_to_sim_index(root_pose=pose)
        r.write_root_link_velocity_to_sim_index(root_velocity=torch.zeros(1, 6))
        r.write_joint_position_to_sim_index(position=self._lab(joint_pos))
        r.write_joint_velocity_to_sim_index(velocity=self._lab(joint_vel))
        r.reset()
        self._set_targets(joint_pos)
        self._prev_targets = joint_pos.copy()
        self._time = 0.0
        self._apply_randomization()
        self._scene.write_data_to_sim()
        self._manager.forward()
        self._scene.update(0.0)
        return self.state()

    def _lab(self, values: np.ndarray):
        """A [1, 29] tensor in Isaac Lab joint order from values in ``joint_names`` order."""
        out = np.empty(len(values))
        out[self._to_lab] = values
        return self._torch.tensor(out[None], dtype=self._torch.float32)

    def _ours(self, lab_values) -> np.ndarray:
        return lab_values.torch[0].cpu().numpy().astype(np.float64)[self._to_lab]

    def _set_targets(self, targets: np.ndarray) -> None:
        self._robot.actuators.target_command.set_position_index(value=self._lab(targets))

    def step(self, joint_targets: np.ndarray) -> RobotState:
        targets = np.asarray(joint_targets, dtype=np.float64)
        if targets.shape != (len(self.joint_names),):
            raise ValueError(f"joint_targets must have shape ({len(self.joint_names)},), got {targets.shape}")
        if not np.all(np.isfinite(targets)):
            bad = [self.joint_names[i] for i in np.flatnonzero(~np.isfinite(targets))]
            raise ValueError(f"joint_targets contain NaN/inf for joints {bad}")
        if self._time >= self._next_push_time:
            self._random_push()
        for substep in range(self.cfg.decimation):
            self._set_targets(self._prev_targets if substep < self._latency else targets)
            self._scene.write_data_to_sim()
            self._sim.step(render=False)
            self._time += self.cfg.sim_dt
        self._scene.update(self.control_dt)
        self._prev_targets = targets.copy()
        return self.state()

    def state(self) -> RobotState:
        d = self._robot.data
        xyzw = d.root_link_quat_w.torch[0].cpu().numpy().astype(np.float64)
        body_xyzw = d.body_link_quat_w.torch[0].cpu().numpy().astype(np.float64)[self._key_body_ids]
        contacts = self._contact_geoms()
        return RobotState(
            time=float(self._time),
            root_pos=d.root_link_pos_w.torch[0].cpu().numpy().astype(np.float64),
            root_quat=np.roll(xyzw, 1),
            root_lin_vel_w=d.root_link_lin_vel_w.torch[0].cpu().numpy().astype(np.float64),
            root_ang_vel_b=d.root_link_ang_vel_b.torch[0].cpu().numpy().astype(np.float64),
            projected_gravity=d.projected_gravity_b.torch[0].cpu().numpy().astype(np.float64),
            joint_pos=self._ours(d.joint_pos) + self._joint_bias,
            joint_vel=self._ours(d.joint_vel),
            body_pos_w=d.body_link_pos_w.torch[0].cpu().numpy().astype(np.float64)[self._key_body_ids],
            body_quat_w=np.roll(body_xyzw, 1, axis=1),
            foot_contact=self._foot_contacts(contacts),
            obstacle_contact=self._touches_obstacle(contacts),
        )

    def _foot_contacts(self, contacts: np.ndarray) -> np.ndarray:
        touching = np.zeros(2, dtype=bool)
        for a, b in contacts:
            for foot, other in ((a, b), (b, a)):
                if self._geom_foot_side[foot] >= 0 and self._geom_ground[other]:
                    touching[self._geom_foot_side[foot]] = True
        return touching

    def _touches_obstacle(self, contacts: np.ndarray) -> bool:
        if not self._handles or len(contacts) == 0:
            return False
        robot, obstacle = self._geom_robot[contacts], self._geom_obstacle[contacts]
        return bool(((robot[:, 0] & obstacle[:, 1]) | (robot[:, 1] & obstacle[:, 0])).any())

    # -- gains and randomization --------------------------------------------------------------------

    def set_pd_gains(self, joint_names: list[str], stiffness: np.ndarray, damping: np.ndarray) -> None:
        idx = g1.joint_index_map(joint_names)
        stiffness, damping = np.asarray(stiffness, float), np.asarray(damping, float)
        if stiffness.shape != (len(idx),) or damping.shape != (len(idx),):
            raise ValueError(f"expected {len(idx)} stiffness and damping values")
        self._nominal_kp[idx] = stiffness
        self._nominal_kd[idx] = damping
        self._write_gains(self._nominal_kp, self._nominal_kd)

    def pd_gains(self, joint_names: list[str] | tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
        """The nominal (un-randomized) PD gains of the named joints."""
        idx = g1.joint_index_map(joint_names)
        return self._nominal_kp[idx].copy(), self._nominal_kd[idx].copy()

    def applied_pd_gains(self) -> tuple[np.ndarray, np.ndarray]:
        """The (stiffness, damping) the solver uses now, ``joint_names`` order: what randomization made of them."""
        d = self._robot.data
        return self._ours(d.joint_stiffness), self._ours(d.joint_damping)

    def _write_gains(self, kp: np.ndarray, kd: np.ndarray) -> None:
        from newton import ModelFlags

        self._robot.write_joint_stiffness_to_sim_index(stiffness=self._lab(kp))
        self._robot.write_joint_damping_to_sim_index(damping=self._lab(kd))
        self._notify(ModelFlags.JOINT_DOF_PROPERTIES)

    def set_randomization(self, cfg: DomainRandomizationCfg | None) -> None:
        self._randomization = cfg

    def _apply_randomization(self) -> None:
        """The terms of :class:`DomainRandomizationCfg` through Isaac Lab's articulation API and Newton's model."""
        torch, cfg, rng, r = self._torch, self._randomization, self._rng, self._robot
        mass, com = self._nominal_mass.clone(), self._nominal_com.clone()
        mu = self._nominal_mu.copy()
        kp, kd = self._nominal_kp.copy(), self._nominal_kd.copy()
        self._latency, self._joint_bias[:] = 0, 0.0
        self._next_push_time = math.inf
        if cfg is not None:
            if cfg.foot_friction:
                mu[self._foot_shapes] = rng.uniform(*cfg.foot_friction)
            if cfg.link_mass_scale:
                mass *= torch.tensor(rng.uniform(*cfg.link_mass_scale, size=mass.shape[-1]), dtype=mass.dtype)
            if cfg.torso_com_offset:
                torso = list(r.body_names).index(g1.ANCHOR_BODY)
                offset = rng.uniform(-1, 1, 3) * np.asarray(cfg.torso_com_offset)
                com[0, torso] += torch.tensor(offset, dtype=com.dtype)
            if cfg.kp_scale:
                kp *= rng.uniform(*cfg.kp_scale, size=kp.shape)
            if cfg.kd_scale:
                kd *= rng.uniform(*cfg.kd_scale, size=kd.shape)
            if cfg.latency_substeps:
                self._latency = int(rng.integers(cfg.latency_substeps[0], cfg.latency_substeps[1] + 1))
            if cfg.joint_pos_bias:
                self._joint_bias[:] = rng.uniform(-cfg.joint_pos_bias, cfg.joint_pos_bias, len(self._joint_bias))
            if cfg.push:
                self._next_push_time = self._time + rng.uniform(*cfg.push.interval_s)
        r.set_masses_index(masses=mass)
        r.set_coms_index(coms=com)
        self._write_gains(kp, kd)
        self._write_friction(mu)

    def _write_friction(self, mu: np.ndarray) -> None:
        import warp as wp
        from newton import ModelFlags

        model = self._manager.get_model()
        wp.copy(model.shape_material_mu, wp.array(mu.astype(np.float32), device=model.shape_material_mu.device))
        self._notify(ModelFlags.SHAPE_PROPERTIES)

    def _notify(self, flags) -> None:
        """Tell the solver now that gains, shape sizes or friction changed, and carry them into C MuJoCo.

        Isaac Lab queues model changes until the next step; obstacles and gains must act at once. And newton
        1.6.1 ``SolverMuJoCo._notify_model_changed`` (``newton/_src/solvers/mujoco/solver_mujoco.py``, line
        4773) writes joint-target gains and shape properties into its MuJoCo-Warp model only: on the
        ``use_mujoco_cpu`` path they never reach ``mj_model`` (only inertias, joint and equality properties
        are copied there), so actuator gains, geom sizes and friction are copied here.
        """
        solver = self._manager._solver
        solver.notify_model_changed(flags)
        if self.cfg.solver == "mujoco_cpu":
            # Only what this backend changes: the staging model's sizes of the robot's own geoms differ from
            # C MuJoCo's (copying them all launched the robot).
            m, mw = solver.mj_model, solver.mjw_model
            m.actuator_gainprm[:] = mw.actuator_gainprm.numpy()[0]
            m.actuator_biasprm[:] = mw.actuator_biasprm.numpy()[0]
            for name in ("geom_size", "geom_pos", "geom_quat"):
                getattr(m, name)[self._slot_geoms] = getattr(mw, name).numpy()[0][self._slot_geoms]
            m.geom_friction[self._foot_geoms] = mw.geom_friction.numpy()[0][self._foot_geoms]
        self._update_bounds()

    def _update_bounds(self) -> None:
        """Bounding radii and boxes of the obstacle geoms after a resize (MuJoCo's broadphase reads them)."""
        solver = self._manager._solver
        slot_geoms = self._slot_geoms
        if self.cfg.solver == "mujoco_cpu":
            m = solver.mj_model
            for geom in slot_geoms:
                size = m.geom_size[geom]
                half = np.array([size[0], size[0], size[1]]) if m.geom_type[geom] == 5 else size.copy()  # 5: cylinder
                m.geom_rbound[geom] = float(np.linalg.norm(half))
                m.geom_aabb[geom] = [0.0, 0.0, 0.0, *half]
        else:
            import warp as wp

            mw = solver.mjw_model
            size = mw.geom_size.numpy()
            rbound, aabb = mw.geom_rbound.numpy(), mw.geom_aabb.numpy()
            types = mw.geom_type.numpy()
            for geom in slot_geoms:
                s = size[0, geom]
                half = np.array([s[0], s[0], s[1]]) if types[geom] == 5 else s.copy()
                rbound[..., geom] = float(np.linalg.norm(half))
                aabb[..., geom, 0, :] = 0.0
                aabb[..., geom, 1, :] = half
            wp.copy(mw.geom_rbound, wp.array(rbound, dtype=mw.geom_rbound.dtype, device=mw.geom_rbound.device))
            wp.copy(mw.geom_aabb, wp.array(aabb, dtype=mw.geom_aabb.dtype, device=mw.geom_aabb.device))

    def _random_push(self) -> None:
        push, rng = self._randomization.push, self._rng
        lin = rng.uniform(-1, 1, 3) * np.array([push.lin_vel_xy, push.lin_vel_xy, push.lin_vel_z])
        ang = rng.uniform(-1, 1, 3) * np.array([push.ang_vel_rp, push.ang_vel_rp, push.ang_vel_yaw])
        self.push(lin, ang)
        self._next_push_time = self._time + rng.uniform(*push.interval_s)

    def push(self, lin_vel: np.ndarray, ang_vel: np.ndarray) -> None:
        """Add to the root velocity: ``lin_vel`` in the world frame, ``ang_vel`` in the pelvis frame."""
        from bm_gym.utils.math import quat_rotate

        torch, d = self._torch, self._robot.data
        velocity = d.root_link_vel_w.torch[0].cpu().numpy().astype(np.float64)
        quat = np.roll(d.root_link_quat_w.torch[0].cpu().numpy().astype(np.float64), 1)
        velocity[:3] += np.asarray(lin_vel, float)
        velocity[3:] += quat_rotate(quat, np.asarray(ang_vel, float))
        velocity_t = torch.tensor(velocity[None], dtype=torch.float32)
        self._robot.write_root_link_velocity_to_sim_index(root_velocity=velocity_t)

    # -- obstacles ----------------------------------------------------------------------------------

    @property
    def obstacle_capacity(self) -> dict[str, int]:
        """How many obstacles of each shape the scene holds at once (``IsaacLabBackendCfg.obstacle_pool``)."""
        return {"box": self.cfg.obstacle_pool, "cylinder": self.cfg.obstacle_pool}

    def set_obstacles(self, obstacles: list[Obstacle] | tuple[Obstacle, ...]) -> list[int]:
        """Replace every obstacle, all or nothing: too many for the pool raises before anything changes."""
        check_obstacle_capacity(obstacles, self.obstacle_capacity)
        self.clear_obstacles()
        return [self.add_obstacle(o) for o in obstacles]

    def add_obstacle(self, obstacle: Obstacle) -> int:
        kind = obstacle_kind(obstacle)
        used = {slot for k, slot, _ in self._handles.values() if k == kind}
        free = [i for i in range(self.cfg.obstacle_pool) if i not in used]
        if not free:
            raise ObstaclePoolFull(
                f"all {self.cfg.obstacle_pool} {kind} obstacle slots are in use; remove one first or make a "
                "backend with a larger IsaacLabBackendCfg(obstacle_pool=...)"
            )
        handle = self._next_handle
        self._next_handle += 1
        self._handles[handle] = (kind, free[0], obstacle)
        self._place(kind, free[0], obstacle)
        return handle

    def move_obstacle(self, handle: int, obstacle: Obstacle) -> None:
        kind, slot, _ = self._lookup(handle)
        if obstacle_kind(obstacle) != kind:
            self.remove_obstacle(handle)
            new = self.add_obstacle(obstacle)
            self._handles[handle] = self._handles.pop(new)
            return
        self._handles[handle] = (kind, slot, obstacle)
        self._place(kind, slot, obstacle)

    def remove_obstacle(self, handle: int) -> None:
        kind, slot, _ = self._lookup(handle)
        del self._handles[handle]
        self._set_shape(kind, slot, _parked_position(kind, slot), np.array([1.0, 0.0, 0.0, 0.0]), None)

    def clear_obstacles(self) -> None:
        for handle in list(self._handles):
            self.remove_obstacle(handle)

    def obstacles(self) -> dict[int, Obstacle]:
        return {h: o for h, (_, _, o) in self._handles.items()}

    def _lookup(self, handle: int) -> tuple[str, int, Obstacle]:
        if handle not in self._handles:
            raise KeyError(f"no obstacle with handle {handle}; live handles: {sorted(self._handles)}")
        return self._handles[handle]

    def _place(self, kind: str, slot: int, obstacle: Obstacle) -> None:
        half_h = obstacle.height / 2
        if isinstance(obstacle, Cylinder):
            scale, quat = (obstacle.radius, half_h, 0.0), np.array([1.0, 0.0, 0.0, 0.0])
        else:
            scale, quat = (obstacle.half_x, obstacle.half_y, half_h), quat_from_yaw(obstacle.yaw)
        self._set_shape(kind, slot, (obstacle.x, obstacle.y, half_h), quat, scale)

    def _set_shape(self, kind: str, slot: int, pos, quat_wxyz: np.ndarray, scale) -> None:
        """Move (and resize, unless ``scale`` is None) an obstacle slot's collider in Newton's model."""
        import warp as wp
        from newton import ModelFlags

        model = self._manager.get_model()
        shape = self._slot_shape[(kind, slot)]
        for name, value in (("shape_transform", [*pos, *quat_wxyz[1:], quat_wxyz[0]]), ("shape_scale", scale)):
            if value is None:
                continue
            array = getattr(model, name)
            values = array.numpy()
            values[shape] = value
            wp.copy(array, wp.array(values, dtype=array.dtype, device=array.device))
        self._notify(ModelFlags.SHAPE_PROPERTIES)
        self._obstacle_version += 1

    # -- rendering ----------------------------------------------------------------------------------

    @property
    def model(self):
        """A MuJoCo model of the same scene, for drawing only (kit-less Isaac Lab has no CPU renderer)."""
        return self._visual_mirror().model

    def _visual_mirror(self) -> MujocoBackend:
        """A never-stepped MuJoCo scene that mirrors this one's pose and obstacles: what ``render`` draws."""
        if self._mirror is None:
            self._mirror = MujocoBackend(MujocoBackendCfg(obstacle_pool=self.cfg.obstacle_pool))
        if self._mirror_version != self._obstacle_version:
            self._mirror.set_obstacles([self._handles[h][2] for h in sorted(self._handles)])
            self._mirror_version = self._obstacle_version
        return self._mirror

    def scene_pose(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """qpos, mocap positions and quaternions of the mirror scene (see :attr:`model`), from this one's state."""
        mirror, state = self._visual_mirror(), self.state()
        qpos = mirror.data.qpos.copy()
        qpos[:3], qpos[3:7] = state.root_pos, state.root_quat
        qpos[mirror._qpos_adr] = state.joint_pos - self._joint_bias
        return qpos, mirror.data.mocap_pos.copy(), mirror.data.mocap_quat.copy()

    def render(self, width: int = 640, height: int = 480, camera: str | None = None) -> np.ndarray:
        """RGB frame of the Isaac Lab state, drawn by MuJoCo's renderer (same cameras as :class:`MujocoBackend`)."""
        import mujoco

        mirror = self._visual_mirror()
        mirror.data.qpos[:] = self.scene_pose()[0]
        mujoco.mj_forward(mirror.model, mirror.data)
        return mirror.render(width, height, camera)

    def close(self) -> None:
        if self._mirror is not None:
            self._mirror.close()
            self._mirror = None
        if IsaacLabBackend._alive:
            self._sim.clear_instance()
            IsaacLabBackend._alive = False
