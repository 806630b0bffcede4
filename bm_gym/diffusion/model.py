"""The denoiser: a transformer predicting the clean future trajectory tau_0 from a noisy one.

Two token layouts (``DenoiserCfg.tokens``), the same interface:
- "joint": a decoder. Each future step is one token (state and action embedded by separate linear layers and
  summed, plus a sinusoidal position code and the noise-level embedding); the observation history O_t is encoded
  the same way and serves as the cross-attention memory. A linear head maps each token back to (state, action).
- "split" (BeyondMimic / Diffuse-CLoC, the layout of the co-author's ``diffusion_implementation``): one sequence
  of separate state and action tokens, history and future, each with its own noise-level embedding, under an
  attention mask (:func:`split_attention_mask`); heads map state tokens to states and action tokens to actions.
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


def split_attention_mask(history: int, horizon: int, lookahead: int = 1) -> torch.Tensor:
    """Which tokens of the split layout may not attend to which: bool [L, L], True = blocked.

    Token order: history states s_-N..s_0, history actions a_-N..a_-1, future states s_1..s_H, future actions
    a_0..a_H-1. States attend to every state and to no action (the planned motion is shaped by states alone,
    which is what guidance steers); action a_k attends to the states up to s_k+lookahead (1: the state it leads
    to; >= H: every planned state) and to the actions up to itself: an inverse-dynamics reading of the states.
    """
    n, h = history, horizon
    is_action = torch.tensor([False] * (n + 1) + [True] * n + [False] * h + [True] * h)
    time = torch.cat([torch.arange(-n, 1), torch.arange(-n, 0), torch.arange(1, h + 1), torch.arange(0, h)])
    q_action, k_action = is_action[:, None], is_action[None, :]
    state_query = ~q_action & k_action  # states see no action
    action_query = q_action & (
        (~k_action & (time[None, :] > time[:, None] + lookahead)) | (k_action & (time[None, :] > time[:, None]))
    )
    return state_query | action_query


class TrajectoryDenoiser(nn.Module):
    def __init__(self, cfg: DenoiserCfg, state_dim: int, action_dim: int) -> None:
        super().__init__()
        self.cfg, self.state_dim, self.action_dim = cfg, state_dim, action_dim
        d = cfg.d_model
        if cfg.tokens == "split":
            self._build_split()
            return
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

    def _build_split(self) -> None:
        cfg, d = self.cfg, self.cfg.d_model
        n, h = cfg.history, cfg.horizon
        self.state_in = nn.Linear(self.state_dim, d)
        self.action_in = nn.Linear(self.action_dim, d)
        self.noise_level = nn.Sequential(nn.Linear(d, d), nn.SiLU(), nn.Linear(d, d))
        layer = nn.TransformerEncoderLayer(
            d, cfg.heads, cfg.ff_mult * d, cfg.dropout, activation="gelu", batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)
        self.out_norm = nn.LayerNorm(d)
        self.state_head = nn.Linear(d, self.state_dim)
        self.action_head = nn.Linear(d, self.action_dim)
        time = torch.cat([torch.arange(-n, 1), torch.arange(-n, 0), torch.arange(1, h + 1), torch.arange(0, h)])
        self.register_buffer("token_pos", sinusoidal(time, d), persistent=False)
        # As an additive mask: nn's encoder and the export spelling share it.
        blocked = split_attention_mask(n, h, cfg.action_lookahead)
        self.register_buffer("attn_mask", torch.zeros(blocked.shape).masked_fill(blocked, float("-inf")),
                             persistent=False)  # fmt: skip

    def _split_tokens(self, noisy_future: torch.Tensor, timestep: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
        """The split layout's input sequence [B, L, d]; ``timestep`` is [B] (one level) or [B, H, 2] (per token).
        Written with :func:`_linear`, so the training forward and the export spelling share it."""
        s, n, h, d = self.state_dim, self.cfg.history, self.cfg.horizon, self.cfg.d_model
        levels = timestep[:, None, None].expand(-1, h, 2) if timestep.dim() == 1 else timestep
        embed = lambda t: _linear(self.noise_level[2], nn.functional.silu(_linear(self.noise_level[0],  # noqa: E731
                                  sinusoidal(t, d))))  # fmt: skip
        level = embed(levels)  # [B, H, 2, d]
        clean = embed(torch.zeros_like(history[:1, :1, 0]))  # [1, 1, d]: history tokens are clean
        tokens = torch.cat([
            _linear(self.state_in, history[..., :s]) + clean,
            _linear(self.action_in, history[:, :n, s:]) + clean,
            _linear(self.state_in, noisy_future[..., :s]) + level[:, :, 0],
            _linear(self.action_in, noisy_future[..., s:]) + level[:, :, 1],
        ], dim=1)  # fmt: skip
        return tokens + self.token_pos

    def _split_heads(self, out: torch.Tensor) -> torch.Tensor:
        n, h = self.cfg.history, self.cfg.horizon
        first = 2 * n + 1
        states, actions = out[:, first : first + h], out[:, first + h :]
        return torch.cat([_linear(self.state_head, states), _linear(self.action_head, actions)], dim=-1)

    def forward(self, noisy_future: torch.Tensor, timestep: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
        """noisy_future [B, H, S+A], timestep [B] (or [B, H, 2]: state and action level per step, split layout
        only), history [B, N+1, S+A] -> predicted clean future [B, H, S+A]."""
        if self.cfg.tokens == "split":
            tokens = self._split_tokens(noisy_future, timestep, history)
            return self._split_heads(self.out_norm(self.encoder(tokens, mask=self.attn_mask)))
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
        if self.cfg.tokens == "split":
            x = self._split_tokens(noisy_future, timestep, history)
            for layer in self.encoder.layers:
                x = x + _attention(layer.self_attn, layer.norm1(x), None, heads, self.attn_mask)
                x = x + _linear(layer.linear2, nn.functional.gelu(_linear(layer.linear1, layer.norm2(x))))
            return self._split_heads(self.out_norm(x))
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


def _attention(mha: nn.MultiheadAttention, x: torch.Tensor, memory: torch.Tensor | None, heads: int,
               mask: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
    """Multi-head attention of ``x`` over itself (``memory`` None) or over ``memory``, with ``mha``'s weights;
    ``mask`` (additive: -inf where blocked) masks it."""
    b, n, d = x.shape
    w, bias = mha.in_proj_weight, mha.in_proj_bias
    if memory is None:
        q, k, v = (x @ w.t() + bias).chunk(3, dim=-1)
    else:
        q = x @ w[:d].t() + bias[:d]
        k, v = (memory @ w[d:].t() + bias[d:]).chunk(2, dim=-1)
    split = lambda t: t.reshape(b, -1, heads, d // heads).transpose(1, 2)  # noqa: E731
    q, k, v = split(q), split(k), split(v)
    scores = q @ k.transpose(-1, -2) * (1.0 / math.sqrt(d // heads))
    weights = torch.softmax(scores if mask is None else scores + mask, dim=-1)
    out = (weights @ v).transpose(1, 2).reshape(b, n, d)
    return _linear(mha.out_proj, out)
