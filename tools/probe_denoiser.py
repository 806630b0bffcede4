"""Does the denoiser derive its actions from the planned states? A probe on expert windows.

    python -m tools.probe_denoiser --checkpoint runs/cpu_split_steady/checkpoint --data data/velocity_steady.h5

Guidance steers the planned states; the robot executes the planned actions. They follow the steered states
only if the model predicts actions from states. This probe noises the future of expert windows (the data's
validation split) to chosen levels and compares the model's clean prediction with the expert's: the first
action a_0 (the one executed), the first 8 actions and the states (RMS, normalized units).

For split-token models state and action tokens take separate levels: with clean states and fully noised
actions, the action error falls well below its value with both fully noised only if the model reads the
states. Joint-token models have one level per step, so only the shared levels are probed.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from bm_gym.data.dataset import ExpertWindowDataset
from bm_gym.diffusion import DiffusionPolicy


def probe(policy: DiffusionPolicy, history: torch.Tensor, future: torch.Tensor, state_level: int,
          action_level: int, seed: int = 0) -> tuple[float, float, float]:  # fmt: skip
    """(a_0 RMS, first-8-actions RMS, states RMS) of the clean prediction from the future noised to these levels;
    ``history`` and ``future`` in physical units."""
    s = policy.layout.dim
    h = policy.normalize(history)
    h[:, -1, s:] = 0.0  # the present action is not known, as when planning
    x = policy.normalize(future)
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed))
    if policy.cfg.denoiser.tokens == "split":
        t = torch.empty(x.shape[0], x.shape[1], 2, dtype=torch.long)
        t[..., 0], t[..., 1] = state_level, action_level
    else:
        t = torch.full((x.shape[0],), state_level, dtype=torch.long)
    with torch.no_grad():
        predicted = policy.model(policy.diffusion.add_noise(x, noise, t, s), t, h)
    rms = lambda a, b: float(((a - b) ** 2).mean().sqrt())  # noqa: E731
    return (
        rms(predicted[:, 0, s:], x[:, 0, s:]),
        rms(predicted[:, :8, s:], x[:, :8, s:]),
        rms(predicted[..., :s], x[..., :s]),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--data", required=True, help="an expert dataset in the checkpoint's state layout")
    parser.add_argument("--windows", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    policy = DiffusionPolicy.load(args.checkpoint)
    d = policy.cfg.denoiser
    data = ExpertWindowDataset(args.data, d.history, d.horizon, "val", normalize=False)
    if data.layout != policy.layout:
        raise SystemExit(f"error: {args.data} holds the {data.layout.kind} state, the checkpoint the "
                         f"{policy.layout.kind} state")  # fmt: skip
    items = np.random.default_rng(args.seed).choice(len(data), min(args.windows, len(data)), replace=False)
    history, future = data.batch(items)
    top = policy.cfg.diffusion.train_timesteps - 1
    low, mid = top // 5, top // 2
    if d.tokens == "split":
        levels = [(0, top), (top, top), (0, low), (top, low), (0, 0), (mid, mid)]
    else:
        levels = [(0, 0), (low, low), (mid, mid), (top, top)]
    print(f"{args.checkpoint}: {d.tokens} tokens, {len(items)} validation windows of {args.data}")
    print("| state level | action level | a_0 RMS | actions 0-7 RMS | states RMS |\n|---|---|---|---|---|")
    for state_level, action_level in levels:
        first, actions, states = probe(policy, history, future, state_level, action_level, args.seed)
        print(f"| {state_level} | {action_level} | {first:.3f} | {actions:.3f} | {states:.3f} |")


if __name__ == "__main__":
    main()
