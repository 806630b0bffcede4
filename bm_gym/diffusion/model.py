"""The denoiser: a transformer decoder predicting the clean future trajectory tau_0 from a noisy one.

Future tokens embed state and action with separate linear layers plus a sinusoidal position code and
the noise-level embedding; the observation history O_t is encoded the same way and serves as the
cross-attention memory. A linear head maps each token back to (state, action).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from bm_gym.diffusion.config import DenoiserCfg


def sinusoidal(positions: torch.Tensor, dim: int) -> torch.Tensor:
    """Transformer sine/cosine code of (possibly fractional) positions: [...] -> [..., dim]."""
    half = dim // 2
    freqs = torch.exp(-math.log(10_000.0) * torch.arange(half, device=positions.device) / half)
    angles = positions.float()[..., None] * freqs
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


class TrajectoryDenoiser(nn.Module):
    def __init__(self, cfg: DenoiserCfg, state_dim: int, action_dim: int) -> None:
        super().__init__()
        self.cfg, self.state_dim, self.action_dim = cfg, state_dim, action_dim
        d = cfg.d_model
        self.future_state = nn.Linear(state_dim, d)
        self.future_action = nn.Linear(action_dim, d)
        self.history_state = nn.Linear(state_dim, d)
        self.history_action = nn.Linear(action_dim, d)
        self.noise_level = nn.Sequential(nn.Linear(d, d), nn.SiLU(), nn.Linear(d, d))
        layer = nn.TransformerDecoderLayer(
            d, cfg.heads, cfg.ff_mult * d, cfg.dropout, activation="gelu", batch_first=True, norm_first=True
        )
        self.decoder = nn.TransformerDecoder(layer, cfg.layers)
        self.out_norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, state_dim + action_dim)
        # Fixed position codes: future steps 1..H, history steps -N..0 (distinct, shared scale).
        self.register_buffer("future_pos", sinusoidal(torch.arange(1, cfg.horizon + 1), d), persistent=False)
        self.register_buffer("history_pos", sinusoidal(torch.arange(-cfg.history, 1) + 1000, d), persistent=False)

    def forward(self, noisy_future: torch.Tensor, timestep: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
        """noisy_future [B, H, S+A], timestep [B], history [B, N+1, S+A] -> predicted clean future [B, H, S+A]."""
        s = self.state_dim
        level = self.noise_level(sinusoidal(timestep, self.cfg.d_model))[:, None]
        tokens = self.future_state(noisy_future[..., :s]) + self.future_action(noisy_future[..., s:])
        tokens = tokens + self.future_pos + level
        memory = self.history_state(history[..., :s]) + self.history_action(history[..., s:]) + self.history_pos
        memory = torch.cat([memory, level], dim=1)  # the noise level is also a memory token
        return self.head(self.out_norm(self.decoder(tokens, memory)))

    def forward_for_export(
        self, noisy_future: torch.Tensor, timestep: torch.Tensor, history: torch.Tensor
    ) -> torch.Tensor:
        """The same function as :meth:`forward` (eval mode: no dropout), written with few, plain tensor ops.

        ``nn.TransformerDecoder`` exports to about 730 ONNX nodes per pass, and at batch 1 ONNX Runtime's
        per-node cost then outweighs the arithmetic; batched matmuls instead of ``F.linear`` (which exports as
        reshape-Gemm-reshape) and explicit attention export to about 120. Weights are the module's own, so
        checkpoints are unchanged; tests check both forwards agree.
        """
        s, heads = self.state_dim, self.cfg.heads
        level = _linear(self.noise_level[2], nn.functional.silu(_linear(self.noise_level[0],
                        sinusoidal(timestep, self.cfg.d_model))))[:, None]  # fmt: skip
        x = _linear(self.future_state, noisy_future[..., :s]) + _linear(self.future_action, noisy_future[..., s:])
        x = x + self.future_pos + level
        memory = _linear(self.history_state, history[..., :s]) + _linear(self.history_action, history[..., s:])
        memory = torch.cat([memory + self.history_pos, level], dim=1)
        for layer in self.decoder.layers:
            x = x + _attention(layer.self_attn, layer.norm1(x), None, heads)
            x = x + _attention(layer.multihead_attn, layer.norm2(x), memory, heads)
            x = x + _linear(layer.linear2, nn.functional.gelu(_linear(layer.linear1, layer.norm3(x))))
        return _linear(self.head, self.out_norm(x))


def _linear(layer: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """``layer(x)`` as one batched MatMul and an Add (``F.linear`` on 3-D inputs exports with reshapes)."""
    return x @ layer.weight.t() + layer.bias


def _attention(mha: nn.MultiheadAttention, x: torch.Tensor, memory: torch.Tensor | None, heads: int) -> torch.Tensor:
    """Multi-head attention of ``x`` over itself (``memory`` None) or over ``memory``, with ``mha``'s weights."""
    b, n, d = x.shape
    w, bias = mha.in_proj_weight, mha.in_proj_bias
    if memory is None:
        q, k, v = (x @ w.t() + bias).chunk(3, dim=-1)
    else:
        q = x @ w[:d].t() + bias[:d]
        k, v = (memory @ w[d:].t() + bias[d:]).chunk(2, dim=-1)
    split = lambda t: t.reshape(b, -1, heads, d // heads).transpose(1, 2)  # noqa: E731
    q, k, v = split(q), split(k), split(v)
    weights = torch.softmax(q @ k.transpose(-1, -2) * (1.0 / math.sqrt(d // heads)), dim=-1)
    out = (weights @ v).transpose(1, 2).reshape(b, n, d)
    return _linear(mha.out_proj, out)
