"""Data-parallel training on torch.distributed (launched by ``torchrun``): one process per device or core group.

The global batch is the same whatever the number of processes: every step, each process draws the same global
batch indices, noise levels and noise (seeded by run seed and step) and trains on its slice ``[rank::world]``.
DDP averages the gradients of equal slices, which is the gradient of the whole batch, so 1 and N processes
follow the same loss curve up to floating-point summation order (tests/diffusion/test_distributed.py).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import Dataset

from bm_gym.data.dataset import ExpertWindowDataset


@dataclass(frozen=True)
class DistributedContext:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls, device: str) -> DistributedContext:
        """Join the process group torchrun describes in the environment (WORLD_SIZE > 1); else a single process."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        if not dist.is_initialized():
            dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
        return cls(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))

    @property
    def main(self) -> bool:
        """The process that logs, validates and writes checkpoints."""
        return self.rank == 0

    def mean(self, value: torch.Tensor) -> torch.Tensor:
        if self.world == 1:
            return value
        value = value.detach().clone()
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
        return value / self.world

    def all_true(self, flag: bool) -> bool:
        """True only if ``flag`` is True on every process (so all of them stop together, none hangs)."""
        if self.world == 1:
            return flag
        value = torch.tensor(float(flag))
        dist.all_reduce(value, op=dist.ReduceOp.MIN)
        return bool(value.item())

    def close(self) -> None:
        if self.world > 1 and dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()


class GlobalBatches:
    """Indices of global batch ``step`` (the same on every process): epoch-wise permutations seeded by (seed,
    epoch), or weighted draws with replacement seeded by (seed, step) when ``weights`` are given."""

    def __init__(self, n: int, batch_size: int, seed: int, weights: np.ndarray | None = None) -> None:
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.weights = None if weights is None else torch.as_tensor(weights, dtype=torch.float64)
        self.per_epoch = n // batch_size
        self._epoch, self._perm = -1, None

    def __call__(self, step: int) -> torch.Tensor:
        if self.weights is not None:
            generator = torch.Generator().manual_seed(_mix(self.seed, step, 1))
            return torch.multinomial(self.weights, self.batch_size, replacement=True, generator=generator)
        epoch, offset = divmod(step, self.per_epoch)
        if epoch != self._epoch:
            self._epoch = epoch
            self._perm = torch.randperm(self.n, generator=torch.Generator().manual_seed(_mix(self.seed, epoch, 0)))
        return self._perm[offset * self.batch_size : (offset + 1) * self.batch_size]


def step_noise(
    seed: int, step: int, batch_size: int, shape: tuple[int, ...], timesteps: int, level_shape: tuple[int, ...] = ()
) -> tuple[torch.Tensor, ...]:
    """Noise levels ([batch, *level_shape]) and noise for global batch ``step``, the same on every process."""
    generator = torch.Generator().manual_seed(_mix(seed, step, 2))
    t = torch.randint(0, timesteps, (batch_size, *level_shape), generator=generator)
    return t, torch.randn((batch_size, *shape), generator=generator)


@dataclass(frozen=True)
class StepNoise:
    """:func:`step_noise` with a run's fixed arguments: ``noise(step)``."""

    seed: int
    batch_size: int
    shape: tuple[int, ...]
    timesteps: int
    level_shape: tuple[int, ...] = ()

    def __call__(self, step: int) -> tuple[torch.Tensor, ...]:
        return step_noise(self.seed, step, self.batch_size, self.shape, self.timesteps, self.level_shape)


def shard(batch: torch.Tensor, ctx: DistributedContext) -> torch.Tensor:
    return batch[ctx.rank :: ctx.world]


def _mix(seed: int, step: int, stream: int) -> int:
    return int(np.random.SeedSequence([seed, step, stream]).generate_state(1)[0])


class StepBatches(Dataset):
    """Item k: this process's slice of global batch ``start + k``: stacked (history, future) and that step's noise
    levels and noise.

    Windows are cut a batch at a time (``ExpertWindowDataset.batch``) and the noise drawn with them; as a dataset
    of whole steps this runs in DataLoader worker processes (``TrainCfg.loader_workers``) while the model trains,
    and the DataLoader keeps step order.
    """

    def __init__(
        self, windows: ExpertWindowDataset, batches: GlobalBatches, noise: StepNoise, ctx: DistributedContext,
        start: int, stop: int,
    ) -> None:  # fmt: skip
        self.windows, self.batches, self.noise, self.ctx = windows, batches, noise, ctx
        self.start, self.stop = start, stop

    def __len__(self) -> int:
        return self.stop - self.start

    def __getitem__(self, k: int) -> tuple[torch.Tensor, ...]:
        history, future = self.windows.batch(shard(self.batches(self.start + k), self.ctx).numpy())
        t, noise = (shard(x, self.ctx) for x in self.noise(self.start + k))
        return history, future, t, noise
