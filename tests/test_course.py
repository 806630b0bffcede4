"""The course file format: round trips, and errors that name the file and the field."""

import json
import math

import pytest

from bm_gym.course import Course, CourseError, Goal, as_course
from bm_gym.obstacles import Box, Cylinder

COURSE = Course((Cylinder(2.0, 0.2, 0.3), Box(3.0, -1.0, 0.3, 0.5, yaw=0.4, height=0.8)),
                (Goal(4.0, 0.5), Goal(6.0, 2.0, math.pi / 2)), start=(0.5, -0.5, 0.1), seed=3, name="demo")  # fmt: skip


@pytest.mark.parametrize("suffix", [".json", ".yaml", ".yml"])
def test_courses_round_trip_through_json_and_yaml(tmp_path, suffix):
    path = COURSE.save(tmp_path / f"course{suffix}")
    assert Course.load(path) == COURSE and as_course(path) == COURSE and as_course(COURSE.to_dict()) == COURSE
    assert not list(tmp_path.glob("*.tmp")), "written atomically, nothing left over"
    assert Course(goals=[(1, 2), (3, 4, 0.5)]).goals == (Goal(1, 2), Goal(3, 4, 0.5))  # plain tuples are goals


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(version=2), "version: this bm_gym reads version 1"),
        (lambda d: d.update(format="other"), "format: expected 'bm_gym.course'"),
        (lambda d: d.update(colour="red"), r"course: unknown keys \['colour'\]"),
        (lambda d: d["goals"][1].update(x=float("nan")), r"goals\[1\].x: expected a finite number"),
        (lambda d: d["goals"][0].pop("y"), r"goals\[0\]: missing keys \['y'\]"),
        (lambda d: d["obstacles"][0].update(kind="cone"), r"obstacles\[0\].kind: expected one of"),
        (lambda d: d["obstacles"][1].update(half_x=-1.0), r"obstacles\[1\]: box half sizes"),
        (lambda d: d.update(seed=-4), "seed: expected a non-negative integer"),
        (lambda d: d.update(obstacles={}), "obstacles: expected a list"),
    ],
)
def test_bad_courses_name_the_file_and_the_field(tmp_path, change, message):
    data = COURSE.to_dict()
    change(data)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(CourseError, match=message) as error:
        Course.load(path)
    assert str(path) in str(error.value)


def test_unreadable_and_malformed_files_are_reported(tmp_path):
    with pytest.raises(CourseError, match="cannot read the course file"):
        Course.load(tmp_path / "missing.yaml")
    (tmp_path / "broken.yaml").write_text("goals: [x: 1")
    with pytest.raises(CourseError, match="broken.yaml: not valid YAML"):
        Course.load(tmp_path / "broken.yaml")
