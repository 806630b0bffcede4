"""One course format for the app, the env and the evaluation: obstacles, goals (a waypoint sequence, each with an
optional heading), the start pose and a seed, in a versioned JSON or YAML file.

    {"format": "bm_gym.course", "version": 1, "name": "...", "seed": 3,
     "start": {"x": 0.0, "y": 0.0, "yaw": 0.0},
     "goals": [{"x": 4.0, "y": 0.5}, {"x": 6.0, "y": 2.0, "yaw": 1.57}],
     "obstacles": [{"kind": "cylinder", "x": 2.0, "y": 0.2, "radius": 0.3, "height": 1.0},
                   {"kind": "box", "x": 3.0, "y": -1.0, "half_x": 0.3, "half_y": 0.5, "yaw": 0.4, "height": 1.0}]}

Angles in radians, lengths in metres, world frame. A bad file raises :class:`CourseError` naming the file and
the field; files are written atomically.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bm_gym.obstacles import Box, Cylinder, Obstacle
from bm_gym.robot import g1
from bm_gym.sim.backend import RootPose
from bm_gym.utils.files import atomic_write_text
from bm_gym.utils.math import quat_from_yaw

FORMAT = "bm_gym.course"
VERSION = 1
_SHAPES = {"cylinder": (Cylinder, ("x", "y", "radius", "height")),
           "box": (Box, ("x", "y", "half_x", "half_y", "yaw", "height"))}  # fmt: skip


class CourseError(ValueError):
    """A course file or mapping that is not a valid course; the message names the source and the field."""


@dataclass(frozen=True)
class Goal:
    """A waypoint (world frame), with the heading to turn to there if it has one."""

    x: float
    y: float
    yaw: float | None = None


@dataclass(frozen=True)
class Course:
    obstacles: tuple[Obstacle, ...] = ()
    goals: tuple[Goal, ...] = ()
    start: tuple[float, float, float] = (0.0, 0.0, 0.0)  # x, y, yaw of the robot's root
    seed: int | None = None
    name: str = ""

    def __post_init__(self) -> None:
        for o in self.obstacles:
            if not isinstance(o, (Cylinder, Box)):
                raise CourseError(f"course obstacles must be Cylinder or Box, got {type(o).__name__}")
        goals = tuple(g if isinstance(g, Goal) else Goal(*g) for g in self.goals)  # (x, y) or (x, y, yaw) too
        object.__setattr__(self, "obstacles", tuple(self.obstacles))
        object.__setattr__(self, "goals", goals)
        object.__setattr__(self, "start", tuple(float(v) for v in self.start))

    def to_dict(self) -> dict[str, Any]:
        obstacles = []
        for o in self.obstacles:
            kind = "cylinder" if isinstance(o, Cylinder) else "box"
            obstacles.append({"kind": kind, **{k: float(getattr(o, k)) for k in _SHAPES[kind][1]}})
        goals = [{"x": float(g.x), "y": float(g.y), **({} if g.yaw is None else {"yaw": float(g.yaw)})}
                 for g in self.goals]  # fmt: skip
        x, y, yaw = self.start
        return {"format": FORMAT, "version": VERSION, "name": self.name, "seed": self.seed,
                "start": {"x": x, "y": y, "yaw": yaw}, "goals": goals, "obstacles": obstacles}  # fmt: skip

    @classmethod
    def from_dict(cls, data: Any, source: str = "course") -> Course:
        """Validate and build; ``source`` (a file name) goes into every error message."""

        def fail(field: str, problem: str) -> CourseError:
            return CourseError(f"{source}: {field}: {problem}")

        def number(value: Any, field: str) -> float:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise fail(field, f"expected a finite number, got {value!r}")
            return float(value)

        def mapping(value: Any, field: str, allowed: set[str], required: set[str]) -> dict:
            if not isinstance(value, dict):
                raise fail(field, f"expected a mapping, got {type(value).__name__}")
            unknown, missing = set(value) - allowed, required - set(value)
            if unknown or missing:
                raise fail(field, f"unknown keys {sorted(unknown)}" if unknown else f"missing keys {sorted(missing)}")
            return value

        top = mapping(data, "course", {"format", "version", "name", "seed", "start", "goals", "obstacles"},
                      {"format", "version"})  # fmt: skip
        if top["format"] != FORMAT:
            raise fail("format", f"expected {FORMAT!r}, got {top['format']!r}")
        if top["version"] != VERSION:
            raise fail("version", f"this bm_gym reads version {VERSION}, got {top['version']!r}")
        seed = top.get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
            raise fail("seed", f"expected a non-negative integer or null, got {seed!r}")
        name = top.get("name") or ""
        if not isinstance(name, str):
            raise fail("name", f"expected a string, got {name!r}")
        start = mapping(top.get("start", {"x": 0.0, "y": 0.0}), "start", {"x", "y", "yaw"}, {"x", "y"})
        start_pose = tuple(number(start.get(k, 0.0), f"start.{k}") for k in ("x", "y", "yaw"))
        goals = []
        for i, goal in enumerate(_list(top.get("goals", []), "goals", fail)):
            goal = mapping(goal, f"goals[{i}]", {"x", "y", "yaw"}, {"x", "y"})
            yaw = None if goal.get("yaw") is None else number(goal["yaw"], f"goals[{i}].yaw")
            goals.append(Goal(number(goal["x"], f"goals[{i}].x"), number(goal["y"], f"goals[{i}].y"), yaw))
        obstacles: list[Obstacle] = []
        for i, item in enumerate(_list(top.get("obstacles", []), "obstacles", fail)):
            kind = item.get("kind") if isinstance(item, dict) else None
            if kind not in _SHAPES:
                raise fail(f"obstacles[{i}].kind", f"expected one of {sorted(_SHAPES)}, got {kind!r}")
            shape, fields = _SHAPES[kind]
            item = mapping(item, f"obstacles[{i}]", {"kind", *fields}, {"kind", *fields[: 4 if kind == "box" else 3]})
            values = {k: number(item[k], f"obstacles[{i}].{k}") for k in fields if k in item}
            try:
                obstacles.append(shape(**values))
            except ValueError as err:
                raise fail(f"obstacles[{i}]", str(err)) from None
        return cls(tuple(obstacles), tuple(goals), start_pose, seed, name)  # type: ignore[arg-type]

    def save(self, path: str | Path) -> Path:
        """Write as JSON, or YAML for a ``.yaml`` / ``.yml`` name; atomically."""
        path = Path(path)
        data = self.to_dict()
        text = yaml.safe_dump(data, sort_keys=False) if path.suffix in (".yaml", ".yml") else json.dumps(data, indent=1)
        atomic_write_text(path, text)
        return path

    @classmethod
    def load(cls, path: str | Path) -> Course:
        path = Path(path)
        try:
            text = path.read_text()
        except OSError as err:
            raise CourseError(f"{path}: cannot read the course file: {err.strerror or err}") from None
        try:
            data = yaml.safe_load(text) if path.suffix in (".yaml", ".yml") else json.loads(text)
        except (yaml.YAMLError, json.JSONDecodeError) as err:
            kind = "YAML" if path.suffix in (".yaml", ".yml") else "JSON"
            raise CourseError(f"{path}: not valid {kind}: {err}") from None
        return cls.from_dict(data, source=str(path))


def _list(value: Any, field: str, fail) -> list:
    if not isinstance(value, list):
        raise fail(field, f"expected a list, got {type(value).__name__}")
    return value


def as_course(value: Course | str | Path | dict) -> Course:
    """A course from itself, a file path or a mapping in the file format."""
    if isinstance(value, Course):
        return value
    if isinstance(value, (str, Path)):
        return Course.load(value)
    return Course.from_dict(value)


def start_pose(start: tuple[float, float, float] | None) -> RootPose | None:
    """The simulator's root pose for a course start (x, y, yaw); None: the default pose at the origin."""
    if start is None:
        return None
    x, y, yaw = start
    return RootPose(pos=(x, y, g1.DEFAULT_ROOT_HEIGHT), quat=tuple(quat_from_yaw(yaw)))
