"""One constructor for every backend, by name: what ``--backend`` in the tools and ``GuidedEnvCfg.backend`` use."""

from __future__ import annotations

import functools
import importlib.util

from bm_gym.sim.backend import SimBackend
from bm_gym.sim.randomization import DomainRandomizationCfg

BACKENDS = ("mujoco", "isaaclab")


def backend_problem(name: str) -> str | None:
    """Why backend ``name`` cannot run in this interpreter (unknown, or Isaac Lab not installed), else None."""
    if name not in BACKENDS:
        return f"unknown backend {name!r}; choose one of {BACKENDS}"
    if name == "isaaclab" and importlib.util.find_spec("isaaclab") is None:
        return ("the isaaclab backend needs Isaac Lab 3 (Python 3.12), which this interpreter lacks: run `bash "
                "scripts/setup.sh --isaaclab` and use .venv-isaaclab/bin/python")  # fmt: skip
    return None


def make_backend(
    name: str = "mujoco",
    randomization: DomainRandomizationCfg | None = None,
    obstacle_pool: int | None = None,
    solver: str | None = None,
    num_envs: int | None = None,
) -> SimBackend:
    """A G1 simulation: ``"mujoco"`` (embedded, CPU) or ``"isaaclab"`` (Isaac Lab 3 on Newton, its own venv).

    ``solver`` picks Newton's MuJoCo path for Isaac Lab (``"mujoco_cpu"`` or ``"mujoco_warp"``) and ``num_envs``
    its number of worlds (robots); ``None`` keeps each backend's default pool size, solver and one robot.
    """
    if name == "mujoco":
        from bm_gym.sim.mujoco_backend import MujocoBackend, MujocoBackendCfg

        if solver is not None or num_envs not in (None, 1):
            raise ValueError("solver and num_envs > 1 apply to the isaaclab backend only")
        pool = {} if obstacle_pool is None else {"obstacle_pool": obstacle_pool}
        return MujocoBackend(MujocoBackendCfg(randomization=randomization, **pool))
    if name == "isaaclab":
        from bm_gym.sim.isaaclab_backend import IsaacLabBackend, IsaacLabBackendCfg

        options = {"obstacle_pool": obstacle_pool, "solver": solver, "num_envs": num_envs}
        return IsaacLabBackend(
            IsaacLabBackendCfg(randomization=randomization, **{k: v for k, v in options.items() if v is not None})
        )
    raise ValueError(f"unknown backend {name!r}; choose one of {BACKENDS}")


@functools.cache
def process_backend(name: str = "mujoco", randomization: DomainRandomizationCfg | None = None) -> SimBackend:
    """One backend per worker process and settings, reused by every episode that process runs.

    Episodes start with a seeded ``reset`` and set their own obstacles, so reuse changes no result; it saves
    a scene build per episode (seconds for Isaac Lab, whose simulation is also one per process).
    """
    return make_backend(name, randomization=randomization)
