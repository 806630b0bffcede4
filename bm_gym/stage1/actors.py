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
        self.metadata = {p.key: p.value for p in graph.metadata_props}
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1  # batch-1 MLPs are fastest single-threaded; envs parallelise
        options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
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


class RslRlActor:
    """The actor MLP of an rsl_rl checkpoint, with its empirical observation normaliser if present.

    Reads both layouts: rsl_rl >= 3 (``actor_state_dict`` with ``mlp.*`` and ``obs_normalizer.*``) and
    the older ``model_state_dict`` with ``actor.*`` (normaliser in ``obs_norm_state_dict``). Evaluated
    with numpy: a 4-layer MLP at batch 1 needs no torch overhead.
    """

    _ACTIVATIONS = {
        "elu": lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0))),
        "relu": lambda x: np.maximum(x, 0),
        "tanh": np.tanh,
    }

    def __init__(self, path: str | Path, activation: str = "elu") -> None:
        import torch  # only rsl_rl checkpoints need torch to unpickle

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"rsl_rl checkpoint not found: {path}")
        if activation not in self._ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; choose from {sorted(self._ACTIVATIONS)}")
        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:
            raise ValueError(f"{path} is not a readable torch checkpoint: {err}") from err
        if "actor_state_dict" in ckpt:
            state, prefix = ckpt["actor_state_dict"], "mlp."
            norm = {k.split(".", 1)[1]: v for k, v in state.items() if k.startswith("obs_normalizer.")}
        elif "model_state_dict" in ckpt:
            state, prefix = ckpt["model_state_dict"], "actor."
            norm = ckpt.get("obs_norm_state_dict") or {
                k.split(".", 1)[1]: v for k, v in state.items() if k.startswith("actor_obs_normalizer.")
            }
        else:
            raise ValueError(f"{path}: no actor_state_dict or model_state_dict; keys are {sorted(ckpt)}")
        layer_ids = sorted({int(k[len(prefix) :].split(".")[0]) for k in state if k.startswith(prefix)})
        if not layer_ids:
            raise ValueError(f"{path}: no '{prefix}*' actor layers in the checkpoint")
        as_array = lambda key: state[key].numpy().astype(np.float64)  # noqa: E731
        self._layers = [(as_array(f"{prefix}{i}.weight"), as_array(f"{prefix}{i}.bias")) for i in layer_ids]
        self._act = self._ACTIVATIONS[activation]
        self._mean = self._std = None
        if norm and "_mean" in norm:
            self._mean = norm["_mean"].numpy().reshape(-1).astype(np.float64)
            self._std = norm["_std"].numpy().reshape(-1).astype(np.float64) + 1e-2  # rsl_rl's eps
        self.obs_dim = self._layers[0][0].shape[1]
        self.action_dim = self._layers[-1][0].shape[0]
        self.metadata: dict[str, str] = {}

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        if obs.shape != (self.obs_dim,):
            raise ValueError(f"observation shape {obs.shape} does not match the policy input ({self.obs_dim},)")
        x = obs.astype(np.float64)
        if self._mean is not None:
            x = (x - self._mean) / self._std
        for i, (w, b) in enumerate(self._layers):
            x = w @ x + b
            if i < len(self._layers) - 1:
                x = self._act(x)
        return x.astype(np.float32)
