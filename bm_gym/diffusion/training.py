"""Training workspace: AdamW + warmup/cosine LR, EMA, held-out validation, tensorboard, resumable checkpoints.

Data-parallel with ``torchrun --nproc-per-node N -m tools.train ...`` (``bm_gym.diffusion.distributed``): the
global batch and its noise are the same for any N, so N processes train the same model as one, N times wider.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import json
import math
import multiprocessing as mp
import os
import shutil
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from bm_gym.data.dataset import ExpertWindowDataset
from bm_gym.diffusion.config import PRESETS, ModelCfg
from bm_gym.diffusion.distributed import DistributedContext, GlobalBatches, StepBatches, StepNoise
from bm_gym.diffusion.model import TrajectoryDenoiser
from bm_gym.diffusion.policy import DiffusionPolicy, Normalizer, recover_checkpoint_folder, replace_folder
from bm_gym.diffusion.process import TrajectoryDiffusion
from bm_gym.utils.checks import is_finite, positive_finite, positive_int, require
from bm_gym.utils.files import atomic_write_text


@dataclass(frozen=True)
class TrainCfg:
    data: str
    out: str
    preset: str = "cpu"
    steps: int = 20_000
    batch_size: int = 256
    lr: float = 3e-4
    weight_decay: float = 1e-4
    warmup_steps: int = 500
    ema_decay: float = 0.999  # 0 disables EMA
    val_fraction: float = 0.05
    val_every: int = 500
    val_batches: int = 20
    checkpoint_every_s: float = 300.0
    # Also keep the checkpoint of every this many steps (``checkpoints/step_0004000``), to choose among them by a
    # closed-loop evaluation: two checkpoints of one run can differ far more in closed loop than in validation
    # loss (docs/benchmarks.md). 0 keeps only the latest.
    keep_every: int = 0
    seed: int = 0
    device: str = "cpu"
    threads: int = 0  # torch intra-op threads; 0 keeps torch's default
    amp: str = ""  # "bf16": autocast the forward pass to bfloat16 (GPUs; the paper preset)
    loader_workers: int = 0  # processes cutting training windows ahead of the model; 0: in the training process
    log_every: int = 50
    sources: tuple[str, ...] = ()  # train on these manifest sources only; () all
    source_weights: tuple[tuple[str, float], ...] = ()  # sample sources in these proportions; () by size
    fall_margin_s: float | None = None  # keep windows of fallen episodes ending this long before the fall
    mirror: bool = False  # add the left-right mirror image of every training window (the paper's augmentation)
    keep_push_futures: bool = False  # train on windows with a push in their future too (window_starts)
    # Override the preset's loss terms and token layout (bm_gym.diffusion.config); None keeps the preset's value.
    action_loss_horizon: int | None = None
    action_rate_weight: float | None = None
    tokens: str | None = None  # the denoiser's token layout ("joint" or "split"); None keeps the preset's
    # Override the preset's size (a model between the cpu and paper presets, say); None keeps the preset's.
    d_model: int | None = None
    layers: int | None = None
    heads: int | None = None
    action_lookahead: int | None = None  # split layout: planned states each action attends to (DenoiserCfg)
    # Fine-tune: start from this checkpoint folder's weights (EMA if it has them) and keep its normalization,
    # which those weights were trained on, instead of the data's. Its denoiser, diffusion process and state
    # layout must be the run's; loss terms, data and schedule are the run's own. None: random initialization.
    init: str | None = None
    # Stop this invocation this many seconds after the trainer started (data loading and loader workers count),
    # saving a resumable checkpoint: a lease or a job scheduler's wall time. Rerunning the command goes on.
    # None: run to ``steps``.
    time_limit_s: float | None = None

    def __post_init__(self) -> None:
        name = "TrainCfg"
        for field in ("steps", "batch_size", "val_every", "val_batches"):
            positive_int(name, field, getattr(self, field))
        positive_int(name, "warmup_steps", self.warmup_steps, minimum=0)
        positive_int(name, "threads", self.threads, minimum=0)
        positive_finite(name, "lr", self.lr)
        positive_finite(name, "weight_decay", self.weight_decay, allow_zero=True)
        require(is_finite(self.ema_decay) and 0 <= self.ema_decay < 1, name, "ema_decay", self.ema_decay, "in [0, 1)")
        require(is_finite(self.val_fraction) and 0 < self.val_fraction < 1, name, "val_fraction", self.val_fraction,
                "in (0, 1)")  # fmt: skip
        positive_finite(name, "checkpoint_every_s", self.checkpoint_every_s)
        positive_int(name, "keep_every", self.keep_every, minimum=0)
        positive_int(name, "log_every", self.log_every)
        positive_int(name, "loader_workers", self.loader_workers, minimum=0)
        require(self.amp in ("", "bf16"), name, "amp", self.amp, '"" or "bf16"')
        for field in ("d_model", "layers", "heads"):
            if getattr(self, field) is not None:
                positive_int(name, field, getattr(self, field))
        if self.action_lookahead is not None:
            positive_int(name, "action_lookahead", self.action_lookahead, minimum=0)
        if self.time_limit_s is not None:
            positive_finite(name, "time_limit_s", self.time_limit_s)


class TrainingError(RuntimeError):
    """Training cannot go on (a non-finite loss); nothing of the failing step was saved."""


class Trainer:
    """Runs (or resumes) one training run in ``cfg.out``: ``train_state.pt`` to resume, ``checkpoint/`` to use."""

    def __init__(self, cfg: TrainCfg) -> None:
        self.created = time.monotonic()  # what time_limit_s counts from
        if cfg.preset not in PRESETS:
            raise ValueError(f"unknown model preset {cfg.preset!r}; choose from {sorted(PRESETS)}")
        self.dist = DistributedContext.from_env(cfg.device)
        if cfg.batch_size % self.dist.world:
            raise ValueError(f"--batch-size {cfg.batch_size} does not split evenly over {self.dist.world} processes")
        if cfg.device.startswith("cuda") and self.dist.world > 1:
            cfg = dataclasses.replace(cfg, device=f"cuda:{self.dist.local_rank}")
        self.cfg = cfg
        preset = PRESETS[cfg.preset]
        sizes = {k: getattr(cfg, k) for k in ("tokens", "d_model", "layers", "heads", "action_lookahead")
                 if getattr(cfg, k) is not None}  # fmt: skip
        denoiser = dataclasses.replace(preset.denoiser, **sizes)
        terms = {
            k: getattr(cfg, k) for k in ("action_loss_horizon", "action_rate_weight") if getattr(cfg, k) is not None
        }
        self.model_cfg: ModelCfg = dataclasses.replace(preset, denoiser=denoiser, **terms)
        self.out = Path(cfg.out)
        self.out.mkdir(parents=True, exist_ok=True)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        torch.manual_seed(cfg.seed)
        d = self.model_cfg.denoiser
        data = dict(
            sources=cfg.sources or None, fall_margin_s=cfg.fall_margin_s, keep_push_futures=cfg.keep_push_futures
        )
        self.train_set = ExpertWindowDataset(cfg.data, d.history, d.horizon, "train", cfg.val_fraction, **data,
                                             mirror=cfg.mirror)  # fmt: skip
        self.val_set = ExpertWindowDataset(cfg.data, d.history, d.horizon, "val", cfg.val_fraction, **data)
        self.sample_weights = self.train_set.sample_weights(dict(cfg.source_weights)) if cfg.source_weights else None
        if len(self.train_set) < cfg.batch_size:
            raise ValueError(
                f"--batch-size {cfg.batch_size} is larger than the {len(self.train_set)} training windows of "
                f"{cfg.data}; use a smaller batch or more data"
            )
        layout = self.train_set.layout
        self.model = TrajectoryDenoiser(d, layout.dim, layout.action_dim).to(cfg.device)
        self.normalizer = Normalizer(
            self.train_set.state_mean, self.train_set.state_std, self.train_set.action_mean, self.train_set.action_std
        )
        if cfg.init is not None:
            self._initialize_from(cfg.init)
        # the model as trained: wrapped by DDP across processes (gradients averaged in backward), else itself
        self.train_model = DistributedDataParallel(self.model) if self.dist.world > 1 else self.model
        self.ema = (
            AveragedModel(self.model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema_decay)) if cfg.ema_decay > 0 else None
        )
        self.diffusion = TrajectoryDiffusion(self.model_cfg.diffusion)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self._lr_factor)
        self.step = 0
        self.stop_signal: int | None = None  # the signal that ended the last run early, if one did
        self.started = time.time()
        self.elapsed_before = 0.0
        self._resume()

    def _initialize_from(self, folder: str) -> None:
        """Weights and normalization of the checkpoint ``folder`` (``cfg.init``), checked against this run."""
        start = DiffusionPolicy.load(folder)
        for what, theirs, ours in (("denoiser", start.cfg.denoiser, self.model_cfg.denoiser),
                                   ("diffusion process", start.cfg.diffusion, self.model_cfg.diffusion),
                                   ("state layout", start.layout, self.train_set.layout)):  # fmt: skip
            if theirs != ours:
                raise ValueError(f"--init {folder}: its {what} is {theirs}, this run's (--preset and size options, "
                                 f"{self.cfg.data}) is {ours}")  # fmt: skip
        self.model.load_state_dict(start.model.state_dict())
        self.normalizer = norm = start.normalizer
        for dataset in (self.train_set, self.val_set):  # windows normalized as the weights expect them
            dataset.use_statistics(norm.state_mean, norm.state_std, norm.action_mean, norm.action_std)

    def _lr_factor(self, step: int) -> float:
        return self._lr_factor_of(self.cfg, step)

    @staticmethod
    def _lr_factor_of(cfg: TrainCfg, step: int) -> float:
        """Linear warm-up, then cosine decay to 5 % of ``cfg.lr`` at ``cfg.steps``."""
        if step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
        return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))

    # -- checkpoints -------------------------------------------------------------------------------

    def _resume(self) -> None:
        recover_checkpoint_folder(self.out / "checkpoint")
        path = self.out / "train_state.pt"
        if not path.exists():
            if self.dist.main:
                atomic_write_text(self.out / "train_cfg.json", json.dumps(dataclasses.asdict(self.cfg), indent=1))
            return
        try:
            # Tensors and plain containers only: a planted pickle in a shared run folder cannot run code. Loaded to
            # the CPU, where the RNG state must be; load_state_dict moves weights and optimizer moments to the
            # model's device (a CUDA map_location made the RNG state a CUDA tensor, and resuming on a GPU failed).
            state = torch.load(path, map_location="cpu", weights_only=True)
            keys = ("preset", "data", "action_loss_horizon", "action_rate_weight", "tokens", "d_model", "layers",
                    "heads", "action_lookahead", "init")  # fmt: skip
            if any(state["cfg"].get(k) != getattr(self.cfg, k) for k in keys):
                held = ", ".join(f"{k}={state['cfg'].get(k)!r}" for k in keys)
                raise ValueError(f"{self.out} holds a run with {held}; use the same options or another --out")
            self.model.load_state_dict(state["model"])
            if self.ema is not None and state.get("ema") is not None:
                self.ema.load_state_dict(state["ema"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            self.step = int(state["step"])
            before = state["cfg"].get("steps", self.cfg.steps)
            if before != self.cfg.steps and self.dist.main:
                # The cosine schedule is computed against the total: a new total moves the learning rate at once.
                old = dataclasses.replace(self.cfg, steps=before)
                print(f"note: {self.out} was a run of {before} steps, now {self.cfg.steps}: at step {self.step} the "
                      f"learning rate goes from {self.cfg.lr * Trainer._lr_factor_of(old, self.step):.3g} to "
                      f"{self.cfg.lr * Trainer._lr_factor_of(self.cfg, self.step):.3g} (the cosine schedule "
                      "follows the new total)", flush=True)  # fmt: skip
            self.elapsed_before = float(state["elapsed_s"])
            torch.set_rng_state(state["torch_rng"])
        except ValueError:
            raise
        except Exception as err:  # truncated file, unpickling refused, keys or shapes that do not fit
            raise ValueError(
                f"cannot resume from {path}: {err}. It is written atomically, so this file was damaged or made "
                "by something else; remove it to start the run over"
            ) from err

    def save(self, keep: bool = False) -> None:
        """Resumable state (atomic) and a usable checkpoint folder; ``keep`` also copies that folder to
        ``checkpoints/step_NNNNNNN``."""
        state = {
            "cfg": dataclasses.asdict(self.cfg),
            "model": self.model.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "step": self.step,
            "elapsed_s": self.elapsed_s,
            "torch_rng": torch.get_rng_state(),
        }
        tmp = self.out / "train_state.pt.tmp"
        with open(tmp, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.out / "train_state.pt")
        policy = DiffusionPolicy(self.model_cfg, self.train_set.layout, self.normalizer, self.model)
        ema_state = self.ema.module.state_dict() if self.ema is not None else None
        extra = {"training": {"steps": self.step, "elapsed_s": round(self.elapsed_s), "data": self.cfg.data,
                              "train_cfg": dataclasses.asdict(self.cfg)}}  # fmt: skip
        tmp_dir = self.out / "checkpoint.tmp"
        if tmp_dir.exists():
            shutil.rmtree(tmp_dir)
        policy.save(tmp_dir, ema_state, extra)
        if keep:
            kept = self.out / "checkpoints" / f"step_{self.step:07d}"
            staging = kept.with_name(kept.name + ".tmp")  # a copy a kill cut short is not a checkpoint
            if staging.exists():
                shutil.rmtree(staging)
            kept.parent.mkdir(exist_ok=True)
            shutil.copytree(tmp_dir, staging)
            replace_folder(staging, kept)
        replace_folder(tmp_dir, self.out / "checkpoint")

    @property
    def elapsed_s(self) -> float:
        return self.elapsed_before + time.time() - self.started

    # -- loop --------------------------------------------------------------------------------------

    @torch.no_grad()
    def validate(self, model: torch.nn.Module) -> dict[str, float]:
        model.eval()
        loader = DataLoader(self.val_set, batch_size=self.cfg.batch_size, shuffle=True,
                            generator=torch.Generator().manual_seed(0))  # fmt: skip
        totals: dict[str, list[float]] = {"loss": [], "state": [], "action": []}
        fork = torch.random.fork_rng()
        with fork:
            torch.manual_seed(1234)  # same noise levels every validation: comparable numbers
            for i, (history, future) in enumerate(loader):
                if i >= self.cfg.val_batches:
                    break
                loss, parts = self.diffusion.loss(model, history.to(self.cfg.device), future.to(self.cfg.device),
                                                  self.model_cfg)  # fmt: skip
                totals["loss"].append(loss.item())
                totals["state"].append(parts["state"].item())
                totals["action"].append(parts["action"].item())
        model.train()
        return {k: float(np.mean(v)) for k, v in totals.items()}

    def _stop_reason(self) -> str:
        """Why to stop after this step ("" to go on): a SIGTERM or SIGINT, or the time limit. Every process must
        agree to stop, or the others would wait on an all-reduce forever."""
        reason = ""
        if self.stop_signal is not None:
            reason = f"{signal.Signals(self.stop_signal).name} received"
        elif self.cfg.time_limit_s is not None and time.monotonic() - self.created >= self.cfg.time_limit_s:
            reason = f"time limit of {self.cfg.time_limit_s:g} s reached"
        if self.dist.world > 1 and not self.dist.all_true(not reason):
            reason = reason or "another process is stopping"
        return reason

    @contextlib.contextmanager
    def _stop_on_signals(self):
        """SIGTERM (a scheduler, a lease, ``timeout``) or Ctrl-C ends the run after the current step, with a
        checkpoint and the resumable state saved; a second signal acts as usual."""
        if threading.current_thread() is not threading.main_thread():  # handlers can only be set there
            yield
            return
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}

        def handler(signum, frame):
            self.stop_signal = signum
            for sig, old in previous.items():
                signal.signal(sig, old)

        for sig in previous:
            signal.signal(sig, handler)
        try:
            yield
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)

    def run(self, progress: bool = True) -> Path:
        with self._stop_on_signals():
            return self._run(progress)

    def _run(self, progress: bool) -> Path:
        cfg, ctx = self.cfg, self.dist
        d = self.model_cfg.denoiser
        writer = SummaryWriter(self.out / "tb") if ctx.main else None
        # step, loss, state MSE, action MSE, training seconds so far; closed below
        log = open(self.out / "losses.csv", "a") if ctx.main else None
        batches = GlobalBatches(len(self.train_set), cfg.batch_size, cfg.seed, self.sample_weights)
        future_shape = (d.horizon, self.train_set.layout.dim + self.train_set.layout.action_dim)
        level_shape = self.diffusion.level_shape(d, cfg.batch_size)[1:]  # per sample: () or (H, 2)
        noise = StepNoise(cfg.seed, cfg.batch_size, future_shape, self.model_cfg.diffusion.train_timesteps,
                          level_shape)  # fmt: skip
        # Forked loader workers share the window arrays with this process; spawned ones each unpickle a copy
        # (7 s a worker for 3 h of data: a minute of a GPU lease with 8). They cut numpy windows only and never
        # touch CUDA, so forking after CUDA is up is safe, as for torch's own default DataLoader on Linux.
        start_method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
        steps = DataLoader(StepBatches(self.train_set, batches, noise, ctx, self.step, cfg.steps), batch_size=None,
                           num_workers=cfg.loader_workers, prefetch_factor=4 if cfg.loader_workers else None,
                           multiprocessing_context=start_method if cfg.loader_workers else None)  # fmt: skip
        step_batches = iter(steps)
        last_save = time.monotonic()
        bar = tqdm(total=cfg.steps, initial=self.step, unit="step", disable=not (progress and ctx.main))
        self.model.train()
        while self.step < cfg.steps:
            try:
                history, future, t, noise = next(step_batches)
            except RuntimeError:  # a loader worker ended by the same Ctrl-C: stop with a checkpoint all the same
                if self.stop_signal is None:
                    raise
                break
            with torch.autocast(cfg.device.split(":")[0], dtype=torch.bfloat16, enabled=cfg.amp == "bf16"):
                loss, parts = self.diffusion.loss(self.train_model, history.to(cfg.device), future.to(cfg.device),
                                                  self.model_cfg, t.to(cfg.device), noise.to(cfg.device))  # fmt: skip
            if not ctx.all_true(bool(torch.isfinite(loss))):
                raise TrainingError(
                    f"non-finite loss {loss.item()} at step {self.step + 1} (state {parts['state'].item()}, action "
                    f"{parts['action'].item()}); batch inputs finite: {bool(torch.isfinite(history).all())} / "
                    f"{bool(torch.isfinite(future).all())}. Nothing of this step was saved: the last checkpoint in "
                    f"{self.out} is intact; lower --lr or check {cfg.data}"
                )
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
            if not torch.isfinite(grad_norm):  # gradients are all-reduced: every process sees the same norm
                raise TrainingError(f"non-finite gradient at step {self.step + 1} (loss {loss.item()}); nothing of "
                                    f"this step was saved: the last checkpoint in {self.out} is intact")  # fmt: skip
            self.optimizer.step()
            self.scheduler.step()
            if self.ema is not None:
                self.ema.update_parameters(self.model)
            self.step += 1
            bar.update()
            if self.step % cfg.log_every == 0:
                values = {k: ctx.mean(v).item() for k, v in (("loss", loss), *parts.items())}
                if ctx.main:
                    writer.add_scalar("train/loss", values["loss"], self.step)
                    writer.add_scalar("train/state_mse", values["state"], self.step)
                    writer.add_scalar("train/action_mse", values["action"], self.step)
                    if "action_rate" in values:
                        writer.add_scalar("train/action_rate", values["action_rate"], self.step)
                    writer.add_scalar("train/lr", self.scheduler.get_last_lr()[0], self.step)
                    log.write(f"{self.step},{values['loss']:.8f},{values['state']:.8f},{values['action']:.8f},"
                              f"{self.elapsed_s:.3f}\n")  # fmt: skip
                    log.flush()
                    bar.set_postfix(loss=f"{values['loss']:.4f}")
            if ctx.main and (self.step % cfg.val_every == 0 or self.step == cfg.steps):
                for name, model in (("val", self.model), ("val_ema", self.ema.module if self.ema else None)):
                    if model is not None:
                        for key, value in self.validate(model).items():
                            writer.add_scalar(f"{name}/{key}", value, self.step)
            if ctx.main and cfg.keep_every and self.step % cfg.keep_every == 0:
                self.save(keep=True)
                last_save = time.monotonic()
            elif ctx.main and time.monotonic() - last_save > cfg.checkpoint_every_s:
                self.save()
                last_save = time.monotonic()
            reason = self._stop_reason()
            if reason:
                if ctx.main:
                    print(f"\n{reason}: stopping at step {self.step} of {cfg.steps} with a checkpoint; rerun the same "
                          "command to go on", flush=True)  # fmt: skip
                break
        bar.close()
        if ctx.main:
            self.save()
            writer.close()
            log.close()
        # The DDP wrapper's reducer holds the process group: release it before the group goes, or its C++
        # destructor may run at interpreter exit against a destroyed group and abort the process (seen in CI as
        # "terminate called without an active exception" after a finished 2-process run).
        del steps, step_batches
        self.train_model = self.model
        gc.collect()
        ctx.close()
        return self.out / "checkpoint"
