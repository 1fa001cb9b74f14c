"""Dataset generation (paper 000 §3: "a large-scale simulation dataset D"): :func:`generate`.

``generate(DatagenConfig) -> DatagenResult``; the command line ``f2p-datagen`` builds the config
from its arguments. The format is ``f2p_common.dataset``'s.

Each shard is generated independently from ``SeedSequence([seed, shard index])``, so the
dataset depends only on (seed, parameters) — not on the number of workers or on resuming.
Within a shard, scenes are drawn from the three tasks (``tasks.make_task``) with random
object counts, and each scene runs an episode of ``steps_per_scene`` random skills: the
s_t+1, O_t+1 and R_t+1 of one step are the s_t, O_t and R_t of the next, so each transition
costs one physics rollout and one ray-cast cloud. An unstable step ends its episode.

Skill parameters are drawn from the vocabulary boxes; for pick-and-place, a fraction
``targeted_fraction`` aims the placement offset at a random spot in the central 40 % of a table,
a shelf or a container, so the data is not dominated by objects dropped on the floor.

Usage::

    f2p-datagen --out data/sim/pretrain --transitions 40000 --workers 2 --seed 0
    python -m f2p_datasets.datagen --help

Interrupted runs resume: rerun the same command; completed shards are skipped.

**Observations as a robot perceives them** (``--perception geometric|convex``, issue 45 part 3):
instead of the simulator's own segments, each observation is the camera's organised depth cloud
with the sensor noise of ``--depth-std/--point-std/--dropout``, segmented by the robot's
perception backend (``f2p_datasets.perceived``); labels stay the simulator's relations. The
training loader reads such a dataset as the robot's scene (objects it did not segment are not
in it: ``f2p_training.transitions.load_transitions``). ~0.3 s a transition per core.

**The pre-training distribution holds out the tasks' failure modes** (``--hold-out-failure-modes``,
issue 4 / paper 000 §6: the pre-trained model must meet them out of distribution). With it,
sampling never

* moves (picks or pushes) a container or cup that has anything inside it — so the data never
  shows contents moving with their container (transport) or items moving with their cup
  (organize); such a draw becomes "take one item out of it and put it on a table", which
  empties containers so that *empty* ones do get moved;
* pushes an object that touches another movable object — so touching objects are never seen
  moving together under a push (packing); such a draw pushes an isolated object instead, or
  becomes a pick-and-place when none is isolated.

Everything else (picking items out of and into containers, moving empty containers and cups,
pushes of free objects, placements on tables and shelves) stays, so the model learns the
skills and the relations, and fails only where Fail2Progress has to teach it.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from f2p_common import dataset as ds
from f2p_common.files import file_sha256
from f2p_common.vocabulary import (BINARY_RELATIONS, CONTAINER_CLASSES, MOVABLE_CLASSES, OBJECT_CLASSES, PARAM_DIM,
                                   RELATIONS, SKILLS, UNARY_RELATIONS, skill_index)
from f2p_datasets.perceived import DEPTH_BACKENDS, SIMULATOR, PerceivedObserver, PerceptionParams
from f2p_sim.config import LAYOUTS, load_world_config
from f2p_sim.mujoco_backend import MujocoBackend
from f2p_sim.observation import Camera, NoiseModel, observe
from f2p_sim.scene import SceneError
from f2p_sim.skills import SkillError
from f2p_sim.tasks import OBJECT_COUNTS, TASK_KINDS, make_task

#: How often each skill is drawn (among those the scene allows).
SKILL_WEIGHTS = {"pick_place": 0.5, "push": 0.35, "open_drawer": 0.075, "close_drawer": 0.075}


@dataclass
class DatagenParams:
    """Everything that determines the dataset's content (recorded in the manifest)."""

    transitions: int = 1000
    shard_size: int = 100
    seed: int = 0
    tasks: tuple[str, ...] = TASK_KINDS
    object_counts: tuple[int, ...] = OBJECT_COUNTS
    steps_per_scene: int = 6
    cameras: tuple[str, ...] = ("front",)
    points_per_segment: int = 512
    depth_std: float = 0.0
    point_std: float = 0.0
    dropout: float = 0.0
    targeted_fraction: float = 0.6
    hold_out_failure_modes: bool = False
    #: The world config's task-scene layout (f2p_sim.config): paper or real_scale.
    layout: str = "paper"
    #: Whose segments the observations hold: the simulator's (a segmenting camera) or the robot's
    #: perception backend run on the camera's organised depth cloud (f2p_datasets.perceived).
    perception: str = SIMULATOR

    def validate(self) -> None:
        if self.transitions < 1 or self.shard_size < 1 or self.steps_per_scene < 1 or self.points_per_segment < 1:
            raise ValueError("transitions, shard_size, steps_per_scene and points_per_segment must be >= 1")
        for t in self.tasks:
            if t not in TASK_KINDS:
                raise ValueError(f"unknown task {t!r}; known: {', '.join(TASK_KINDS)}")
        for n in self.object_counts:
            if n not in OBJECT_COUNTS:
                raise ValueError(f"object count {n} not in {OBJECT_COUNTS}")
        NoiseModel(self.depth_std, self.point_std, self.dropout)
        if not 0.0 <= self.targeted_fraction <= 1.0:
            raise ValueError("targeted_fraction must be in [0, 1]")
        if self.layout not in LAYOUTS:
            raise ValueError(f"unknown layout {self.layout!r}; known: {', '.join(LAYOUTS)}")
        if self.perception != SIMULATOR:
            PerceptionParams(self.perception).validate()

    @property
    def num_shards(self) -> int:
        return -(-self.transitions // self.shard_size)

    def shard_transitions(self, index: int) -> int:
        return min(self.shard_size, self.transitions - index * self.shard_size)


# ---------------------------------------------------------------------------- sampling
def sample_action(rng: np.random.Generator, backend: MujocoBackend, targeted_fraction: float,
                  hold_out_failure_modes: bool = False):
    """(skill name, target segment, params) drawn for the backend's current scene.

    ``hold_out_failure_modes``: see the module docstring (the pre-training distribution)."""
    segs = backend.segments
    movable = [i for i, s in enumerate(segs) if s.cls in MOVABLE_CLASSES]
    drawers = [i for i, s in enumerate(segs) if s.cls == "drawer"]
    names = [n for n in SKILLS if (n in ("pick_place", "push") and movable) or (n.endswith("drawer") and drawers)]
    w = np.array([SKILL_WEIGHTS[n] for n in names])
    skill = names[int(rng.choice(len(names), p=w / w.sum()))]
    spec = SKILLS[skill]
    lo, hi = np.array(spec.low), np.array(spec.high)
    if skill in ("open_drawer", "close_drawer"):
        return skill, int(rng.choice(drawers)), tuple(float(v) for v in rng.uniform(lo, hi))
    target = int(rng.choice(movable))
    only_to_table = False
    if hold_out_failure_modes:
        rel = backend.relations().binary
        inside = rel[:, :, BINARY_RELATIONS.index("inside")]           # [content, container]
        contact = rel[:, :, BINARY_RELATIONS.index("in_contact")]
        if inside[:, target].any():
            # A loaded container: take one of its contents out onto a table instead.
            skill, spec = "pick_place", SKILLS["pick_place"]
            lo, hi = np.array(spec.low), np.array(spec.high)
            target = int(rng.choice(np.flatnonzero(inside[:, target])))
            targeted_fraction, only_to_table = 1.0, True
        elif skill == "push":
            free = [i for i in movable if not inside[:, i].any() and not any(contact[i, j] for j in movable if j != i)]
            if free:
                target = int(rng.choice(free)) if target not in free else target
            else:
                skill, spec = "pick_place", SKILLS["pick_place"]
                lo, hi = np.array(spec.low), np.array(spec.high)
    if skill == "push":
        return skill, target, tuple(float(v) for v in rng.uniform(lo, hi))
    params = rng.uniform(lo, hi)
    if rng.random() < targeted_fraction:
        st = backend.segment_state()
        inside_target = backend.relations().binary[:, target, BINARY_RELATIONS.index("inside")]
        dests = [j for j, s in enumerate(segs) if j != target and not inside_target[j]
                 and (s.cls in ("table", "shelf") or s.cls in CONTAINER_CLASSES)
                 and not (only_to_table and s.cls != "table")]
        if dests:
            j = int(rng.choice(dests))
            lo_j, hi_j = st.box_lower[j], st.box_upper[j]
            xy = rng.uniform(lo_j[:2] + 0.3 * (hi_j[:2] - lo_j[:2]), hi_j[:2] - 0.3 * (hi_j[:2] - lo_j[:2]))
            # Aim the object's bottom a little above the destination's top; contact ends the descent.
            z_top = hi_j[2] if segs[j].cls not in CONTAINER_CLASSES else lo_j[2] + 0.01
            if segs[j].cls == "shelf":
                z_top = hi_j[2] - float(backend.cfg["classes"]["shelf"]["wall_height"])
            start = np.array([*(0.5 * (st.box_lower[target, :2] + st.box_upper[target, :2])), st.box_lower[target, 2]])
            goal = np.array([xy[0], xy[1], z_top + 0.01])
            params = np.clip(goal - start, lo, hi)
    return skill, target, tuple(float(v) for v in params)


# ---------------------------------------------------------------------------- one shard
def snapshot(backend, camera, noise, rng, k, observer: PerceivedObserver | None = None):
    """(O, s, R) of the backend's current state: the row half datagen and D+ record. O is the
    simulator's segmentation, or ``observer``'s (the robot's perception, with its own noise)."""
    obs = observe(backend, camera, noise=noise, rng=rng, points_per_segment=k) if observer is None \
        else observer.observe(backend, camera, rng, k)
    st = backend.segment_state()
    rel = backend.relations()
    return obs, st, rel


def scene_record(backend, scene, task: str, seed: int, camera: str, **extra) -> dict:
    """The ``scenes_json`` entry of the scene loaded in ``backend`` (``f2p_common.dataset``)."""
    segs = backend.segments
    return {"task": task, "n_objects": int(scene.movable_count()), "seed": seed, "camera": camera,
            "segments": [s.name for s in segs], "classes": [s.cls for s in segs], "scene": scene.to_dict(), **extra}


def generate_shard(params: DatagenParams, index: int, world_config: str | None = None) -> dict[str, np.ndarray]:
    """The arrays of shard ``index`` (deterministic in (params, index))."""
    cfg = load_world_config(world_config, params.layout)
    rng = np.random.default_rng(np.random.SeedSequence([params.seed, index]))
    noise = NoiseModel(params.depth_std, params.point_std, params.dropout)
    observer = None if params.perception == SIMULATOR else PerceivedObserver(PerceptionParams(params.perception), noise)
    k = params.points_per_segment
    n_target = params.shard_transitions(index)
    rows: list[dict] = []
    scenes: list[dict] = []
    backend = MujocoBackend(cfg)
    while len(rows) < n_target:
        kind = str(rng.choice(params.tasks))
        n_obj = int(rng.choice(params.object_counts))
        task_seed = int(rng.integers(0, 2**31 - 1))
        cam_name = str(rng.choice(params.cameras))
        try:
            task = make_task(kind, n_obj, task_seed, cfg)
            backend.load(task.scene)
        except SceneError:
            continue  # a rare unbuildable draw: skip it (deterministically) and draw again
        camera = Camera.from_config(cfg, cam_name)
        scenes.append(scene_record(backend, task.scene, kind, task_seed, cam_name))
        before = snapshot(backend, camera, noise, rng, k, observer)
        for step in range(params.steps_per_scene):
            if len(rows) >= n_target:
                break
            skill, target, a = sample_action(rng, backend, params.targeted_fraction, params.hold_out_failure_modes)
            try:
                row, report = record_step(backend, skill, target, a, before, camera, noise, rng, k, observer)
            except SkillError as e:  # sampling only draws valid requests; a refusal here is a bug
                raise RuntimeError(f"datagen drew an invalid skill request: {e}") from None
            row.update(scene_index=len(scenes) - 1, step=step)
            rows.append(row)
            if report.flags:
                break  # an unstable state is no start state for the next step
            before = row["after"]
    return pack_rows(rows, scenes, k)


def record_step(backend, skill: str, target: int, a, before, camera, noise, rng, k: int,
                observer: PerceivedObserver | None = None) -> tuple[dict, object]:
    """Execute one skill from snapshot ``before`` and return the transition row (without its
    scene_index / step, which the caller knows) and the SkillReport."""
    report = backend.execute_skill(skill, target, a)
    after = snapshot(backend, camera, noise, rng, k, observer)
    flags = 0
    if not report.executed:
        flags |= ds.FLAG_NOT_EXECUTED
    if report.flags:
        flags |= ds.FLAG_UNSTABLE
    if (before[0].counts == 0).any() or (after[0].counts == 0).any():
        flags |= ds.FLAG_UNSEEN_SEGMENT
    achieved = np.zeros(3, dtype=np.float32)
    achieved[:np.size(report.achieved)] = np.ravel(report.achieved)
    pa = np.zeros(PARAM_DIM, dtype=np.float32)
    pa[:len(a)] = a
    return ({"skill": skill_index(skill), "target": int(target), "params": pa,
             "cls": ds.class_indices([s.cls for s in backend.segments]),
             "before": before, "after": after, "executed": report.executed,
             "grasp": -1 if report.grasp_success is None else int(report.grasp_success),
             "achieved": achieved, "flags": flags}, report)


def pack_rows(rows: list[dict], scenes: list[dict], k: int) -> dict[str, np.ndarray]:
    """Shard arrays (see f2p_common.dataset) from recorded rows and their scenes."""
    t = len(rows)
    s = max(len(r["cls"]) for r in rows)
    out = {
        "scene_index": np.array([r["scene_index"] for r in rows], dtype=np.int32),
        "step": np.array([r["step"] for r in rows], dtype=np.int16),
        "seg_class": np.full((t, s), -1, dtype=np.int8),
        "skill": np.array([r["skill"] for r in rows], dtype=np.int8),
        "target": np.array([r["target"] for r in rows], dtype=np.int16),
        "params": np.stack([r["params"] for r in rows]).astype(np.float32),
        "executed": np.array([r["executed"] for r in rows], dtype=np.uint8),
        "grasp_success": np.array([r["grasp"] for r in rows], dtype=np.int8),
        "achieved": np.stack([r["achieved"] for r in rows]).astype(np.float32),
        "flags": np.array([r["flags"] for r in rows], dtype=np.uint8),
        "state_phys": np.zeros((t, s, 2), dtype=np.float32),
        "scenes_json": np.frombuffer(json.dumps(scenes, sort_keys=True).encode("utf-8"), dtype=np.uint8),
    }
    for tag in ("t", "t1"):
        out[f"obs_{tag}_points"] = np.zeros((t, s, k, 3), dtype=np.float32)
        out[f"obs_{tag}_counts"] = np.zeros((t, s), dtype=np.int32)
        out[f"state_{tag}_pose"] = np.zeros((t, s, 7), dtype=np.float32)
        out[f"state_{tag}_box"] = np.zeros((t, s, 6), dtype=np.float32)
        out[f"state_{tag}_drawer"] = np.full((t, s), np.nan, dtype=np.float32)
        out[f"rel_{tag}_unary"] = np.zeros((t, s, len(UNARY_RELATIONS)), dtype=np.uint8)
        out[f"rel_{tag}_binary"] = np.zeros((t, s, s, len(BINARY_RELATIONS)), dtype=np.uint8)
    for i, r in enumerate(rows):
        n = len(r["cls"])
        out["seg_class"][i, :n] = r["cls"]
        for tag, (obs, st, rel) in (("t", r["before"]), ("t1", r["after"])):
            out[f"obs_{tag}_points"][i, :n] = obs.points
            out[f"obs_{tag}_counts"][i, :n] = obs.counts
            out[f"state_{tag}_pose"][i, :n] = st.pose
            out[f"state_{tag}_box"][i, :n] = np.concatenate([st.box_lower, st.box_upper], axis=1)
            out[f"state_{tag}_drawer"][i, :n] = st.drawer_opening
            out[f"rel_{tag}_unary"][i, :n] = rel.unary
            out[f"rel_{tag}_binary"][i, :n, :n] = rel.binary
        st = r["before"][1]
        out["state_phys"][i, :n, 0] = st.mass
        out["state_phys"][i, :n, 1] = st.friction
    return out


def _shard_info(index: int, path: Path, arrays: dict[str, np.ndarray], digest: str) -> dict:
    """The manifest entry of a shard: its file, SHA-256, transitions, flagged ones and point counts."""
    counts = np.concatenate([arrays["obs_t_counts"].sum(axis=1), arrays["obs_t1_counts"].sum(axis=1)])
    segments = (arrays["seg_class"] >= 0).sum(axis=1)
    return {"index": index, "file": path.name, "sha256": digest, "transitions": int(arrays["skill"].shape[0]),
            "flagged": int(np.count_nonzero(arrays["flags"])),
            "raw_points_per_cloud_mean": float(counts.mean()),
            "stored_points_per_cloud_mean": float(segments.mean() * arrays["obs_t_points"].shape[2])}


def _shard_job(job) -> dict:
    params, index, folder, world_config = job
    path = Path(folder) / ds.shard_name(index)
    arrays = generate_shard(params, index, world_config)
    return _shard_info(index, path, arrays, ds.write_shard(path, arrays))


def _existing_shard(params: DatagenParams, index: int, folder: Path) -> dict | None:
    path = folder / ds.shard_name(index)
    if not path.is_file():
        return None
    try:
        arrays = ds.read_shard(path)
    except ValueError:
        path.unlink()  # truncated by a crash: regenerate it
        return None
    if arrays["skill"].shape[0] != params.shard_transitions(index):
        raise ValueError(f"{path} holds {arrays['skill'].shape[0]} transitions, expected "
                         f"{params.shard_transitions(index)}: the folder belongs to other parameters")
    return _shard_info(index, path, arrays, file_sha256(path))


@dataclass
class DatagenConfig:
    """Where and how to generate: ``out`` folder (resumed if it holds this dataset), the content
    ``params``, worker processes (default: one per core; the content does not depend on them), a
    progress bar, the world config (None: the installed one)."""

    out: str | os.PathLike
    params: DatagenParams = field(default_factory=DatagenParams)
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    progress: bool = True
    world_config: str | None = None


@dataclass
class DatagenResult:
    """The written dataset: its folder, manifest, shards generated now and reused, seconds."""

    folder: Path
    manifest: dict
    generated_shards: int
    reused_shards: int
    seconds: float

    @property
    def transitions(self) -> int:
        return self.manifest["transitions"]


def generate(cfg: DatagenConfig) -> DatagenResult:
    """Generate (or resume) the dataset ``cfg`` describes; ValueError for bad parameters or a
    folder holding another dataset."""
    t0 = time.perf_counter()
    params = cfg.params
    params.validate()
    folder = Path(cfg.out)
    folder.mkdir(parents=True, exist_ok=True)
    record = asdict(params)
    record["tasks"], record["object_counts"], record["cameras"] = list(params.tasks), list(params.object_counts), list(params.cameras)
    params_file = folder / "params.json"
    if params_file.is_file():
        previous = json.loads(params_file.read_text(encoding="utf-8"))
        previous.setdefault("layout", "paper")     # datasets made before layouts existed
        previous.setdefault("perception", SIMULATOR)   # ... and before perceived observations
        if previous != record:
            raise ValueError(f"{folder} was generated with other parameters {previous}; use another --out")
    else:
        params_file.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    done = {}
    todo = []
    for i in range(params.num_shards):
        info = _existing_shard(params, i, folder)
        if info is None:
            todo.append(i)
        else:
            done[i] = info
    reused = len(done)
    bar = None
    if cfg.progress:
        from tqdm import tqdm
        bar = tqdm(total=params.transitions, initial=sum(d["transitions"] for d in done.values()),
                   unit="transition", desc="f2p-datagen", file=sys.stderr)
    jobs = [(params, i, str(folder), cfg.world_config) for i in todo]
    if cfg.workers <= 1 or len(jobs) <= 1:
        results = map(_shard_job, jobs)
        pool = None
    else:
        pool = mp.get_context("fork").Pool(processes=cfg.workers)
        results = pool.imap_unordered(_shard_job, jobs)
    try:
        for info in results:
            done[info["index"]] = info
            if bar is not None:
                bar.update(info["transitions"])
    finally:
        if pool is not None:
            pool.close()
            pool.join()
        if bar is not None:
            bar.close()
    manifest = build_manifest(record, load_world_config(cfg.world_config, params.layout), [done[i] for i in sorted(done)])
    ds.write_manifest(folder, manifest)
    return DatagenResult(folder, manifest, len(todo), reused, time.perf_counter() - t0)


def build_manifest(record: dict, world_config: dict, shards: list[dict]) -> dict:
    """The manifest of a dataset folder (f2p_common.dataset) from its parameters and shard infos."""
    return {
        "format": ds.FORMAT,
        "params": record,
        "world_config": world_config,
        "vocabulary": {"relations": list(RELATIONS), "unary": list(UNARY_RELATIONS), "binary": list(BINARY_RELATIONS),
                       "skills": {n: {"parameters": list(s.parameter_names), "low": list(s.low), "high": list(s.high)}
                                  for n, s in SKILLS.items()},
                       "classes": list(OBJECT_CLASSES)},
        "transitions": sum(d["transitions"] for d in shards),
        "flagged": sum(d["flagged"] for d in shards),
        "shards": shards,
    }


def write_rows(folder: str | os.PathLike, rows: list[dict], scenes: list[dict], k: int, record: dict,
               world_config: dict) -> dict:
    """A one-shard dataset folder from recorded rows (used for targeted datasets D+)."""
    if not rows:
        raise ValueError("no transitions to write")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = pack_rows(rows, scenes, k)
    path = folder / ds.shard_name(0)
    digest = ds.write_shard(path, arrays)
    info = {"index": 0, "file": path.name, "sha256": digest, "transitions": len(rows),
            "flagged": int(np.count_nonzero(arrays["flags"]))}
    manifest = build_manifest(record, world_config, [info])
    ds.write_manifest(folder, manifest)
    return manifest


# ---------------------------------------------------------------------------- command line
def config_from_args(argv=None) -> DatagenConfig:
    """The :class:`DatagenConfig` of an ``f2p-datagen`` command line (defaults: DatagenParams')."""
    p = argparse.ArgumentParser(prog="f2p-datagen", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    d, c = DatagenParams(), DatagenConfig(out="")
    p.add_argument("--out", required=True, help="output folder (resumes if it exists)")
    p.add_argument("--transitions", type=int, default=d.transitions)
    p.add_argument("--shard-size", type=int, default=d.shard_size)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--workers", type=int, default=c.workers, help="worker processes")
    p.add_argument("--tasks", nargs="+", default=list(d.tasks), choices=TASK_KINDS)
    p.add_argument("--object-counts", nargs="+", type=int, default=list(d.object_counts))
    p.add_argument("--steps-per-scene", type=int, default=d.steps_per_scene)
    p.add_argument("--cameras", nargs="+", default=list(d.cameras), help="camera presets of the world config")
    p.add_argument("--points-per-segment", type=int, default=d.points_per_segment)
    p.add_argument("--depth-std", type=float, default=d.depth_std, help="m, noise along rays")
    p.add_argument("--point-std", type=float, default=d.point_std, help="m, isotropic point noise")
    p.add_argument("--dropout", type=float, default=d.dropout, help="ray dropout probability")
    p.add_argument("--targeted-fraction", type=float, default=d.targeted_fraction)
    p.add_argument("--hold-out-failure-modes", action="store_true",
                   help="the pre-training distribution: never move loaded containers or push touching objects")
    p.add_argument("--config", default=None, help="world config YAML (default: the installed f2p_sim world.yaml)")
    p.add_argument("--layout", default=d.layout, choices=LAYOUTS,
                   help="task-scene layout: paper 000's 0.5 m tables or real_scale furniture and objects")
    p.add_argument("--perception", default=d.perception, choices=(SIMULATOR, *DEPTH_BACKENDS),
                   help="whose segments: the simulator's, or a robot perception backend's on the camera's organised "
                        "depth cloud (with --depth-std/--point-std/--dropout as the sensor's noise)")
    p.add_argument("--no-progress", action="store_true")
    a = p.parse_args(argv)
    params = DatagenParams(transitions=a.transitions, shard_size=a.shard_size, seed=a.seed, tasks=tuple(a.tasks),
                           object_counts=tuple(a.object_counts), steps_per_scene=a.steps_per_scene,
                           cameras=tuple(a.cameras), points_per_segment=a.points_per_segment, depth_std=a.depth_std,
                           point_std=a.point_std, dropout=a.dropout, targeted_fraction=a.targeted_fraction,
                           hold_out_failure_modes=a.hold_out_failure_modes, layout=a.layout,
                           perception=a.perception)
    return DatagenConfig(a.out, params, workers=a.workers, progress=not a.no_progress, world_config=a.config)


def main(argv=None) -> int:
    cfg = config_from_args(argv)
    try:
        result = generate(cfg)
    except (ValueError, FileNotFoundError) as e:
        print(f"f2p-datagen: error: {e}", file=sys.stderr)
        return 2
    m = result.manifest
    print(f"f2p-datagen: {m['transitions']} transitions ({m['flagged']} flagged) in "
          f"{len(m['shards'])} shards at {cfg.out} ({result.seconds:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
