"""Isaac Lab 3 backend: the same G1, obstacles and readout as :class:`MujocoBackend`, kit-less on Newton.

Runs in the Isaac Lab venv (Python 3.12, ``bash scripts/setup.sh --isaaclab``). Physics is Newton's MuJoCo
solver, either C MuJoCo inside Newton (``solver="mujoco_cpu"``, one world, the fast path on a CPU) or
MuJoCo-Warp kernels (``"mujoco_warp"``, many worlds on a GPU, slow on Warp's CPU device). ``num_envs`` robots
live in separate Newton worlds (MuJoCo-Warp only); every method takes ``env`` (default 0), so the single robot
of the :class:`~bm_gym.sim.SimBackend` contract is the ``num_envs = 1`` case, and
:meth:`IsaacLabBackend.step_all` steps every world at once. Isaac Lab owns the scene: the G1 articulation
with implicit PD actuators carrying the MuJoCo backend's gains, armature and effort limits, a ground plane,
and a pre-spawned pool of static box and cylinder colliders per world (Newton's model is final after
``sim.reset()``, so obstacles are moved in and out and resized, never added). docs/isaaclab.md says what
differs from the MuJoCo backend and which Newton methods are patched.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import numpy as np

from bm_gym.obstacles import Cylinder, Obstacle
from bm_gym.robot import g1
from bm_gym.sim.backend import RobotState, RootPose, checked_gains, checked_targets, initial_joint_state
from bm_gym.sim.mujoco_backend import MujocoBackend, MujocoBackendCfg
from bm_gym.sim.pool import KINDS, ObstacleSlots
from bm_gym.sim.randomization import DomainRandomizationCfg, RandomizationDraw, draw_push
from bm_gym.utils.math import quat_from_yaw

SOLVERS = ("mujoco_cpu", "mujoco_warp")
_HIDDEN_Z = -50.0


def _env_path(env: int) -> str:
    return f"/World/envs/env_{env}"


@dataclass
class _World:
    """What one robot's world keeps between steps: its origin, obstacles, randomness and clock."""

    origin: np.ndarray  # [3] m, world frame; states and obstacles are reported relative to it
    rng: np.random.Generator = field(default_factory=np.random.default_rng)
    slots: ObstacleSlots | None = None  # this world's obstacles, set by the backend
    latency: int = 0
    joint_bias: np.ndarray = field(default_factory=lambda: np.zeros(len(g1.JOINT_NAMES)))
    next_push_time: float = math.inf
    pushed: bool = False  # a push since the last control step (RobotState.pushed)
    prev_targets: np.ndarray = field(default_factory=lambda: np.array(g1.DEFAULT_JOINT_POS))
    time: float = 0.0


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
    num_envs: int = 1  # robots, each in its own Newton world; more than one needs solver="mujoco_warp"
    env_spacing: float = 5.0  # m between the worlds' origins (worlds never touch; this is for viewers)

    @property
    def control_dt(self) -> float:
        return self.sim_dt * self.decimation

    def __post_init__(self) -> None:
        if self.solver not in SOLVERS:
            raise ValueError(f"IsaacLabBackendCfg.solver must be one of {SOLVERS}, got {self.solver!r}")
        if not isinstance(self.num_envs, int) or self.num_envs < 1:
            raise ValueError(f"IsaacLabBackendCfg.num_envs must be a positive integer, got {self.num_envs!r}")
        if self.num_envs > 1 and self.solver == "mujoco_cpu":
            raise ValueError(f"IsaacLabBackendCfg.num_envs={self.num_envs} needs solver='mujoco_warp': C MuJoCo "
                             "inside Newton simulates one world")  # fmt: skip


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


def _scene_cfg(cfg: IsaacLabBackendCfg, usd_path: str, ground_usd_path: str):
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
    # Not GroundPlaneCfg: it downloads its USD from a content server. A collision plane written locally, as in
    # the MuJoCo backend (bm_gym.sim.isaaclab_asset.ground_plane_usd_path).
    fields = {
        "ground": AssetBaseCfg(prim_path="/World/ground", spawn=sim_utils.UsdFileCfg(usd_path=ground_usd_path)),
        "robot": robot,
    }
    collider = sim_utils.UsdPhysicsCollisionCfg()
    for i in range(cfg.obstacle_pool):
        for kind in KINDS:
            # Static colliders of unit size, like the MuJoCo backend's mocap pool: each slot is moved and resized
            # by editing its shape in Newton's model. (Kinematic rigid objects become free bodies with a huge
            # locking armature in MuJoCo: a robot walking into one was thrown metres.)
            shape = (
                sim_utils.CuboidCfg(size=(1.0, 1.0, 1.0), collision_props=collider)
                if kind == "box"
                else sim_utils.CylinderCfg(radius=0.5, height=1.0, collision_props=collider)
            )
            fields[f"obstacle_{kind}_{i}"] = AssetBaseCfg(
                prim_path=f"{{ENV_REGEX_NS}}/obstacle_{kind}_{i}",
                spawn=shape,
                init_state=AssetBaseCfg.InitialStateCfg(pos=_parked_position(kind, i)),
            )
    scene = InteractiveSceneCfg(num_envs=cfg.num_envs, env_spacing=cfg.env_spacing)
    for name, entity in fields.items():  # InteractiveScene spawns every non-field attribute of its cfg
        setattr(scene, name, entity)
    return scene


def _parked_position(kind: str, slot: int) -> tuple[float, float, float]:
    """Far below the floor (relative to a world's origin), spread out so that parked obstacles never touch."""
    return (3.0 * slot, 3.0 if kind == "box" else -3.0, _HIDDEN_Z)


class IsaacLabBackend:
    """G1s in an Isaac Lab scene on Newton, with the :class:`~bm_gym.sim.SimBackend` contract for each.

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
        from bm_gym.sim.isaaclab_asset import g1_usd_path, ground_plane_usd_path

        self._torch = torch
        self.joint_names = g1.JOINT_NAMES
        self.body_names = g1.BODY_NAMES
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
        self._scene = instantiate(_scene_cfg(cfg, str(g1_usd_path()), str(ground_plane_usd_path())))
        self._sim.reset()
        self._manager = NewtonManager
        self._robot = self._scene["robot"]
        self.num_envs = cfg.num_envs
        origins = self._scene.env_origins.cpu().numpy().astype(np.float64)
        self._worlds = [_World(origin=origins[k]) for k in range(cfg.num_envs)]
        for env, world in enumerate(self._worlds):
            world.slots = ObstacleSlots(
                cfg.obstacle_pool, functools.partial(self._place, env), functools.partial(self._park, env),
                "IsaacLabBackendCfg(obstacle_pool=...)",
            )  # fmt: skip

        robot_joints = list(self._robot.joint_names)
        self._to_lab = np.array([robot_joints.index(n) for n in self.joint_names])  # ours -> Isaac Lab order
        robot_bodies = list(self._robot.body_names)
        self._body_ids = np.array([robot_bodies.index(n) for n in self.body_names])  # ours -> Isaac Lab order
        self._map_newton_bodies()
        if cpu_solver:
            import mujoco

            # The obstacle colliders are world-body geoms moved after compilation; MuJoCo's midphase prunes geom
            # pairs with the world body's bounding-volume tree built at compile time, so it would miss them.
            self._manager._solver.mj_model.opt.disableflags |= mujoco.mjtDisableBit.mjDSBL_MIDPHASE

        group_of = [g1.actuator_group(n) for n in self.joint_names]
        self._nominal_kp = np.array([g.stiffness for g in group_of])
        self._nominal_kd = np.array([g.damping for g in group_of])
        self._nominal_mass = self._robot.data.body_mass.torch.clone()  # [worlds, bodies]
        self._nominal_com = self._robot.data.body_com_pos_b.torch.clone()
        model = self._manager.get_model()
        self._nominal_mu = model.shape_material_mu.numpy().copy()

        self._randomization = cfg.randomization
        self._mirror: MujocoBackend | None = None
        self._obstacle_version = 0  # bumped on every obstacle change; the mirror scene follows it
        self._mirror_version = -1
        # Obstacle slots start parked, relative to each world's origin.
        self._write_shapes([(env, kind, slot, _parked_position(kind, slot), np.array([1.0, 0.0, 0.0, 0.0]), None)
                            for (env, kind, slot) in self._slot_shape])  # fmt: skip

    # -- Newton's view of the scene -----------------------------------------------------------------

    def _map_newton_bodies(self) -> None:
        """Which MuJoCo geoms (inside Newton's solver) are the robot's, its feet, the ground and each obstacle slot.

        MuJoCo's geoms are one template for every world (world 0 classifies them); Newton's shapes are per world.
        """
        model, solver = self._manager.get_model(), self._manager._solver
        body_labels, shape_labels = list(model.body_label), list(model.shape_label)
        shape_body = model.shape_body.numpy()
        geom_shapes = solver.mjc_geom_to_newton_shape.numpy()  # [worlds, geoms]
        robot = _env_path(0) + "/Robot/"
        ngeom = geom_shapes.shape[1]
        self._geom_robot = np.zeros(ngeom, dtype=bool)
        self._geom_ground = np.zeros(ngeom, dtype=bool)
        self._geom_foot_side = np.full(ngeom, -1)
        for geom, shape in enumerate(geom_shapes[0]):
            if shape < 0:
                continue
            body = shape_body[shape]
            name = body_labels[body] if body >= 0 else ""
            self._geom_robot[geom] = name.startswith(robot)
            self._geom_ground[geom] = shape_labels[shape].startswith("/World/ground/")
            leaf = name.rsplit("/", 1)[-1]
            if self._geom_robot[geom] and leaf in g1.FEET:
                self._geom_foot_side[geom] = g1.FEET.index(leaf)
        first_shape = {}
        for k, label in enumerate(shape_labels):
            first_shape.setdefault(label.rsplit("/geometry", 1)[0], k)
        self._slot_shape = {
            (env, kind, i): first_shape[f"{_env_path(env)}/obstacle_{kind}_{i}"]
            for env in range(self.cfg.num_envs) for kind in KINDS for i in range(self.cfg.obstacle_pool)
        }  # fmt: skip
        world0 = {int(shape): geom for geom, shape in enumerate(geom_shapes[0]) if shape >= 0}
        self._slot_geoms = np.array(
            sorted({world0[shape] for (env, *_), shape in self._slot_shape.items() if env == 0})
        )
        self._geom_obstacle = np.zeros(ngeom, dtype=bool)
        self._geom_obstacle[self._slot_geoms] = True
        self._foot_geoms = np.flatnonzero(self._geom_foot_side >= 0)
        self._foot_shapes = geom_shapes[:, self._foot_geoms]  # [worlds, feet geoms]: Newton shapes per world

    def _contact_geoms(self, env: int) -> np.ndarray:
        """[n, 2] MuJoCo geom pairs of every contact in world ``env`` now."""
        solver = self._manager._solver
        if self.cfg.solver == "mujoco_cpu":
            return solver.mj_data.contact.geom[: solver.mj_data.ncon]
        n = int(solver.mjw_data.nacon.numpy()[0])
        contact = solver.mjw_data.contact
        return contact.geom.numpy()[:n][contact.worldid.numpy()[:n] == env]

    # -- simulation ---------------------------------------------------------------------------------

    def reset(
        self,
        root: RootPose | None = None,
        joint_pos: np.ndarray | None = None,
        joint_vel: np.ndarray | None = None,
        seed: int | None = None,
        env: int = 0,
    ) -> RobotState:
        """Place robot ``env`` (its world's frame), re-draw its randomization; the other worlds run on."""
        torch, world = self._torch, self._world(env)
        root = root or RootPose()
        if seed is not None:
            world.rng = np.random.default_rng(seed)
        joint_pos, joint_vel = initial_joint_state(joint_pos, joint_vel, len(self.joint_names))
        quat = np.asarray(root.quat, float) / np.linalg.norm(root.quat)
        pos = world.origin + np.asarray(root.pos, float)
        pose = torch.tensor([[*pos, quat[1], quat[2], quat[3], quat[0]]], dtype=torch.float32)  # xyzw
        r, ids = self._robot, [env]
        r.write_root_link_pose_to_sim_index(root_pose=pose, env_ids=ids)
        r.write_root_link_velocity_to_sim_index(root_velocity=torch.zeros(1, 6), env_ids=ids)
        r.write_joint_position_to_sim_index(position=self._lab(joint_pos), env_ids=ids)
        r.write_joint_velocity_to_sim_index(velocity=self._lab(joint_vel), env_ids=ids)
        r.reset(env_ids=ids)
        world.prev_targets = joint_pos.copy()
        world.time, world.pushed = 0.0, False
        self._set_targets()
        self._apply_randomization(env)
        self._scene.write_data_to_sim()
        self._manager.forward()
        self._scene.update(0.0)
        return self.state(env)

    def _world(self, env: int) -> _World:
        if not 0 <= env < self.num_envs:
            raise IndexError(f"env {env} out of range: this backend has {self.num_envs} worlds")
        return self._worlds[env]

    def _lab(self, values: np.ndarray):
        """A [rows, 29] tensor in Isaac Lab joint order from values ([29] or [rows, 29]) in ``joint_names`` order."""
        values = np.atleast_2d(values)
        out = np.empty_like(values, dtype=np.float64)
        out[:, self._to_lab] = values
        return self._torch.tensor(out, dtype=self._torch.float32)

    def _ours(self, lab_values, env: int) -> np.ndarray:
        return lab_values.torch[env].cpu().numpy().astype(np.float64)[self._to_lab]

    def _set_targets(self, substep: int | None = None, targets: np.ndarray | None = None) -> None:
        """Every world's position targets: ``targets`` (rows by world) once past each world's latency, else the
        previous ones (``substep`` None: the previous ones everywhere)."""
        rows = [
            w.prev_targets if targets is None or substep is None or substep < w.latency else targets[k]
            for k, w in enumerate(self._worlds)
        ]  # fmt: skip
        self._robot.actuators.target_command.set_position_index(value=self._lab(np.stack(rows)))

    def step(self, joint_targets: np.ndarray) -> RobotState:
        if self.num_envs != 1:
            raise RuntimeError(f"this backend has {self.num_envs} worlds: step them together with step_all")
        return self.step_all(checked_targets(joint_targets, self.joint_names)[None])[0]

    def step_all(self, joint_targets: np.ndarray) -> list[RobotState]:
        """Hold ``joint_targets`` [num_envs, 29] (rad, ``joint_names`` order) for one control period, every world."""
        joints = len(self.joint_names)
        rows = np.asarray(joint_targets, dtype=np.float64)
        if rows.shape != (self.num_envs, joints):
            raise ValueError(f"joint_targets must have shape ({self.num_envs}, {joints}), got {rows.shape}")
        targets = np.stack([checked_targets(row, self.joint_names, f" of env {env}" if self.num_envs > 1 else "")
                            for env, row in enumerate(rows)])  # fmt: skip
        for env, world in enumerate(self._worlds):
            if world.time >= world.next_push_time:
                self._random_push(env)
        for substep in range(self.cfg.decimation):
            self._set_targets(substep, targets)
            self._scene.write_data_to_sim()
            self._sim.step(render=False)
        self._scene.update(self.control_dt)
        for env, world in enumerate(self._worlds):
            world.time += self.control_dt
            world.prev_targets = targets[env].copy()
        states = [self.state(env) for env in range(self.num_envs)]
        for world in self._worlds:
            world.pushed = False
        return states

    def state(self, env: int = 0) -> RobotState:
        world, d = self._world(env), self._robot.data

        def row(array) -> np.ndarray:
            return array.torch[env].cpu().numpy().astype(np.float64)

        contacts = self._contact_geoms(env)
        return RobotState(
            time=float(world.time),
            root_pos=row(d.root_link_pos_w) - world.origin,
            root_quat=np.roll(row(d.root_link_quat_w), 1),
            root_lin_vel_w=row(d.root_link_lin_vel_w),
            root_ang_vel_b=row(d.root_link_ang_vel_b),
            projected_gravity=row(d.projected_gravity_b),
            joint_pos=self._ours(d.joint_pos, env) + world.joint_bias,
            joint_vel=self._ours(d.joint_vel, env),
            body_pos_w=row(d.body_link_pos_w)[self._body_ids] - world.origin,
            body_quat_w=np.roll(row(d.body_link_quat_w)[self._body_ids], 1, axis=1),
            body_lin_vel_w=row(d.body_link_lin_vel_w)[self._body_ids],
            foot_contact=self._foot_contacts(contacts),
            obstacle_contact=bool(world.slots.obstacles()) and self._touches_obstacle(contacts),
            pushed=world.pushed,
        )

    def _foot_contacts(self, contacts: np.ndarray) -> np.ndarray:
        touching = np.zeros(2, dtype=bool)
        for a, b in contacts:
            for foot, other in ((a, b), (b, a)):
                if self._geom_foot_side[foot] >= 0 and self._geom_ground[other]:
                    touching[self._geom_foot_side[foot]] = True
        return touching

    def _touches_obstacle(self, contacts: np.ndarray) -> bool:
        if len(contacts) == 0:
            return False
        robot, obstacle = self._geom_robot[contacts], self._geom_obstacle[contacts]
        return bool(((robot[:, 0] & obstacle[:, 1]) | (robot[:, 1] & obstacle[:, 0])).any())

    # -- gains and randomization --------------------------------------------------------------------

    def set_pd_gains(self, joint_names: list[str], stiffness: np.ndarray, damping: np.ndarray) -> None:
        """Nominal PD gains of the named joints, every world (randomization scales these at each world's reset)."""
        idx, stiffness, damping = checked_gains(joint_names, stiffness, damping)
        self._nominal_kp[idx] = stiffness
        self._nominal_kd[idx] = damping
        self._write_gains(np.tile(self._nominal_kp, (self.num_envs, 1)), np.tile(self._nominal_kd, (self.num_envs, 1)))

    def pd_gains(self, joint_names: list[str] | tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
        """The nominal (un-randomized) PD gains of the named joints."""
        idx = g1.joint_index_map(joint_names)
        return self._nominal_kp[idx].copy(), self._nominal_kd[idx].copy()

    def applied_pd_gains(self, env: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """The (stiffness, damping) the solver uses now, ``joint_names`` order: what randomization made of them."""
        d = self._robot.data
        return self._ours(d.joint_stiffness, env), self._ours(d.joint_damping, env)

    def _write_gains(self, kp: np.ndarray, kd: np.ndarray, envs: list[int] | None = None) -> None:
        """Gains rows ``kp``, ``kd`` [len(envs), 29] into worlds ``envs`` (default: all)."""
        from newton import ModelFlags

        ids = list(range(self.num_envs)) if envs is None else envs
        self._robot.write_joint_stiffness_to_sim_index(stiffness=self._lab(kp), env_ids=ids)
        self._robot.write_joint_damping_to_sim_index(damping=self._lab(kd), env_ids=ids)
        self._notify(ModelFlags.JOINT_DOF_PROPERTIES)

    def set_randomization(self, cfg: DomainRandomizationCfg | None) -> None:
        self._randomization = cfg

    def _apply_randomization(self, env: int) -> None:
        """The terms of :class:`DomainRandomizationCfg` for world ``env``, through Isaac Lab's articulation API and
        Newton's model."""
        torch, r, world = self._torch, self._robot, self._world(env)
        mass, com = self._nominal_mass[env : env + 1].clone(), self._nominal_com[env : env + 1].clone()
        draw = RandomizationDraw.draw(self._randomization, world.rng, mass.shape[-1], len(self.joint_names))
        feet = self._foot_shapes[env]
        mu = self._nominal_mu[feet].copy()
        if draw.foot_friction is not None:
            mu[:] = draw.foot_friction
        if draw.mass_scale is not None:
            mass *= torch.tensor(draw.mass_scale, dtype=mass.dtype)
        if draw.torso_com_offset is not None:
            com[0, list(r.body_names).index(g1.ANCHOR_BODY)] += torch.tensor(draw.torso_com_offset, dtype=com.dtype)
        world.latency = draw.latency_substeps
        world.joint_bias[:] = 0.0 if draw.joint_bias is None else draw.joint_bias
        world.next_push_time = world.time + draw.first_push_in
        r.set_masses_index(masses=mass, env_ids=[env])
        r.set_coms_index(coms=com, env_ids=[env])
        kp, kd = draw.gains(self._nominal_kp, self._nominal_kd)
        self._write_gains(kp[None], kd[None], [env])
        self._write_friction(feet, mu)

    def _write_friction(self, shapes: np.ndarray, mu: np.ndarray) -> None:
        import warp as wp
        from newton import ModelFlags

        model = self._manager.get_model()
        values = model.shape_material_mu.numpy()
        values[shapes] = mu
        wp.copy(model.shape_material_mu, wp.array(values, dtype=model.shape_material_mu.dtype,
                                                  device=model.shape_material_mu.device))  # fmt: skip
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
            size, types = mw.geom_size.numpy(), mw.geom_type.numpy()  # size: [worlds or 1, geoms, 3]
            rbound, aabb = mw.geom_rbound.numpy(), mw.geom_aabb.numpy()
            for geom in slot_geoms:
                sizes = size[:, geom]
                half = np.stack([sizes[:, 0], sizes[:, 0], sizes[:, 1]], axis=1) if types[geom] == 5 else sizes
                radius = np.linalg.norm(half, axis=1)
                # Per world where MuJoCo-Warp batches the field, else the largest over the worlds.
                rbound[..., geom] = radius if rbound.ndim == 2 and len(radius) == len(rbound) else radius.max()
                if aabb.ndim == 4 and len(half) == len(aabb):
                    aabb[:, geom, 0], aabb[:, geom, 1] = 0.0, half
                else:
                    aabb[..., geom, 0, :], aabb[..., geom, 1, :] = 0.0, half.max(axis=0)
            wp.copy(mw.geom_rbound, wp.array(rbound, dtype=mw.geom_rbound.dtype, device=mw.geom_rbound.device))
            wp.copy(mw.geom_aabb, wp.array(aabb, dtype=mw.geom_aabb.dtype, device=mw.geom_aabb.device))

    def _random_push(self, env: int) -> None:
        world = self._world(env)
        lin, ang, next_in = draw_push(self._randomization.push, world.rng)
        self.push(lin, ang, env)
        world.next_push_time = world.time + next_in

    def push(self, lin_vel: np.ndarray, ang_vel: np.ndarray, env: int = 0) -> None:
        """Add to a root velocity: ``lin_vel`` in the world frame, ``ang_vel`` in the pelvis frame."""
        from bm_gym.utils.math import quat_rotate

        self._world(env)
        torch, d = self._torch, self._robot.data
        velocity = d.root_link_vel_w.torch[env].cpu().numpy().astype(np.float64)
        quat = np.roll(d.root_link_quat_w.torch[env].cpu().numpy().astype(np.float64), 1)
        velocity[:3] += np.asarray(lin_vel, float)
        velocity[3:] += quat_rotate(quat, np.asarray(ang_vel, float))
        velocity_t = torch.tensor(velocity[None], dtype=torch.float32)
        self._robot.write_root_link_velocity_to_sim_index(root_velocity=velocity_t, env_ids=[env])
        self._worlds[env].pushed = True

    # -- obstacles ----------------------------------------------------------------------------------

    @property
    def obstacle_capacity(self) -> dict[str, int]:
        """How many obstacles of each shape the scene holds at once (``IsaacLabBackendCfg.obstacle_pool``)."""
        return self._worlds[0].slots.capacity

    def set_obstacles(self, obstacles: list[Obstacle] | tuple[Obstacle, ...], env: int = 0) -> list[int]:
        """Replace every obstacle of world ``env``, all or nothing: too many for the pool raises first."""
        return self._world(env).slots.set(obstacles)

    def add_obstacle(self, obstacle: Obstacle, env: int = 0) -> int:
        """Place an obstacle (world ``env``'s frame) while the simulation runs; returns its handle there."""
        return self._world(env).slots.add(obstacle)

    def move_obstacle(self, handle: int, obstacle: Obstacle, env: int = 0) -> None:
        self._world(env).slots.move(handle, obstacle)

    def remove_obstacle(self, handle: int, env: int = 0) -> None:
        self._world(env).slots.remove(handle)

    def clear_obstacles(self, env: int = 0) -> None:
        self._world(env).slots.clear()

    def obstacles(self, env: int = 0) -> dict[int, Obstacle]:
        return self._world(env).slots.obstacles()

    def _park(self, env: int, kind: str, slot: int) -> None:
        self._set_shape(env, kind, slot, _parked_position(kind, slot), np.array([1.0, 0.0, 0.0, 0.0]), None)

    def _place(self, env: int, kind: str, slot: int, obstacle: Obstacle) -> None:
        half_h = obstacle.height / 2
        if isinstance(obstacle, Cylinder):
            scale, quat = (obstacle.radius, half_h, 0.0), np.array([1.0, 0.0, 0.0, 0.0])
        else:
            scale, quat = (obstacle.half_x, obstacle.half_y, half_h), quat_from_yaw(obstacle.yaw)
        self._set_shape(env, kind, slot, (obstacle.x, obstacle.y, half_h), quat, scale)

    def _set_shape(self, env: int, kind: str, slot: int, pos, quat_wxyz: np.ndarray, scale) -> None:
        """Move (and resize, unless ``scale`` is None) an obstacle slot's collider; ``pos`` in world ``env``'s frame."""
        self._write_shapes([(env, kind, slot, pos, quat_wxyz, scale)])

    def _write_shapes(self, updates: list) -> None:
        """(env, kind, slot, pos, quat wxyz, scale or None) of obstacle slots into Newton's model; one notification."""
        import warp as wp
        from newton import ModelFlags

        model = self._manager.get_model()
        transforms, scales = model.shape_transform.numpy(), model.shape_scale.numpy()
        for env, kind, slot, pos, quat, scale in updates:
            shape = self._slot_shape[(env, kind, slot)]
            transforms[shape] = [*(self._worlds[env].origin + np.asarray(pos, float)), *quat[1:], quat[0]]
            if scale is not None:
                scales[shape] = scale
        for array, values in ((model.shape_transform, transforms), (model.shape_scale, scales)):
            wp.copy(array, wp.array(values, dtype=array.dtype, device=array.device))
        self._notify(ModelFlags.SHAPE_PROPERTIES)
        self._obstacle_version += 1

    # -- rendering ----------------------------------------------------------------------------------

    @property
    def model(self):
        """A MuJoCo model of world 0's scene, for drawing only (kit-less Isaac Lab has no CPU renderer)."""
        return self._visual_mirror().model

    def _visual_mirror(self) -> MujocoBackend:
        """A never-stepped MuJoCo scene that mirrors this one's pose and obstacles: what ``render`` draws."""
        if self._mirror is None:
            self._mirror = MujocoBackend(MujocoBackendCfg(obstacle_pool=self.cfg.obstacle_pool))
        if self._mirror_version != self._obstacle_version:
            live = self._worlds[0].slots.obstacles()
            self._mirror.set_obstacles([live[h] for h in sorted(live)])
            self._mirror_version = self._obstacle_version
        return self._mirror

    def scene_pose(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """qpos, mocap positions and quaternions of the mirror scene (see :attr:`model`), from this one's state."""
        mirror, state = self._visual_mirror(), self.state()
        qpos = mirror.data.qpos.copy()
        qpos[:3], qpos[3:7] = state.root_pos, state.root_quat
        qpos[mirror._qpos_adr] = state.joint_pos - self._worlds[0].joint_bias
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
