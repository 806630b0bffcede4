"""Collect one dataset from many Stage 1 sources: a YAML manifest of velocity and tracking policies.

    workers: 2
    seed: 0
    sources:
      - name: velocity                       # recorded with every episode; letters, digits, - and _
        policy: stage1/unitree_g1_velocity   # folder or file; relative paths are relative to the manifest
        hours: 1.0                           # or episodes: 180
        episode_s: 20
      - name: dance
        policy: stage1/unitree_g1_mimic_dance
        motions: [stage1/unitree_g1_mimic_dance/motion.csv]   # default: the motion in the policy folder
        motion_fps: 30                       # for CSV clips whose name does not say it
        episodes: 40                         # split evenly over the motions
        episode_s: 10                        # random start frames along each motion
        noise: ou                            # gaussian (default) or ou
        randomization: true                  # Stage 1 domain randomization (default true), or changes to it:
                                             # {push: {lin_vel_xy: 1.2, interval_s: [2, 4]}, foot_friction: null}
      - name: velocity_dagger                # DAgger-style: a student drives stretches, the expert takes over
        policy: stage1/unitree_g1_velocity
        hours: 0.5
        student: ../bm_gym/checkpoints/g1_velocity_cpu   # or {checkpoint: ..., student_s: [0.4, 2.0], ...}

Every source (and motion) is collected as its own resumable part in ``<out>.parts/``, with today's single-policy
collector; the dataset at ``out`` holds every episode with its source and motion names, the conventions of
every policy, and statistics over all of it. Everything that can be wrong with a manifest (a missing policy or
motion, a motion whose joints do not fit the policy, a source with zero episodes, a typo in a key) is reported
before any rollout starts.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from bm_gym.data.collect import NOISE_KINDS, CoDriverFactory, CollectCfg, Collector, StudentCfg
from bm_gym.data.dataset import window_stats
from bm_gym.data.hdf5 import Episode, load_episodes, open_dataset, write_dataset
from bm_gym.data.schedules import CommandScheduleCfg
from bm_gym.data.state import STATE_KINDS, StateLayout
from bm_gym.sim import BACKENDS, DomainRandomizationCfg, MujocoBackendCfg, PushCfg
from bm_gym.stage1 import Stage1Policy
from bm_gym.stage1.policy import find_motion

SOURCE_KEYS = {"name", "policy", "motions", "motion_fps", "episodes", "hours", "episode_s", "noise", "action_noise",
               "noise_free_share", "ou_theta", "ou_sigma", "randomization", "seed", "schedule", "student"}  # fmt: skip
MANIFEST_KEYS = {"sources", "workers", "seed", "backend", "envs_per_worker", "state"}
NAME = re.compile(r"^[A-Za-z0-9_-]+$")


class ManifestError(ValueError):
    """A manifest that cannot be collected; the message names the file and the source."""


@dataclass(frozen=True)
class SourceCfg:
    name: str
    policy: Path
    motions: tuple[Path, ...] = ()  # tracking policies; empty: the motion in the policy folder
    motion_fps: float | None = None
    episodes: int = 0
    episode_s: float = 20.0
    noise: str = "gaussian"
    action_noise: tuple[float, float] = (0.0, 0.15)
    noise_free_share: float = 0.2
    ou_theta: float = 0.8
    ou_sigma: float = 0.1
    randomization: DomainRandomizationCfg | None = field(default_factory=DomainRandomizationCfg)  # None: off
    seed: int = 0
    schedule: CommandScheduleCfg = field(default_factory=CommandScheduleCfg)  # velocity policies' command mix
    student: StudentCfg | None = None  # DAgger-style collection (bm_gym.data.collect.StudentCfg)


@dataclass(frozen=True)
class Part:
    """One source and one of its motions: a single-policy collection of its own."""

    source: SourceCfg
    motion: Path | None
    episodes: int

    @property
    def name(self) -> str:
        return self.source.name if self.motion is None else f"{self.source.name}__{self.motion.stem}"


@dataclass(frozen=True)
class Manifest:
    path: Path
    sources: tuple[SourceCfg, ...]
    workers: int = 2
    seed: int = 0
    text: str = field(default="", repr=False)
    backend: str = "mujoco"  # simulator of every source's rollouts
    envs_per_worker: int = 1  # isaaclab: episodes per worker at once, one Newton world each
    state: str = "joint"  # the state layout of the whole dataset (bm_gym.data.state.STATE_KINDS)

    @classmethod
    def load(cls, path: str | Path) -> Manifest:
        path = Path(path)
        try:
            text = path.read_text()
            spec = yaml.safe_load(text)
        except OSError as err:
            raise ManifestError(f"{path}: cannot read the manifest ({err.strerror})") from err
        except yaml.YAMLError as err:
            raise ManifestError(f"{path}: not valid YAML: {err}") from err
        if not isinstance(spec, dict) or not isinstance(spec.get("sources"), list) or not spec["sources"]:
            raise ManifestError(f"{path}: expected a mapping with a non-empty list 'sources'")
        unknown = set(spec) - MANIFEST_KEYS
        if unknown:
            raise ManifestError(f"{path}: unknown keys {sorted(unknown)}; allowed: {sorted(MANIFEST_KEYS)}")
        sources = tuple(_source(path, k, s) for k, s in enumerate(spec["sources"]))
        names = [s.name for s in sources]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ManifestError(f"{path}: source names must be unique; repeated: {duplicates}")
        workers, seed = spec.get("workers", 2), spec.get("seed", 0)
        if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
            raise ManifestError(f"{path}: workers must be a positive integer, got {workers!r}")
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise ManifestError(f"{path}: seed must be an integer, got {seed!r}")
        backend = spec.get("backend", "mujoco")
        if backend not in BACKENDS:
            raise ManifestError(f"{path}: backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
        envs = spec.get("envs_per_worker", 1)
        if not isinstance(envs, int) or isinstance(envs, bool) or envs < 1:
            raise ManifestError(f"{path}: envs_per_worker must be a positive integer, got {envs!r}")
        state = spec.get("state", "joint")
        if state not in STATE_KINDS:
            raise ManifestError(f"{path}: state must be one of {', '.join(STATE_KINDS)}, got {state!r}")
        return cls(path, sources, workers, seed, text, backend, envs, state)

    def parts(self) -> list[Part]:
        """Every (source, motion) to collect, each policy and motion loaded once here to check that they fit."""
        parts = []
        for source in self.sources:
            where = f"{self.path}: source {source.name!r}"
            try:
                policy = Stage1Policy.load(source.policy, motion_fps=source.motion_fps) if not source.motions else None
            except (OSError, ValueError, KeyError) as err:
                raise ManifestError(f"{where}: policy {source.policy} does not load: {err}") from err
            motions: list[Path | None] = list(source.motions)
            if policy is not None:
                if policy.conventions.tracks_motion:
                    found = find_motion(source.policy if source.policy.is_dir() else source.policy.parent)
                    if found is None:
                        raise ManifestError(f"{where}: {source.policy} is a tracking policy; list its motions")
                    motions = [found]
                else:
                    motions = [None]
            for motion in motions:
                try:
                    loaded = Stage1Policy.load(source.policy, motion=motion, motion_fps=source.motion_fps)
                except (OSError, ValueError, KeyError) as err:
                    what = f"motion {motion}" if motion else f"policy {source.policy}"
                    raise ManifestError(f"{where}: {what} does not load with the policy: {err}") from err
                if motion is not None and not loaded.conventions.tracks_motion:
                    raise ManifestError(f"{where}: {source.policy} is a velocity policy; it takes no motions")
                if loaded.motion is not None and loaded.motion.duration < source.episode_s:
                    raise ManifestError(f"{where}: motion {motion} lasts {loaded.motion.duration:.1f} s, shorter than "
                                        f"episode_s {source.episode_s}")  # fmt: skip
            each, extra = divmod(source.episodes, len(motions))
            share = [each + (k < extra) for k in range(len(motions))]
            parts += [Part(source, motion, n) for motion, n in zip(motions, share, strict=True) if n > 0]
        return parts

    def part_cfg(self, part: Part, out: Path) -> CollectCfg:
        s = part.source
        seed = int(np.random.SeedSequence([self.seed, s.seed, zlib.crc32(part.name.encode())]).generate_state(1)[0])
        return CollectCfg(
            policy=str(s.policy), out=str(parts_dir(out) / f"{part.name}.h5"), episodes=part.episodes,
            episode_s=s.episode_s, workers=self.workers, seed=seed,
            motion=None if part.motion is None else str(part.motion), motion_fps=s.motion_fps, source=s.name,
            noise=s.noise, action_noise=s.action_noise, ou_theta=s.ou_theta, ou_sigma=s.ou_sigma,
            noise_free_share=s.noise_free_share,
            randomization=s.randomization, backend=self.backend,
            envs_per_worker=self.envs_per_worker, schedule=s.schedule, state=self.state, student=s.student,
        )  # fmt: skip


def parts_dir(out: Path) -> Path:
    return Path(out).with_name(Path(out).name + ".parts")


@dataclass(frozen=True)
class PartReport:
    name: str
    episodes: int
    steps: int
    fell: int
    seconds: float  # wall time of this run's collection of the part (0 when nothing was left to collect)
    added: int

    @property
    def steps_per_s(self) -> float:
        return 0.0 if self.seconds == 0 else self.steps * self.added / max(self.episodes, 1) / self.seconds


def collect_manifest(manifest: Manifest, out: str | Path, progress: bool = True,
                     co_driver_factory: CoDriverFactory | None = None) -> list[PartReport]:  # fmt: skip
    """Collect every part (resuming finished ones), then write ``out`` with all episodes; one report per part.
    ``co_driver_factory`` builds the students of sources that name one (:class:`Collector`)."""
    out = Path(out)
    parts = manifest.parts()  # every check before the first rollout
    cfgs = [manifest.part_cfg(part, out) for part in parts]
    for cfg in cfgs:
        Collector(cfg, co_driver_factory).check()
    reports = []
    for part, cfg in zip(parts, cfgs, strict=True):
        start = time.perf_counter()
        added = Collector(cfg, co_driver_factory).run(progress=progress)
        seconds = time.perf_counter() - start if added else 0.0
        episodes, _, _ = load_episodes(cfg.out, include_fallen=True)
        reports.append(PartReport(part.name, len(episodes), sum(map(len, episodes)), sum(e.fell for e in episodes),
                                  seconds, added))  # fmt: skip
    merge_parts(manifest, parts, cfgs, out)
    return reports


def merge_parts(manifest: Manifest, parts: list[Part], cfgs: list[CollectCfg], out: Path) -> None:
    """One dataset from the parts' files (atomic), episodes renumbered, statistics over every source."""
    episodes: list[Episode] = []
    sources = {}
    for part, cfg in zip(parts, cfgs, strict=True):
        loaded, attrs, _ = load_episodes(cfg.out, include_fallen=True)
        for e in loaded:
            e.index = len(episodes)
            episodes.append(e)
        sources[part.name] = {"source": part.source.name, "motion": part.motion.stem if part.motion else "",
                              "policy": str(part.source.policy.resolve()), "episodes": len(loaded),
                              "motion_path": str(part.motion.resolve()) if part.motion else "",
                              "policy_conventions": json.loads(attrs["policy_conventions"]),
                              "collect_cfg": json.loads(attrs["collect_cfg"])}  # fmt: skip
    layout = StateLayout.named(manifest.state)
    first = cfgs[0]
    healthy = [e for e in episodes if not e.fell] or episodes
    stats = window_stats(healthy, layout, first.stats_history, first.stats_horizon)
    attrs = {
        "control_dt": MujocoBackendCfg().control_dt,
        "state_layout": layout.to_json(),
        "source_policy": f"manifest {manifest.path.name}: " + ", ".join(s.name for s in manifest.sources),
        "policy_conventions": json.dumps({name: s["policy_conventions"] for name, s in sources.items()}),
        "sources": json.dumps(sources),
        "manifest": manifest.text,
        "collect_cfg": json.dumps({name: s["collect_cfg"] for name, s in sources.items()}),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    write_dataset(out, episodes, attrs, stats, {"history": first.stats_history, "horizon": first.stats_horizon})


@dataclass(frozen=True)
class RecordedSource:
    """A manifest dataset's source as collected: enough to roll its expert out again (per-source evaluation)."""

    name: str
    policy: Path
    motion: Path | None  # a tracking source's (first) motion; None for a velocity source
    motion_fps: float | None


def recorded_source(data: str | Path, name: str) -> RecordedSource:
    """Source ``name`` of the manifest dataset ``data``, with absolute paths that exist, or a ValueError naming
    the file and what is missing. Files from before ``motion_path`` was recorded hold the motion path as given
    to the collector, relative to the directory the collection ran in; it is tried from here as a fallback."""
    with open_dataset(data) as f:
        sources = json.loads(f.attrs.get("sources", "{}"))
    parts = [s for s in sources.values() if s["source"] == name]
    if not parts:
        names = sorted({s["source"] for s in sources.values()})
        raise ValueError(f"{data} has no source {name!r}" + (f"; it has {names}" if names else
                         " (it was not collected from a manifest)"))  # fmt: skip
    part = parts[0]  # the first motion of a source with several
    cfg = part["collect_cfg"]
    policy = Path(part["policy"])
    if not policy.exists():
        raise ValueError(f"{data}: source {name!r} was collected from policy {policy}, which no longer exists")
    motion = None
    if part["motion"]:
        motion = Path(part.get("motion_path") or cfg["motion"])
        if not motion.exists():
            raise ValueError(f"{data}: source {name!r}: its motion {motion} does not exist"
                             + ("" if motion.is_absolute() else " (a path relative to where the collection ran: "
                                "run from there, or collect again to record it absolute)"))  # fmt: skip
        motion = motion.resolve()
    return RecordedSource(name, policy, motion, cfg.get("motion_fps"))


def _source(path: Path, index: int, spec: object) -> SourceCfg:
    if not isinstance(spec, dict):
        raise ManifestError(f"{path}: sources[{index}] must be a mapping, got {spec!r}")
    name = spec.get("name")
    where = f"{path}: source {name!r}" if name else f"{path}: sources[{index}]"
    if not isinstance(name, str) or not NAME.match(name):
        raise ManifestError(f"{where}: 'name' must be letters, digits, - or _, got {name!r}")
    unknown = set(spec) - SOURCE_KEYS
    if unknown:
        raise ManifestError(f"{where}: unknown keys {sorted(unknown)}; allowed: {sorted(SOURCE_KEYS)}")

    def resolve(value: object, key: str) -> Path:
        if not isinstance(value, str) or not value:
            raise ManifestError(f"{where}: '{key}' must be a path, got {value!r}")
        resolved = Path(value) if Path(value).is_absolute() else path.parent / value
        if not resolved.exists():
            raise ManifestError(f"{where}: {key} {resolved} does not exist")
        return resolved

    policy = resolve(spec.get("policy"), "policy")
    motions = spec.get("motions", [])
    if not isinstance(motions, list):
        raise ManifestError(f"{where}: 'motions' must be a list of paths")
    motions = tuple(resolve(m, "motion") for m in motions)
    episode_s = _number(where, spec, "episode_s", 20.0)
    if "episodes" in spec and "hours" in spec:
        raise ManifestError(f"{where}: give 'episodes' or 'hours', not both")
    if "hours" in spec:
        episodes = math.ceil(_number(where, spec, "hours", 0.0) * 3600 / episode_s)
    else:
        episodes = spec.get("episodes", 0)
        if not isinstance(episodes, int) or isinstance(episodes, bool):
            raise ManifestError(f"{where}: 'episodes' must be an integer, got {episodes!r}")
    if episodes <= 0:
        raise ManifestError(f"{where}: zero episodes; set 'episodes' or 'hours' above 0")
    if episodes < max(1, len(motions)):
        raise ManifestError(f"{where}: {episodes} episodes for {len(motions)} motions; give each motion one or more")
    noise = spec.get("noise", "gaussian")
    if noise not in NOISE_KINDS:
        raise ManifestError(f"{where}: 'noise' must be one of {NOISE_KINDS}, got {noise!r}")
    action_noise = spec.get("action_noise", [0.0, 0.15])
    if not (isinstance(action_noise, list) and len(action_noise) == 2):
        raise ManifestError(f"{where}: 'action_noise' must be [low, high], got {action_noise!r}")
    randomization = _randomization(where, spec.get("randomization", True))
    schedule = _schedule(where, spec.get("schedule", {}))
    student = _student(where, spec.get("student"), resolve)
    if student is not None and motions:
        raise ManifestError(f"{where}: 'student' is for velocity policies; this source lists motions")
    try:
        return SourceCfg(
            name=name, policy=policy, motions=motions,
            motion_fps=None if spec.get("motion_fps") is None else _number(where, spec, "motion_fps", 0.0),
            episodes=episodes, episode_s=episode_s, noise=noise,
            action_noise=(float(action_noise[0]), float(action_noise[1])),
            noise_free_share=_number(where, spec, "noise_free_share", 0.2),
            ou_theta=_number(where, spec, "ou_theta", 0.8), ou_sigma=_number(where, spec, "ou_sigma", 0.1),
            randomization=randomization,
            seed=int(spec.get("seed", index)), schedule=schedule, student=student,
        )  # fmt: skip
    except (TypeError, ValueError) as err:
        raise ManifestError(f"{where}: {err}") from err


def _schedule(where: str, spec: object) -> CommandScheduleCfg:
    """A source's ``schedule`` mapping: any fields of :class:`CommandScheduleCfg` (segment weights, durations)."""
    allowed = {f.name for f in dataclasses.fields(CommandScheduleCfg)}
    if not isinstance(spec, dict):
        raise ManifestError(f"{where}: 'schedule' must be a mapping of {sorted(allowed)}, got {spec!r}")
    unknown = set(spec) - allowed
    if unknown:
        raise ManifestError(f"{where}: schedule: unknown keys {sorted(unknown)}; allowed: {sorted(allowed)}")
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in spec.items()}
    try:
        return CommandScheduleCfg(**values)
    except (TypeError, ValueError) as err:
        raise ManifestError(f"{where}: schedule: {err}") from err


def _randomization(where: str, spec: object) -> DomainRandomizationCfg | None:
    """A source's ``randomization``: true (Stage 1's), false (none), or a mapping of changes to Stage 1's, any
    field of :class:`DomainRandomizationCfg` (null turns a term off) and ``push`` a mapping of :class:`PushCfg`."""
    if isinstance(spec, bool):
        return DomainRandomizationCfg() if spec else None
    terms = {f.name: f for f in dataclasses.fields(DomainRandomizationCfg)}
    if not isinstance(spec, dict):
        raise ManifestError(f"{where}: 'randomization' must be true, false or a mapping of {sorted(terms)}, got "
                            f"{spec!r}")  # fmt: skip
    unknown = set(spec) - set(terms)
    if unknown:
        raise ManifestError(f"{where}: randomization: unknown keys {sorted(unknown)}; allowed: {sorted(terms)}")
    base = DomainRandomizationCfg()
    changes = {}
    for key, value in spec.items():
        default = getattr(base, key)
        if key == "push" and isinstance(value, dict):
            fields = {f.name for f in dataclasses.fields(PushCfg)}
            unknown = set(value) - fields
            if unknown:
                raise ManifestError(f"{where}: randomization: push: unknown keys {sorted(unknown)}; allowed: "
                                    f"{sorted(fields)}")  # fmt: skip
            for name, number in value.items():
                _check_range(where, f"randomization: push: {name}", number, getattr(default, name))
            changes[key] = dataclasses.replace(default, **{k: _as_tuple(v) for k, v in value.items()})
        elif value is None:
            changes[key] = None
        elif key == "push":
            raise ManifestError(f"{where}: randomization: push must be a mapping of PushCfg fields or null, got "
                                f"{value!r}")  # fmt: skip
        else:
            _check_range(where, f"randomization: {key}", value, default)
            changes[key] = _as_tuple(value)
    return dataclasses.replace(base, **changes)


def _as_tuple(value: object) -> object:
    return tuple(value) if isinstance(value, list) else value


def _check_range(where: str, key: str, value: object, default: object) -> None:
    """``value`` has the shape of ``default`` (a number, or a list as long as its tuple) and holds finite numbers
    >= 0 (a [low, high] pair ordered)."""
    numbers = value if isinstance(value, list) else [value]
    size = len(default) if isinstance(default, tuple) else None
    well_formed = (isinstance(value, list) == (size is not None) and (size is None or len(value) == size)
                   and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0
                           for v in numbers))  # fmt: skip
    integers = isinstance(default, tuple) and all(isinstance(v, int) for v in default)
    well_formed = well_formed and (not integers or all(isinstance(v, int) for v in numbers))
    if not well_formed or (size == 2 and numbers[0] > numbers[1]):
        kind = "integers" if integers else "finite numbers"
        shape = "a finite number >= 0" if size is None else f"a list of {size} {kind} >= 0" + (
            " (low <= high)" if size == 2 else "")  # fmt: skip
        raise ManifestError(f"{where}: {key} must be {shape}, got {value!r}")


def _student(where: str, spec: object, resolve) -> StudentCfg | None:
    """A source's ``student``: a checkpoint path, or a mapping of :class:`StudentCfg` fields with ``checkpoint``."""
    if spec is None:
        return None
    allowed = {f.name for f in dataclasses.fields(StudentCfg)}
    values = {"checkpoint": spec} if isinstance(spec, str) else spec
    if not isinstance(values, dict) or "checkpoint" not in values:
        raise ManifestError(f"{where}: 'student' must be a checkpoint path or a mapping with 'checkpoint' "
                            f"(and any of {sorted(allowed - {'checkpoint'})}), got {spec!r}")  # fmt: skip
    unknown = set(values) - allowed
    if unknown:
        raise ManifestError(f"{where}: student: unknown keys {sorted(unknown)}; allowed: {sorted(allowed)}")
    checkpoint = resolve(values["checkpoint"], "student checkpoint")
    if not (checkpoint / "config.json").is_file():
        raise ManifestError(f"{where}: student checkpoint {checkpoint} has no config.json: not a checkpoint folder")
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()} | {"checkpoint": str(checkpoint)}
    try:
        return StudentCfg(**values)
    except (TypeError, ValueError) as err:
        raise ManifestError(f"{where}: student: {err}") from err


def _number(where: str, spec: dict, key: str, default: float) -> float:
    value = spec.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ManifestError(f"{where}: '{key}' must be a finite number >= 0, got {value!r}")
    return float(value)
