"""Default locations used by the command-line tools."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: Stage 1 policies live beside the checkout, never inside it.
SHARED_STAGE1 = REPO.parent / "shared" / "stage1"
VELOCITY_POLICY = SHARED_STAGE1 / "unitree_g1_velocity"
