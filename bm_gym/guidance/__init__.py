"""Task costs (joystick, waypoint, obstacles), obstacle SDFs and classifier guidance of the sampler."""

from bm_gym.guidance.costs import JoystickCost, ObstacleCost, TaskCost, Trajectory, WaypointCost, WeightedSum
from bm_gym.guidance.guide import CostGuide, GuidanceCfg
from bm_gym.guidance.sdf import ObstacleField, OccupancyGrid

__all__ = [
    "CostGuide", "GuidanceCfg", "JoystickCost", "ObstacleCost", "ObstacleField", "OccupancyGrid", "TaskCost",
    "Trajectory", "WaypointCost", "WeightedSum",
]  # fmt: skip
