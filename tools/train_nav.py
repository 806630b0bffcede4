"""Train a Stable-Baselines3 PPO agent that picks velocity commands to reach goals through random obstacle fields.

    python -m tools.train_nav --out runs/nav_ppo --timesteps 300000 --envs 16 --residual

The envs are the batched vector env (``make_navigation_vector_env``: N simulations in worker processes, all N
robots planned as one batch by the guided diffusion controller) behind SB3's ``VecEnv`` API. Rerunning the
same command resumes from ``OUT/latest.zip`` (written atomically every few minutes, with ``OUT/progress.json``:
steps and training wall time so far). Every ``--validate-every`` steps the agent runs one episode on each of
``--validation-envs`` held-out layouts (the same ones every time); the best so far by mean reward is kept in
``OUT/best.zip`` (its score in ``OUT/best.json``, the history in ``OUT/validation/evaluations.npz``). The env
options are kept in ``OUT/env_cfg.json`` (evaluation reads them); tensorboard logs in ``OUT/tb``. Evaluate with
``python -m tools.eval_nav --agent OUT/best.zip``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback, CallbackList, EvalCallback
from stable_baselines3.common.vec_env import VecEnv, VecMonitor

from bm_gym.envs.navigation import make_navigation_vector_env
from bm_gym.envs.sb3 import SB3VecEnv

ROLLOUT = 512  # env steps per PPO update, whatever the number of envs
# Layouts of the validation episodes: the training envs draw theirs from seeds 0..N-1, tools.eval_nav uses
# 10_000 + i, so these are seen by neither.
VALIDATION_SEED = 20_000


def save_atomically(model: PPO, path: Path) -> None:
    """``model.save(path)`` through a temp file, so that a kill mid-write leaves the previous file whole."""
    tmp = path.with_name(path.stem + ".tmp.zip")
    model.save(tmp)
    os.replace(tmp, path)


def write_json_atomically(path: Path, record: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record))
    os.replace(tmp, path)


class AtomicCheckpoint(BaseCallback):
    """Saves the model every ``every_s`` seconds to a temp file, then renames it over ``path``; beside it,
    ``progress.json`` keeps the steps and the training wall time summed over resumed runs.

    SB3's CheckpointCallback counts steps and writes in place; a kill mid-write would leave a broken zip.
    """

    def __init__(self, path: Path, every_s: float) -> None:
        super().__init__()
        self.path, self.every_s, self._last = path, every_s, time.monotonic()
        self.progress = path.with_name("progress.json")
        previous = json.loads(self.progress.read_text()) if self.progress.exists() else {}
        self._wall_before, self._start = float(previous.get("wall_s", 0.0)), time.monotonic()

    def save(self) -> None:
        save_atomically(self.model, self.path)
        wall = self._wall_before + time.monotonic() - self._start
        record = {"timesteps": int(self.model.num_timesteps), "wall_s": round(wall, 1)}
        write_json_atomically(self.progress, record)
        print(f"{record['timesteps']} steps, {record['wall_s'] / 60:.0f} min: saved {self.path}", flush=True)
        self._last = time.monotonic()

    def _on_step(self) -> bool:
        if time.monotonic() - self._last > self.every_s:
            self.save()
        return True


class Validation(EvalCallback):
    """SB3's ``EvalCallback`` on fixed held-out layouts, keeping the best agent in ``best.zip``.

    Each evaluation reseeds the validation envs (EvalCallback alone would draw new layouts every time, and
    scores would not compare) and runs one deterministic episode per env. A PPO run can get worse with more
    steps (an agent scored 17 / 20 at 134k steps and 12 / 20 at 227k, docs/benchmarks.md), so the best one
    validated, not the latest, is the agent to evaluate. The best score and the evaluation history are read
    back on resume, so a resumed run neither forgets them nor overwrites a better agent.
    """

    def __init__(self, eval_env: VecEnv, out: Path, seed: int, every_calls: int) -> None:
        super().__init__(eval_env, n_eval_episodes=eval_env.num_envs, eval_freq=every_calls,
                         log_path=str(out / "validation"), deterministic=True, verbose=0)  # fmt: skip
        self.seed, self.best_path = seed, out / "best.zip"
        best = self.best_path.with_suffix(".json")
        if best.exists() and self.best_path.exists():
            self.best_mean_reward = float(json.loads(best.read_text())["mean_reward"])
        history = out / "validation" / "evaluations.npz"
        if history.exists():
            with np.load(history) as log:
                self.evaluations_timesteps = log["timesteps"].tolist()
                self.evaluations_results = log["results"].tolist()
                self.evaluations_length = log["ep_lengths"].tolist()
                self.evaluations_successes = log["successes"].tolist() if "successes" in log else []

    def _on_step(self) -> bool:
        evaluating = self.eval_freq > 0 and self.n_calls % self.eval_freq == 0
        if evaluating:
            self.eval_env.seed(self.seed)
        best_before = self.best_mean_reward
        keep_going = super()._on_step()
        if evaluating:
            success = float(np.mean(self._is_success_buffer)) if self._is_success_buffer else float("nan")
            improved = self.best_mean_reward > best_before
            if improved:
                save_atomically(self.model, self.best_path)
                write_json_atomically(self.best_path.with_suffix(".json"), {
                    "timesteps": int(self.num_timesteps), "mean_reward": self.best_mean_reward,
                    "success_rate": success, "episodes": self.n_eval_episodes, "seed": self.seed})  # fmt: skip
            print(f"{self.num_timesteps} steps: validation mean reward {self.last_mean_reward:.2f}, "
                  f"goals {success:.0%}" + (f", best so far: saved {self.best_path}" if improved else ""),
                  flush=True)  # fmt: skip
        return keep_going


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/nav_ppo"))
    parser.add_argument("--timesteps", type=int, default=30_000, help="total env steps (0.2 s each by default)")
    parser.add_argument("--envs", type=int, default=16, help="robots simulated and planned together")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--control-steps", type=int, default=10)
    parser.add_argument("--actions-per-plan", type=int, default=1)
    parser.add_argument("--residual", action="store_true", help="act as a correction of the straight-line command")
    parser.add_argument("--checkpoint-every-s", type=float, default=180.0)
    parser.add_argument("--validate-every", type=int, default=20_000, help="env steps between validations; 0: none")
    parser.add_argument("--validation-envs", type=int, default=16, help="held-out layouts per validation")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    env_cfg = {
        "control_steps": args.control_steps,
        "actions_per_plan": args.actions_per_plan,
        "residual": args.residual,
    }
    cfg_file = args.out / "env_cfg.json"
    if cfg_file.exists() and json.loads(cfg_file.read_text()) != env_cfg:
        raise SystemExit(f"{args.out} was trained with {cfg_file.read_text()}; use the same options or another --out")
    cfg_file.write_text(json.dumps(env_cfg))
    vec = VecMonitor(SB3VecEnv(make_navigation_vector_env(args.envs, **env_cfg)))
    latest = args.out / "latest.zip"
    if latest.exists():
        model = PPO.load(latest, env=vec, device="cpu", tensorboard_log=str(args.out / "tb"))
        print(f"resuming from {latest} at {model.num_timesteps} steps")
    else:
        model = PPO(
            "MlpPolicy", vec, n_steps=max(8, ROLLOUT // args.envs), batch_size=128, n_epochs=10, gamma=0.98,
            learning_rate=3e-4,
            ent_coef=0.0, policy_kwargs={"net_arch": [128, 128]}, tensorboard_log=str(args.out / "tb"),
            seed=args.seed, device="cpu", verbose=0,
        )  # fmt: skip
    checkpoint = AtomicCheckpoint(latest, args.checkpoint_every_s)
    callbacks, validation_env = [checkpoint], None
    if args.validate_every > 0:
        validation_env = VecMonitor(SB3VecEnv(make_navigation_vector_env(args.validation_envs, **env_cfg)))
        every_calls = max(1, args.validate_every // args.envs)
        callbacks.append(Validation(validation_env, args.out, VALIDATION_SEED, every_calls))
    remaining = args.timesteps - model.num_timesteps
    if remaining > 0:
        model.learn(remaining, callback=CallbackList(callbacks), reset_num_timesteps=False, tb_log_name="ppo")
    checkpoint.save()
    vec.close()
    if validation_env is not None:
        validation_env.close()
    print(f"saved {latest} at {model.num_timesteps} steps")


if __name__ == "__main__":
    main()
