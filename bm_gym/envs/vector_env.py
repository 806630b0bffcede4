"""``BeyondMimicGuided-G1-v0`` as a real ``gymnasium.vector.VectorEnv``: N simulations, one batched plan.

    envs = gym.make_vec("BeyondMimicGuided-G1-v0", num_envs=8, vectorization_mode="vector_entry_point")

The N MuJoCo simulations are stepped in worker processes spread across the cores; every control step the
guided controller plans all N robots as one batch in this process (``DiffusionController(num_robots=N)``),
each with its own history, task, obstacles and noise generator. Gymnasium wrapping N single envs instead
makes N separate batch-1 plans, N times the fixed cost of a plan.

Spaces, actions and observations are the single env's (:mod:`bm_gym.envs.guided_env`), batched. Seeds: an
int seed gives env i the seed ``seed + i``, as Gymnasium's vector envs do, so env i behaves as a single env
reset with that seed. Options: ``{"obstacles": ..., "goal": ..., "course": ...}`` apply to every env, or give
a list with one entry per env; ``"reset_mask"`` (bool [N]) resets only some envs. Autoreset follows Gymnasium 1.x:
``next_step`` (default: the step after an episode ends resets that env and ignores its action) or
``same_step`` (the env resets at once; ``infos["final_obs"]`` / ``infos["final_info"]`` keep the last ones) or
``disabled`` (the caller resets ended envs with ``reset_mask``, giving each its own options: how wrappers such
as :class:`bm_gym.envs.navigation.VectorNavigation` draw a new course per episode).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import traceback
from typing import Any

import numpy as np
import torch
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from bm_gym.controller import ControllerCfg, DiffusionController
from bm_gym.course import start_pose
from bm_gym.diffusion.policy import DiffusionPolicy
from bm_gym.envs.guided_env import EnvLogic, GuidedEnvCfg, _replace
from bm_gym.obstacles import Box, Cylinder
from bm_gym.robot import g1
from bm_gym.sim import DomainRandomizationCfg, RootPose, has_fallen, make_backend
from bm_gym.sim.pool import check_obstacle_capacity


def _worker(conn, cfg: GuidedEnvCfg, count: int) -> None:
    """Owns ``count`` simulations; answers (command, payload) messages until told to close."""
    torch.set_num_threads(1)
    sims = [make_backend(cfg.backend, randomization=DomainRandomizationCfg() if cfg.randomize else None,
                         obstacle_pool=cfg.obstacle_pool) for _ in range(count)]  # fmt: skip
    while True:
        try:
            command, payload = conn.recv()
        except (EOFError, OSError):  # the parent is gone without closing us: nothing left to answer
            return
        try:
            if command == "step":  # payload: [(local index, targets)]
                result = [sims[i].step(targets) for i, targets in payload]
            elif command == "reset":  # payload: [(local index, (seed, root pose or None))]
                result = [sims[i].reset(root, seed=seed) for i, (seed, root) in payload]
            elif command == "obstacles":  # payload: (local index, obstacles)
                result = sims[payload[0]].set_obstacles(payload[1])
            elif command == "close":
                for sim in sims:
                    sim.close()
                conn.send(("ok", None))
                return
            else:
                raise ValueError(f"unknown command {command!r}")
            conn.send(("ok", result))
        except Exception as err:  # noqa: BLE001 - reported to the parent, which raises it
            conn.send(("error", f"{type(err).__name__}: {err}\n{traceback.format_exc()}"))


class GuidedG1VectorEnv(VectorEnv):
    """N ``BeyondMimicGuided-G1-v0`` envs planned as one batch; see the module docstring."""

    metadata = {"render_modes": [], "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(self, num_envs: int = 2, cfg: GuidedEnvCfg | None = None, workers: int | None = None,
                 planning_threads: int | None = None, autoreset_mode: str | AutoresetMode = AutoresetMode.NEXT_STEP,
                 **overrides: Any) -> None:  # fmt: skip
        if num_envs < 1:
            raise ValueError(f"num_envs must be at least 1, got {num_envs}")
        cfg = cfg or GuidedEnvCfg()
        if overrides:
            cfg = _replace(cfg, overrides)
        self.cfg, self.num_envs = cfg, num_envs
        self.autoreset_mode = _autoreset_mode(autoreset_mode)
        self.metadata = {**self.metadata, "autoreset_mode": self.autoreset_mode}
        cores = os.cpu_count() or 1
        if cfg.backend == "isaaclab":  # Isaac Lab's simulation is one per process
            if workers not in (None, num_envs):
                raise ValueError(f"the isaaclab backend runs one simulation per process: workers must equal num_envs "
                                 f"({num_envs}), got {workers}")  # fmt: skip
            workers = num_envs
        workers = min(workers or cores, num_envs)
        # Planning and simulation alternate, so planning may use the cores the workers leave idle meanwhile.
        threads = planning_threads or min(2, cores)
        torch.set_num_threads(threads)
        policy = DiffusionPolicy.load(cfg.checkpoint, robot_joints=g1.JOINT_NAMES).use_fused(threads)
        policy.use_onnxruntime(threads)
        self.controller = DiffusionController(
            policy, ControllerCfg(actions_per_plan=cfg.actions_per_plan, guidance=cfg.guidance), num_robots=num_envs
        )
        self.logics = [EnvLogic(cfg) for _ in range(num_envs)]
        self._rngs: list[np.random.Generator | None] = [None] * num_envs
        self._starts: list[RootPose | None] = [None] * num_envs  # start poses of the envs' courses
        self.single_observation_space = self.logics[0].observation_space
        self.single_action_space = self.logics[0].action_space
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self._capacity = {"cylinder": cfg.obstacle_pool, "box": cfg.obstacle_pool}
        ctx = mp.get_context("spawn")
        self._slots = [
            (w, k) for w, block in enumerate(np.array_split(np.arange(num_envs), workers)) for k in range(len(block))
        ]  # fmt: skip  env i -> (worker, index in that worker)
        self._conns, self._procs = [], []
        for w, block in enumerate(np.array_split(np.arange(num_envs), workers)):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_worker, args=(child, cfg, len(block)), daemon=True, name=f"sim-{w}")
            proc.start()
            child.close()
            self._conns.append(parent)
            self._procs.append(proc)
        self._autoreset = np.zeros(num_envs, dtype=bool)
        self._ended = np.zeros(num_envs, dtype=bool)  # autoreset disabled: ended, not reset yet
        self._closed = False

    # -- worker calls -----------------------------------------------------------------------------------

    def _call(self, command: str, per_env: dict[int, Any]) -> dict[int, Any]:
        """Send ``per_env`` payloads to the workers owning those envs; gather the results by env index."""
        by_worker: dict[int, list[tuple[int, int, Any]]] = {}
        for i, payload in per_env.items():
            w, k = self._slots[i]
            by_worker.setdefault(w, []).append((i, k, payload))
        for w, items in by_worker.items():
            self._send(w, (command, [(k, payload) for _, k, payload in items]))
        results = {}
        for w, items in by_worker.items():
            results.update({i: v for (i, _, _), v in zip(items, self._receive(w), strict=True)})
        return results

    def _send(self, worker: int, message: tuple) -> None:
        try:
            self._conns[worker].send(message)
        except (OSError, EOFError) as err:
            code = self._procs[worker].exitcode
            raise RuntimeError(f"simulation worker {worker} is gone (exit code {code})") from err

    def _receive(self, worker: int) -> Any:
        try:
            status, value = self._conns[worker].recv()
        except (OSError, EOFError) as err:
            raise RuntimeError(f"simulation worker {worker} died (exit code {self._procs[worker].exitcode})") from err
        if status != "ok":
            raise RuntimeError(f"simulation worker {worker} failed: {value}")
        return value

    def set_obstacles(self, env: int, obstacles) -> None:
        """Replace env ``env``'s obstacle map (all or nothing, as ``GuidedG1Env.set_obstacles``)."""
        obstacles = EnvLogic.checked_obstacles(obstacles)
        check_obstacle_capacity(obstacles, self._capacity)
        w, k = self._slots[env]
        self._send(w, ("obstacles", (k, obstacles)))
        self._receive(w)
        self.logics[env].set_obstacle_map(obstacles)

    # -- gymnasium API ----------------------------------------------------------------------------------

    def reset(self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None):
        options = dict(options or {})
        mask = np.asarray(options.pop("reset_mask", np.ones(self.num_envs, bool)), dtype=bool)
        if mask.shape != (self.num_envs,):
            raise ValueError(f"reset_mask must have {self.num_envs} entries, got shape {mask.shape}")
        seeds = self.seeds_for(seed)
        per_env = {i: self.env_options(options, i) for i in np.flatnonzero(mask)}
        per_env = {i: self.logics[i].check_options(opts) for i, opts in per_env.items()}  # all before any change
        for opts in per_env.values():
            check_obstacle_capacity(EnvLogic.checked_obstacles(opts.get("obstacles", ())), self._capacity)
        for i, opts in per_env.items():
            self.set_obstacles(i, opts.get("obstacles", ()))
            self.logics[i].set_goal(opts.get("goal"))
            self._starts[i] = start_pose(opts.get("start"))  # kept for this env's autoresets, as its map is
        states = self._reset_envs(list(per_env), seeds)
        infos: dict[str, Any] = {}
        for i in per_env:
            self.logics[i].start_episode(states[i])
            infos = self._add_info(infos, self.logics[i].info(fell=False, collisions=0), i)
        self._autoreset[mask] = False
        self._ended[mask] = False
        return self._observations(), infos

    def step(self, actions):
        actions = np.asarray(actions)
        if actions.shape[0] != self.num_envs:
            raise ValueError(f"expected actions for {self.num_envs} envs, got shape {actions.shape}")
        if self._ended.any():
            raise RuntimeError(f"envs {np.flatnonzero(self._ended).tolist()} ended and autoreset is disabled: reset "
                               "them with reset(options={'reset_mask': ...}) before stepping again")  # fmt: skip
        infos: dict[str, Any] = {}
        resetting = self._autoreset.copy()
        if resetting.any():  # next-step autoreset: these envs reset now and ignore their action
            states = self._reset_envs(list(np.flatnonzero(resetting)), [None] * self.num_envs)
            for i in np.flatnonzero(resetting):
                self.logics[i].start_episode(states[i])
        commands = {}
        for i in np.flatnonzero(~resetting):
            commands[i] = self.logics[i].check_action(actions[i])
            self.controller.set_task(self.logics[i].task(commands[i]), robot=int(i))
        active = ~resetting
        fell = np.zeros(self.num_envs, bool)
        collisions = np.zeros(self.num_envs, int)
        for _ in range(self.cfg.control_steps):
            if not active.any():
                break
            targets = self.controller.act_batch([logic.state for logic in self.logics], active=active)
            states = self._call("step", {i: targets[i] for i in np.flatnonzero(active)})
            for i, state in states.items():
                self.logics[i].advance(state)
                collisions[i] += int(state.obstacle_contact)
                if has_fallen(state):
                    fell[i], active[i] = True, False
        rewards = np.zeros(self.num_envs)
        terminated, truncated = np.zeros(self.num_envs, bool), np.zeros(self.num_envs, bool)
        step_infos = []
        for i in range(self.num_envs):
            logic = self.logics[i]
            if resetting[i]:
                step_infos.append(logic.info(fell=False, collisions=0))
                continue
            logic.episode_collisions += collisions[i]
            terminated[i], truncated[i] = fell[i], logic.truncated(bool(fell[i]))
            step_infos.append(logic.info(bool(fell[i]), int(collisions[i])))
        observations = self._observations()
        done = terminated | truncated
        final_obs, final_info = None, {}
        if self.autoreset_mode == AutoresetMode.SAME_STEP and done.any():
            final_obs = {k: v.copy() for k, v in observations.items()}
            states = self._reset_envs(list(np.flatnonzero(done)), [None] * self.num_envs)
            for i in np.flatnonzero(done):
                final_info = self._add_info(final_info, step_infos[i], i)
                self.logics[i].start_episode(states[i])
                step_infos[i] = self.logics[i].info(fell=False, collisions=0)
            observations = self._observations()
        for i, info in enumerate(step_infos):
            infos = self._add_info(infos, info, i)
        if final_obs is not None:
            infos = {**infos, "final_obs": final_obs, "final_info": final_info, "_final_obs": done.copy(),
                     "_final_info": done.copy()}  # fmt: skip
        elif self.autoreset_mode == AutoresetMode.NEXT_STEP:
            self._autoreset = done
        else:
            self._ended = done
        return observations, rewards, terminated, truncated, infos

    def close_extras(self, **kwargs: Any) -> None:
        if self._closed:
            return
        self._closed = True
        for conn, proc in zip(self._conns, self._procs, strict=True):
            try:
                conn.send(("close", None))
                conn.recv()
            except (OSError, EOFError):
                pass
            proc.join(timeout=5)
            if proc.is_alive():
                proc.terminate()

    # -- per-env seeds and options (wrappers that reset envs themselves use these too) -------------------

    def seeds_for(self, seed) -> list[int | None]:
        """Per-env seeds of a reset: an int gives env i ``seed + i``, a list one per env, None none."""
        if seed is None:
            return [None] * self.num_envs
        if isinstance(seed, (int, np.integer)):
            return [int(seed) + i for i in range(self.num_envs)]
        seeds = list(seed)
        if len(seeds) != self.num_envs:
            raise ValueError(f"expected {self.num_envs} seeds, got {len(seeds)}")
        return seeds

    def env_options(self, options: dict[str, Any], i: int) -> dict[str, Any]:
        """Env i's options: a value meant for every env, or entry i of a per-env list."""
        out = {}
        for key, value in options.items():
            per_env = (key == "course" and isinstance(value, (list, tuple))) or (
                key == "obstacles" and isinstance(value, (list, tuple)) and value
                and not isinstance(value[0], (Cylinder, Box))) or (
                key == "goal" and isinstance(value, (list, tuple)) and len(value) == self.num_envs
                and (value[0] is None or isinstance(value[0], (list, tuple, np.ndarray))))  # fmt: skip
            if per_env and len(value) != self.num_envs:
                raise ValueError(f"option {key!r} lists {len(value)} entries for {self.num_envs} envs")
            out[key] = value[i] if per_env else value
        return out

    # -- internals --------------------------------------------------------------------------------------

    def _reset_envs(self, envs: list[int], seeds: list[int | None]) -> dict[int, Any]:
        """Reset these envs' episodes: seed (as gym.Env.reset does), simulator, controller history."""
        episode_seeds = {}
        for i in envs:
            if seeds[i] is not None or self._rngs[i] is None:
                self._rngs[i], _ = seeding.np_random(seeds[i])
            episode_seeds[i] = int(self._rngs[i].integers(2**31))
        states = self._call("reset", {i: (seed, self._starts[i]) for i, seed in episode_seeds.items()})
        for i in envs:
            self.controller.reset(states[i], seed=episode_seeds[i], robot=int(i))
            self.controller.set_task(None, robot=int(i))
        return states

    def _observations(self) -> dict[str, np.ndarray]:
        per_env = [logic.observation() for logic in self.logics]
        return {key: np.stack([o[key] for o in per_env]) for key in per_env[0]}


def env_info(infos: dict[str, Any], i: int) -> dict[str, Any]:
    """Env i's entries of a Gymnasium vector info dict (arrays with ``_key`` masks), final ones left out."""
    skip = ("final_obs", "final_info")
    return {k: v[i] for k, v in infos.items() if not k.startswith("_") and k not in skip and infos[f"_{k}"][i]}


def _autoreset_mode(value: str | AutoresetMode) -> AutoresetMode:
    """An ``AutoresetMode`` from itself, its value ('NextStep') or its name in any case ('same_step')."""
    if isinstance(value, AutoresetMode):
        return value
    for mode in AutoresetMode:
        if value in (mode.value, mode.name, mode.name.lower()):
            return mode
    raise ValueError(f"autoreset_mode must be one of {[m.name.lower() for m in AutoresetMode]}, got {value!r}")


def make_vector_env(num_envs: int = 2, **kwargs: Any) -> GuidedG1VectorEnv:
    """The ``vector_entry_point`` of ``BeyondMimicGuided-G1-v0`` (``gym.make_vec(..., vectorization_mode=
    "vector_entry_point")``); keyword arguments are ``GuidedEnvCfg`` fields or the vector env's own."""
    kwargs.pop("render_mode", None)
    return GuidedG1VectorEnv(num_envs=num_envs, **kwargs)
