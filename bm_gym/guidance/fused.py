"""The whole guided sampler in one ONNX Runtime call: every DDIM step, its update and the cost gradient.

Why: on the CPU a guided plan of the shipped model spent most of its 16-19 ms in per-op overhead: ten
ONNX Runtime calls, diffusers' scheduler step in Python, and a few hundred tiny autograd ops per guided step
(docs/benchmarks.md, issue 14). Here the cost library's gradients are written in closed form (the chain rule
through the integrated root path, the body positions and the obstacle SDF, done by hand), so the sampler is
one traceable torch module: its ten denoiser passes, the DDIM updates and the guidance steps export to a
single graph, run once per plan for any batch of robots, each with its own task parameters.

The costs it covers are the library's (``JoystickCost``, ``WaypointCost``, ``ObstacleCost`` over cylinders
and boxes, and weighted sums of them: what ``VelocityTask``, ``WaypointTask``, ``AvoidObstaclesTask``,
``NavigateTask``, ``RoutedWaypointTask`` and ``CombinedTask`` build). Anything else (occupancy grids, costs of
your own, guidance through the denoiser, DDPM, warm starts) takes the autograd path of
:meth:`TrajectoryDiffusion.sample`, which stays the reference: tests check both give the same plan.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import io
import logging
import math
import multiprocessing
import multiprocessing.util
import os
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

from bm_gym.data.state import StateLayout
from bm_gym.guidance.costs import (
    BRAKE_OFFSET,
    BRAKE_SPEED_AT_GOAL,
    JoystickCost,
    ObstacleCost,
    TaskCost,
    WaypointCost,
    WeightedSum,
    body_margins,
)
from bm_gym.guidance.guide import GuidanceCfg
from bm_gym.utils.cache import cache_root

log = logging.getLogger(__name__)

#: Per-robot scalar parameters, in this order (one row of the ``params`` input).
PARAMS = (
    "joy_w", "joy_vx", "joy_vy", "joy_wz", "joy_vel_w", "joy_yaw_w",
    "wp_w", "wp_x", "wp_y", "wp_power", "wp_sharpness", "wp_pull_w", "wp_heading_w", "wp_fade", "wp_brake_w",
    "wp_brake_decel",
    "obs_w", "obs_delta", "obs_influence",
    "scale", "max_grad_norm",
)  # fmt: skip
_P = {name: i for i, name in enumerate(PARAMS)}
_FAR = 1e6  # signed distance of an empty obstacle slot


@dataclass
class CostParams:
    """One robot's cost in the closed-form library: term weights and settings, obstacles in the plan frame."""

    values: np.ndarray  # [len(PARAMS)] float32, scale and max_grad_norm left at 0 (set per guidance config)
    circles: np.ndarray  # [Mc, 3] x, y, radius
    boxes: np.ndarray  # [Mb, 5] x, y, half_x, half_y, yaw
    margin: float | dict | None = None  # the barrier's body margins as ObstacleCost takes them


def pack_cost(cost: TaskCost) -> CostParams | None:
    """The cost as closed-form parameters, or None when it is outside the library (then use autograd)."""
    values = np.zeros(len(PARAMS), np.float32)
    shapes: dict[str, np.ndarray] = {"circles": np.zeros((0, 3), np.float32), "boxes": np.zeros((0, 5), np.float32)}
    seen: set[str] = set()
    margin: list = [None]

    def add(term: TaskCost, weight: float) -> bool:
        if isinstance(term, WeightedSum):
            return all(add(t, weight * w) for w, t in term.terms)
        kind = {JoystickCost: "joy", WaypointCost: "wp", ObstacleCost: "obs"}.get(type(term))
        if kind is None or kind in seen:  # a kind twice would need two parameter rows
            return False
        seen.add(kind)
        values[_P[f"{kind}_w"]] = weight
        if kind == "joy":
            values[[_P[k] for k in ("joy_vx", "joy_vy", "joy_wz", "joy_vel_w", "joy_yaw_w")]] = (
                term.vx, term.vy, term.wz, term.velocity_weight, term.yaw_rate_weight)  # fmt: skip
        elif kind == "wp":
            names = ("wp_x", "wp_y", "wp_power", "wp_sharpness", "wp_pull_w", "wp_heading_w", "wp_fade",
                     "wp_brake_w", "wp_brake_decel")  # fmt: skip
            values[[_P[k] for k in names]] = (term.goal_x, term.goal_y, term.power, term.sharpness, term.pull_weight,
                                              term.heading_weight, term.heading_fade, term.brake_weight,
                                              term.brake_deceleration)  # fmt: skip
        else:
            if term.field.grids:
                return False
            values[[_P[k] for k in ("obs_delta", "obs_influence")]] = term.delta, term.influence
            margin[0] = term.margin
            shapes["circles"] = term.field.circles.numpy().astype(np.float32)
            shapes["boxes"] = term.field.boxes.numpy().astype(np.float32)
        return True

    if not add(cost, 1.0):
        return None
    for kind, names in _NEUTRAL.items():  # unused terms get harmless settings: no division by zero in the graph
        if kind not in seen:
            values[[_P[n] for n in names]] = list(names.values())
    return CostParams(values, shapes["circles"], shapes["boxes"], margin[0])


#: Settings of an unused (zero-weight) term.
_NEUTRAL = {
    "wp": {"wp_power": 1.0, "wp_sharpness": 4.0, "wp_fade": 1.0, "wp_brake_decel": 1.0},
    "obs": {"obs_delta": 0.1, "obs_influence": 0.3},
}


def neutral_params() -> np.ndarray:
    """The parameter row of a robot planned without guidance."""
    values = np.zeros(len(PARAMS), np.float32)
    for names in _NEUTRAL.values():
        values[[_P[n] for n in names]] = list(names.values())
    return values


def _empty_obstacles(batch: int, slots: int) -> tuple[np.ndarray, np.ndarray]:
    """Obstacle slots holding nothing: zero-size shapes far away."""
    circles = np.zeros((batch, slots, 3), np.float32)
    boxes = np.zeros((batch, slots, 5), np.float32)
    circles[..., :2] = boxes[..., :2] = _FAR
    return circles, boxes


def _revcumsum(x: torch.Tensor, dim: int) -> torch.Tensor:
    return torch.flip(torch.cumsum(torch.flip(x, [dim]), dim), [dim])


@dataclass(frozen=True)
class Terms:
    """Which parts of the library a graph computes (fixed when it is traced; absent parts cost nothing)."""

    joystick: bool = True
    waypoint: bool = True
    circles: bool = True
    boxes: bool = True

    @classmethod
    def of(cls, costs: list[CostParams | None]) -> Terms:
        used = [c for c in costs if c is not None]
        return cls(
            joystick=any(c.values[_P["joy_w"]] != 0 for c in used),
            waypoint=any(c.values[_P["wp_w"]] != 0 for c in used),
            circles=any(c.values[_P["obs_w"]] != 0 and len(c.circles) for c in used),
            boxes=any(c.values[_P["obs_w"]] != 0 and len(c.boxes) for c in used),
        )


def cost_gradient(
    x: torch.Tensor, p: torch.Tensor, circles: torch.Tensor, boxes: torch.Tensor, margins: torch.Tensor,
    layout: StateLayout, dt: float, terms: Terms = Terms(),
) -> torch.Tensor:  # fmt: skip
    """d cost / d x for trajectories ``x`` [B, H, D] in physical units; ``p`` [B, len(PARAMS)], obstacles padded
    with far-away slots, ``margins`` [B, K] the barrier's per-body margins. The same values as autograd through
    :mod:`bm_gym.guidance.costs` (see the tests)."""
    f = layout.fields
    B, H, _ = x.shape
    col = lambda name: p[:, _P[name]][:, None]  # noqa: E731  [B, 1]
    vel, yaw_rate = x[..., f["lin_vel_h"]], x[..., f["ang_vel_h"]][..., 2]
    vx, vy = vel[..., 0], vel[..., 1]
    cs = x[..., f["root_yaw_cs"]]
    rel = x[..., f["body_pos_h"]].reshape(B, H, len(layout.body_names), 3)[..., :2]
    # Forward pieces (Trajectory): integrated heading and path.
    py = torch.cumsum(yaw_rate * dt, dim=1)
    c, s = torch.cos(py), torch.sin(py)
    pxy = torch.cumsum(torch.stack([c * vx - s * vy, s * vx + c * vy], dim=-1) * dt, dim=1)
    inv_h = 1.0 / H
    g_vx, g_vy, g_yr = torch.zeros_like(vx), torch.zeros_like(vy), torch.zeros_like(yaw_rate)
    g_pxy, g_py = torch.zeros_like(pxy), torch.zeros_like(py)
    g_cs = torch.zeros_like(cs)
    g_rel = torch.zeros_like(rel)

    if terms.joystick:  # mean over the horizon of weighted squared errors
        g_vx = g_vx + col("joy_w") * 2 * col("joy_vel_w") * (vx - col("joy_vx")) * inv_h
        g_vy = g_vy + col("joy_w") * 2 * col("joy_vel_w") * (vy - col("joy_vy")) * inv_h
        g_yr = g_yr + col("joy_w") * 2 * col("joy_yaw_w") * (yaw_rate - col("joy_wz")) * inv_h

    if terms.waypoint:  # Eq. 8 variant: pull and heading far away, speed penalty near; gate and fade constant
        goal = torch.stack([col("wp_x"), col("wp_y")], dim=-1)  # [B, 1, 2]
        delta = goal - pxy
        dx, dy = delta[..., 0], delta[..., 1]
        r2 = dx * dx + dy * dy
        dist = torch.sqrt(r2 + 1e-6)
        near = torch.exp(-col("wp_sharpness") * dist)
        e = torch.atan2(dy, dx) - py
        e = torch.atan2(torch.sin(e), torch.cos(e))
        gate = (1 + torch.cos(e)) / 2
        fade = torch.clamp(dist / col("wp_fade"), max=1.0)
        speed2 = vx * vx + vy * vy
        power, k = col("wp_power"), col("wp_sharpness")
        pull = gate * col("wp_pull_w") * dist**power + fade * col("wp_heading_w") * e * e / 2
        d_dist = (
            k * near * pull + (1 - near) * gate * col("wp_pull_w") * power * dist ** (power - 1) - k * near * speed2
        )
        # Braking curve: brake_w * relu(speed - allowed(dist))^2.
        speed = torch.sqrt(speed2 + 1e-6)
        slack = torch.clamp(dist - BRAKE_OFFSET, min=0)
        allowed = torch.sqrt(BRAKE_SPEED_AT_GOAL**2 + 2 * col("wp_brake_decel") * slack)
        brake_slope = 2 * col("wp_brake_w") * torch.relu(speed - allowed)  # d brake / d speed
        d_dist = d_dist - brake_slope * col("wp_brake_decel") * (slack > 0).to(x.dtype) / allowed
        d_e = (1 - near) * fade * col("wp_heading_w") * e
        w = col("wp_w") * inv_h
        r2_safe = torch.clamp(r2, min=1e-12)
        g_pxy = g_pxy + torch.stack(
            [w * (-d_dist * dx / dist + d_e * dy / r2_safe), w * (-d_dist * dy / dist - d_e * dx / r2_safe)], -1
        )
        g_py = g_py - w * d_e
        g_vx = g_vx + w * (near * 2 * vx + brake_slope * vx / speed)
        g_vy = g_vy + w * (near * 2 * vy + brake_slope * vy / speed)

    if terms.circles or terms.boxes:  # relaxed barrier (Eq. 10) on each body's clearance, summed over bodies
        yaw = torch.atan2(cs[..., 1], cs[..., 0])
        cy, sy = torch.cos(yaw)[..., None], torch.sin(yaw)[..., None]
        bxy = pxy[:, :, None, :] + torch.stack(
            [cy * rel[..., 0] - sy * rel[..., 1], sy * rel[..., 0] + cy * rel[..., 1]], -1
        )
        points = bxy[..., None, :]  # [B, H, K, 1, 2]
        dists, grads = [], []
        if terms.circles:
            cdiff = points - circles[:, None, None, :, :2]  # [B, H, K, Mc, 2]
            cnorm = torch.sqrt((cdiff * cdiff).sum(-1) + 1e-12)
            dists.append(cnorm - circles[:, None, None, :, 2])
            grads.append(cdiff / cnorm[..., None])
        if terms.boxes:
            bdiff = points - boxes[:, None, None, :, :2]
            bc, bs = torch.cos(boxes[..., 4])[:, None, None, :], torch.sin(boxes[..., 4])[:, None, None, :]
            lx, ly = bc * bdiff[..., 0] + bs * bdiff[..., 1], -bs * bdiff[..., 0] + bc * bdiff[..., 1]
            qx, qy = lx.abs() - boxes[..., 2][:, None, None, :], ly.abs() - boxes[..., 3][:, None, None, :]
            ox, oy = torch.clamp(qx, min=0), torch.clamp(qy, min=0)
            onorm = torch.sqrt(ox * ox + oy * oy)
            inside = torch.clamp(torch.maximum(qx, qy), max=0)
            safe = torch.clamp(onorm, min=1e-12)
            is_inside = (inside < 0).to(x.dtype)
            x_wins = (qx >= qy).to(x.dtype) * is_inside  # torch's max picks the first of equal values
            glx = (ox / safe + x_wins) * torch.sign(lx)
            gly = (oy / safe + (1 - x_wins) * is_inside) * torch.sign(ly)
            dists.append(onorm + inside)
            grads.append(torch.stack([bc * glx - bs * gly, bs * glx + bc * gly], dim=-1))
        all_d = torch.cat(dists, dim=-1) if len(dists) > 1 else dists[0]  # [B, H, K, M]
        all_g = torch.cat(grads, dim=-2) if len(grads) > 1 else grads[0]  # [B, H, K, M, 2]
        nearest = torch.argmin(all_d, dim=-1, keepdim=True)
        sdf = torch.gather(all_d, -1, nearest)[..., 0]
        sdf_grad = torch.gather(all_g, -2, nearest[..., None].expand(*nearest.shape, 2))[..., 0, :]
        clearance = sdf - margins[:, None, :]
        influence, delta_b = col("obs_influence")[..., None], col("obs_delta")[..., None]
        clamped = torch.minimum(clearance, influence)
        slope = torch.where(
            clamped > delta_b, -1 / torch.clamp(clamped, min=1e-6), (clamped - 2 * delta_b) / delta_b**2
        )
        d_clear = slope * (clearance <= influence).to(x.dtype) * (col("obs_w") * inv_h)[..., None]
        g_bxy = d_clear[..., None] * sdf_grad  # [B, H, K, 2]
        g_pxy = g_pxy + g_bxy.sum(dim=2)
        g_rel = torch.stack([cy * g_bxy[..., 0] + sy * g_bxy[..., 1], -sy * g_bxy[..., 0] + cy * g_bxy[..., 1]], -1)
        g_yaw = (g_bxy[..., 0] * (-sy * rel[..., 0] - cy * rel[..., 1])
                 + g_bxy[..., 1] * (cy * rel[..., 0] - sy * rel[..., 1])).sum(-1)  # fmt: skip
        cs2 = torch.clamp(cs[..., 0] ** 2 + cs[..., 1] ** 2, min=1e-12)
        g_cs = torch.stack([-g_yaw * cs[..., 1] / cs2, g_yaw * cs[..., 0] / cs2], dim=-1)

    if terms.waypoint or terms.circles or terms.boxes:  # back through the path: sums of rotated velocities
        g_vw = _revcumsum(g_pxy, 1) * dt
        g_vx = g_vx + c * g_vw[..., 0] + s * g_vw[..., 1]
        g_vy = g_vy - s * g_vw[..., 0] + c * g_vw[..., 1]
        g_py = g_py + g_vw[..., 0] * (-s * vx - c * vy) + g_vw[..., 1] * (c * vx - s * vy)
        g_yr = g_yr + _revcumsum(g_py, 1) * dt

    zero = torch.zeros_like(g_vx)
    pieces = {
        "root_yaw_cs": g_cs,
        "lin_vel_h": torch.stack([g_vx, g_vy, zero], dim=-1),
        "ang_vel_h": torch.stack([zero, zero, g_yr], dim=-1),
        "body_pos_h": torch.cat([g_rel, torch.zeros_like(g_rel[..., :1])], -1).reshape(B, H, -1),
    }
    out, at = [], 0
    for name, sl in sorted(f.items(), key=lambda kv: kv[1].start):
        if sl.start > at:
            out.append(torch.zeros(B, H, sl.start - at, dtype=x.dtype))
        out.append(pieces.get(name, torch.zeros(B, H, sl.stop - sl.start, dtype=x.dtype)))
        at = sl.stop
    out.append(torch.zeros(B, H, x.shape[-1] - at, dtype=x.dtype))  # the action columns: no cost reads them
    return torch.cat(out, dim=-1)


class _Sampler(nn.Module):
    """DDIM from given noise to a plan, guiding the last ``guided`` steps; traced once per ``guided``."""

    def __init__(self, model: nn.Module, layout: StateLayout, mean, std, coefficients, timesteps, guided: int,
                 terms: Terms, dt: float) -> None:  # fmt: skip
        super().__init__()
        self.model, self.layout, self.guided, self.terms, self.dt = model, layout, guided, terms, dt
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)
        self.coefficients = coefficients  # [(c_x, c_x0)] per step
        self.timesteps = timesteps

    def forward(self, history, noise, params, circles, boxes, margins, guide_mask):
        x = noise
        steps = len(self.timesteps)
        for i, (t, (c_x, c_0)) in enumerate(zip(self.timesteps, self.coefficients, strict=True)):
            x0 = self.model.forward_for_export(x, torch.zeros_like(x[:, 0, 0], dtype=torch.long) + t, history)
            update = 0.0
            if i >= steps - self.guided:
                physical = x0 * self.std + self.mean
                grad = cost_gradient(physical, params, circles, boxes, margins, self.layout, self.dt,
                                     self.terms) * self.std  # fmt: skip
                update = params[:, _P["scale"]][:, None, None] * grad
                norm = torch.clamp(update.flatten(1).norm(dim=1), min=1e-12)[:, None, None]
                update = update * torch.clamp(params[:, _P["max_grad_norm"]][:, None, None] / norm, max=1.0)
                update = update * guide_mask[:, i - (steps - self.guided)][:, None, None]
            x = c_x * x + c_0 * x0 - update
        return x


class FusedSampler:
    """Plans a batch of robots, each with its own history, noise and (library) cost, in one ORT call per core.

    Graphs are exported per (guided steps, batch size, cost terms present), with static shapes but for the
    number of obstacles, and cached: static shapes let ONNX Runtime fold the shape computations (half the
    nodes), and obstacle arrays sized to the obstacles present keep the barrier cheap (48 padded slots cost
    1 ms per guided step on the project machine; 2 slots a tenth of that) without a graph per count.

    ``threads``: a batch is split into up to this many parts, planned concurrently by single-threaded
    sessions (ORT releases the GIL). Splitting the batch beats ORT's intra-op threads on these small matrices
    (16 robots: 22 ms against 33 ms on 2 cores), and a single robot plans on one thread, its fastest setting.
    """

    def __init__(self, policy, threads: int = 1, max_obstacles: int = 64,
                 background: bool = False) -> None:  # fmt: skip
        from diffusers import DDIMScheduler

        scheduler = policy.diffusion.sample_scheduler
        if not isinstance(scheduler, DDIMScheduler) or scheduler.config.get("eta", 0.0):
            raise ValueError("the fused sampler implements deterministic DDIM; this model samples otherwise")
        self.policy, self.threads, self.max_obstacles = policy, threads, max_obstacles
        self.timesteps = [int(t) for t in scheduler.timesteps]
        stride = scheduler.config.num_train_timesteps // scheduler.num_inference_steps
        alphas = scheduler.alphas_cumprod
        self.coefficients = []
        for t in self.timesteps:
            a_t = float(alphas[t])
            a_prev = float(alphas[t - stride]) if t - stride >= 0 else float(scheduler.final_alpha_cumprod)
            c_x = math.sqrt(1 - a_prev) / math.sqrt(1 - a_t)
            self.coefficients.append((c_x, math.sqrt(a_prev) - c_x * math.sqrt(a_t)))
        self._sessions: dict[tuple, ort.InferenceSession] = {}
        self._digest: str | None = None
        # background: a graph not built yet is built in a thread and the caller plans another way meanwhile
        # (exporting takes 1-4 s, which a 50 Hz loop such as the app's must not wait for).
        self.background = background
        self._building: set[tuple] = set()
        self._lock = threading.Lock()

    def _session(self, guided: int, batch: int, terms: Terms) -> ort.InferenceSession | None:
        key = (guided, batch, terms)
        if key in self._sessions:
            return self._sessions[key]
        if not self.background:
            return self._build(key)
        cached = _read_cache(self._fingerprint(), key)
        if cached is not None:
            return self._build(key, cached)
        with self._lock:
            if key not in self._building:
                self._building.add(key)
                # Traced in another process: tracing holds the GIL for seconds, which would stall the caller.
                future = _exporter().submit(_export_graph, self._spec(*key))
                future.add_done_callback(lambda f, k=key: self._exported(k, f))
        return None

    def _exported(self, key: tuple, future: concurrent.futures.Future) -> None:
        """Load a graph the exporter made; an export cut short because the process is ending is dropped."""
        if future.cancelled() or _EXPORTER_STOPPED.is_set():
            return
        if future.exception() is not None:  # this sampler keeps planning the other way
            log.warning("exporting the fused graph %s failed: %r", key, future.exception())
            return
        self._build(key, future.result())

    def _build(self, key: tuple, graph: bytes | None = None) -> ort.InferenceSession:
        shared = (self._fingerprint(), key)
        if shared in _SESSIONS:  # another sampler of the same model made it (sessions are thread-safe to run)
            self._sessions[key] = _SESSIONS[shared]
            return _SESSIONS[shared]
        graph = graph or _GRAPHS.get((self._fingerprint(), key)) or _read_cache(self._fingerprint(), key)
        if graph is None:
            graph = _export_graph(self._spec(*key))
        _GRAPHS[(self._fingerprint(), key)] = graph
        _write_cache(self._fingerprint(), key, graph)
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = 1, 1
        # Spinning idle workers steal the cores from the simulation and from other processes.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
        self._sessions[key] = _SESSIONS[shared] = session
        return session

    def _fingerprint(self) -> str:
        """Identifies the model a graph was exported from (weights, normalization, schedule)."""
        if self._digest is None:
            digest = hashlib.sha256()
            for tensor in [*self.policy.model.state_dict().values(), self.policy._mean, self.policy._std]:
                digest.update(tensor.detach().cpu().numpy().tobytes())
            digest.update(repr((self.timesteps, self.coefficients)).encode())
            self._digest = digest.hexdigest()
        return self._digest

    def _spec(self, guided: int, batch: int, terms: Terms) -> dict:
        """Everything :func:`_export_graph` needs, picklable (weights as tensors), to export in any process."""
        p = self.policy
        return {"cfg": p.model.cfg, "state_dim": p.model.state_dim, "action_dim": p.model.action_dim,
                "weights": {k: v.detach().cpu() for k, v in p.model.state_dict().items()}, "layout": p.layout,
                "mean": p._mean.cpu(), "std": p._std.cpu(), "coefficients": self.coefficients,
                "timesteps": self.timesteps, "guided": guided, "batch": batch, "terms": terms}  # fmt: skip

    def supports(self, costs: list[CostParams | None], cfgs: list[GuidanceCfg | None]) -> bool:
        """Whether these robots' costs and guidance settings can take the fused path."""
        for cost, cfg in zip(costs, cfgs, strict=True):
            if cfg is None:
                continue
            if cost is None or cfg.through_model:
                return False
            if len(cost.circles) > self.max_obstacles or len(cost.boxes) > self.max_obstacles:
                return False
        return True

    def sample(self, history: np.ndarray, noise: np.ndarray, costs: list[CostParams | None],
               cfgs: list[GuidanceCfg | None]) -> np.ndarray | None:  # fmt: skip
        """history [B, N+1, D] and noise [B, H, D] (normalized) -> plan [B, H, D] (normalized); None while the
        graph for this case is still being built in the background."""
        b, steps = len(costs), len(self.timesteps)
        guided = [0 if cfg is None or cost is None or cfg.scale == 0 else min(cfg.guided_steps or steps, steps)
                  for cost, cfg in zip(costs, cfgs, strict=True)]  # fmt: skip
        g = max(guided)
        slots = lambda kind: max((len(getattr(c, kind)) for c in costs if c is not None), default=0) or 1  # noqa: E731
        mc, mb = (slots("circles"), slots("boxes")) if g else (1, 1)
        params = np.repeat(neutral_params()[None], b, axis=0)
        circles, _ = _empty_obstacles(b, mc)
        _, boxes = _empty_obstacles(b, mb)
        mask = np.zeros((b, max(g, 1)), np.float32)
        margins = np.zeros((b, len(self.policy.layout.body_names)), np.float32)
        for i, (cost, cfg) in enumerate(zip(costs, cfgs, strict=True)):
            if not guided[i]:
                continue
            params[i] = cost.values
            params[i, _P["scale"]] = cfg.scale
            params[i, _P["max_grad_norm"]] = np.inf if cfg.max_grad_norm is None else cfg.max_grad_norm
            circles[i, : len(cost.circles)] = cost.circles
            boxes[i, : len(cost.boxes)] = cost.boxes
            if len(cost.circles) or len(cost.boxes):
                margins[i] = body_margins(cost.margin, self.policy.layout.body_names)
            mask[i, g - guided[i] :] = 1.0
        feed = dict(zip(_INPUTS, (history.astype(np.float32, copy=False), noise.astype(np.float32, copy=False),
                                  params, circles, boxes, margins, mask), strict=True))  # fmt: skip
        terms = Terms.of(costs) if g else Terms()
        bounds = np.linspace(0, b, min(self.threads, b) + 1).round().astype(int)
        sizes = np.diff(bounds)
        sessions = [self._session(g, int(size), terms) for size in sizes]
        if any(session is None for session in sessions):
            return None
        inputs = {i.name for i in sessions[0].get_inputs()}  # an unguided graph takes only history and noise

        def run(part: int) -> np.ndarray:
            chunk = {k: v[bounds[part] : bounds[part + 1]] for k, v in feed.items() if k in inputs}
            return sessions[part].run(None, chunk)[0]

        if len(sessions) == 1:
            return run(0)
        others = [_planner_pool().submit(run, part) for part in range(1, len(sessions))]
        return np.concatenate([run(0), *(future.result() for future in others)])


_INPUTS = ("history", "noise", "params", "circles", "boxes", "margins", "guide_mask")


def _export_graph(spec: dict) -> bytes:
    """The ONNX graph of the sampler described by ``spec`` (:meth:`FusedSampler._spec`)."""
    from bm_gym.diffusion.model import TrajectoryDenoiser

    model = TrajectoryDenoiser(spec["cfg"], spec["state_dim"], spec["action_dim"])
    model.load_state_dict(spec["weights"])
    batch, guided, layout = spec["batch"], spec["guided"], spec["layout"]
    module = _Sampler(model.eval(), layout, spec["mean"], spec["std"], spec["coefficients"], spec["timesteps"],
                      guided, spec["terms"], dt=0.02).eval()  # fmt: skip
    d = layout.dim + layout.action_dim
    circles, boxes = _empty_obstacles(batch, 2)
    example = (torch.zeros(batch, spec["cfg"].history + 1, d), torch.zeros(batch, spec["cfg"].horizon, d),
               torch.from_numpy(np.repeat(neutral_params()[None], batch, 0)), torch.from_numpy(circles),
               torch.from_numpy(boxes), torch.zeros(batch, len(layout.body_names)),
               torch.ones(batch, max(guided, 1)))  # fmt: skip
    buffer = io.BytesIO()
    with warnings.catch_warnings():  # (not no_grad: it switches attention to an unexportable fast path)
        warnings.simplefilter("ignore")
        torch.onnx.export(module, example, buffer, input_names=list(_INPUTS), output_names=["plan"],
                          dynamic_axes={"circles": {1: "circle_slots"}, "boxes": {1: "box_slots"}},
                          opset_version=17, dynamo=False)  # fmt: skip
    return buffer.getvalue()


#: Bump when the traced computation changes: cached graphs of other versions are then ignored.
GRAPH_VERSION = 3


def cache_dir() -> Path:
    """Where exported graphs are kept between runs (under :func:`bm_gym.utils.cache.cache_root`)."""
    return cache_root() / "fused"


def _cache_path(fingerprint: str, key: tuple) -> Path:
    name = hashlib.sha256(repr((GRAPH_VERSION, torch.__version__, fingerprint, key)).encode()).hexdigest()
    return cache_dir() / f"{name}.onnx"


def _read_cache(fingerprint: str, key: tuple) -> bytes | None:
    path = _cache_path(fingerprint, key)
    try:
        data = path.read_bytes()
        onnx.load_from_string(data)  # a damaged file is ignored (and rewritten), never run
        return data
    except Exception:  # noqa: BLE001 - missing, unreadable or not ONNX: export afresh
        return None


def _write_cache(fingerprint: str, key: tuple, graph: bytes) -> None:
    """Keep the graph for later runs (atomic write; a read-only or full disk only costs the next export)."""
    path = _cache_path(fingerprint, key)
    if path.exists():
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(graph)
        os.replace(tmp, path)
    except OSError:
        pass


_EXPORTER: concurrent.futures.ProcessPoolExecutor | None = None
_PLANNERS: concurrent.futures.ThreadPoolExecutor | None = None


def _planner_pool() -> concurrent.futures.ThreadPoolExecutor:
    """Threads that run the other parts of a split batch while the caller runs the first."""
    global _PLANNERS
    if _PLANNERS is None:
        _PLANNERS = concurrent.futures.ThreadPoolExecutor(max(1, (os.cpu_count() or 2) - 1), "bm-gym-plan")
    return _PLANNERS


def _exporter() -> concurrent.futures.ProcessPoolExecutor:
    """One background process, started on first use, that exports graphs one after another."""
    global _EXPORTER
    if _EXPORTER is None:
        _EXPORTER = concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
        # At exit, concurrent.futures joins its manager thread, which waits for every export queued, before atexit
        # handlers run: a hook of that same (private) kind, registered later, runs before it.
        threading._register_atexit(_stop_exporter)
        # A multiprocessing child first joins its own children, the exporter among them: a finalizer with a
        # priority runs before that join (and before the queues' semaphores are unlinked, which a worker still
        # starting up would die of, with a traceback).
        multiprocessing.util.Finalize(_EXPORTER, _stop_exporter, exitpriority=10)
    return _EXPORTER


def _stop_exporter() -> None:
    """At exit: cancel pending exports and kill a running one. A graph nobody will load must not hold up the
    exit (an export takes seconds, a worker still importing torch longer), and waiting on it is what
    ``ProcessPoolExecutor`` does otherwise (Python 3.14's ``terminate_workers`` does the same as this)."""
    if _EXPORTER is None or _EXPORTER_STOPPED.is_set():
        return
    _EXPORTER_STOPPED.set()
    workers = list((_EXPORTER._processes or {}).values())  # shutdown() drops them
    _EXPORTER.shutdown(wait=False, cancel_futures=True)
    for worker in workers:
        worker.terminate()


_EXPORTER_STOPPED = threading.Event()


#: Exported graphs by (model fingerprint, graph key), shared by every sampler of the process: envs and apps that
#: load the same checkpoint export each graph once.
_GRAPHS: dict[tuple[str, tuple], bytes] = {}
_SESSIONS: dict[tuple, ort.InferenceSession] = {}
