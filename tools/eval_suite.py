"""A checkpoint's whole evaluation in one command: the paper's protocols, the navigation scenarios and their
domain-randomized versions, at the seeds and episode counts of docs/benchmarks.md; then tables side by side.

python -m tools.eval_suite --checkpoint runs/cpu_v2/checkpoint --out runs/cpu_v2/eval.json
python -m tools.eval_suite --checkpoint C --out eval.json --only walk-perturb omni -- --warm-start-step 3
python -m tools.eval_suite --compare shipped.json runs/cpu_v2/eval.json      # one markdown table

Each scenario is one ``tools.eval_guidance`` run (arguments after ``--`` go to every one of them). Results are
written to ``--out`` after each scenario (atomically), so a run that is stopped resumes where it was: scenarios
already in the file are not run again. ``--max-episodes`` caps every scenario for a quick look; such a file is
marked and is not the standard figure. The file records the checkpoint's own guidance settings and
DDIM steps (``tools.checkpoint``), which every scenario uses unless the forwarded arguments say otherwise, and whether
the protocols held the heading of straight walks (``-- --no-heading-hold``: not); files made before that
setting existed were made without it and are not resumed.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path

from bm_gym.diffusion import SHIPPED_CHECKPOINT, CheckpointError, DiffusionPolicy
from tools.eval_guidance import PROTOCOLS, build_parser, plan_jobs, run_jobs, summarize

PUSH_KICKS = ("0.5", "1", "1.5", "2", "2.5")
SUITE: dict[str, tuple[str, ...]] = {
    "walk-perturb": ("--scenario", "walk-perturb", "--episodes", "50"),
    "walk-perturb-randomized": ("--scenario", "walk-perturb", "--episodes", "50", "--randomize"),
    "stand-perturb": ("--scenario", "stand-perturb", "--episodes", "50"),
    "joystick-protocol": ("--scenario", "joystick-protocol", "--episodes", "50"),
    "omni": ("--scenario", "omni", "--episodes", "10"),
    "push": ("--scenario", "push", "--episodes", "20", "--kicks", *PUSH_KICKS),
    "tour": ("--scenario", "tour", "--episodes", "20"),
    "waypoint": ("--scenario", "waypoint", "--episodes", "20"),
    "joystick": ("--scenario", "joystick", "--episodes", "3"),
    "joystick-obstacles": ("--scenario", "joystick-obstacles", "--episodes", "30"),
    "obstacles": ("--scenario", "obstacles", "--episodes", "40"),
    "passages": ("--scenario", "passages", "--episodes", "10"),
    "stay": ("--scenario", "stay", "--episodes", "20"),
    "stay-navigate": ("--scenario", "stay", "--episodes", "20", "--navigator", "navigate"),
    "stay-heading": ("--scenario", "stay", "--episodes", "20", "--navigator", "navigate", "--heading"),
    "obstacles-randomized": ("--scenario", "obstacles", "--episodes", "20", "--randomize"),
    "waypoint-randomized": ("--scenario", "waypoint", "--episodes", "20", "--navigator", "navigate", "--randomize"),
    "joystick-randomized": ("--scenario", "joystick", "--episodes", "3", "--randomize"),
}


def headline(scenario: str, m: dict) -> str:
    """The figures of one scenario in a table cell."""
    n, falls = m["episodes"], m["falls"]
    if scenario in ("walk-perturb", "stand-perturb"):
        return f"{n - falls} / {n}"
    if scenario == "joystick-protocol":
        per = " ".join(f"{''.join(w[0].upper() for w in k.split())}{v}" for k, v in m["followed"].items())
        return f"{m['success']} / {n} ({per})"
    if scenario == "omni":
        cells = (
            f"{k} {v['speed']:.2f} m/s ({v['speed_error']:.2f}), {v['distance']:.1f} m"
            for k, v in m["commands"].items()
        )
        return "; ".join(cells)
    if scenario == "push":
        largest = "none" if m["largest"] is None else f"{m['largest']:g} m/s"
        return f"{largest} ({', '.join(str(v) for v in m['survived'].values())})"
    if scenario == "tour":
        return f"{m['error_mean']:.3f} m, {n - falls} / {n} upright"
    if scenario == "joystick":
        return f"{m['speed_error']:.3f} m/s, {m['yaw_rate_error']:.3f} rad/s, {falls} falls"
    if scenario == "joystick-obstacles":
        return f"{m['success']} / {n}, {m['collided']} touched ({m['contact_steps']} steps), {falls} falls"
    if scenario == "stay":
        heading = f", heading {m['heading_error_median']:.2f} rad" if "heading_error_median" in m else ""
        return f"{m['success']} / {n}{heading}"
    return f"{m['success']} / {n}, {falls} falls, {m['collided']} collided, {m['seconds']:.1f} s"


def _scenario_of(args: tuple[str, ...]) -> str:
    return args[args.index("--scenario") + 1]


def _save(path: Path, record: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(record, indent=1))
    os.replace(tmp, path)


def _load(path: Path) -> dict:
    try:
        record = json.loads(path.read_text())
        record["scenarios"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise SystemExit(f"{path}: not an eval_suite result file ({err})") from None
    return record


def compare(paths: list[Path]) -> str:
    """A markdown table: one row per scenario, one column per result file."""
    records = [_load(p) for p in paths]
    names = [n for n in SUITE if any(n in r["scenarios"] for r in records)]
    rows = ["| scenario | " + " | ".join(str(p) for p in paths) + " |", "|---" * (len(paths) + 1) + "|"]
    for name in names:
        cells = [headline(_scenario_of(SUITE[name]), r["scenarios"][name]["metrics"]) if name in r["scenarios"]
                 else "" for r in records]  # fmt: skip
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    notes = [f"{p}: at most {r['max_episodes']} episodes per scenario" for p, r in zip(paths, records, strict=True)
             if r.get("max_episodes")]  # fmt: skip
    return "\n".join(rows + notes)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    forwarded = argv[argv.index("--") + 1 :] if "--" in argv else []
    own = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default=str(SHIPPED_CHECKPOINT))
    parser.add_argument("--out", type=Path, help="result file (JSON); resumed if it exists")
    parser.add_argument("--only", nargs="+", choices=list(SUITE), default=list(SUITE), metavar="SCENARIO",
                        help=f"run these of the suite ({', '.join(SUITE)})")  # fmt: skip
    parser.add_argument("--max-episodes", type=int, default=None, help="cap every scenario (a quick look)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--compare", type=Path, nargs="+", metavar="RESULTS", help="print result files side by side")
    args = parser.parse_args(own)
    if args.compare:
        print(compare(args.compare))
        return
    if args.out is None:
        parser.error("--out is needed (or --compare)")
    if args.max_episodes is not None and args.max_episodes < 1:
        parser.error(f"--max-episodes must be >= 1, got {args.max_episodes}")
    eval_parser = build_parser()
    plans = {}
    for name in args.only:  # every scenario's command line is checked before any episode runs
        command = [*SUITE[name], "--checkpoint", args.checkpoint, "--workers", str(args.workers), *forwarded]
        if args.max_episodes is not None:
            command += ["--episodes", str(min(args.max_episodes, int(command[command.index("--episodes") + 1])))]
        parsed = eval_parser.parse_args(command)
        if parsed.controller == "expert" and parsed.scenario not in PROTOCOLS:
            continue  # the expert drives the protocols only
        plans[name] = (parsed, plan_jobs(eval_parser, parsed))
    try:  # the checkpoint's own guidance settings and DDIM steps apply where the forwarded arguments give none
        policy = DiffusionPolicy.load(args.checkpoint)
    except CheckpointError as err:
        parser.error(str(err))
    guidance, sample_steps = dataclasses.asdict(policy.guidance), policy.cfg.diffusion.sample_steps
    holds = eval_parser.parse_args(["--scenario", "omni", *forwarded])
    setting = {"checkpoint": args.checkpoint, "guidance": guidance, "sample_steps": sample_steps,
               "forwarded": forwarded, "max_episodes": args.max_episodes, "heading_hold": holds.heading_hold,
               "speed_hold": holds.speed_hold}  # fmt: skip
    record = {**setting, "scenarios": {}}
    if args.out.exists():
        record = _load(args.out)
        made_with = {k: record.get(k) for k in setting}
        if made_with != setting:
            raise SystemExit(f"{args.out} holds results made with {made_with}, not {setting}: use another --out")
    for name, (parsed, jobs) in plans.items():
        if name in record["scenarios"]:
            print(f"{name}: in {args.out} already")
            continue
        results = run_jobs(jobs, parsed.workers)
        line, metrics = summarize(parsed.scenario, results, parsed.kicks, parsed.controller, parsed.randomize,
                                  parsed.heading)  # fmt: skip
        print(f"{name}: {line}", flush=True)
        record["scenarios"][name] = {"command": SUITE[name], "line": line, "metrics": metrics, "results": results}
        _save(args.out, record)
    print(compare([args.out]))


if __name__ == "__main__":
    main()
