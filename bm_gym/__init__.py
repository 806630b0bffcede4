"""bm_gym: BeyondMimic Stage 2, a guided state-action diffusion controller for the Unitree G1."""

import os
import sys

# MuJoCo picks its GL backend once, at import. Offscreen software rendering (OSMesa) works on any
# Linux machine; users with a GPU set MUJOCO_GL=egl themselves.
if sys.platform.startswith("linux") and "MUJOCO_GL" not in os.environ:
    os.environ["MUJOCO_GL"] = "osmesa"

__version__ = "0.1.0"


def _register_envs() -> None:
    """Register the Gymnasium environments by entry-point string, so importing bm_gym stays cheap."""
    from gymnasium.envs.registration import register, registry

    from bm_gym.envs import ENV_ID

    if ENV_ID not in registry:
        register(id=ENV_ID, entry_point="bm_gym.envs.guided_env:GuidedG1Env",
                 vector_entry_point="bm_gym.envs.vector_env:make_vector_env")  # fmt: skip


_register_envs()
