"""Check that a Stage 1 policy runs right in this project before using it: conventions, layout, probes.

    python -m tools.stage1_check ../shared/stage1/unitree_g1_velocity
    python -m tools.stage1_check my_policy/                      # unitree_rl_lab layout: exported/ + params/
    python -m tools.stage1_check model_1000.pt --conventions deploy.yaml
    python -m tools.stage1_check tracker/ --motion clip.csv --motion-fps 30

Prints the resolved conventions per joint in simulator order and the observation layout, flags what looks
wrong before running anything, then runs probes in MuJoCo (velocity: stand, walk, turn; tracking: the first
10 s of the motion) with PASS / FAIL and a hint. Exit status 0 when nothing failed, 1 when a check failed,
2 when the policy could not be loaded at all.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from bm_gym.sim import MujocoBackend
from bm_gym.stage1 import Stage1Policy
from bm_gym.stage1.check import joint_rows, observation_layout, run_probes, static_checks
from bm_gym.stage1.conventions import FIELD_ORDERS


def _fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("path", type=Path, help="policy folder or file (.onnx, rsl_rl .pt)")
    parser.add_argument("--conventions", type=Path, default=None, help="deploy.yaml, if not beside the policy")
    parser.add_argument("--motion", type=Path, default=None, help="reference motion of a tracking policy")
    parser.add_argument("--motion-fps", type=float, default=None, help="frame rate of a CSV motion")
    parser.add_argument("--activation", default="elu", help="activation of an rsl_rl checkpoint's MLP")
    parser.add_argument("--no-probes", action="store_true", help="static checks only")
    args = parser.parse_args(argv)

    try:
        policy = Stage1Policy.load(args.path, conventions=args.conventions, motion=args.motion,
                                   motion_fps=args.motion_fps, activation=args.activation)  # fmt: skip
    except (OSError, ValueError, KeyError) as err:
        print(f"error: cannot load the policy: {err}", file=sys.stderr)
        return 2
    conv = policy.conventions
    kind = "tracking" if policy.motion is not None else "velocity"
    dims = f"{policy.actor.obs_dim} observations -> {policy.actor.action_dim} actions"
    print(f"policy       {args.path}  ({kind}; {dims})")
    print(f"conventions  {conv.source}")
    fmt = "deploy.yaml" if conv.source.endswith("(deploy.yaml)") else "onnx metadata"
    orders = ", ".join(f"{field}: {order}" for field, order in FIELD_ORDERS[fmt].items())
    print(f"field orders {orders}")
    if conv.command_ranges:
        print(f"commands     {conv.command_ranges} (clamped, as Unitree's deploy does)")

    print("\nJoints in simulator (MuJoCo = Unitree motor) order; '-' = not driven by the policy")
    print(f"{'#':>2} {'joint':<28} {'kp':>7} {'kd':>6} {'default':>8} {'scale':>6} {'effort':>7} {'armature':>9}")
    for j, (name, kp, kd, default, scale, effort, armature) in enumerate(joint_rows(policy)):
        print(f"{j:>2} {name:<28} {_fmt(kp, '7.2f')} {_fmt(kd, '6.2f')} {_fmt(default, '+8.3f')} "
              f"{_fmt(scale, '6.3f')} {effort:7.1f} {armature:9.6f}")  # fmt: skip

    backend = MujocoBackend()
    try:
        root, q, dq = policy.initial_state(0)
        state = backend.reset(root, q, dq, seed=0)
        print("\nObservation layout (input order)")
        print(f"{'term':<24} {'size':>5} {'history':>8} {'values':>7}")
        for name, size, history in observation_layout(policy, state):
            print(f"{name:<24} {size:>5} {history:>8} {size * history:>7}")
        findings = static_checks(policy, state, backend.control_dt)
        print("\nStatic checks")
        _report(findings)
        if any(f.failed for f in findings if f.name == "observation size") or args.no_probes:
            return 1 if any(f.failed for f in findings) else 0
        print("\nProbes in MuJoCo (no randomization)")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a probe's command may lie at the edge of the command ranges
            probes = run_probes(policy, backend)
        _report(probes)
    finally:
        backend.close()
    failed = [f for f in findings + probes if f.failed]
    print(f"\n{'FAILED' if failed else 'PASSED'}: {len(failed)} of {len(findings) + len(probes)} checks failed")
    return 1 if failed else 0


def _report(findings) -> None:
    for f in findings:
        hint = f"\n        hint: {f.hint}" if f.hint and f.level != "PASS" else ""
        print(f"  {f.level:<4}  {f.name}: {f.detail}{hint}")


if __name__ == "__main__":
    sys.exit(main())
