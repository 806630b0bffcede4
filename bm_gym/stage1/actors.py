"""Stage 1 actor networks: exported ONNX graphs and rsl_rl ``.pt`` checkpoints, both as obs -> action."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np
import onnx
import onnxruntime as ort


class Actor(Protocol):
    obs_dim: int
    action_dim: int
    metadata: dict[str, str]

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        """One observation [obs_dim] float32 -> raw action [action_dim]."""

    def reset(self) -> None:
        """Start a new episode (clears recurrent state, if any)."""


class OnnxActor:
    """An ONNX policy (weights may live in an external ``.onnx.data`` file beside it)."""

    def __init__(self, path: str | Path) -> None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"ONNX policy not found: {path}")
        try:
            graph = onnx.load(str(path), load_external_data=False)
        except Exception as err:  # onnx raises DecodeError / various parse errors
            raise ValueError(f"{path} is not a valid ONNX model: {err}") from err
        for init in graph.graph.initializer:
            if init.data_location == onnx.TensorProto.EXTERNAL:
                location = next(e.value for e in init.external_data if e.key == "location")
                if not (path.parent / location).is_file():
                    raise FileNotFoundError(
                        f"{path} keeps its weights in an external file {location!r} that is missing from {path.parent}"
                    )
        if not graph.graph.input or not graph.graph.output:
            raise ValueError(f"{path} is empty or not an ONNX policy: its graph has no inputs or outputs")
        if len(graph.graph.input) != 1:
            names = [i.name for i in graph.graph.input]
            raise ValueError(
                f"{path}: expected one observation input, the graph has inputs {names} (recurrent ONNX exports carry "
                "their hidden state as inputs: load the rsl_rl .pt checkpoint instead)"
            )
        self.metadata = {p.key: p.value for p in graph.metadata_props}
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1  # batch-1 MLPs are fastest single-threaded; envs parallelise
        options.inter_op_num_threads = 1
        try:
            self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own Fail / InvalidGraph / RuntimeException types
            raise ValueError(
                f"{path}: ONNX Runtime cannot load this policy (truncated or corrupt weights?): {err}"
            ) from err
        inp, out = self._session.get_inputs()[0], self._session.get_outputs()[0]
        self.obs_dim = int(inp.shape[-1])
        self.action_dim = int(out.shape[-1])
        # Bound, reused buffers: batch-1 calls are dominated by per-call overhead, not arithmetic.
        self._obs = np.zeros((1, self.obs_dim), dtype=np.float32)
        self._action = np.zeros((1, self.action_dim), dtype=np.float32)
        self._binding = self._session.io_binding()
        self._binding.bind_ortvalue_input(inp.name, ort.OrtValue.ortvalue_from_numpy(self._obs))
        self._binding.bind_ortvalue_output(out.name, ort.OrtValue.ortvalue_from_numpy(self._action))

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        if obs.shape != (self.obs_dim,):
            raise ValueError(f"observation shape {obs.shape} does not match the policy input ({self.obs_dim},)")
        self._obs[0] = obs
        self._session.run_with_iobinding(self._binding)
        return self._action[0].copy()

    def reset(self) -> None:
        """Feed-forward graphs keep no state."""


class RslRlActor:
    """The actor of an rsl_rl checkpoint, rebuilt with rsl-rl-lib's own model classes.

    rsl-rl-lib's ``MLPModel`` / ``RNNModel`` (with its ``EmpiricalNormalization``) evaluate the network, so
    the arithmetic is the library's, not a re-implementation. Checkpoints of rsl_rl 5.x (``actor_state_dict``:
    ``mlp.*``, ``obs_normalizer.*``, ``rnn.*``), 3.x-4.x (``model_state_dict``: ``actor.*``,
    ``actor_obs_normalizer.*``, ``memory_a.*``) and 2.x (normaliser in ``obs_norm_state_dict``) are mapped
    onto it by key; the activation is not stored in checkpoints, so it is an argument (rsl_rl's default: elu).
    """

    def __init__(self, path: str | Path, activation: str = "elu") -> None:
        import torch  # only rsl_rl checkpoints need torch and rsl-rl-lib
        from rsl_rl.models import MLPModel, RNNModel
        from tensordict import TensorDict

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"rsl_rl checkpoint not found: {path}")
        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:
            raise ValueError(f"{path} is not a readable torch checkpoint: {err}") from err
        if not isinstance(ckpt, dict):
            raise ValueError(f"{path}: expected an rsl_rl checkpoint (a dict), got {type(ckpt).__name__}")
        state = _actor_state(ckpt, path)
        layers = sorted(int(k.split(".")[1]) for k in state if k.startswith("mlp.") and k.endswith(".weight"))
        if not layers:
            raise ValueError(f"{path}: no actor MLP layers in the checkpoint")
        if layers != list(range(0, 2 * len(layers), 2)):
            raise ValueError(f"{path}: actor layers {layers} are not an rsl_rl MLP (Linear + activation pairs)")
        sizes = [tuple(state[f"mlp.{i}.weight"].shape) for i in layers]
        hidden = [out for out, _ in sizes[:-1]] or [sizes[0][0]]
        action_dim = sizes[-1][0]
        if len(sizes) == 1:
            raise ValueError(f"{path}: a single-layer actor is not an rsl_rl MLP")
        recurrent = "rnn.rnn.weight_ih_l0" in state
        if recurrent:
            gates, obs_dim = state["rnn.rnn.weight_ih_l0"].shape
            rnn_hidden = state["rnn.rnn.weight_hh_l0"].shape[1]
            rnn_type = {4: "lstm", 3: "gru"}.get(gates // rnn_hidden)
            if rnn_type is None:
                raise ValueError(f"{path}: recurrent actor with {gates // rnn_hidden} gates is neither LSTM nor GRU")
            rnn_layers = sum(1 for k in state if k.startswith("rnn.rnn.weight_ih_l"))
        else:
            obs_dim = sizes[0][1]
        obs = TensorDict({"policy": torch.zeros(1, obs_dim)}, batch_size=[1])
        common = dict(obs=obs, obs_groups={"actor": ["policy"]}, obs_set="actor", output_dim=action_dim,
                      hidden_dims=hidden, activation=activation,
                      obs_normalization="obs_normalizer._mean" in state)  # fmt: skip
        try:
            model = (RNNModel(**common, rnn_type=rnn_type, rnn_hidden_dim=rnn_hidden, rnn_num_layers=rnn_layers)
                     if recurrent else MLPModel(**common))  # fmt: skip
            model.load_state_dict(state, strict=True)
        except (ValueError, RuntimeError) as err:
            raise ValueError(f"{path}: rsl-rl-lib cannot rebuild this actor ({activation=}): {err}") from err
        self._net = model.as_jit().eval()  # deterministic output; recurrent state kept inside, reset() clears it
        self._torch = torch
        self.recurrent = recurrent
        self.obs_dim, self.action_dim = int(obs_dim), int(action_dim)
        self.metadata: dict[str, str] = {}

    def reset(self) -> None:
        """Clear the recurrent state (a new episode); nothing to do for feed-forward actors."""
        if self.recurrent:
            self._net.reset()

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        if obs.shape != (self.obs_dim,):
            raise ValueError(f"observation shape {obs.shape} does not match the policy input ({self.obs_dim},)")
        with self._torch.inference_mode():
            out = self._net(self._torch.as_tensor(obs, dtype=self._torch.float32)[None])
        return out[0].numpy().astype(np.float32)


#: Old actor key prefixes and their rsl-rl-lib 5 names.
_RENAMES = (("actor_obs_normalizer.", "obs_normalizer."), ("memory_a.", "rnn."), ("actor.", "mlp."))
#: Output distributions whose deterministic output is the MLP output itself (Gaussian with state-free std).
_GAUSSIAN_KEYS = {"distribution.std_param", "distribution.log_std_param"}


def _actor_state(ckpt: dict, path: Path) -> dict:
    """The actor's weights under rsl-rl-lib 5's key names, without the output distribution."""
    if "actor_state_dict" in ckpt:
        state = dict(ckpt["actor_state_dict"])
    elif "model_state_dict" in ckpt:
        state = {}
        for key, value in ckpt["model_state_dict"].items():
            for old, new in _RENAMES:
                if key.startswith(old):
                    state[new + key[len(old) :]] = value
                    break
        norm = ckpt.get("obs_norm_state_dict") or {}
        state |= {f"obs_normalizer.{k}": v for k, v in norm.items()}
    else:
        raise ValueError(f"{path}: no actor_state_dict or model_state_dict; keys are {sorted(ckpt)}")
    distribution = {k for k in state if k.startswith("distribution.")}
    if distribution - _GAUSSIAN_KEYS:
        raise ValueError(
            f"{path}: unsupported output distribution {sorted(distribution)}; only Gaussian actors (std_param or "
            "log_std_param) have a deterministic output equal to the MLP's"
        )
    return {k: v for k, v in state.items() if not k.startswith("distribution.")}
