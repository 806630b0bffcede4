"""Stage 1 policies as inputs: ONNX / rsl_rl actors, their deployment conventions, observations, motions."""

from bm_gym.stage1.actors import OnnxActor, RslRlActor
from bm_gym.stage1.conventions import ObsTermSpec, PolicyConventions, from_deploy_yaml, from_onnx_metadata
from bm_gym.stage1.motion import MotionClip, load_motion
from bm_gym.stage1.policy import Stage1Policy

__all__ = [
    "MotionClip", "ObsTermSpec", "OnnxActor", "PolicyConventions", "RslRlActor", "Stage1Policy",
    "from_deploy_yaml", "from_onnx_metadata", "load_motion",
]  # fmt: skip
