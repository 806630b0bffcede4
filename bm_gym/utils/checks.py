"""Config-field checks with one message style: ``Owner.field must be <requirement>, got <value>``.

Typed dataclass configs call these in ``__post_init__``, so a bad value is refused where it is set, not at the
first step that happens to use it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def is_finite(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool) \
        and math.isfinite(value)  # fmt: skip


def require(ok: bool, owner: str, field: str, value: Any, requirement: str) -> None:
    if not ok:
        raise ValueError(f"{owner}.{field} must be {requirement}, got {value!r}")


def positive_int(owner: str, field: str, value: Any, minimum: int = 1) -> None:
    require(is_int(value) and value >= minimum, owner, field, value, f"an integer >= {minimum}")


def positive_finite(owner: str, field: str, value: Any, allow_zero: bool = False) -> None:
    ok = is_finite(value) and (value >= 0 if allow_zero else value > 0)
    require(ok, owner, field, value, "a finite number >= 0" if allow_zero else "a finite number > 0")
