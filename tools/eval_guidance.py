"""Guided control in MuJoCo with a diffusion checkpoint: waypoints, joystick profile, obstacle courses.

python -m tools.eval_guidance --scenario waypoint --episodes 20
python -m tools.eval_guidance --scenario stay --episodes 20 [--navigator navigate] [--heading]
python -m tools.eval_guidance --scenario joystick --episodes 3 [--controller expert] [--randomize]
python -m tools.eval_guidance --scenario joystick-obstacles --episodes 30   # the demo's walk past its obstacles
python -m tools.eval_guidance --scenario obstacles --episodes 10 [--navigator waypoint] [--actions-per-plan 2]
python -m tools.eval_guidance --scenario passages --episodes 10
python -m tools.eval_guidance --scenario course --course my_course.yaml [more.json ...]   # goals in order
python -m tools.eval_guidance --scenario obstacles --episodes 40 --write-courses courses/  # the courses as files
python -m tools.eval_guidance --scenario walk-perturb --episodes 50 [--controller expert] [--randomize]
python -m tools.eval_guidance --scenario joystick-protocol --episodes 50 [--controller expert]
python -m tools.eval_guidance --scenario push --episodes 20 --kicks 0.5 1.0 1.5 2.0 [--controller expert]
python -m tools.eval_guidance --scenario omni --episodes 10 [--controller expert]
python -m tools.eval_guidance --scenario tour --episodes 20 [--controller expert]

The paper's protocols, a push sweep, the omnidirectional commands, waypoint tours and the joystick profile
(bm_gym/eval/protocols.py) run for the diffusion controller or, with ``--controller expert``, for the Stage 1
velocity policy it was distilled from. Their commands go through the app's joystick holds (``CommandHolds``: a
straight walk or a stand holds its heading, a walk its speed); ``--no-heading-hold`` and ``--no-speed-hold`` send
the raw commands.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
from dataclasses import asdict
from pathlib import Path

import numpy as np

from bm_gym.controller import ControllerCfg, DiffusionController
from bm_gym.course import Course
from bm_gym.diffusion import SHIPPED_CHECKPOINT, DiffusionPolicy
from bm_gym.eval.protocols import (
    JOYSTICK_SEGMENTS,
    OMNI_COMMANDS,
    DiffusionDriver,
    ExpertDriver,
    HoldDriver,
    run_joystick_profile,
    run_joystick_protocol,
    run_omnidirectional,
    run_push,
    run_tour,
    run_walk_perturb,
)
from bm_gym.eval.scenarios import (
    NAVIGATORS,
    NavigationCfg,
    obstacle_course,
    passage_course,
    run_course,
    run_joystick_obstacles,
    run_stay,
    run_waypoint,
    scenario_course,
)
from bm_gym.guidance.routing import PursuitCfg, RouteCfg
from bm_gym.guidance.tasks import ArrivalCfg, CommandHolds, HeadingHoldCfg, ObstacleSteerCfg, SpeedHoldCfg
from bm_gym.robot import g1
from bm_gym.sim import BACKENDS, DomainRandomizationCfg, backend_problem, process_backend
from bm_gym.stage1 import Stage1Policy
from tools.paths import SHARED_STAGE1

PROTOCOLS = ("walk-perturb", "stand-perturb", "joystick-protocol", "push", "omni", "tour", "joystick")


def _episode(job: tuple[dict, str, int]) -> dict:
    import torch

    torch.set_num_threads(1)
    opts, scenario, seed = job
    backend = process_backend(opts["backend"], DomainRandomizationCfg() if opts["randomize"] else None)
    if opts["controller"] == "expert":
        return _protocol(opts, scenario, seed, backend, ExpertDriver(Stage1Policy.load(opts["expert"])))
    policy = DiffusionPolicy.load(opts["checkpoint"], robot_joints=g1.JOINT_NAMES)
    if opts["sample_steps"] is not None:
        policy.set_sample_steps(opts["sample_steps"])
    guidance = policy.guidance.overridden(opts["scale"], opts["guided_steps"], opts["through_model"],
                                          recovery_guided_steps=opts["recovery_guided_steps"],
                                          velocity_ramp=opts["velocity_ramp"],
                                          recentre_radius=opts["recentre_radius"])  # fmt: skip
    controller = DiffusionController(
        policy,
        ControllerCfg(
            seed=seed,
            guidance=guidance,
            actions_per_plan=opts["actions_per_plan"],
            warm_start_step=opts["warm_start_step"],
            warm_start_action_step=opts["warm_start_action_step"],
            fused=opts["fused"],
        ),  # fmt: skip
    )
    if scenario in PROTOCOLS:
        return _protocol(opts, scenario, seed, backend, DiffusionDriver(controller, guidance), controller)
    navigation = NavigationCfg(
        arrival=ArrivalCfg(radius=opts["hold_radius"]),
        route=RouteCfg(body_radius=opts["route_body_radius"], crowding_cost=opts["route_crowding_cost"]),
        pursuit=PursuitCfg(min_speed=opts["min_speed"]),
        margin=opts["margin"],
    )
    if scenario == "waypoint":
        result = run_waypoint(backend, controller, seed, guidance, navigator=opts["navigator"], navigation=navigation)
    elif scenario == "stay":
        result = run_stay(backend, controller, seed, guidance, navigator=opts["navigator"], heading=opts["heading"],
                          navigation=navigation)  # fmt: skip
    elif scenario == "course":
        result = run_course(backend, controller, Course.load(opts["course"]), guidance, timeout_s=30.0,
                            obstacle_weight=opts["obstacle_weight"], navigator=opts["navigator"],
                            navigation=navigation)  # fmt: skip
    elif scenario in ("obstacles", "passages"):
        goal, obstacles = (obstacle_course if scenario == "obstacles" else passage_course)(seed)
        result = run_waypoint(backend, controller, seed, guidance, obstacles=obstacles, goal=goal, timeout_s=30.0,
                              obstacle_weight=opts["obstacle_weight"], navigator=opts["navigator"],
                              navigation=navigation)  # fmt: skip
    else:
        result = run_joystick_obstacles(
            backend, controller, seed, guidance, steer=ObstacleSteerCfg() if opts["steer"] else None
        )
    out = asdict(result)
    out["plan_ms_median"] = float(np.median(controller.plan_ms))
    out["kicks_seen"] = controller.kicks_seen
    return out


def _holds(opts: dict) -> CommandHolds | None:
    """The app's joystick holds the options ask for (``--heading-hold``, ``--speed-hold``); None for neither."""
    if not (opts["heading_hold"] or opts["speed_hold"]):
        return None
    return CommandHolds(HeadingHoldCfg() if opts["heading_hold"] else None,
                        SpeedHoldCfg() if opts["speed_hold"] else None)  # fmt: skip


def _protocol(opts: dict, scenario: str, seed: int, backend, driver,
              controller: DiffusionController | None = None) -> dict:  # fmt: skip
    holds = _holds(opts)
    if holds is not None:
        driver = HoldDriver(driver, holds)
    if scenario in ("walk-perturb", "stand-perturb"):
        result = run_walk_perturb(backend, driver, seed, speed=0.5 if scenario == "walk-perturb" else 0.0)
    elif scenario == "joystick-protocol":
        result = run_joystick_protocol(backend, driver, seed)
    elif scenario == "omni":
        result = run_omnidirectional(backend, driver, seed)
    elif scenario == "tour":
        result = run_tour(backend, driver, seed)
    elif scenario == "joystick":
        result = run_joystick_profile(backend, driver, seed)
    else:
        result = run_push(backend, driver, seed, kick=opts["kick"])
    out = asdict(result)
    out["plan_ms_median"] = float(np.median(controller.plan_ms)) if controller is not None else float("nan")
    if controller is not None:  # how often it eased its guidance after a kick (GuidanceCfg.recovery_guided_steps)
        out["kicks_seen"] = controller.kicks_seen
    return out


def run_jobs(jobs: list[tuple[dict, str, int]], workers: int, echo: bool = False) -> list[dict]:
    """Run episode jobs in ``workers`` processes; results sorted by seed (each printed as it ends with ``echo``)."""
    results = []
    with mp.get_context("spawn").Pool(workers) as pool:
        for r in pool.imap_unordered(_episode, jobs):
            results.append(r)
            if echo:
                print(json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()}), flush=True)
    return sorted(results, key=lambda r: (r["seed"], r.get("extra", {}).get("kick", 0.0)))


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else float("nan")


def summarize(
    scenario: str,
    results: list[dict],
    kicks: list[float] = (),
    controller: str = "diffusion",
    randomize: bool = False,
    heading: bool = False,
) -> tuple[str, dict]:
    """One line for a person and the scenario's headline figures (for tables and comparisons) from its results."""
    n = len(results)
    falls = sum(r["fell"] for r in results)
    done = [r for r in results if not r["fell"]]
    latency = float(np.median([r["plan_ms_median"] for r in results]))
    who = "the Stage 1 expert" if controller == "expert" else "the diffusion controller"
    metrics: dict = {"episodes": n, "falls": falls, "plan_ms": latency}
    if all("kicks_seen" in r for r in results):
        metrics["kicks_seen"] = sum(r["kicks_seen"] for r in results)  # recoveries the controller started
    if scenario in ("walk-perturb", "stand-perturb"):
        line = f"{scenario} ({who}{', randomized' if randomize else ''}): {n - falls}/{n} without a fall"
    elif scenario == "joystick-protocol":
        ok = sum(r["success"] for r in results)
        names = [name for name, *_ in JOYSTICK_SEGMENTS]
        per = {k: sum(r["extra"]["followed"][k] for r in done) for k in names}
        means = {k: _mean([r["extra"]["achieved"][k] for r in done]) for k in names}
        metrics.update(success=ok, followed=per, achieved=means)
        line = (f"joystick protocol ({who}): {ok}/{n} followed every command, {falls} fell; segments followed: "
                + ", ".join(f"{k} {per[k]}/{len(done)} (mean {means[k]:+.2f})" for k in names))  # fmt: skip
    elif scenario == "tour":
        legs = [leg for r in results for leg in r["extra"]["legs"]]
        kinds = sorted({leg["kind"] for leg in legs})
        per_kind = {k: _mean([g["error"] for g in legs if g["kind"] == k]) for k in kinds}
        turns = _mean([g["heading_error"] for g in legs if g["kind"] == "turn"])
        errors = [g["error"] for g in legs]
        metrics.update(error_mean=_mean(errors), error_median=float(np.median(errors)) if errors else float("nan"),
                       error_by_leg=per_kind, turn_heading_error=turns)  # fmt: skip
        line = (f"waypoint tour ({who}): {n - falls}/{n} without a fall; {len(legs)} goals, position error at the "
                f"deadline mean {metrics['error_mean']:.3f} m, median {metrics['error_median']:.3f} m ("
                + ", ".join(f"{k} {v:.2f} m" for k, v in per_kind.items())
                + f"); heading error after turns mean {turns:.3f} rad")  # fmt: skip
    elif scenario == "omni":
        parts, commands = [], {}
        for name, *_ in OMNI_COMMANDS:
            rows = [r["extra"]["commands"][name] for r in done]
            mean = {k: _mean([row[k] for row in rows]) for k in ("speed", "speed_error", "distance", "drift")}
            commands[name] = mean
            parts.append(f"{name}: speed {mean['speed']:.2f} m/s (error {mean['speed_error']:.2f}), "
                         f"{mean['distance']:.1f} m in 10 s, drift {mean['drift']:.2f} m")  # fmt: skip
        metrics["commands"] = commands
        line = f"omnidirectional ({who}, {len(done)}/{n} without a fall): " + "; ".join(parts)
    elif scenario == "push":
        survived = {k: [not r["fell"] for r in results if r["extra"]["kick"] == k] for k in kicks}
        held = [k for k in sorted(survived) if np.mean(survived[k]) >= 0.9]
        metrics.update(survived={f"{k:g}": sum(v) for k, v in survived.items()}, largest=max(held) if held else None)
        line = (f"push sweep ({who}): " + ", ".join(f"{k:g} m/s {sum(v)}/{len(v)}" for k, v in survived.items())
                + f"; largest kick survived in >= 90 %: {max(held) if held else 'none'} m/s")  # fmt: skip
    elif scenario == "joystick":
        speed = _mean([r["extra"]["speed_error"] for r in done])
        yaw = _mean([r["extra"]["yaw_rate_error"] for r in done])
        metrics.update(speed_error=speed, yaw_rate_error=yaw)
        line = (f"joystick ({who}{', randomized' if randomize else ''}): {n - falls}/{n} without falling; mean "
                f"forward-speed error {speed:.3f} m/s, yaw-rate error {yaw:.3f} rad/s")  # fmt: skip
        if controller != "expert":
            line += f"; median plan {latency:.1f} ms"
    elif scenario == "joystick-obstacles":
        ok = sum(r["success"] for r in results)
        touched = [r["collisions"] for r in results]
        metrics.update(success=ok, collided=sum(c > 0 for c in touched), contact_steps=sum(touched))
        line = (f"joystick past obstacles: {ok}/{n} without a fall or a touch; {metrics['collided']} touched an "
                f"obstacle ({sum(touched)} control steps), {falls} fell; median plan {latency:.1f} ms")  # fmt: skip
    elif scenario == "stay":
        ok = sum(r["success"] for r in results)
        arrived = [r for r in done if r["extra"].get("arrived_s") is not None]
        drift = max((r["extra"]["max_distance_after_arrival"] for r in arrived), default=float("nan"))
        metrics.update(success=ok, arrived=len(arrived), largest_drift=drift)
        line = (f"stay: {ok}/{n} arrived and stayed within 0.3 m for 10 s; {len(arrived)} arrived, {falls} fell; "
                f"largest distance after arrival {drift:.2f} m")  # fmt: skip
        if heading and arrived:
            errors = [r["extra"]["heading_error"] for r in arrived]
            metrics["heading_error_median"] = float(np.median(errors))
            line += f"; final heading error median {np.median(errors):.3f} rad, max {max(errors):.3f}"
        line += f"; median plan {latency:.1f} ms"
    else:
        ok = sum(r["success"] for r in results)
        collided = sum(r["collisions"] > 0 for r in results)
        mean_time = _mean([r["seconds"] for r in results if r["success"]])
        metrics.update(success=ok, collided=collided, seconds=mean_time)
        line = (f"{scenario}: {ok}/{n} reached within 0.3 m, {falls} fell, {collided} with collisions; "
                f"mean time to goal {mean_time:.1f} s; median plan {latency:.1f} ms")  # fmt: skip
    return line, metrics


def build_parser() -> argparse.ArgumentParser:
    """The command line of one evaluation (tools.eval_suite runs several through the same parser)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default=str(SHIPPED_CHECKPOINT))
    scenarios = ["waypoint", "stay", "joystick-obstacles", "obstacles", "passages", "course", *PROTOCOLS]
    parser.add_argument("--scenario", choices=scenarios, required=True)
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--first-seed", type=int, default=0, help="seeds first-seed .. first-seed + episodes - 1")
    guidance = parser.add_argument_group("guidance (defaults: the checkpoint's, DiffusionPolicy.guidance)")
    guidance.add_argument("--scale", type=float)
    guidance.add_argument("--through-model", action="store_true", default=None)
    guidance.add_argument("--guided-steps", type=int, help="0: all")
    guidance.add_argument("--recovery-guided-steps", type=int, help="after a kick (0: unguided; -1: never eased)")
    guidance.add_argument("--velocity-ramp", type=float, help="m/s a joystick target may lead the velocity (-1: off)")
    guidance.add_argument("--sample-steps", type=int, help="DDIM steps per plan (a divisor of the training steps)")
    parser.add_argument("--obstacle-weight", type=float, default=1.0)
    parser.add_argument(
        "--navigator",
        choices=NAVIGATORS,
        default=None,
        help="how a goal becomes a task (bm_gym.eval.scenarios.NAVIGATORS); default: waypoint for the waypoint "
        "and stay scenarios (Eq. 8), navigate for obstacle courses",
    )
    parser.add_argument("--actions-per-plan", type=int, default=1, help="planned actions executed per plan")
    parser.add_argument("--heading", action="store_true", help="stay: the goal has a heading to turn to")
    parser.add_argument(
        "--hold-radius",
        type=float,
        default=ArrivalCfg().radius,
        help="stay: hold within this distance of the goal (0: approach forever, as before issue 15)",
    )
    parser.add_argument(
        "--recentre-radius",
        type=float,
        help="goal tasks: a holding robot further than this from the goal is pulled back (m; default: the "
        "checkpoint's GuidanceCfg.recentre_radius; -1: off)",
    )
    ablation = parser.add_argument_group("navigation settings (defaults: the library's; issue 15 ablations)")
    ablation.add_argument("--margin", type=float, default=None, help="one barrier margin for every body (m)")
    ablation.add_argument(
        "--route-body-radius",
        type=float,
        default=RouteCfg().body_radius,
        help="routes keep the robot's centre this far from obstacles (0.6: the old route wall)",
    )
    ablation.add_argument(
        "--route-crowding-cost",
        type=float,
        default=RouteCfg().crowding_cost,
        help="extra cost of route cells near obstacles (0: none)",
    )
    ablation.add_argument(
        "--min-speed",
        type=float,
        default=PursuitCfg().min_speed,
        help="NavigateTask's approach speed floor (m/s; 0: none)",
    )
    parser.add_argument("--course", type=Path, nargs="+", default=[], help="course: course files (bm_gym.course)")
    parser.add_argument("--write-courses", type=Path, default=None, metavar="DIR",
                        help="write the scenario's courses (these seeds) as course files into DIR; stop")  # fmt: skip
    parser.add_argument("--controller", choices=["diffusion", "expert"], default="diffusion",
                        help="protocols: who drives, the diffusion controller or the Stage 1 expert")  # fmt: skip
    parser.add_argument("--expert", type=Path, default=SHARED_STAGE1 / "unitree_g1_velocity",
                        help="the Stage 1 velocity policy of --controller expert")  # fmt: skip
    parser.add_argument("--heading-hold", action=argparse.BooleanOptionalAction, default=True,
                        help="protocols and joystick: straight walks and stands hold their heading "
                        "(bm_gym.guidance.tasks.HeadingHold), for either controller; --no-heading-hold passes the "
                        "raw commands")  # fmt: skip
    parser.add_argument("--speed-hold", action=argparse.BooleanOptionalAction, default=True,
                        help="protocols and joystick: walks reach their commanded speed "
                        "(bm_gym.guidance.tasks.SpeedHold), for either controller; --no-speed-hold passes the "
                        "commanded speeds raw")  # fmt: skip
    parser.add_argument("--steer", action=argparse.BooleanOptionalAction, default=True,
                        help="joystick-obstacles: each command is steered round obstacles ahead, as in the app "
                        "(AvoidObstaclesTask.steer); --no-steer passes the script's commands raw")  # fmt: skip
    parser.add_argument("--kicks", type=float, nargs="+", default=[0.5, 1.0, 1.5, 2.0],
                        help="push: kick magnitudes (m/s) of the sweep, --episodes runs each")  # fmt: skip
    parser.add_argument("--randomize", action="store_true", help="domain randomization (pushes, friction, ...)")
    parser.add_argument("--warm-start-step", type=int, default=0, help="start plans from the previous one here")
    parser.add_argument("--warm-start-action-step", type=int, default=None,
                        help="rolling warm start (split-token models): the previous plan's actions re-noised to "
                        "this step, its states to --warm-start-step")  # fmt: skip
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--backend", choices=BACKENDS, default="mujoco",
                        help="simulator (isaaclab: in the Isaac Lab venv, scripts/setup.sh --isaaclab)")  # fmt: skip
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--reference", action="store_true", help="plan on the reference (autograd) path, not fused")
    return parser


def plan_jobs(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list[tuple[dict, str, int]]:
    """The episode jobs the parsed command line asks for; bad combinations end in ``parser.error``."""
    if backend_problem(args.backend):
        parser.error(backend_problem(args.backend))
    opts = {"checkpoint": args.checkpoint, "scale": args.scale, "through_model": args.through_model,
            "guided_steps": args.guided_steps, "recovery_guided_steps": args.recovery_guided_steps,
            "velocity_ramp": args.velocity_ramp, "sample_steps": args.sample_steps,
            "obstacle_weight": args.obstacle_weight,
            "navigator": args.navigator or ("waypoint" if args.scenario in ("waypoint", "stay") else "navigate"),
            "heading": args.heading, "hold_radius": args.hold_radius,
            "recentre_radius": args.recentre_radius, "margin": args.margin,
            "route_body_radius": args.route_body_radius, "route_crowding_cost": args.route_crowding_cost,
            "min_speed": args.min_speed,
            "actions_per_plan": args.actions_per_plan, "randomize": args.randomize,
            "warm_start_step": args.warm_start_step, "warm_start_action_step": args.warm_start_action_step,
            "fused": not args.reference,
            "controller": args.controller, "expert": args.expert, "backend": args.backend,
            "heading_hold": args.heading_hold, "speed_hold": args.speed_hold, "steer": args.steer}  # fmt: skip
    seeds = range(args.first_seed, args.first_seed + args.episodes)
    if args.sample_steps is not None and args.controller != "expert":
        try:  # checked here, not in every worker
            DiffusionPolicy.load(args.checkpoint).set_sample_steps(args.sample_steps)
        except ValueError as err:
            parser.error(f"--sample-steps: {err}")
    if args.scenario == "course":
        if not args.course:
            parser.error("--scenario course needs --course FILE [FILE ...]")
        for path in args.course:  # every file checked before any episode runs
            Course.load(path)
    if args.controller == "expert" and args.scenario not in PROTOCOLS:
        parser.error(f"--controller expert runs the protocols {PROTOCOLS}, not {args.scenario!r}")
    if args.scenario == "push":
        return [({**opts, "kick": kick}, "push", seed) for kick in args.kicks for seed in seeds]
    if args.scenario == "course":
        return [({**opts, "course": str(path)}, "course", i) for i, path in enumerate(args.course)]
    return [(opts, args.scenario, seed) for seed in seeds]


def main() -> None:
    parser = build_parser()
    args = parser.parse_args()
    if args.write_courses:
        args.write_courses.mkdir(parents=True, exist_ok=True)
        for seed in range(args.first_seed, args.first_seed + args.episodes):
            print(scenario_course(args.scenario, seed).save(args.write_courses / f"{args.scenario}-{seed}.yaml"))
        return
    jobs = plan_jobs(parser, args)
    results = run_jobs(jobs, args.workers, echo=True)
    print("\n" + summarize(args.scenario, results, args.kicks, args.controller, args.randomize, args.heading)[0])
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
