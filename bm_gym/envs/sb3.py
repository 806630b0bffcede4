"""Stable-Baselines3 on vector envs: ``SB3VecEnv`` adapts a Gymnasium ``VectorEnv`` (the batched
:class:`GuidedG1VectorEnv` or a wrapper of it, such as the navigation task) to SB3's ``VecEnv``.

SB3 wants the old vector API: ``reset()`` returns observations only, ``step`` is split into ``step_async`` /
``step_wait``, finished envs reset within the same step and keep their last observation in
``info["terminal_observation"]``, and truncation is reported as ``info["TimeLimit.truncated"]``. Gymnasium's
``same_step`` autoreset mode gives exactly that, so the adapted env must use it. An ended env's info is its last
step's (``final_info``), as in SB3's own vector envs; its ``success`` (the navigation task's) is also given as
``is_success``, the key SB3's ``EvalCallback`` and logger count.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from stable_baselines3.common.vec_env.base_vec_env import VecEnv

from bm_gym.envs.vector_env import GuidedG1VectorEnv, env_info


class SB3VecEnv(VecEnv):
    """SB3 ``VecEnv`` over a Gymnasium vector env in ``same_step`` autoreset mode (default: N guided envs planned
    as one batch, built from ``env_kwargs``); ``flatten`` turns a Dict observation into a Box (as
    ``gymnasium.wrappers.FlattenObservation`` does for single envs) for ``MlpPolicy``."""

    def __init__(self, venv: VectorEnv | None = None, num_envs: int = 2, flatten: bool = True,
                 **env_kwargs: Any) -> None:  # fmt: skip
        if venv is None:
            venv = GuidedG1VectorEnv(num_envs=num_envs, autoreset_mode=AutoresetMode.SAME_STEP, **env_kwargs)
        elif env_kwargs:
            raise TypeError(f"env options {sorted(env_kwargs)} given with an already built vector env")
        if venv.metadata.get("autoreset_mode") != AutoresetMode.SAME_STEP:
            raise ValueError(f"SB3VecEnv needs a vector env in same_step autoreset mode, got "
                             f"{venv.metadata.get('autoreset_mode')}")  # fmt: skip
        self.venv = venv
        self.flatten = flatten and isinstance(venv.single_observation_space, spaces.Dict)
        self._dict_space = venv.single_observation_space
        observation_space = spaces.flatten_space(self._dict_space) if self.flatten else self._dict_space
        super().__init__(venv.num_envs, observation_space, venv.single_action_space)
        self._actions: np.ndarray | None = None
        self._seeds: list[int | None] = [None] * venv.num_envs
        self._options: dict[str, Any] = {}

    def _convert(self, obs: dict[str, np.ndarray]) -> np.ndarray | dict[str, np.ndarray]:
        if not self.flatten:
            return obs
        return np.stack([spaces.flatten(self._dict_space, {k: v[i] for k, v in obs.items()})
                         for i in range(self.num_envs)])  # fmt: skip

    def reset(self):
        seeds = self._seeds if any(s is not None for s in self._seeds) else None
        obs, infos = self.venv.reset(seed=seeds, options=self._options or None)
        self._seeds = [None] * self.num_envs
        self.reset_infos = [env_info(infos, i) for i in range(self.num_envs)]
        return self._convert(obs)

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions)

    def step_wait(self):
        obs, rewards, terminated, truncated, infos = self.venv.step(self._actions)
        dones = terminated | truncated
        out = [env_info(infos, i) for i in range(self.num_envs)]
        if dones.any():
            final = self._convert(infos["final_obs"])
            for i in np.flatnonzero(dones):
                self.reset_infos[i] = out[i]  # the new episode's; SB3 wants the ended one's in the step's info
                out[i] = env_info(infos["final_info"], i)
                out[i]["terminal_observation"] = final[i] if self.flatten else {k: v[i] for k, v in final.items()}
                out[i]["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
                if "success" in out[i]:
                    out[i]["is_success"] = bool(out[i]["success"])
        return self._convert(obs), rewards.astype(np.float32), dones, out

    def seed(self, seed: int | None = None):
        self._seeds = [None if seed is None else seed + i for i in range(self.num_envs)]
        return self._seeds

    def set_options(self, options: dict[str, Any] | list[dict] | None = None) -> None:
        """Options for the next reset (``{"obstacles": ..., "goal": ...}``, see the vector env)."""
        self._options = dict(options or {})

    def close(self) -> None:
        self.venv.close()

    def get_attr(self, attr_name: str, indices=None) -> list[Any]:
        return [getattr(self.venv, attr_name) for _ in self._indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices=None) -> None:
        setattr(self.venv, attr_name, value)

    def env_method(self, method_name: str, *method_args, indices=None, **method_kwargs) -> list[Any]:
        return [getattr(self.venv, method_name)(*method_args, **method_kwargs) for _ in self._indices(indices)]

    def env_is_wrapped(self, wrapper_class, indices=None) -> list[bool]:
        return [False for _ in self._indices(indices)]

    def _indices(self, indices) -> list[int]:
        if indices is None:
            return list(range(self.num_envs))
        return [indices] if isinstance(indices, int) else list(indices)
