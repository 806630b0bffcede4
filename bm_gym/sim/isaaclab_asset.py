"""The G1 as a USD asset for Isaac Lab, converted from the same MJCF the MuJoCo backend compiles.

Isaac Lab's own G1 USDs live on a Nucleus server that offline machines cannot reach, and Isaac Sim's MJCF
importer pins a ``usd-exchange`` that conflicts with Isaac Lab's. ``mujoco-usd-converter`` (the Newton
project's MJCF -> OpenUSD converter, 0.6 for MuJoCo 3.12) installs beside Isaac Lab and writes the joints,
armature, collision geoms and inertias the Newton importer reads. The conversion runs once (well under a
second) and is cached by a hash of the MJCF text and the converter version.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

import mujoco

from bm_gym.robot import g1
from bm_gym.utils.cache import cache_root

#: Bump when what is written into the converted MJCF changes.
ASSET_VERSION = 1


def g1_mjcf_for_usd() -> str:
    """The G1 MJCF of :func:`bm_gym.robot.g1.build_spec` without actuators, meshes referenced by absolute path.

    Actuators are left out because Isaac Lab drives the joints with its own implicit PD actuators (the
    same stiffness, damping, effort limits and armature, set by :class:`IsaacLabBackend`); converted
    actuators would drive them a second time.
    """
    spec = g1.build_spec()
    for actuator in list(spec.actuators):
        spec.delete(actuator)
    spec.meshdir = str(g1.g1_xml_path().parent / spec.meshdir)
    return spec.to_xml()


def g1_usd_path(cache: Path | None = None) -> Path:
    """Path of the converted G1 USD, converting on first use; ``cache`` defaults to ``<cache_root>/isaaclab``."""
    try:
        import mujoco_usd_converter
    except ImportError as exc:
        raise ModuleNotFoundError(
            "The Isaac Lab backend converts the G1 MJCF with mujoco-usd-converter: run `bash scripts/setup.sh "
            "--isaaclab` (or `pip install -e .[isaaclab]` in a Python 3.12 venv)"
        ) from exc
    xml = g1_mjcf_for_usd()
    key = hashlib.sha256(
        f"{ASSET_VERSION}|{mujoco.__version__}|{mujoco_usd_converter.__version__}|{xml}".encode()
    ).hexdigest()[:16]
    folder = (cache or cache_root() / "isaaclab") / f"g1-{key}"
    usd = folder / "g1.usda"
    if usd.is_file():
        return usd
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"{folder.name}.", dir=folder.parent))
    try:
        (staging / "g1.xml").write_text(xml)
        written = mujoco_usd_converter.Converter(scene=False).convert(str(staging / "g1.xml"), str(staging / "usd"))
        converted = Path(written.path)
        # The converter names the asset after the model; a fixed name keeps the cache layout predictable.
        os.replace(converted, staging / "usd" / "g1.usda")
        try:
            os.replace(staging / "usd", folder)  # atomic: another process may have won the race
        except OSError:
            if not usd.is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return usd


def ground_plane_usd_path(cache: Path | None = None) -> Path:
    """A USD with one infinite-style collision plane (200 m), written once: Isaac Lab's ``GroundPlaneCfg`` downloads
    its USD, and a box floor gives capsule feet one contact each where MuJoCo's plane gives two (the feet then
    rolled on landing: ankle speeds 8x those of the MuJoCo backend in the first control step)."""
    from pxr import Usd, UsdGeom, UsdPhysics

    folder = cache or cache_root() / "isaaclab"
    path = folder / f"ground_plane_v{ASSET_VERSION}.usda"
    if path.is_file():
        return path
    folder.mkdir(parents=True, exist_ok=True)
    staging = folder / f".{path.name}.{os.getpid()}.usda"
    stage = Usd.Stage.CreateNew(str(staging))
    UsdGeom.SetStageUpAxis(stage, UsdGeom.Tokens.z)
    UsdGeom.SetStageMetersPerUnit(stage, 1.0)
    stage.SetDefaultPrim(UsdGeom.Xform.Define(stage, "/Ground").GetPrim())
    plane = UsdGeom.Plane.Define(stage, "/Ground/Plane")
    plane.CreateAxisAttr(UsdGeom.Tokens.z)
    plane.CreateWidthAttr(200.0)
    plane.CreateLengthAttr(200.0)
    UsdPhysics.CollisionAPI.Apply(plane.GetPrim())
    stage.GetRootLayer().Save()
    os.replace(staging, path)
    return path
