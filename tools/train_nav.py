"""Train a Stable-Baselines3 PPO agent that picks velocity commands to reach goals through random obstacle fields.

    python -m tools.train_nav --out runs/nav_ppo --timesteps 300000 --envs 16 --residual

The envs are the batched vector env (``make_navigation_vector_env``: N simulations in worker processes, all N
robots planned as one batch by the guided diffusion controller) behind SB3's ``VecEnv`` API. Rerunning the
same command resumes from ``OUT/latest.zip`` (written atomically every few minutes, with ``OUT/progress.json``:
steps and training wall time so far). The env options are kept in ``OUT/env_cfg.json`` (evaluation reads
them); tensorboard logs in ``OUT/tb``. Evaluate with ``python -m tools.eval_nav --agent OUT/latest.zip``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecMonitor

from bm_gym.envs.navigation import make_navigation_vector_env
from bm_gym.envs.sb3 import SB3VecEnv

ROLLOUT = 512  # env steps per PPO update, whatever the number of envs


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
        tmp = self.path.with_name(self.path.stem + ".tmp.zip")
        self.model.save(tmp)
        os.replace(tmp, self.path)
        wall = self._wall_before + time.monotonic() - self._start
        record = {"timesteps": int(self.model.num_timesteps), "wall_s": round(wall, 1)}
        self.progress.with_suffix(".tmp").write_text(json.dumps(record))
        os.replace(self.progress.with_suffix(".tmp"), self.progress)
        print(f"{record['timesteps']} steps, {record['wall_s'] / 60:.0f} min: saved {self.path}", flush=True)
        self._last = time.monotonic()

    def _on_step(self) -> bool:
        if time.monotonic() - self._last > self.every_s:
            self.save()
        return True


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
    remaining = args.timesteps - model.num_timesteps
    if remaining > 0:
        model.learn(remaining, callback=checkpoint, reset_num_timesteps=False, tb_log_name="ppo")
    checkpoint.save()
    vec.close()
    print(f"saved {latest} at {model.num_timesteps} steps")


if __name__ == "__main__":
    main()
