import numpy as np
import torch

from bm_gym.data import StateLayout
from bm_gym.diffusion import CPU, DiffusionPolicy, Normalizer, TrajectoryDenoiser
from bm_gym.diffusion.onnx_runtime import OnnxDenoiser


def test_onnxruntime_forward_matches_torch_and_plans_agree():
    torch.manual_seed(0)
    layout = StateLayout()
    model = TrajectoryDenoiser(CPU.denoiser, layout.dim, layout.action_dim).eval()
    dim = layout.dim + layout.action_dim
    x, t, history = torch.randn(3, 16, dim), torch.tensor([0, 17, 49]), torch.randn(3, 5, dim)
    with torch.no_grad():
        expected = model(x, t, history)
    np.testing.assert_allclose(OnnxDenoiser(model)(x, t, history).numpy(), expected.numpy(), atol=1e-4)

    norm = Normalizer(np.zeros(layout.dim), np.ones(layout.dim), np.zeros(29), np.ones(29))
    policy = DiffusionPolicy(CPU, layout, norm, model)
    window = np.zeros((5, dim), np.float32)
    plain = policy.plan(window, torch.Generator().manual_seed(3))
    fast = policy.use_onnxruntime().plan(window, torch.Generator().manual_seed(3))
    np.testing.assert_allclose(fast, plain, atol=1e-3)
