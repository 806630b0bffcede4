"""Self-test of a Stage 1 policy in this project's simulator: resolved conventions, static checks, probes.

What ``python -m tools.stage1_check`` prints and judges. Static checks look for the usual plumbing
mistakes (gains in the wrong joint order, an observation that does not add up); probes then run the
policy in MuJoCo and say PASS or FAIL with a hint at the likely cause.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bm_gym.robot import g1
from bm_gym.sim import MujocoBackend, has_fallen
from bm_gym.sim.backend import RobotState
from bm_gym.stage1.observations import TERMS, ObsInputs
from bm_gym.stage1.policy import Stage1Policy


@dataclass(frozen=True)
class Finding:
    """One result: ``level`` is PASS, WARN or FAIL; ``hint`` says what to look at when it is not PASS."""

    level: str
    name: str
    detail: str
    hint: str = ""

    @property
    def failed(self) -> bool:
        return self.level == "FAIL"


def joint_rows(policy: Stage1Policy) -> list[tuple]:
    """Per joint in simulator order: (name, kp, kd, default, scale, effort limit, armature); None = not driven."""
    conv = policy.conventions
    where = {int(sim): k for k, sim in enumerate(conv.sim_index)}
    rows = []
    for j, name in enumerate(g1.JOINT_NAMES):
        group = g1.actuator_group(name)
        k = where.get(j)
        values = (None,) * 4 if k is None else (
            conv.stiffness[k], conv.damping[k], conv.default_joint_pos[k], conv.action_scale[k])  # fmt: skip
        rows.append((name, *values, group.effort_limit, group.armature))
    return rows


def observation_layout(policy: Stage1Policy, state: RobotState) -> list[tuple[str, int, int]]:
    """(term, values per step, history length) of every observation term, in input order."""
    conv = policy.conventions
    inputs = ObsInputs(state, np.zeros(policy.actor.action_dim, np.float32), np.zeros(3), policy.motion, 0)
    return [(t.name, int(np.size(TERMS[t.name](inputs, conv.sim_index, conv))), t.history_length)
            for t in conv.obs_terms]  # fmt: skip


def static_checks(policy: Stage1Policy, state: RobotState, control_dt: float) -> list[Finding]:
    """Checks that need no simulation: observation size, mirror-joint symmetry, default pose, gains, step_dt."""
    conv = policy.conventions
    findings = []
    layout = observation_layout(policy, state)
    total = sum(size * history for _, size, history in layout)
    if total != policy.actor.obs_dim:
        findings.append(Finding("FAIL", "observation size", f"terms add up to {total}, the policy takes "
                                f"{policy.actor.obs_dim}", "a term, its history length or its joint count is "
                                "wrong in the conventions file"))  # fmt: skip
    else:
        findings.append(Finding("PASS", "observation size", f"terms add up to the policy's {total} inputs"))

    index = {name: k for k, name in enumerate(conv.joint_names)}
    asymmetric = []
    for name, k in index.items():
        if name.startswith("left_") and (mirror := "right_" + name[len("left_") :]) in index:
            m = index[mirror]
            for field, values in (("kp", conv.stiffness), ("kd", conv.damping)):
                a, b = values[k], values[m]
                if abs(a - b) > 0.05 * max(abs(a), abs(b), 1e-9):
                    asymmetric.append(f"{name} {field} {a:g} vs {mirror} {b:g}")
    if asymmetric:
        findings.append(Finding("FAIL", "mirror-joint gains", "; ".join(asymmetric[:4])
                                + (f" (+{len(asymmetric) - 4} more)" if len(asymmetric) > 4 else ""),
                                "left and right joints of the G1 share motors and gains: the gains are probably "
                                "read in the wrong joint order (deploy.yaml keeps them in motor order)"))  # fmt: skip
    else:
        findings.append(Finding("PASS", "mirror-joint gains", "left and right joints have the same kp and kd"))

    bad_gain = [n for n, kp in zip(conv.joint_names, conv.stiffness, strict=True) if kp <= 0]
    if bad_gain:
        findings.append(Finding("FAIL", "positive stiffness", f"kp <= 0 for {bad_gain}", "a driven joint needs kp > 0"))

    limits = g1.joint_limits()[conv.sim_index]
    outside = [f"{n} {q:+.2f} not in [{lo:+.2f}, {hi:+.2f}]"
               for n, q, (lo, hi) in zip(conv.joint_names, conv.default_joint_pos, limits, strict=True)
               if not lo - 1e-6 <= q <= hi + 1e-6]  # fmt: skip
    if outside:
        findings.append(
            Finding(
                "WARN",
                "default pose within joint limits",
                "; ".join(outside[:4]),
                "default_joint_pos may be in another joint order than joint_ids_map says",
            )
        )
    else:
        findings.append(Finding("PASS", "default pose within joint limits", "every default angle is in range"))

    if abs(conv.step_dt - control_dt) > 1e-6:
        findings.append(
            Finding(
                "WARN",
                "control period",
                f"the policy was trained at step_dt {conv.step_dt} s, the simulator runs it every {control_dt} s",
                "expect degraded behaviour",
            )
        )
    return findings


def run_probes(policy: Stage1Policy, backend: MujocoBackend | None = None) -> list[Finding]:
    """Short closed-loop runs in MuJoCo (no randomization): velocity or tracking probes by policy kind."""
    own = backend is None
    backend = backend or MujocoBackend()
    try:
        policy.apply_gains(backend)
        return _tracking_probes(policy, backend) if policy.motion is not None else _velocity_probes(policy, backend)
    finally:
        if own:
            backend.close()


def _rollout(policy: Stage1Policy, backend: MujocoBackend, command, seconds: float, frame: int = 0):
    root, q, dq = policy.initial_state(frame)
    state = backend.reset(root, q, dq, seed=0)
    policy.reset(frame)
    start, yaw, errors = state.root_pos.copy(), 0.0, []
    for t in range(round(seconds / backend.control_dt)):
        state = backend.step(policy.act(state, command))
        yaw += state.root_ang_vel_b[2] * backend.control_dt
        reference = None
        if policy.motion is not None:
            ref_frame = min(policy.frame, policy.motion.num_frames - 1)
            errors.append(float(np.abs(state.joint_pos - policy.motion.joint_pos[ref_frame]).mean()))
            reference = policy.motion.root_pos[ref_frame, 2]
        if has_fallen(state, reference):
            return state.root_pos - start, yaw, (t + 1) * backend.control_dt, errors
    return state.root_pos - start, yaw, None, errors


def _velocity_probes(policy: Stage1Policy, backend: MujocoBackend) -> list[Finding]:
    ranges = policy.conventions.command_ranges or {}
    results = []
    moved, yaw, fell_at, _ = _rollout(policy, backend, (0.0, 0.0, 0.0), 10.0)
    drift = float(np.linalg.norm(moved[:2]))
    if fell_at is not None:
        results.append(
            Finding(
                "FAIL",
                "stand 10 s",
                f"fell after {fell_at:.1f} s at zero command",
                "gains or joint order" if fell_at < 3.0 else "observation terms or action scale",
            )
        )
    elif drift > 0.5:
        results.append(
            Finding(
                "FAIL",
                "stand 10 s",
                f"drifted {drift:.2f} m at zero command",
                "the command term or its scale; or joint order of the observation",
            )
        )
    else:
        results.append(Finding("PASS", "stand 10 s", f"upright, drift {drift:.2f} m, yaw {yaw:+.2f} rad"))

    speed = min(0.5, ranges.get("lin_vel_x", (0.0, 0.5))[1])
    moved, _, fell_at, _ = _rollout(policy, backend, (speed, 0.0, 0.0), 5.0)
    want = 0.5 * speed * 5.0
    if fell_at is not None:
        results.append(
            Finding(
                "FAIL",
                f"walk {speed:g} m/s 5 s",
                f"fell after {fell_at:.1f} s",
                "action scale / offset, gains or joint order",
            )
        )
    elif moved[0] < want:
        hint = (
            "moved backward: the command's sign or axis order"
            if moved[0] < -0.2
            else "barely moved: the command does not reach the policy (observation term order or scale)"
        )
        results.append(Finding("FAIL", f"walk {speed:g} m/s 5 s", f"covered {moved[0]:+.2f} m forward "
                               f"(needs >= {want:.2f} m), {moved[1]:+.2f} m sideways", hint))  # fmt: skip
    else:
        results.append(Finding("PASS", f"walk {speed:g} m/s 5 s", f"covered {moved[0]:+.2f} m forward, "
                               f"{moved[1]:+.2f} m sideways"))  # fmt: skip

    low, high = ranges.get("ang_vel_z", (-1.0, 1.0))
    for wz in (high, low):
        if wz == 0:
            continue
        moved, yaw, fell_at, _ = _rollout(policy, backend, (0.0, 0.0, wz), 5.0)
        name = f"turn in place {wz:+g} rad/s 5 s"
        want = 0.3 * abs(wz) * 5.0
        if fell_at is not None:
            results.append(Finding("FAIL", name, f"fell after {fell_at:.1f} s", "gains or joint order"))
        elif np.sign(yaw) != np.sign(wz) or abs(yaw) < want:
            results.append(
                Finding(
                    "FAIL",
                    name,
                    f"turned {yaw:+.2f} rad (needs {np.sign(wz) * want:+.2f})",
                    "the yaw-rate command's sign or position in the command term",
                )
            )
        else:
            results.append(Finding("PASS", name, f"turned {yaw:+.2f} rad, moved "
                                   f"{np.linalg.norm(moved[:2]):.2f} m"))  # fmt: skip
    return results


def _tracking_probes(policy: Stage1Policy, backend: MujocoBackend) -> list[Finding]:
    seconds = min(10.0, policy.motion.duration - backend.control_dt)
    _, _, fell_at, errors = _rollout(policy, backend, (0.0, 0.0, 0.0), seconds)
    name = f"track the first {seconds:.0f} s of the motion"
    mean = float(np.mean(errors)) if errors else float("nan")
    if fell_at is not None:
        return [Finding("FAIL", name, f"fell after {fell_at:.1f} s (mean joint error {mean:.3f} rad)",
                        "gains or joint order" if fell_at < 3.0 else
                        "the motion's joint order or frame rate, or the anchor body")]  # fmt: skip
    if mean > 0.2:
        return [
            Finding(
                "FAIL",
                name,
                f"mean joint error {mean:.3f} rad (needs <= 0.2)",
                "the motion's frame rate (--motion-fps) or joint order, or observation terms",
            )
        ]
    return [Finding("PASS", name, f"upright, mean joint error {mean:.3f} rad")]
