"""Expert data from Stage 1 policies: collect rollouts into HDF5, validate a file.

    python -m tools.data collect --out data/velocity.h5 --episodes 180 --episode-s 20    # 1 h of experience
    python -m tools.data validate data/velocity.h5

Collection resumes when rerun with the same arguments (finished episodes are kept in <out>.shards/).
"""

from __future__ import annotations

import argparse
import sys
import time

from bm_gym.data import CollectCfg, Collector, DatasetError, validate
from bm_gym.data.collect import CollectionLocked
from bm_gym.sim import DomainRandomizationCfg
from tools.paths import VELOCITY_POLICY


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("collect", help="roll out a Stage 1 policy into an HDF5 dataset")
    c.add_argument("--policy", default=str(VELOCITY_POLICY), help="Stage 1 policy folder or file")
    c.add_argument("--out", required=True)
    c.add_argument("--episodes", type=int, default=180)
    c.add_argument("--episode-s", type=float, default=20.0)
    c.add_argument("--workers", type=int, default=2)
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--motion-fps", type=float, default=None, help="frame rate of a CSV reference motion")
    c.add_argument("--no-randomization", action="store_true")
    c.add_argument("--max-noise", type=float, default=0.15, help="max exploration noise std (raw action units)")
    v = sub.add_parser("validate", help="check a dataset file and print a summary")
    v.add_argument("path")
    args = parser.parse_args(argv)

    try:
        if args.command == "validate":
            print(validate(args.path))
            return 0
        cfg = CollectCfg(
            policy=args.policy, out=args.out, episodes=args.episodes, episode_s=args.episode_s,
            workers=args.workers, seed=args.seed, motion_fps=args.motion_fps, action_noise=(0.0, args.max_noise),
            randomization=None if args.no_randomization else DomainRandomizationCfg(),
        )  # fmt: skip
        start = time.perf_counter()
        added = Collector(cfg).run()
        elapsed = time.perf_counter() - start
        summary = validate(cfg.out)
        print(summary)
        print(f"this run added {added} of {cfg.episodes} episodes in {elapsed:.0f} s")
        return 0
    except (DatasetError, ValueError, OSError, CollectionLocked) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
