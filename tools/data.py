"""Expert data from Stage 1 policies: collect rollouts into HDF5, validate a file, export it for other libraries.

    python -m tools.data collect --out data/velocity.h5 --episodes 180 --episode-s 20    # 1 h of experience
    python -m tools.data collect --manifest sources.yaml --out data/mixed.h5             # many Stage 1 sources
    python -m tools.data validate data/velocity.h5
    python -m tools.data export --format lerobot data/velocity.h5 exports/velocity_lerobot
    python -m tools.data export --format minari data/velocity.h5 exports/minari   # MINARI_DATASETS_PATH=exports/minari

Export needs the optional extra: pip install -e ".[export]" (pyarrow, pandas, datasets, minari). App recordings
(runs/recordings/*.h5) are the same format and export the same way.

Collection resumes when rerun with the same arguments (finished episodes are kept in <out>.shards/).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

from bm_gym.controller import student_co_driver
from bm_gym.data import CollectCfg, Collector, DatasetError, StudentCfg, validate
from bm_gym.data.collect import NOISE_KINDS, CollectionLocked
from bm_gym.data.manifest import Manifest, ManifestError, collect_manifest
from bm_gym.data.state import STATE_KINDS
from bm_gym.sim import BACKENDS, DomainRandomizationCfg
from tools.paths import VELOCITY_POLICY


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("collect", help="roll out a Stage 1 policy into an HDF5 dataset")
    c.add_argument("--policy", default=str(VELOCITY_POLICY), help="Stage 1 policy folder or file")
    c.add_argument("--manifest", help="YAML list of sources (bm_gym/data/manifest.py); replaces --policy")
    c.add_argument("--out", required=True)
    c.add_argument("--episodes", type=int, default=180)
    c.add_argument("--episode-s", type=float, default=20.0)
    c.add_argument("--workers", type=int, default=None,
                   help="rollout processes (default 2, or the manifest's 'workers')")  # fmt: skip
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--motion-fps", type=float, default=None, help="frame rate of a CSV reference motion")
    c.add_argument("--no-randomization", action="store_true")
    c.add_argument("--max-noise", type=float, default=0.15, help="max exploration noise std (raw action units)")
    c.add_argument(
        "--noise",
        choices=NOISE_KINDS,
        default="gaussian",
        help="gaussian (per-episode std up to --max-noise) or ou (Ornstein-Uhlenbeck, theta 0.8, sigma 0.1)",
    )
    c.add_argument(
        "--student",
        help="DAgger-style collection: this diffusion checkpoint drives stretches of every "
        "episode and the expert takes over again (bm_gym.data.collect.StudentCfg; velocity policies)",
    )
    c.add_argument("--motion", help="reference motion of a tracking policy (default: the one in its folder)")
    c.add_argument("--backend", choices=BACKENDS, default=None,
                   help="simulator of the rollouts (default mujoco, or the manifest's 'backend'); isaaclab runs in "
                        "the Isaac Lab venv (bash scripts/setup.sh --isaaclab)")  # fmt: skip
    c.add_argument("--envs-per-worker", type=int, default=None,
                   help="isaaclab: episodes each worker rolls out at once, one Newton world each (MuJoCo-Warp; a "
                        "GPU's path; default 1, or the manifest's 'envs_per_worker')")  # fmt: skip
    c.add_argument("--state", choices=STATE_KINDS, default=None,
                   help="state layout recorded: joint (default, or the manifest's 'state') or body-pos (the paper's "
                        "Body-Pos state: all 30 bodies' positions and velocities)")  # fmt: skip
    v = sub.add_parser("validate", help="check a dataset file and print a summary")
    v.add_argument("path")
    e = sub.add_parser("export", help="write an HDF5 dataset as a LeRobotDataset v3 folder or a Minari dataset")
    e.add_argument("--format", required=True, choices=("lerobot", "minari"))
    e.add_argument("path", help="our HDF5 dataset (expert data or an app recording)")
    e.add_argument("out", help="LeRobot: the dataset folder; Minari: the datasets root (MINARI_DATASETS_PATH)")
    e.add_argument("--dataset-id", help="Minari id, namespace/name-vN (default bm_gym/<file stem>-v0)")
    e.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    args = parser.parse_args(argv)

    try:
        if args.command == "validate":
            print(validate(args.path))
            return 0
        if args.command == "export":
            return export(args)
        if args.manifest:
            return collect_from_manifest(args)
        cfg = CollectCfg(
            policy=args.policy, out=args.out, episodes=args.episodes, episode_s=args.episode_s,
            workers=2 if args.workers is None else args.workers, seed=args.seed, motion=args.motion,
            motion_fps=args.motion_fps, noise=args.noise,
            action_noise=(0.0, args.max_noise),
            randomization=None if args.no_randomization else DomainRandomizationCfg(),
            backend=args.backend or "mujoco", envs_per_worker=args.envs_per_worker or 1, state=args.state or "joint",
            student=StudentCfg(args.student) if args.student else None,
        )  # fmt: skip
        start = time.perf_counter()
        added = Collector(cfg, student_co_driver).run()
        elapsed = time.perf_counter() - start
        summary = validate(cfg.out)
        print(summary)
        print(f"this run added {added} of {cfg.episodes} episodes in {elapsed:.0f} s")
        return 0
    except ImportError as err:
        if args.command == "export":
            print(f"error: {err.name or err} is missing; install the export extra: pip install -e '.[export]'",
                  file=sys.stderr)  # fmt: skip
        else:
            print(f"error: {err}", file=sys.stderr)
        return 1
    except (DatasetError, ValueError, OSError, CollectionLocked, ManifestError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


def collect_from_manifest(args: argparse.Namespace) -> int:
    manifest = Manifest.load(args.manifest)
    if args.backend:
        manifest = dataclasses.replace(manifest, backend=args.backend)
    if args.envs_per_worker:
        manifest = dataclasses.replace(manifest, envs_per_worker=args.envs_per_worker)
    if args.state:
        manifest = dataclasses.replace(manifest, state=args.state)
    if args.workers is not None:
        if args.workers < 1:
            raise ValueError(f"--workers must be a positive integer, got {args.workers}")
        manifest = dataclasses.replace(manifest, workers=args.workers)
    reports = collect_manifest(manifest, args.out, co_driver_factory=student_co_driver)
    print(validate(args.out))
    for r in reports:
        rate = f"{r.steps_per_s:.0f} steps/s" if r.added else "already collected"
        print(f"  {r.name}: {r.episodes} episodes, {r.steps} steps, {r.fell} fell ({r.fell / r.episodes:.0%}); "
              f"this run added {r.added} ({rate})")  # fmt: skip
    return 0


def export(args: argparse.Namespace) -> int:
    from bm_gym.data.export import export_lerobot, export_minari

    start = time.perf_counter()
    if args.format == "lerobot":
        out = export_lerobot(args.path, args.out, overwrite=args.overwrite)
        where = f"{out} (load: LeRobotDataset('bm_gym/{Path(args.path).stem}', root='{out}'))"
    else:
        dataset_id = export_minari(args.path, args.out, dataset_id=args.dataset_id, overwrite=args.overwrite)
        where = f"{args.out} (load: MINARI_DATASETS_PATH={args.out}, minari.load_dataset('{dataset_id}'))"
    print(f"exported {validate(args.path)} to {where} in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
