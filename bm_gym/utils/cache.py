"""Where bm_gym keeps files it derives once and reuses (exported graphs, converted assets)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """``$BM_GYM_CACHE``, else ``$XDG_CACHE_HOME/bm_gym`` (``~/.cache/bm_gym``)."""
    root = os.environ.get("BM_GYM_CACHE") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "bm_gym"
    return Path(root)
