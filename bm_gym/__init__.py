"""bm_gym: BeyondMimic Stage 2, a guided state-action diffusion controller for the Unitree G1."""

from bm_gym.utils.gl import select_mujoco_gl

select_mujoco_gl()  # before anything imports MuJoCo, which binds its GL backend at import

__version__ = "0.1.0"


def _register_envs() -> None:
    """Register the Gymnasium environments by entry-point string, so importing bm_gym stays cheap."""
    from gymnasium.envs.registration import register, registry

    from bm_gym.envs import ENV_ID

    if ENV_ID not in registry:
        register(id=ENV_ID, entry_point="bm_gym.envs.guided_env:GuidedG1Env",
                 vector_entry_point="bm_gym.envs.vector_env:make_vector_env")  # fmt: skip


_register_envs()
