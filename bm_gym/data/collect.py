"""Collect Stage 1 expert rollouts (with domain randomization and exploration noise) into an HDF5 dataset.

Each finished episode is written atomically to ``<out>.shards/`` by the worker that ran it; the dataset
file is rebuilt from the shards (atomically) every few minutes and at the end. A killed run loses only
the episodes in flight; rerunning the same command resumes where it stopped.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import multiprocessing as mp
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
from tqdm import tqdm

from bm_gym.data.dataset import window_stats
from bm_gym.data.hdf5 import Episode, read_shard, write_dataset, write_shard
from bm_gym.data.schedules import CommandScheduleCfg, sample_schedule
from bm_gym.data.state import STATE_KINDS, StateLayout
from bm_gym.robot import g1
from bm_gym.sim import (
    BACKENDS,
    DomainRandomizationCfg,
    MujocoBackendCfg,
    RobotState,
    backend_problem,
    has_fallen,
    make_backend,
)
from bm_gym.stage1 import Stage1Policy
from bm_gym.stage1.policy import find_motion
from bm_gym.utils.checks import is_finite, positive_finite, positive_int, require
from bm_gym.utils.files import atomic_write_text

#: Settings that may change between runs of one collection: how many episodes, how fast, and where the folder is.
RESUMABLE_CHANGES = ("episodes", "workers", "merge_every_s", "out", "envs_per_worker")


NOISE_KINDS = ("gaussian", "ou")


class CoDriver(Protocol):
    """A second controller that takes the robot over from the expert for stretches of an episode (a diffusion
    student in DAgger-style collection); built in each worker by the factory given to :class:`Collector`."""

    def begin(self, states: list[RobotState], actions: list[np.ndarray], seed: int) -> None:
        """Take over inside the episode; ``states`` and ``actions`` are the steps so far (oldest first); ``seed``
        fixes the co-driver's randomness for the stretch, so an episode does not depend on the ones before it."""

    def act(self, state: RobotState, command: np.ndarray) -> np.ndarray:
        """Joint targets (simulator order) for this step under the velocity command (vx, vy, wz)."""


#: Builds a worker's co-driver from the checkpoint named in :class:`StudentCfg` and a seed.
CoDriverFactory = Callable[[str, int], CoDriver]


@dataclass(frozen=True)
class StudentCfg:
    """DAgger-style collection: a student drives stretches of each episode on the episode's commands and the
    expert takes over again. Its steps are recorded (marked ``expert_driven`` False) and kept out of training
    targets, so the windows right after a hand-back teach recovery from the states the student leads to."""

    checkpoint: str  # the student (a diffusion checkpoint folder)
    first_s: tuple[float, float] = (2.0, 4.0)  # the expert's lead before the first hand-over
    student_s: tuple[float, float] = (0.4, 2.0)  # each stretch the student drives
    expert_s: tuple[float, float] = (1.0, 3.0)  # each stretch the expert drives between them

    def __post_init__(self) -> None:
        require(isinstance(self.checkpoint, str) and bool(self.checkpoint), "StudentCfg", "checkpoint",
                self.checkpoint, "a checkpoint folder")  # fmt: skip
        for name in ("first_s", "student_s", "expert_s"):
            low, high = getattr(self, name)
            require(is_finite(low) and is_finite(high) and 0 < low <= high, "StudentCfg", name, getattr(self, name),
                    "(low, high) seconds with 0 < low <= high")  # fmt: skip

    def drivers(self, rng: np.random.Generator, steps: int, dt: float) -> np.ndarray:
        """[steps] bool, True where the expert drives: the lead, then student and expert stretches in turn."""
        expert = np.ones(steps, bool)
        t = round(rng.uniform(*self.first_s) / dt)
        while t < steps:
            length = max(1, round(rng.uniform(*self.student_s) / dt))
            expert[t : t + length] = False
            t += length + max(1, round(rng.uniform(*self.expert_s) / dt))
        return expert


@dataclass(frozen=True)
class CollectCfg:
    policy: str  # Stage 1 policy folder or file
    out: str  # dataset path (.h5)
    episodes: int = 180
    episode_s: float = 20.0
    workers: int = 2
    seed: int = 0
    motion: str | None = None  # a tracking policy's reference motion; None: the one in the policy folder
    motion_fps: float | None = None  # for CSV motions of tracking policies
    source: str = ""  # name recorded with every episode (collection manifests)
    # Exploration noise on the executed action, in units of the policy's raw action (clean targets are recorded):
    # "gaussian": white noise, per-episode std drawn from action_noise; "ou": Ornstein-Uhlenbeck, joint-wise,
    # dx = ou_theta (0 - x) dt + ou_sigma sqrt(dt) N(0, 1) at the control rate (the paper's v4: 0.8, 0, 0.1).
    noise: str = "gaussian"
    action_noise: tuple[float, float] = (0.0, 0.15)  # per-episode std, in units of the policy's raw action
    ou_theta: float = 0.8
    ou_sigma: float = 0.1
    noise_free_share: float = 0.2  # share of episodes recorded without exploration noise
    randomization: DomainRandomizationCfg | None = field(default_factory=DomainRandomizationCfg)
    schedule: CommandScheduleCfg = field(default_factory=CommandScheduleCfg)
    merge_every_s: float = 180.0
    backend: str = "mujoco"  # simulator of the rollouts (bm_gym.sim.BACKENDS); "isaaclab" needs its own venv
    # Episodes each worker rolls out at once, one Newton world each (isaaclab on MuJoCo-Warp: a GPU's path).
    envs_per_worker: int = 1
    stats_history: int = 4
    stats_horizon: int = 16
    state: str = "joint"  # the state layout recorded (bm_gym.data.state.STATE_KINDS; "body-pos": the paper's)
    student: StudentCfg | None = None  # DAgger-style: a student drives stretches of every episode (velocity only)

    def __post_init__(self) -> None:
        name = "CollectCfg"
        positive_int(name, "episodes", self.episodes)
        positive_int(name, "workers", self.workers)
        positive_finite(name, "episode_s", self.episode_s)
        steps = round(self.episode_s / MujocoBackendCfg().control_dt)
        window = self.stats_history + self.stats_horizon + 1
        require(steps >= window, name, "episode_s", self.episode_s,
                f"at least {window * MujocoBackendCfg().control_dt:.2f} s ({window} control steps: one training "
                f"window of {self.stats_history} + 1 + {self.stats_horizon} steps)")  # fmt: skip
        low, high = self.action_noise
        require(is_finite(low) and is_finite(high) and 0 <= low <= high, name, "action_noise", self.action_noise,
                "(low, high) with 0 <= low <= high")  # fmt: skip
        require(is_finite(self.noise_free_share) and 0 <= self.noise_free_share <= 1, name, "noise_free_share",
                self.noise_free_share, "in [0, 1]")  # fmt: skip
        positive_finite(name, "merge_every_s", self.merge_every_s)
        require(self.noise in NOISE_KINDS, name, "noise", self.noise, f"one of {', '.join(NOISE_KINDS)}")
        require(self.backend in BACKENDS, name, "backend", self.backend, f"one of {', '.join(BACKENDS)}")
        positive_int(name, "envs_per_worker", self.envs_per_worker)
        require(self.state in STATE_KINDS, name, "state", self.state, f"one of {', '.join(STATE_KINDS)}")
        require(self.envs_per_worker == 1 or self.backend == "isaaclab", name, "envs_per_worker",
                self.envs_per_worker, "1 unless backend is 'isaaclab' (several Newton worlds per process)")  # fmt: skip
        positive_finite(name, "ou_theta", self.ou_theta)
        positive_finite(name, "ou_sigma", self.ou_sigma, allow_zero=True)
        if self.motion_fps is not None:
            positive_finite(name, "motion_fps", self.motion_fps)
        require(self.student is None or self.motion is None, name, "student", self.student,
                "None for tracking policies: the student is steered by velocity commands")  # fmt: skip
        require(self.student is None or self.envs_per_worker == 1, name, "student", self.student,
                "None with several worlds per worker: the student plans for one robot")  # fmt: skip

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), default=str, sort_keys=True)


def _check_student(cfg: CollectCfg, factory: CoDriverFactory | None, policy: Stage1Policy | None = None) -> None:
    """A student needs a factory to build it and a velocity policy to co-drive with (given ``policy``)."""
    if cfg.student is None:
        return
    if factory is None:
        raise ValueError("CollectCfg.student is set but no co-driver factory was given (tools.data passes "
                         "bm_gym.controller.student_co_driver)")  # fmt: skip
    if policy is not None and policy.motion is not None:
        raise ValueError(f"{cfg.policy} is a tracking policy; a student co-drives velocity policies only")


def episode_seed(cfg: CollectCfg, index: int) -> int:
    """Every episode's randomness depends only on (run seed, episode index), so resumed runs match."""
    return int(np.random.SeedSequence([cfg.seed, index]).generate_state(1)[0])


class EpisodeRunner:
    """Owns one simulator and policy per robot (one runner per worker process) and records episodes.

    With ``envs_per_worker`` N > 1 the simulator holds N worlds and N episodes run in lockstep; one world is the
    N = 1 case of the same loop. An episode's randomness depends only on its index, so batching changes no data.
    """

    def __init__(self, cfg: CollectCfg, co_driver_factory: CoDriverFactory | None = None) -> None:
        self.cfg = cfg
        n = cfg.envs_per_worker
        self.policies = [Stage1Policy.load(cfg.policy, motion=cfg.motion, motion_fps=cfg.motion_fps) for _ in range(n)]
        _check_student(cfg, co_driver_factory, self.policies[0])
        self.co_driver = None if cfg.student is None else co_driver_factory(cfg.student.checkpoint, cfg.seed)
        self.backend = make_backend(cfg.backend, randomization=cfg.randomization,
                                    **({"solver": "mujoco_warp", "num_envs": n} if n > 1 else {}))  # fmt: skip
        self.policies[0].apply_gains(self.backend)
        self.layout = StateLayout.named(cfg.state)
        motion_file = cfg.motion or (find_motion(Path(cfg.policy)) if self.policies[0].motion is not None else None)
        self.motion_name = Path(motion_file).stem if motion_file else ""

    def run(self, index: int) -> Episode:
        return self.run_batch([index])[0]

    def run_batch(self, indices: list[int]) -> list[Episode]:
        """Episodes ``indices`` (at most ``envs_per_worker``), one per world, stepped together."""
        backend = self.backend
        rollouts = [_Rollout(self, env, index) for env, index in enumerate(indices)]
        spare = [np.array(g1.DEFAULT_JOINT_POS)] * (self.cfg.envs_per_worker - len(rollouts))  # worlds left idle
        while any(r.running for r in rollouts):
            targets = [r.act() if r.running else r.last for r in rollouts] + spare  # ended ones hold their pose
            states = backend.step_all(np.stack(targets)) if len(targets) > 1 else [backend.step(targets[0])]
            for rollout, state in zip(rollouts, states, strict=False):
                if rollout.running:
                    rollout.observe(state)
        return [r.episode() for r in rollouts]


class _Rollout:
    """One episode in one world: its seeded schedule and noise, the recording, and whether it has ended."""

    def __init__(self, runner: EpisodeRunner, env: int, index: int) -> None:
        cfg, backend = runner.cfg, runner.backend
        self.runner, self.index, self.policy = runner, index, runner.policies[env]
        policy = self.policy
        self.seed = episode_seed(cfg, index)
        self.rng = rng = np.random.default_rng(self.seed)
        steps = round(cfg.episode_s / backend.control_dt)
        start_frame = 0
        if policy.motion is not None:
            steps = min(steps, policy.motion.num_frames - 1)
            start_frame = int(rng.integers(0, policy.motion.num_frames - steps))
            self.commands = np.zeros((steps, 3))
        else:
            self.commands = sample_schedule(rng, steps, backend.control_dt, cfg.schedule,
                                            policy.conventions.command_ranges)  # fmt: skip
        noisy_episode = rng.random() >= cfg.noise_free_share
        self.noise_std = rng.uniform(*cfg.action_noise) if noisy_episode and cfg.noise == "gaussian" else 0.0
        self.noise_scale = np.zeros(len(backend.joint_names))
        self.noise_scale[policy.conventions.sim_index] = policy.conventions.action_scale
        self.ou = np.zeros(len(backend.joint_names)) if noisy_episode and cfg.noise == "ou" else None
        root, q, dq = policy.initial_state(start_frame)
        reset = {"env": env} if cfg.envs_per_worker > 1 else {}
        self.state = backend.reset(root, q, dq, seed=self.seed, **reset)
        policy.reset(start_frame)
        layout = runner.layout
        self.states = np.empty((steps, layout.dim), np.float32)
        self.actions = np.empty((steps, layout.action_dim), np.float32)
        self.applied = np.empty_like(self.actions)
        self.frames = np.full(steps, -1, np.int32)
        self.pushed = np.zeros(steps, bool)
        self.t, self.length, self.fell, self.running = 0, steps, False, steps > 0
        self.last = q.copy()
        student = cfg.student if runner.co_driver is not None else None
        # a stream of its own: commands, randomization and the expert's lead are drawn as without a student
        self.expert_driven = (student.drivers(np.random.default_rng([self.seed, 1]), steps, backend.control_dt)
                              if student is not None else None)  # fmt: skip
        self.recent: deque[tuple] = deque(maxlen=RECENT_STEPS)  # (state, action) pairs a co-driver starts from

    def act(self) -> np.ndarray:
        """Record the state, then the expert's action and the noisy one that is executed."""
        cfg, policy, t = self.runner.cfg, self.policy, self.t
        self.states[t] = self.runner.layout.encode(self.state)
        self.frames[t] = policy.frame if policy.motion is not None else -1
        expert = policy.act(self.state, self.commands[t])  # also when the student drives: it keeps its history
        dt = self.runner.backend.control_dt
        if self.expert_driven is not None and not self.expert_driven[t]:
            co_driver = self.runner.co_driver
            if t == 0 or self.expert_driven[t - 1]:
                states, actions = zip(*self.recent, strict=True) if self.recent else ((self.state,), (self.last,))
                stretch_seed = int(np.random.SeedSequence([self.seed, 2, t]).generate_state(1)[0])
                co_driver.begin(list(states), list(actions), stretch_seed)
            action = np.asarray(co_driver.act(self.state, self.commands[t]), dtype=np.float64)
            policy.follow(action)
            self.actions[t], self.applied[t], self.last = action, action, action
            self.recent.append((self.state, action))
            return action
        if self.ou is not None:
            self.ou += -cfg.ou_theta * self.ou * dt + cfg.ou_sigma * np.sqrt(dt) * self.rng.normal(size=self.ou.shape)
            noisy = expert + self.ou * self.noise_scale
        else:
            noisy = expert + self.rng.normal(size=expert.shape) * self.noise_std * self.noise_scale
        self.actions[t], self.applied[t], self.last = expert, noisy, noisy
        self.recent.append((self.state, expert))
        return noisy

    def observe(self, state) -> None:
        policy = self.policy
        self.pushed[self.t] = state.pushed
        self.state, self.t = state, self.t + 1
        motion = policy.motion
        reference = motion.root_pos[min(policy.frame, motion.num_frames - 1), 2] if motion is not None else None
        if has_fallen(state, reference):
            self.fell, self.length, self.running = True, self.t, False
        elif self.t >= self.length:
            self.running = False

    def episode(self) -> Episode:
        n, cfg = self.length, self.runner.cfg
        driven = None if self.expert_driven is None else self.expert_driven[:n]
        return Episode(self.index, self.states[:n], self.actions[:n], self.applied[:n],
                       self.commands[:n].astype(np.float32), self.frames[:n], self.fell, self.seed, cfg.source,
                       self.runner.motion_name, driven, self.pushed[:n])  # fmt: skip


#: Steps of (state, action) kept for a co-driver to start from: more than any model's history.
RECENT_STEPS = 32

_runner: EpisodeRunner | None = None


def _run_and_save(args: tuple[CollectCfg, CoDriverFactory | None, list[int], list[str]]) -> list[tuple[int, int, bool]]:
    """Worker task: episodes ``indices`` (one per world), each written to its shard. The runner is built on first
    use, not in a pool initializer: an initializer that raises makes ``multiprocessing.Pool`` respawn workers
    forever, while a task's exception reaches the parent."""
    global _runner
    cfg, co_driver_factory, indices, shards = args
    if _runner is None:
        _runner = EpisodeRunner(cfg, co_driver_factory)
    done = []
    for episode, shard in zip(_runner.run_batch(indices), shards, strict=True):
        write_shard(Path(shard), episode)
        done.append((episode.index, len(episode), episode.fell))
    return done


class CollectionLocked(RuntimeError):
    """Another collector is writing the same dataset."""


class Collector:
    def __init__(self, cfg: CollectCfg, co_driver_factory: CoDriverFactory | None = None) -> None:
        """``co_driver_factory`` (a module-level function, sent to the workers) builds the student of
        ``cfg.student``; the data layer knows only its :class:`CoDriver` protocol."""
        _check_student(cfg, co_driver_factory)
        self.cfg = cfg
        self.co_driver_factory = co_driver_factory
        self.out = Path(cfg.out)
        self.shards = self.out.with_name(self.out.name + ".shards")

    def shard_path(self, index: int) -> Path:
        return self.shards / f"episode_{index:06d}.h5"

    def check(self) -> Stage1Policy:
        """Everything that can be wrong before a rollout starts: the simulator, the output path and the policy
        (loaded here)."""
        problem = backend_problem(self.cfg.backend)
        if problem:
            raise ValueError(problem)
        if self.out.is_dir():
            raise ValueError(f"--out {self.out} is a directory; give a dataset file such as {self.out / 'data.h5'}")
        self.out.parent.mkdir(parents=True, exist_ok=True)
        policy = Stage1Policy.load(self.cfg.policy, motion=self.cfg.motion, motion_fps=self.cfg.motion_fps)
        _check_student(self.cfg, self.co_driver_factory, policy)
        if self.cfg.student is not None:
            self.co_driver_factory(self.cfg.student.checkpoint, self.cfg.seed)  # a student that fails to load stops
        return policy

    def _check_resume(self) -> None:
        """Refuse to mix episodes from a different configuration into the same dataset."""
        record = self.shards / "collect_cfg.json"
        now = json.loads(self.cfg.to_json())
        if record.exists():
            try:
                before = json.loads(record.read_text())
                if not isinstance(before, dict):
                    raise ValueError("not a JSON object")
            except (OSError, ValueError) as err:
                raise ValueError(
                    f"{record} is unreadable ({err}); it records the settings of the episodes in {self.shards}: "
                    "delete the folder to start over"
                ) from err
            fixed = [k for k in now if k not in RESUMABLE_CHANGES]
            defaults = {f.name: json.loads(json.dumps(f.default, default=str)) for f in dataclasses.fields(CollectCfg)
                        if f.default is not dataclasses.MISSING}  # fmt: skip
            # a setting added since that run counts as its default
            changed = {k: (before.get(k, defaults.get(k)), now[k]) for k in fixed
                       if before.get(k, defaults.get(k)) != now[k]}  # fmt: skip
            if changed:
                raise ValueError(f"{self.shards} was collected with other settings {changed}; use another --out")
        self.shards.mkdir(parents=True, exist_ok=True)
        atomic_write_text(record, self.cfg.to_json())

    def pending(self) -> list[int]:
        return [i for i in range(self.cfg.episodes) if not self.shard_path(i).exists()]

    def run(self, progress: bool = True) -> int:
        """Collect every missing episode, then write the dataset; returns how many episodes this run added."""
        self.check()
        self.shards.mkdir(parents=True, exist_ok=True)
        with _exclusive_lock(self.shards / ".lock", self.out):
            self._check_resume()
            for stale in self.shards.glob("*.tmp"):
                stale.unlink()  # episodes that were in flight when a previous run was killed
            todo = self.pending()
            last_merge = time.monotonic()
            bar = tqdm(total=self.cfg.episodes, initial=self.cfg.episodes - len(todo), unit="ep", disable=not progress)
            if todo:
                ctx = mp.get_context("spawn")
                with ctx.Pool(min(self.cfg.workers, len(todo))) as pool:
                    n = self.cfg.envs_per_worker
                    batches = [todo[k : k + n] for k in range(0, len(todo), n)]
                    tasks = [(self.cfg, self.co_driver_factory, batch, [str(self.shard_path(i)) for i in batch])
                             for batch in batches]  # fmt: skip
                    for done in pool.imap_unordered(_run_and_save, tasks):
                        bar.update(len(done))
                        if time.monotonic() - last_merge > self.cfg.merge_every_s:
                            self.merge()
                            last_merge = time.monotonic()
            bar.close()
            self.merge()
        return len(todo)

    def merge(self) -> None:
        """Rebuild the dataset file from all finished shards (atomic: the old file survives a kill)."""
        done = [i for i in range(self.cfg.episodes) if self.shard_path(i).exists()]
        episodes = [read_shard(self.shard_path(i), i) for i in done]
        layout = StateLayout.named(self.cfg.state)
        healthy = [e for e in episodes if not e.fell] or episodes
        stats = window_stats(healthy, layout, self.cfg.stats_history, self.cfg.stats_horizon)
        policy = Stage1Policy.load(self.cfg.policy, motion=self.cfg.motion, motion_fps=self.cfg.motion_fps)
        attrs = {
            "control_dt": MujocoBackendCfg().control_dt,
            "state_layout": layout.to_json(),
            "source_policy": str(Path(self.cfg.policy).resolve()),
            "policy_conventions": policy.conventions.to_json(),
            "collect_cfg": self.cfg.to_json(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        write_dataset(self.out, episodes, attrs, stats, {"history": self.cfg.stats_history,
                                                         "horizon": self.cfg.stats_horizon})  # fmt: skip


@contextlib.contextmanager
def _exclusive_lock(path: Path, out: Path):
    """Hold an exclusive advisory lock on ``path`` (released by the OS if the process dies)."""
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise CollectionLocked(f"another collector is writing {out} (it holds {path}); wait for it or use "
                                   "another --out") from None  # fmt: skip
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
