"""MuJoCo CPU backend: the embedded default simulator."""

from __future__ import annotations

import math
from dataclasses import dataclass

import mujoco
import numpy as np

from bm_gym.obstacles import Box, Cylinder, Obstacle
from bm_gym.robot import g1
from bm_gym.sim.backend import RobotState, RootPose, checked_gains, checked_targets, initial_joint_state
from bm_gym.sim.pool import ObstacleSlots
from bm_gym.sim.randomization import DomainRandomizationCfg, RandomizationDraw, draw_push
from bm_gym.utils.math import quat_from_yaw


@dataclass(frozen=True)
class MujocoBackendCfg:
    """Physics settings of the mjlab G1 velocity task: 5 ms steps, 4 substeps per 50 Hz control step."""

    sim_dt: float = 0.005
    decimation: int = 4
    solver_iterations: int = 10
    ls_iterations: int = 20
    obstacle_pool: int = 24  # per shape; obstacles beyond this raise
    randomization: DomainRandomizationCfg | None = None

    @property
    def control_dt(self) -> float:
        return self.sim_dt * self.decimation


_HIDDEN_Z = -50.0  # parked pool geoms live far below the floor with collisions off


class MujocoBackend:
    """A G1 on a flat floor with a pool of movable box and cylinder obstacles (mocap bodies)."""

    def __init__(self, cfg: MujocoBackendCfg | None = None) -> None:
        self.cfg = cfg = cfg or MujocoBackendCfg()
        self.joint_names = g1.JOINT_NAMES
        self.body_names = g1.BODY_NAMES
        self.control_dt = cfg.control_dt
        self.model = self._compile(cfg)
        self.data = mujoco.MjData(self.model)
        m = self.model

        self._qpos_adr = np.array([m.jnt_qposadr[m.joint(n).id] for n in self.joint_names])
        self._qvel_adr = np.array([m.jnt_dofadr[m.joint(n).id] for n in self.joint_names])
        self._act_ids = np.array([m.actuator(n).id for n in self.joint_names])
        self._body_ids = np.array([m.body(n).id for n in self.body_names])
        self._root_body = m.body(g1.ROOT_BODY).id
        self._torso_body = m.body(g1.ANCHOR_BODY).id
        floor = m.geom("floor").id
        foot_geoms = [i for i in range(m.ngeom) if g1.FOOT_GEOM_PATTERN.match(m.geom(i).name)]
        self._foot_geoms = np.array(foot_geoms)
        self._foot_side_of_geom = np.full(m.ngeom, -1)  # 0 left, 1 right, -1 not a foot
        self._foot_side_of_geom[foot_geoms] = [0 if m.geom(i).name.startswith("left") else 1 for i in foot_geoms]
        self._floor_geom = floor

        self._pool: dict[str, list[int]] = {"box": [], "cylinder": []}
        for kind in self._pool:
            for i in range(cfg.obstacle_pool):
                self._pool[kind].append(m.body(f"obstacle_{kind}_{i}").id)
        self._obstacle_geom_of_body = {b: m.body_geomadr[b] for ids in self._pool.values() for b in ids}
        self._obstacle_geoms = np.array(sorted(self._obstacle_geom_of_body.values()))
        self._robot_geom_mask = np.zeros(m.ngeom, dtype=bool)
        self._robot_geom_mask[m.geom_bodyid >= self._root_body] = True
        self._robot_geom_mask[self._obstacle_geoms] = False
        self._obstacle_geom_mask = np.zeros(m.ngeom, dtype=bool)
        self._obstacle_geom_mask[self._obstacle_geoms] = True
        self._slots = ObstacleSlots(cfg.obstacle_pool, self._place, self._park, "MujocoBackendCfg(obstacle_pool=...)")

        self._nominal_kp = m.actuator_gainprm[self._act_ids, 0].copy()
        self._nominal_kd = -m.actuator_biasprm[self._act_ids, 2].copy()
        self._nominal_mass = m.body_mass.copy()
        self._nominal_inertia = m.body_inertia.copy()
        self._nominal_ipos = m.body_ipos.copy()
        self._nominal_friction = m.geom_friction.copy()

        self._rng = np.random.default_rng()
        self._randomization = cfg.randomization
        self._latency = 0
        self._joint_bias = np.zeros(len(self.joint_names))
        self._next_push_time = math.inf
        self._pushed = False  # a push since the last control step (RobotState.pushed)
        self._prev_targets = np.array(g1.DEFAULT_JOINT_POS)
        self._renderer: mujoco.Renderer | None = None
        self._camera = mujoco.MjvCamera()
        self._camera.type = mujoco.mjtCamera.mjCAMERA_FREE
        self._camera.distance, self._camera.elevation, self._camera.azimuth = 3.5, -20.0, 135.0

    @staticmethod
    def _compile(cfg: MujocoBackendCfg) -> mujoco.MjModel:
        spec = g1.build_spec()
        spec.option.timestep = cfg.sim_dt
        spec.option.iterations = cfg.solver_iterations
        spec.option.ls_iterations = cfg.ls_iterations
        spec.option.integrator = mujoco.mjtIntegrator.mjINT_IMPLICITFAST
        spec.option.cone = mujoco.mjtCone.mjCONE_PYRAMIDAL
        spec.visual.global_.offwidth, spec.visual.global_.offheight = 1920, 1080
        spec.add_texture(
            name="grid", type=mujoco.mjtTexture.mjTEXTURE_2D, builtin=mujoco.mjtBuiltin.mjBUILTIN_CHECKER,
            rgb1=[0.25, 0.28, 0.32], rgb2=[0.32, 0.36, 0.40], width=512, height=512,
        )  # fmt: skip
        spec.add_material(name="grid", textures=["", "grid"], texrepeat=[1, 1], texuniform=True)
        spec.add_texture(
            name="sky", type=mujoco.mjtTexture.mjTEXTURE_SKYBOX, builtin=mujoco.mjtBuiltin.mjBUILTIN_GRADIENT,
            rgb1=[0.55, 0.7, 0.85], rgb2=[0.1, 0.12, 0.15], width=256, height=256,
        )  # fmt: skip
        world = spec.worldbody
        world.add_light(pos=[0, 0, 6], dir=[0, 0, -1], type=mujoco.mjtLightType.mjLIGHT_DIRECTIONAL, castshadow=False)
        world.add_geom(
            name="floor", type=mujoco.mjtGeom.mjGEOM_PLANE, size=[0, 0, 0.05], material="grid",
            contype=1, conaffinity=1, condim=3, friction=[1.0, 0.005, 0.0001],
        )  # fmt: skip
        shapes = {"box": mujoco.mjtGeom.mjGEOM_BOX, "cylinder": mujoco.mjtGeom.mjGEOM_CYLINDER}
        for kind, geom_type in shapes.items():
            for i in range(cfg.obstacle_pool):
                body = world.add_body(name=f"obstacle_{kind}_{i}", mocap=True, pos=[0, 0, _HIDDEN_Z])
                body.add_geom(
                    name=f"obstacle_{kind}_{i}_geom", type=geom_type, size=[0.1, 0.1, 0.1],
                    rgba=[0.85, 0.45, 0.2, 1.0], contype=0, conaffinity=0, condim=3, group=0,
                )  # fmt: skip
        return spec.compile()

    # -- simulation ---------------------------------------------------------------------------------

    def reset(
        self,
        root: RootPose | None = None,
        joint_pos: np.ndarray | None = None,
        joint_vel: np.ndarray | None = None,
        seed: int | None = None,
    ) -> RobotState:
        root = root or RootPose()
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        joint_pos, joint_vel = initial_joint_state(joint_pos, joint_vel, len(self.joint_names))
        mujoco.mj_resetData(self.model, self.data)
        # Randomize first: mj_setConst runs the model at qpos0 in this data, which would overwrite the state.
        self._apply_randomization()
        self.data.qpos[:3] = root.pos
        self.data.qpos[3:7] = np.asarray(root.quat) / np.linalg.norm(root.quat)
        self.data.qpos[self._qpos_adr] = joint_pos
        self.data.qvel[self._qvel_adr] = joint_vel
        self.data.ctrl[self._act_ids] = joint_pos
        self._prev_targets = joint_pos.copy()
        for kind, index, obstacle in self._slots.placed():
            self._place(kind, index, obstacle)
        mujoco.mj_forward(self.model, self.data)
        self._pushed = False
        return self.state()

    def step(self, joint_targets: np.ndarray) -> RobotState:
        targets = checked_targets(joint_targets, self.joint_names)
        if self.data.time >= self._next_push_time:
            self._random_push()
        if self._latency:
            self.data.ctrl[self._act_ids] = self._prev_targets
            mujoco.mj_step(self.model, self.data, nstep=self._latency)
        self.data.ctrl[self._act_ids] = targets
        mujoco.mj_step(self.model, self.data, nstep=self.cfg.decimation - self._latency)
        self._prev_targets = targets.copy()
        state = self.state()
        self._pushed = False
        return state

    def state(self) -> RobotState:
        d = self.data
        contact_geoms = d.contact.geom[: d.ncon]
        return RobotState(
            time=float(d.time),
            root_pos=d.qpos[:3].copy(),
            root_quat=d.qpos[3:7].copy(),
            root_lin_vel_w=d.qvel[:3].copy(),
            root_ang_vel_b=d.qvel[3:6].copy(),
            projected_gravity=-d.xmat[self._root_body].reshape(3, 3)[2],  # R^T (0, 0, -1)
            joint_pos=d.qpos[self._qpos_adr] + self._joint_bias,
            joint_vel=d.qvel[self._qvel_adr].copy(),
            body_pos_w=d.xpos[self._body_ids].copy(),
            body_quat_w=d.xquat[self._body_ids].copy(),
            body_lin_vel_w=self._body_lin_vel(),
            foot_contact=self._foot_contacts(contact_geoms),
            obstacle_contact=self._touches_obstacle(contact_geoms),
            pushed=self._pushed,
        )

    def _body_lin_vel(self) -> np.ndarray:
        """World velocities of the bodies' frame origins, from MuJoCo's com-based spatial velocities (``cvel``:
        angular, then linear at the subtree centre of mass) in one vectorized step (mj_objectVelocity per body)."""
        d, ids = self.data, self._body_ids
        cvel = d.cvel[ids]
        offset = d.xpos[ids] - d.subtree_com[self.model.body_rootid[ids]]
        return cvel[:, 3:] + np.cross(cvel[:, :3], offset)

    def _foot_contacts(self, contact_geoms: np.ndarray) -> np.ndarray:
        touching = np.zeros(2, dtype=bool)
        with_floor = (contact_geoms == self._floor_geom).any(axis=1)
        sides = self._foot_side_of_geom[contact_geoms[with_floor]].ravel()
        touching[sides[sides >= 0]] = True
        return touching

    def _touches_obstacle(self, contact_geoms: np.ndarray) -> bool:
        if not self._slots.obstacles() or len(contact_geoms) == 0:
            return False
        g1_, g2_ = contact_geoms[:, 0], contact_geoms[:, 1]
        robot_obstacle = (self._robot_geom_mask[g1_] & self._obstacle_geom_mask[g2_]) | (
            self._robot_geom_mask[g2_] & self._obstacle_geom_mask[g1_]
        )
        return bool(robot_obstacle.any())

    def set_pd_gains(self, joint_names: list[str], stiffness: np.ndarray, damping: np.ndarray) -> None:
        idx, stiffness, damping = checked_gains(joint_names, stiffness, damping)
        self._nominal_kp[idx] = stiffness
        self._nominal_kd[idx] = damping
        self._write_gains(self._nominal_kp, self._nominal_kd)

    def pd_gains(self, joint_names: list[str] | tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
        """The nominal (un-randomized) PD gains of the named joints."""
        idx = g1.joint_index_map(joint_names)
        return self._nominal_kp[idx].copy(), self._nominal_kd[idx].copy()

    def applied_pd_gains(self) -> tuple[np.ndarray, np.ndarray]:
        """The (stiffness, damping) the simulator uses now, ``joint_names`` order: what randomization made of them."""
        return self.model.actuator_gainprm[self._act_ids, 0].copy(), -self.model.actuator_biasprm[self._act_ids, 2]

    def _write_gains(self, kp: np.ndarray, kd: np.ndarray) -> None:
        self.model.actuator_gainprm[self._act_ids, 0] = kp
        self.model.actuator_biasprm[self._act_ids, 1] = -kp
        self.model.actuator_biasprm[self._act_ids, 2] = -kd

    # -- domain randomization -----------------------------------------------------------------------

    def set_randomization(self, cfg: DomainRandomizationCfg | None) -> None:
        self._randomization = cfg

    def _apply_randomization(self) -> None:
        m = self.model
        robot_bodies = np.arange(self._root_body, self._root_body + len(g1.JOINT_NAMES) + 1)
        draw = RandomizationDraw.draw(self._randomization, self._rng, len(robot_bodies), len(self.joint_names))
        m.body_mass[:] = self._nominal_mass
        m.body_inertia[:] = self._nominal_inertia
        m.body_ipos[:] = self._nominal_ipos
        m.geom_friction[:] = self._nominal_friction
        if draw.foot_friction is not None:
            m.geom_friction[self._foot_geoms, 0] = draw.foot_friction
        if draw.mass_scale is not None:
            m.body_mass[robot_bodies] *= draw.mass_scale
            m.body_inertia[robot_bodies] *= draw.mass_scale[:, None]
        if draw.torso_com_offset is not None:
            m.body_ipos[self._torso_body] += draw.torso_com_offset
        self._write_gains(*draw.gains(self._nominal_kp, self._nominal_kd))
        self._latency = draw.latency_substeps
        self._joint_bias[:] = 0.0 if draw.joint_bias is None else draw.joint_bias
        self._next_push_time = self.data.time + draw.first_push_in
        mujoco.mj_setConst(m, self.data)  # masses and inertias may have changed

    def _random_push(self) -> None:
        lin, ang, next_in = draw_push(self._randomization.push, self._rng)
        self.push(lin, ang)
        self._next_push_time = self.data.time + next_in

    def push(self, lin_vel: np.ndarray, ang_vel: np.ndarray) -> None:
        self.data.qvel[:3] += lin_vel
        self.data.qvel[3:6] += ang_vel
        self._pushed = True

    # -- obstacles ----------------------------------------------------------------------------------

    @property
    def obstacle_capacity(self) -> dict[str, int]:
        """How many obstacles of each shape the scene holds at once (``MujocoBackendCfg.obstacle_pool``)."""
        return self._slots.capacity

    def set_obstacles(self, obstacles: list[Obstacle] | tuple[Obstacle, ...]) -> list[int]:
        """Replace every obstacle, all or nothing: too many for the pool raises before anything changes."""
        return self._slots.set(obstacles)

    def add_obstacle(self, obstacle: Obstacle) -> int:
        return self._slots.add(obstacle)

    def move_obstacle(self, handle: int, obstacle: Obstacle) -> None:
        self._slots.move(handle, obstacle)

    def remove_obstacle(self, handle: int) -> None:
        self._slots.remove(handle)

    def clear_obstacles(self) -> None:
        self._slots.clear()

    def obstacles(self) -> dict[int, Obstacle]:
        return self._slots.obstacles()

    def _place(self, kind: str, index: int, obstacle: Obstacle) -> None:
        body = self._pool[kind][index]
        m, geom = self.model, self._obstacle_geom_of_body[body]
        mocap = m.body_mocapid[body]
        half_h = obstacle.height / 2
        if isinstance(obstacle, Cylinder):
            m.geom_size[geom] = [obstacle.radius, half_h, 0.0]
            quat = np.array([1.0, 0.0, 0.0, 0.0])
        else:
            m.geom_size[geom] = [obstacle.half_x, obstacle.half_y, half_h]
            quat = quat_from_yaw(obstacle.yaw)
        # MuJoCo's broadphase reads the bounding radius and box compiled for the pool's 0.1 m placeholder:
        # both follow the new size, or contacts further than 0.1 m from the obstacle's centre are missed.
        half = m.geom_size[geom] if isinstance(obstacle, Box) else np.array([obstacle.radius, obstacle.radius, half_h])
        m.geom_rbound[geom] = float(np.linalg.norm(half))
        m.geom_aabb[geom] = [0.0, 0.0, 0.0, *half]
        self._set_collidable(body, True)
        self.data.mocap_pos[mocap] = [obstacle.x, obstacle.y, half_h]
        self.data.mocap_quat[mocap] = quat

    def _park(self, kind: str, index: int) -> None:
        body = self._pool[kind][index]
        self._set_collidable(body, False)
        self.data.mocap_pos[self.model.body_mocapid[body]] = [0.0, 0.0, _HIDDEN_Z]

    def _set_collidable(self, body: int, on: bool) -> None:
        # The broadphase filters on the body's contype/conaffinity too, so both levels are switched.
        geom = self._obstacle_geom_of_body[body]
        m = self.model
        m.geom_contype[geom] = m.geom_conaffinity[geom] = m.body_contype[body] = m.body_conaffinity[body] = int(on)

    # -- rendering ----------------------------------------------------------------------------------

    def render(self, width: int = 640, height: int = 480, camera: str | None = None) -> np.ndarray:
        """RGB frame; ``camera`` None follows the robot, "top" looks straight down, else a named MJCF camera."""
        if self._renderer is None or (self._renderer.width, self._renderer.height) != (width, height):
            if self._renderer is not None:
                self._renderer.close()
            self._renderer = mujoco.Renderer(self.model, height=height, width=width)
        if camera in (None, "top"):
            cam = self._camera
            cam.lookat[:] = self.data.qpos[:3]
            cam.lookat[2] = 0.6
            if camera == "top":
                cam.distance, cam.elevation, cam.azimuth = 8.0, -89.9, 90.0
            self._renderer.update_scene(self.data, camera=cam)
        else:
            self._renderer.update_scene(self.data, camera=camera)
        return self._renderer.render()

    def scene_pose(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Copies of qpos, mocap positions and mocap quaternions: enough to draw the scene from another thread."""
        return self.data.qpos.copy(), self.data.mocap_pos.copy(), self.data.mocap_quat.copy()

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
