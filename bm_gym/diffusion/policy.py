"""A trained diffusion policy: denoiser + diffusion process + normalization + state layout, saved as a checkpoint.

Checkpoint folder: ``model.safetensors`` (weights), ``ema.safetensors`` (EMA weights, optional),
``config.json`` (model config, state layout with joint and body names, normalization statistics, and the guidance
settings measured for this model: :func:`save_guidance`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from bm_gym.data.state import StateLayout
from bm_gym.diffusion.config import DenoiserCfg, DiffusionCfg, ModelCfg
from bm_gym.diffusion.model import TrajectoryDenoiser
from bm_gym.diffusion.onnx_runtime import OnnxDenoiser
from bm_gym.diffusion.process import TrajectoryDiffusion
from bm_gym.guidance.costs import TaskCost
from bm_gym.guidance.fused import FusedSampler, pack_cost
from bm_gym.guidance.guide import BatchGuide, CostGuide, GuidanceCfg
from bm_gym.utils.files import atomic_write_text

FORMAT_VERSION = 1

#: The CPU-config checkpoint shipped inside the package (trained on velocity-policy rollouts; see its MODEL_CARD.md).
SHIPPED_CHECKPOINT = Path(__file__).resolve().parents[1] / "checkpoints" / "g1_velocity_cpu"


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupt, or does not fit the environment; the message says what differs."""


@dataclasses.dataclass
class Normalizer:
    state_mean: np.ndarray
    state_std: np.ndarray
    action_mean: np.ndarray
    action_std: np.ndarray

    @property
    def mean(self) -> np.ndarray:
        return np.concatenate([self.state_mean, self.action_mean]).astype(np.float32)

    @property
    def std(self) -> np.ndarray:
        return np.concatenate([self.state_std, self.action_std]).astype(np.float32)


class DiffusionPolicy:
    """Plans future (state, action) trajectories given the canonicalized history, in physical units."""

    def __init__(self, cfg: ModelCfg, layout: StateLayout, normalizer: Normalizer, model: TrajectoryDenoiser,
                 guidance: GuidanceCfg | None = None) -> None:  # fmt: skip
        self.cfg, self.layout, self.normalizer, self.model = cfg, layout, normalizer, model.eval()
        # The guidance settings this model was evaluated with: how hard a cost must push depends on how sharp the
        # model's prior is, so they travel with the weights (controllers use them unless told otherwise).
        self.guidance = guidance or GuidanceCfg()
        self.diffusion = TrajectoryDiffusion(cfg.diffusion)
        self.fast_forward: OnnxDenoiser | None = None
        self.fused: FusedSampler | None = None
        self._mean = torch.from_numpy(normalizer.mean)
        self._std = torch.from_numpy(normalizer.std)

    @property
    def history(self) -> int:
        return self.cfg.denoiser.history

    @property
    def horizon(self) -> int:
        return self.cfg.denoiser.horizon

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self._mean) / self._std

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        return x * self._std + self._mean

    def use_onnxruntime(self, threads: int = 1) -> DiffusionPolicy:
        """Run gradient-free denoiser passes in ONNX Runtime (about 2x faster on the CPU); returns self."""
        self.fast_forward = OnnxDenoiser(self.model, threads)
        return self

    def use_fused(self, threads: int = 1, background: bool = False) -> DiffusionPolicy:
        """Plan in one ONNX Runtime call per plan (:mod:`bm_gym.guidance.fused`) whenever the task allows; returns
        self. Plans it cannot make (custom costs, grids, warm starts, DDPM) still take the reference path, as do
        all plans of a case whose graph is being built when ``background`` (for real-time loops)."""
        self.fused = FusedSampler(self, threads, background=background)
        return self

    def set_sample_steps(self, steps: int) -> DiffusionPolicy:
        """Plan with ``steps`` DDIM steps from now on (checked as :class:`DiffusionCfg` checks them); a fused sampler
        is remade for the new schedule. Returns self."""
        self.cfg = dataclasses.replace(self.cfg, diffusion=dataclasses.replace(self.cfg.diffusion, sample_steps=steps))
        self.diffusion = TrajectoryDiffusion(self.cfg.diffusion)
        if self.fused is not None:
            old = self.fused
            self.fused = FusedSampler(self, old.threads, old.max_obstacles, old.background)
        return self

    def guide(self, cost: TaskCost, cfg: GuidanceCfg | None = None) -> CostGuide:
        """A guide that steers this policy's samples down ``cost`` (evaluated in physical units)."""
        return CostGuide(cost, self.layout, self._mean, self._std, cfg)

    def plan(
        self,
        history: np.ndarray,
        generator: torch.Generator | list[torch.Generator] | None = None,
        guide: CostGuide | list[CostGuide | None] | None = None,
        init: np.ndarray | None = None,
        start_step: int = 0,
        action_start_step: int | None = None,
    ) -> np.ndarray:
        """history [N+1, S+A] or [B, N+1, S+A] (physical units, present action ignored) -> future [.., H, S+A].

        For a batch, ``generator`` and ``guide`` may be lists with one entry per robot: each robot's starting
        noise comes from its own generator (so a robot plans the same whatever batch it is in) and each is
        steered by its own guide. ``init`` ([.., H, S+A], physical units, present frame) warm-starts sampling at
        step ``start_step``, its actions at ``action_start_step`` if given (split-token models: the rolling warm
        start of :meth:`TrajectoryDiffusion.sample`).
        """
        h = torch.as_tensor(history, dtype=torch.float32)
        single = h.ndim == 2
        h = self.normalize(h[None] if single else h)
        h[:, -1, self.layout.dim :] = 0.0  # the present action is not known yet
        b = h.shape[0]
        guides = guide if isinstance(guide, list) else [guide] * b
        generators = generator if isinstance(generator, list) else None
        if len(guides) != b or (generators is not None and len(generators) != b):
            raise ValueError(f"{b} histories need {b} guides and generators, got {len(guides)} and "
                             f"{len(generators) if generators is not None else 1}")  # fmt: skip
        shape = (1, self.horizon, self.layout.dim + self.layout.action_dim)
        if generators is not None:
            noise = torch.cat([torch.randn(shape, generator=g) for g in generators])
        else:
            noise = torch.randn((b, *shape[1:]), generator=generator)
        if init is None and self.fused is not None:
            costs = [None if g is None else pack_cost(g.cost) for g in guides]
            cfgs = [None if g is None else g.cfg for g in guides]
            fused = (
                self.fused.sample(h.numpy(), noise.numpy(), costs, cfgs) if self.fused.supports(costs, cfgs) else None
            )
            if fused is not None:
                future = self.denormalize(torch.from_numpy(fused)).numpy()
                return future[0] if single else future
        x_init = None
        if init is not None:
            x_init = self.normalize(torch.as_tensor(init, dtype=torch.float32))
            x_init = x_init[None] if single and x_init.ndim == 2 else x_init
        batch_guide = None
        if any(g is not None for g in guides):
            batch_guide = guides[0] if b == 1 or all(g is guides[0] for g in guides) else BatchGuide(guides)
        first = generators[0] if generators is not None else generator  # DDPM's per-step noise
        sample = self.diffusion.sample(self.model, h, first, batch_guide, self.fast_forward, x_init, start_step, noise,
                                       action_start_step)  # fmt: skip
        future = self.denormalize(sample).detach().cpu().numpy()
        return future[0] if single else future

    # -- persistence --------------------------------------------------------------------------------

    def save(
        self, folder: str | Path, ema_state: dict[str, torch.Tensor] | None = None, extra: dict | None = None
    ) -> None:
        """Weights as safetensors and ``config.json`` with a sha256 of each weight file (checked at load)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        files = {"model.safetensors": self.model.state_dict()}
        if ema_state is not None:
            files["ema.safetensors"] = ema_state
        for name, state in files.items():
            save_file({k: v.contiguous() for k, v in state.items()}, folder / name)
            _fsync(folder / name)
        config = {
            "format_version": FORMAT_VERSION,
            "model": dataclasses.asdict(self.cfg),
            "state_layout": json.loads(self.layout.to_json()),
            "normalization": {k: v.tolist() for k, v in dataclasses.asdict(self.normalizer).items()},
            "guidance": dataclasses.asdict(self.guidance),
            "sha256": {name: file_sha256(folder / name) for name in files},
            **(extra or {}),
        }
        (folder / "config.json").write_text(json.dumps(config, indent=1))
        _fsync(folder / "config.json")

    @classmethod
    def load(
        cls, folder: str | Path, use_ema: bool = True, robot_joints: Sequence[str] | None = None
    ) -> DiffusionPolicy:
        """Load and check a checkpoint folder: config structure, file hashes, finite weights and statistics; with
        ``robot_joints`` (a backend's ``joint_names``) also that its state and actions fit that robot."""
        folder = Path(folder)
        if not folder.is_dir():
            raise CheckpointError(f"no checkpoint folder at {folder}")
        try:
            config = json.loads((folder / "config.json").read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise CheckpointError(f"{folder}: unreadable config.json ({err})") from err
        where = f"{folder / 'config.json'}"
        if not isinstance(config, dict):
            raise CheckpointError(f"{where}: expected a JSON object, got {type(config).__name__}")
        if config.get("format_version") != FORMAT_VERSION:
            version = config.get("format_version")
            raise CheckpointError(f"{where}: format_version {version!r}, expected {FORMAT_VERSION}")
        missing = [k for k in ("model", "state_layout", "normalization") if not isinstance(config.get(k), dict)]
        if missing:
            raise CheckpointError(f"{where}: missing or malformed keys {missing}")
        try:
            layout = StateLayout.from_json(json.dumps(config["state_layout"]))
            m = config["model"]
            # loss terms added after the first checkpoints; absent keys keep their defaults
            terms = {k: m[k] for k in ("action_loss_horizon", "action_rate_weight") if k in m}
            cfg = ModelCfg(DenoiserCfg(**m["denoiser"]), DiffusionCfg(**m["diffusion"]), float(m["action_loss_weight"]),
                           **terms)  # fmt: skip
            norm = Normalizer(**{k: np.asarray(v, dtype=np.float32) for k, v in config["normalization"].items()})
        except (KeyError, TypeError, ValueError) as err:
            raise CheckpointError(f"{where}: malformed model, state_layout or normalization ({err!r})") from err
        guidance = guidance_from_config(config.get("guidance"), where)
        problem = None if robot_joints is None else layout_mismatch(layout, tuple(robot_joints))
        if problem:
            raise CheckpointError(f"{folder}: {problem}")
        _check_normalizer(norm, layout, where)
        _verify_hashes(folder, config.get("sha256"), where)
        model = TrajectoryDenoiser(cfg.denoiser, layout.dim, layout.action_dim)
        weights = folder / (
            "ema.safetensors" if use_ema and (folder / "ema.safetensors").exists() else "model.safetensors"
        )
        try:
            state = load_file(weights)
            model.load_state_dict(state)
        except Exception as err:  # safetensors raises its own error types for corrupt files
            raise CheckpointError(f"{weights}: cannot load weights ({err})") from err
        bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
        if bad:
            raise CheckpointError(f"{weights}: non-finite values in {bad[:5]}{' ...' if len(bad) > 5 else ''}")
        return cls(cfg, layout, norm, model, guidance)


def guidance_from_config(value: object, where: str) -> GuidanceCfg:
    """The ``guidance`` entry of a config.json as a :class:`GuidanceCfg`; absent (checkpoints before it): defaults."""
    if value is None:
        return GuidanceCfg()
    if not isinstance(value, dict):
        raise CheckpointError(f"{where}: 'guidance' must be an object of GuidanceCfg fields, got {value!r}")
    known = {f.name for f in dataclasses.fields(GuidanceCfg)}
    unknown = sorted(set(value) - known)
    if unknown:
        raise CheckpointError(f"{where}: unknown guidance fields {unknown}; known: {sorted(known)}")
    try:
        return GuidanceCfg(**value)
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{where}: guidance: {err}") from err


def save_guidance(folder: str | Path, guidance: GuidanceCfg, sample_steps: int | None = None) -> None:
    """Record the guidance settings measured for a checkpoint in its config.json, and with ``sample_steps`` its DDIM
    step count (atomically; weights untouched)."""
    path = Path(folder) / "config.json"
    policy = DiffusionPolicy.load(folder)  # only a sound checkpoint gets settings
    config = json.loads(path.read_text())
    config["guidance"] = dataclasses.asdict(guidance)
    if sample_steps is not None:
        diffusion = dataclasses.replace(policy.cfg.diffusion, sample_steps=sample_steps)  # checked before writing
        config["model"]["diffusion"] = dataclasses.asdict(diffusion)
    atomic_write_text(path, json.dumps(config, indent=1))


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _verify_hashes(folder: Path, hashes: object, where: str) -> None:
    """Every weight file must match the sha256 recorded at save time; older checkpoints without hashes are
    checked by loading each weight file instead (so a damaged unused file is still noticed)."""
    names = sorted(p.name for p in folder.glob("*.safetensors"))
    if "model.safetensors" not in names:
        raise CheckpointError(f"{folder}: model.safetensors is missing")
    if hashes is None:
        for name in names:
            try:
                load_file(folder / name)
            except Exception as err:  # noqa: BLE001 - safetensors' own error types
                raise CheckpointError(f"{folder / name}: cannot load weights ({err})") from err
        return
    if not isinstance(hashes, dict):
        raise CheckpointError(f"{where}: sha256 must map file names to hashes")
    for name, expected in hashes.items():
        path = folder / name
        if not path.is_file():
            raise CheckpointError(f"{path} is missing (listed in {where})")
        if file_sha256(path) != expected:
            raise CheckpointError(f"{path} does not match its sha256 in {where}: the file is damaged")


def _check_normalizer(norm: Normalizer, layout: StateLayout, where: str) -> None:
    for name, size in (("state_mean", layout.dim), ("state_std", layout.dim), ("action_mean", layout.action_dim),
                       ("action_std", layout.action_dim)):  # fmt: skip
        value = getattr(norm, name)
        if value.shape != (size,) or not np.all(np.isfinite(value)):
            raise CheckpointError(f"{where}: normalization.{name} must be {size} finite values")
        if name.endswith("std") and np.any(value <= 0):
            raise CheckpointError(f"{where}: normalization.{name} has zero or negative entries")


def replace_folder(new: Path, final: Path) -> None:
    """Put ``new`` in place of ``final`` so that a kill at any moment leaves a complete folder at ``final`` or
    at ``final.old`` (which :func:`recover_checkpoint_folder` moves back)."""
    old = final.with_name(final.name + ".old")
    if old.exists():
        shutil.rmtree(old)
    if final.exists():
        os.replace(final, old)
    os.replace(new, final)
    if old.exists():
        shutil.rmtree(old)


def recover_checkpoint_folder(final: Path) -> None:
    """Finish an interrupted :func:`replace_folder`: restore ``final.old`` if ``final`` is missing."""
    old = final.with_name(final.name + ".old")
    if old.exists() and not final.exists():
        os.replace(old, final)


def layout_mismatch(layout: StateLayout, robot_joints: tuple[str, ...]) -> str | None:
    """Why a checkpoint's state/action layout cannot drive a robot with joints ``robot_joints`` (None: it can; its
    bodies are the G1's, which :class:`StateLayout` checks)."""
    parts = []
    if layout.joint_names != robot_joints:
        if set(layout.joint_names) == set(robot_joints):
            parts.append("joints are the same but in another order")
        else:
            parts.append(
                f"joints differ: only in checkpoint {sorted(set(layout.joint_names) - set(robot_joints))}, "
                f"only in environment {sorted(set(robot_joints) - set(layout.joint_names))}"
            )
    return "state/action layout does not match the environment: " + "; ".join(parts) if parts else None
