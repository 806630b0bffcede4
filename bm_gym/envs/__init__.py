"""Gymnasium environments on top of the guided diffusion controller, and their wrappers.

``BeyondMimicGuided-G1-v0`` is registered when ``bm_gym`` is imported (see ``bm_gym/__init__.py``).
"""

ENV_ID = "BeyondMimicGuided-G1-v0"
