"""Navigation through random obstacle fields: an SB3 agent vs the straight-line command baseline.

    python -m tools.eval_nav --agent baseline --episodes 20
    python -m tools.eval_nav --agent runs/nav_ppo/best.zip --episodes 20
    python -m tools.eval_nav --agent navigate --episodes 20   # no agent: the env's routed waypoint mode

Security: a saved SB3 agent is loaded with ``PPO.load``, which unpickles Python objects stored in the .zip and
so can run code. Evaluate only agent files you made or trust.

Both run on the same seeded courses (seeds 10_000 + i, disjoint from training and from ``tools.train_nav``'s
validation; ``--first-seed`` for others) and the same env settings; prints goals reached, collisions, falls
and mean time to goal.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
from pathlib import Path

import numpy as np

EVAL_SEED = 10_000


def run_episode(job: tuple[str, int, dict]) -> dict:
    from gymnasium.wrappers import FlattenObservation

    from bm_gym.envs.navigation import (
        make_navigation_env,
        make_waypoint_navigation_env,
        straight_line_command,
        to_unit_action,
    )  # fmt: skip

    agent_path, seed, env_cfg = job
    model = None
    if agent_path == "navigate":  # the goal itself as a world-frame waypoint command (NavigateTask inside)
        env = make_waypoint_navigation_env(**env_cfg)
    else:
        env = make_navigation_env(flatten=False, **env_cfg)
    if agent_path not in ("baseline", "navigate"):
        from stable_baselines3 import PPO

        model, flatten = PPO.load(agent_path, device="cpu"), FlattenObservation(env)
    obs, info = env.reset(seed=seed)
    done, collisions, steps = False, 0, 0
    while not done:
        if agent_path == "navigate":
            action = np.asarray(env.unwrapped.goal, dtype=np.float32)
        elif model is None:
            action = to_unit_action(straight_line_command(obs["goal"][:2]))
        else:
            action, _ = model.predict(flatten.observation(obs), deterministic=True)
        obs, _, terminated, truncated, info = env.step(action)
        collisions += info["collisions"] > 0
        steps += 1
        done = terminated or truncated
    result = {"seed": seed, "success": bool(info["success"] and info["episode_collisions"] == 0),
              "reached": bool(info["success"]), "fell": bool(info["fell"]),
              "collision_steps": int(info["episode_collisions"]), "seconds": float(info["time"])}  # fmt: skip
    env.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agent", default="baseline",
                        help="'baseline', 'navigate' or a saved SB3 PPO .zip; SB3 unpickles Python objects from "
                             "the .zip (PPO.load), so load only agents you trust")  # fmt: skip
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--first-seed", type=int, default=EVAL_SEED, help="layout seeds: this one and the next")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--control-steps", type=int, default=10)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    env_cfg = {"control_steps": args.control_steps}
    if args.agent not in ("baseline", "navigate"):  # an agent acts in the env it was trained in (e.g. residual)
        trained = json.loads((Path(args.agent).parent / "env_cfg.json").read_text())
        env_cfg = {**trained, "control_steps": args.control_steps}
    jobs = [(args.agent, args.first_seed + i, env_cfg) for i in range(args.episodes)]
    results = []
    with mp.get_context("spawn").Pool(args.workers) as pool:
        for r in pool.imap_unordered(run_episode, jobs):
            results.append(r)
            print(json.dumps(r), flush=True)
    results.sort(key=lambda r: r["seed"])
    ok = [r for r in results if r["success"]]
    print(
        f"\n{args.agent}: {len(ok)}/{len(results)} goals reached without collision "
        f"({sum(r['reached'] for r in results)} reached at all, {sum(r['collision_steps'] > 0 for r in results)} "
        f"with collisions, {sum(r['fell'] for r in results)} fell); "
        f"mean time to goal {np.mean([r['seconds'] for r in ok]) if ok else float('nan'):.1f} s"
    )
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
