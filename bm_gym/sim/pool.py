"""Obstacle handles over a fixed pool of box and cylinder slots: the bookkeeping every backend shares.

Simulators whose scene is fixed once built (MuJoCo's compiled model, Newton's finalized model) pre-spawn slots
and move obstacles in and out of them; a backend supplies only how a slot is placed and parked.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from bm_gym.obstacles import Box, Cylinder, Obstacle

KINDS = ("box", "cylinder")


class ObstaclePoolFull(ValueError):
    """More obstacles of one shape than the simulator's pool holds."""


def obstacle_kind(obstacle: Obstacle) -> str:
    """The pool an obstacle goes in: "box" or "cylinder"."""
    if isinstance(obstacle, Cylinder):
        return "cylinder"
    if isinstance(obstacle, Box):
        return "box"
    raise TypeError(f"unsupported obstacle type {type(obstacle).__name__}")


def check_obstacle_capacity(obstacles, capacity: dict[str, int]) -> None:
    """Raise :class:`ObstaclePoolFull` if ``obstacles`` need more slots of a shape than ``capacity`` has."""
    for kind, slots in capacity.items():
        wanted = sum(1 for o in obstacles if obstacle_kind(o) == kind)
        if wanted > slots:
            raise ObstaclePoolFull(
                f"{wanted} {kind} obstacles requested but the simulator holds at most {slots} of each shape; "
                "nothing was changed (raise the backend's obstacle_pool / GuidedEnvCfg.obstacle_pool)"
            )


class ObstacleSlots:
    """Live obstacles by handle, each in a slot ``(kind, index)`` of a pool of ``size`` slots per kind.

    ``place(kind, index, obstacle)`` puts an obstacle into a slot, ``park(kind, index)`` takes it out of the
    scene; ``larger`` names the setting that grows the pool, for the error a full pool raises.
    """

    def __init__(self, size: int, place: Callable[[str, int, Obstacle], None], park: Callable[[str, int], None],
                 larger: str) -> None:  # fmt: skip
        self.size, self._place, self._park, self._larger = size, place, park, larger
        self._handles: dict[int, tuple[str, int, Obstacle]] = {}
        self._next_handle = 0

    @property
    def capacity(self) -> dict[str, int]:
        return dict.fromkeys(KINDS, self.size)

    def set(self, obstacles: Iterable[Obstacle]) -> list[int]:
        """Replace every obstacle, all or nothing: too many for the pool raises before anything changes."""
        obstacles = list(obstacles)
        check_obstacle_capacity(obstacles, self.capacity)
        self.clear()
        return [self.add(o) for o in obstacles]

    def add(self, obstacle: Obstacle) -> int:
        kind = obstacle_kind(obstacle)
        used = {index for k, index, _ in self._handles.values() if k == kind}
        free = [i for i in range(self.size) if i not in used]
        if not free:
            raise ObstaclePoolFull(f"all {self.size} {kind} obstacle slots are in use; remove one first or make a "
                                   f"backend with a larger {self._larger}")  # fmt: skip
        handle = self._next_handle
        self._next_handle += 1
        self._handles[handle] = (kind, free[0], obstacle)
        self._place(kind, free[0], obstacle)
        return handle

    def move(self, handle: int, obstacle: Obstacle) -> None:
        """Move (or resize, or reshape) an obstacle; its handle stays."""
        kind, index, _ = self._lookup(handle)
        if obstacle_kind(obstacle) != kind:
            self.remove(handle)
            self._handles[handle] = self._handles.pop(self.add(obstacle))
            return
        self._handles[handle] = (kind, index, obstacle)
        self._place(kind, index, obstacle)

    def remove(self, handle: int) -> None:
        kind, index, _ = self._lookup(handle)
        del self._handles[handle]
        self._park(kind, index)

    def clear(self) -> None:
        for handle in list(self._handles):
            self.remove(handle)

    def obstacles(self) -> dict[int, Obstacle]:
        return {h: o for h, (_, _, o) in self._handles.items()}

    def placed(self) -> list[tuple[str, int, Obstacle]]:
        """(kind, index, obstacle) of every live obstacle."""
        return list(self._handles.values())

    def _lookup(self, handle: int) -> tuple[str, int, Obstacle]:
        if handle not in self._handles:
            raise KeyError(f"no obstacle with handle {handle}; live handles: {sorted(self._handles)}")
        return self._handles[handle]
