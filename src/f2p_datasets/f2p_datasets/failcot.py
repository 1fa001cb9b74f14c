"""FailCoT in our simulator: failure data for Guardian made by perturbing our own successes
(paper 002 §III-B, §III-C, §III-E).

For every task scene (task kind x object count = a task *variant*, fresh seeds) the scripted
reference solution (``f2p_sim.reference``, which solves the instance from ground truth) is the
successful trajectory. From it, balanced success / failure examples:

planning (eq. 1)  the reference plan (success) and one perturbed plan per scene, its category
    taken in turn from the five of §III-B, built by rules (no LLM runs here to rewrite plans,
    the paper uses one for types 1-3): wrong object (a step retargeted to another movable
    object), wrong target state / placement (a step's offset moved by 0.15-0.35 m, a push's
    distance or heading changed), wrong order (the steps permuted), missing subtask (a step
    dropped), contradictory subtasks (a step followed by one that moves its target back).
    Every perturbed plan is *executed in physics* from the initial scene and kept only when
    the task then fails (a reordering that still works is no failure): labels come from
    physics, not from the rule. Inputs: the instruction, the plan, the initial views.
execution (eq. 2)  for every reference step, the step as it ran (success) and the step run
    again from the same state with its action perturbed in physics
    (``f2p_sim.skills.ExecutionPerturbation``): no gripper close, wrong state or placement,
    wrong object, imprecise grasp / push (a grasp beside the object, a slip in transport, a
    push off-centre); plus the two types of the paper's real-robot data: instruction mismatch
    (the subtask text of another object or place paired with what really happened) and revert
    (the after views replaced by the before views: no progress). A perturbed step is kept
    only when the step's effect really differs from the reference's (its target more than
    ``effect_tolerance`` from the reference's result, or resting on / in something else).
    Inputs: the instruction, the subtask, the views before and after.

Each example (one JSON line) has the instruction, the plan or subtask (skill calls and texts),
the camera views' image files, the label and category, the scene as boxes before (and after),
the perturbation, and a step-by-step reasoning trace written from simulator facts (objects,
positions, supports, the gripper, the failure's cause) in Guardian's answer format
(``f2p_guardian.taxonomy.format_answer``).

Splits hold out task variants and a camera, as the paper's validation and test sets hold out
tasks and environments: train sees ``front``, ``left_high``, ``right_low``; validation and test
see ``right_high`` in place of ``right_low``. A shard is one scene (its examples and images); a
finished shard is never redone, so an interrupted run resumes; ``shard_index / shard_count``
split the work between processes or machines; ``manifest.json`` lists the shards, counts per
split, mode and category, and the config.

Needs a GL backend for the images (``MUJOCO_GL=egl`` or ``osmesa``).
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from f2p_common.files import write_atomic
from f2p_common.interfaces import SkillCall
from f2p_common.vocabulary import BINARY_RELATIONS, MOVABLE_CLASSES, skill as skill_spec
from f2p_guardian.language import describe_goal, describe_plan, describe_step, literal_text
from f2p_guardian.taxonomy import EXECUTION, EXECUTION_CATEGORIES, PLAN, PLAN_CATEGORIES, SUCCESS, format_answer
from f2p_guardian.world import SceneFacts, predict_step
from f2p_relations.relations import Relations
from f2p_sim.config import LAYOUTS, load_world_config
from f2p_sim.mujoco_backend import MujocoBackend
from f2p_sim.observation import Camera, ImageRenderer
from f2p_sim.reference import ReferenceSolutionError, solve
from f2p_sim.skills import ExecutionPerturbation, SkillError, make_slip
from f2p_sim.tasks import OBJECT_COUNTS, TASK_KINDS, Task, make_task

SPLITS = ("train", "val", "test")
#: The held-out task variants (kind, object count); every other variant is for training.
HELD_OUT: dict[str, tuple[tuple[str, int], ...]] = {
    "val": (("transport", 7), ("organize", 3)),
    "test": (("transport", 5), ("organize", 7), ("packing", 3)),
}
TRAIN_CAMERAS = ("front", "left_high", "right_low")
HELD_OUT_CAMERAS = ("front", "left_high", "right_high")


def split_of(kind: str, n_objects: int) -> str:
    for split, variants in HELD_OUT.items():
        if (kind, n_objects) in variants:
            return split
    return "train"


def cameras_of(split: str) -> tuple[str, ...]:
    return TRAIN_CAMERAS if split == "train" else HELD_OUT_CAMERAS


@dataclass
class FailCoTConfig:
    """Module docstring. ``scenes_per_variant`` scenes of every (task kind, object count); task
    seeds ``seed_base + 1000 n + i``; images ``image_width`` x ``image_height`` from the world's
    cameras with a ``fovy_deg`` field of view; ``effect_tolerance`` m (see the module docstring)."""

    out: str
    scenes_per_variant: int = 4
    tasks: tuple[str, ...] = TASK_KINDS
    object_counts: tuple[int, ...] = OBJECT_COUNTS
    layout: str = "paper"
    image_width: int = 160
    image_height: int = 120
    #: The views' vertical field of view: narrower than the depth cameras' 60 degrees, so the
    #: tables fill the frame and a 5 cm cup spans more than a few pixels.
    fovy_deg: float = 40.0
    seed_base: int = 70000
    seed: int = 0
    effect_tolerance: float = 0.06
    shard_index: int = 0
    shard_count: int = 1
    world_config: str | None = None

    def __post_init__(self):
        if self.scenes_per_variant < 1:
            raise ValueError(f"scenes_per_variant must be >= 1, got {self.scenes_per_variant}")
        if self.layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, got {self.layout!r}")
        if not 0 <= self.shard_index < self.shard_count:
            raise ValueError(f"shard_index must be in [0, shard_count), got {self.shard_index} of {self.shard_count}")
        if self.image_width < 16 or self.image_height < 16:
            raise ValueError("images must be at least 16x16")
        for kind in self.tasks:
            if kind not in TASK_KINDS:
                raise ValueError(f"unknown task {kind!r}; known: {', '.join(TASK_KINDS)}")
        for n in self.object_counts:
            if n not in OBJECT_COUNTS:
                raise ValueError(f"object counts must be some of {OBJECT_COUNTS}, got {n}")

    def scenes(self) -> list[tuple[str, int, int]]:
        """(kind, n, seed) of every scene, this process's share (every shard_count-th)."""
        all_ = [(kind, n, self.seed_base + 1000 * n + i) for kind in self.tasks for n in self.object_counts
                for i in range(self.scenes_per_variant)]
        return all_[self.shard_index::self.shard_count]


@dataclass
class FailCoTResult:
    root: Path
    examples: dict = field(default_factory=dict)       # split -> mode -> category -> count
    shards: int = 0
    generated: int = 0                                 # shards made by this run (the rest were there)
    skipped: list = field(default_factory=list)        # scenes the reference could not solve
    seconds: float = 0.0


# ---------------------------------------------------------------------------- scene facts
def scene_facts(backend) -> SceneFacts:
    st = backend.segment_state()
    segs = backend.segments
    return SceneFacts(tuple(s.name for s in segs), tuple(s.cls for s in segs), st.box_lower, st.box_upper)


def resting_on(rel: Relations, names: list[str], i: int) -> str:
    """What object ``i`` is in or on (from ground-truth relations): "inside X", "on X", "on the floor"."""
    inside, above, contact = (BINARY_RELATIONS.index(p) for p in ("inside", "above", "in_contact"))
    hosts = [j for j in np.nonzero(rel.binary[i, :, inside])[0]]
    if hosts:
        return f"inside {names[hosts[0]]}"
    supports = [j for j in np.nonzero(rel.binary[i, :, above] & rel.binary[i, :, contact])[0]]
    return f"on {names[supports[0]]}" if supports else "on the floor"


def _where(facts: SceneFacts, i: int) -> str:
    c = facts.center[i]
    return f"({c[0]:.2f}, {c[1]:.2f}, {c[2]:.2f})"


def describe_objects(facts: SceneFacts, rel: Relations, indices) -> str:
    """Where each object of ``indices`` is and what it rests on or in (ground truth)."""
    names = list(facts.object_ids)
    return "; ".join(f"{names[i]} ({facts.classes[i]}) at {_where(facts, i)} {resting_on(rel, names, i)}"
                     for i in indices)


# ---------------------------------------------------------------------------- rendering
class Views:
    """Renders the scene from a split's cameras at the config's resolution; a new GL context per
    scene model (a load builds a new one)."""

    def __init__(self, world: dict, cameras: tuple[str, ...], width: int, height: int, fovy_deg: float):
        self.cameras = [Camera.from_config(world, c, width=width, height=height, fovy_deg=fovy_deg) for c in cameras]
        self._renderer: ImageRenderer | None = None

    def render(self, backend) -> list[np.ndarray]:
        if self._renderer is None or self._renderer.model is not backend.model:
            self.close()
            self._renderer = ImageRenderer(backend, self.cameras[0])
        out = []
        for cam in self.cameras:
            self._renderer.set_camera(cam)
            out.append(self._renderer.render()["rgb"])
        return out

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None


class _Images:
    """Writes a shard's images (PNG) and names them relative to the dataset root."""

    def __init__(self, root: Path, shard: str, cameras: tuple[str, ...]):
        from PIL import Image

        self._image, self.root, self.shard, self.cameras = Image, root, shard, cameras
        (root / "shards" / shard / "images").mkdir(parents=True, exist_ok=True)

    def save(self, name: str, images: list[np.ndarray]) -> list[str]:
        paths = []
        for cam, im in zip(self.cameras, images):
            rel = f"shards/{self.shard}/images/{name}_{cam}.png"
            self._image.fromarray(im).save(self.root / rel)
            paths.append(rel)
        return paths


# ---------------------------------------------------------------------------- perturbations
def _call(backend, skill: str, target: int, params) -> SkillCall:
    return SkillCall(skill, (backend.segments[target].name,), tuple(float(p) for p in params))


def _clip(skill: str, params) -> list[float]:
    spec = skill_spec(skill)
    return [float(np.clip(p, lo, hi)) for p, lo, hi in zip(params, spec.low, spec.high)]


def _offset_placement(rng, skill: str, params) -> list[float]:
    """A placement 0.15-0.35 m off (pick_place), or a push 1.8-3x as long or 0.6-1.2 rad off."""
    p = list(params)
    if skill == "pick_place":
        a, r = rng.uniform(-math.pi, math.pi), rng.uniform(0.15, 0.35)
        p[0] += r * math.cos(a)
        p[1] += r * math.sin(a)
    elif skill == "push":
        if rng.random() < 0.5:
            p[1] = max(p[1] * rng.uniform(1.8, 3.0), 0.12)
        else:
            p[0] = (p[0] + rng.choice([-1, 1]) * rng.uniform(0.6, 1.2) + math.pi) % (2 * math.pi) - math.pi
    else:
        p[0] = p[0] * 0.3
    return _clip(skill, p)


def _other_movables(backend, exclude: set[int]) -> list[int]:
    return [i for i, s in enumerate(backend.segments) if s.cls in MOVABLE_CLASSES and i not in exclude]


def _inside(rel: Relations, target: int) -> set[int]:
    return set(int(j) for j in np.nonzero(rel.binary[:, target, BINARY_RELATIONS.index("inside")])[0])


def _riders(backend, target: int) -> set[int]:
    return _inside(backend.relations(), target)


def plan_perturbation(category: str, steps: list, backend, rng) -> tuple[list, str] | None:
    """A perturbed copy of ``steps`` [(skill, target, params)] of ``category`` and what was
    done, in words; None when the category does not apply to this plan."""
    names = [s.name for s in backend.segments]
    n = len(steps)
    if category == "wrong_object":
        acted = {t for _, t, _ in steps}
        k = int(rng.integers(n))
        others = _other_movables(backend, acted)
        if not others:
            return None
        new = int(rng.choice(others))
        out = list(steps)
        out[k] = (steps[k][0], new, steps[k][2])
        return out, f"step {k + 1} acts on {names[new]} instead of {names[steps[k][1]]}"
    if category == "wrong_placement":
        k = int(rng.integers(n))
        out = list(steps)
        out[k] = (steps[k][0], steps[k][1], _offset_placement(rng, steps[k][0], steps[k][2]))
        return out, f"step {k + 1} puts {names[steps[k][1]]} in the wrong place"
    if category == "wrong_order":
        if n < 2:
            return None
        order = list(range(n))
        while order == list(range(n)):
            order = [int(i) for i in rng.permutation(n)]
        return [steps[i] for i in order], "the steps run in the order " + ", ".join(str(i + 1) for i in order)
    if category == "missing_subtask":
        if n < 2:
            return None
        k = int(rng.integers(n))
        return steps[:k] + steps[k + 1:], f"step {k + 1} ({steps[k][0]} {names[steps[k][1]]}) is left out"
    if category == "contradictory_subtasks":
        k = int(rng.integers(n))
        skill, t, p = steps[k]
        if skill == "pick_place":
            back = _clip(skill, [-p[0], -p[1], 0.01])
        elif skill == "push":
            back = _clip(skill, [(p[0] + 2 * math.pi) % (2 * math.pi) - math.pi, p[1]])
        else:
            return None
        return steps[:k + 1] + [(skill, t, back)] + steps[k + 1:], \
            f"step {k + 2} takes {names[t]} back where step {k + 1} took it from"
    raise ValueError(f"unknown planning category {category!r}")


def execution_perturbation(category: str, step: tuple, backend, rng) -> tuple[tuple, ExecutionPerturbation, str] | None:
    """(step to run, perturbation, cause in words) for an execution failure of ``category``
    made in physics; None when it does not apply to this step."""
    skill, t, params = step
    names = [s.name for s in backend.segments]
    st = backend.segment_state()
    half = 0.5 * (st.box_upper[t, :2] - st.box_lower[t, :2])
    if category == "no_gripper_close":
        if skill != "pick_place":
            return None
        pert, cause = make_slip("no_close", rng, skill, params, half)
        return step, pert, cause.replace("the object", names[t])
    if category == "wrong_placement":
        return (skill, t, _offset_placement(rng, skill, params)), ExecutionPerturbation(), \
            f"{names[t]} was put in the wrong place"
    if category == "wrong_object":
        others = _other_movables(backend, {t} | _riders(backend, t))
        if not others:
            return None
        new = int(rng.choice(others))
        return (skill, new, params), ExecutionPerturbation(), f"the gripper took {names[new]} instead of {names[t]}"
    if category == "imprecise_grasp":
        kind = "slip" if skill == "pick_place" and rng.random() < 0.5 else "miss"
        pert, cause = make_slip(kind, rng, skill, params, half)
        return step, pert, cause.replace("the object's", f"{names[t]}'s").replace("the object", names[t])
    raise ValueError(f"execution category {category!r} is not made in physics")


# ---------------------------------------------------------------------------- one scene
def _run_steps(backend, steps) -> bool:
    """Execute ``steps``; False when one is refused (bad parameters or target)."""
    for skill, t, p in steps:
        try:
            r = backend.execute_skill(skill, t, p)
        except SkillError:
            return False
        if not r.executed:
            return False
    return True


def _effect_differs(backend, target: int, ref_after: SceneFacts, ref_rel: Relations, tol: float) -> bool:
    """Whether the step's target ended elsewhere than the reference put it (position or support)."""
    now = scene_facts(backend)
    names = list(now.object_ids)
    far = float(np.linalg.norm(now.center[target] - ref_after.center[target])) > tol
    return far or resting_on(backend.relations(), names, target) != resting_on(ref_rel, names, target)


def scene_examples(task: Task, backend: MujocoBackend, views: Views, images: _Images, rng: np.random.Generator,
                   counter: dict, cfg: FailCoTConfig, split: str) -> list[dict]:
    """Every example of one scene (module docstring); ``counter`` turns the failure categories in
    turn (a scene starts at a random one of its own, so a shard depends on its scene alone).
    ReferenceSolutionError when the reference does not solve the scene."""
    steps = solve(task, backend)
    if not task.success(backend):
        raise ReferenceSolutionError(f"the reference leaves {', '.join(map(str, task.unmet(backend.relations(), [s.name for s in backend.segments])))} unmet")
    backend.load(task.scene)
    names = [s.name for s in backend.segments]
    instruction = describe_goal([(lit.predicate, lit.subject, lit.object) for lit in task.goal])
    goal = [[lit.predicate, lit.subject, lit.object] for lit in task.goal]
    base = {"task": task.kind, "n_objects": task.n_objects, "seed": task.seed, "layout": cfg.layout, "split": split,
            "instruction": instruction, "goal": goal, "views": list(cameras_of(split))}
    # The successful trajectory: the state, boxes, relations and images before and after each step.
    states, facts, rels, shots, texts = [backend.get_state()], [scene_facts(backend)], [backend.relations()], [], []
    goal_objects = sorted({names.index(o) for g in goal for o in g[1:] if o is not None
                           and backend.segments[names.index(o)].cls in MOVABLE_CLASSES})
    shots.append(images.save("s0", views.render(backend)))
    for k, (skill, t, p) in enumerate(steps):
        texts.append(describe_step(_call(backend, skill, t, p), facts[-1]))
        backend.execute_skill(skill, t, p)
        states.append(backend.get_state())
        facts.append(scene_facts(backend))
        rels.append(backend.relations())
        shots.append(images.save(f"s{k + 1}", views.render(backend)))
    examples = []

    def plan_example(plan_steps, label, cause, outcome_text):
        calls = [_call(backend, s, t, p) for s, t, p in plan_steps]
        texts = describe_plan(calls, facts[0])
        lines = [f"Objects: {describe_objects(facts[0], rels[0], goal_objects)}. The gripper is open, away from "
                 f"the tables."]
        lines += [f"Step {k + 1}: {text}." for k, text in enumerate(texts)]
        lines.append(outcome_text)
        if cause:
            lines.append(f"Cause: {cause}.")
        lines.append("The plan is correct." if label == SUCCESS else "The plan is wrong.")
        reasoning = " ".join(lines)
        return {**base, "id": f"{images.shard}-plan-{len(examples)}", "mode": PLAN,
                "plan": [{"skill": c.skill, "target": c.target_ids[0], "params": list(c.parameters),
                          "text": text} for c, text in zip(calls, texts)],
                "images": {"initial": shots[0]}, "scene": facts[0].to_dict(),
                "label": "success" if label == SUCCESS else "failure", "category": label, "cause": cause,
                "reasoning": reasoning, "answer": format_answer(reasoning, label == SUCCESS, label)}

    examples.append(plan_example(steps, SUCCESS, "", "After the plan every goal relation holds: "
                                 + "; ".join(literal_text(tuple(g)) for g in goal) + "."))
    for attempt in range(2 * len(PLAN_CATEGORIES)):
        category = PLAN_CATEGORIES[counter.setdefault(PLAN, 0) % len(PLAN_CATEGORIES)]
        counter[PLAN] += 1
        made = plan_perturbation(category, steps, backend, rng)
        if made is None:
            continue
        plan_steps, cause = made
        backend.set_state(states[0])
        ran = _run_steps(backend, plan_steps)
        if ran and task.success(backend):
            continue                                  # physics says the perturbed plan still works
        unmet = task.unmet(backend.relations(), names) if ran else []
        outcome = ("After the plan " + "; ".join(literal_text((u.predicate, u.subject, u.object)) for u in unmet)
                   + " does not hold." if unmet else "A step of the plan cannot be executed where it stands.")
        examples.append(plan_example(plan_steps, category, cause, outcome))
        break

    def exec_example(k, call, after_shots, after_facts, after_rel, category, cause, perturbation=None):
        label = SUCCESS if category == SUCCESS else category
        t = names.index(call.target_ids[0])
        moved = np.nonzero(np.linalg.norm(after_facts.center - facts[k].center, axis=1) > 0.01)[0]
        focus = sorted({t, *_inside(rels[k], t), *(int(i) for i in moved)})
        lines = [f"Before: {describe_objects(facts[k], rels[k], focus)}.",
                 f"After: {describe_objects(after_facts, after_rel, focus)}.",
                 f"The subtask asks: {describe_step(call, facts[k])}."]
        if cause:
            lines.append(f"Cause: {cause}.")
        lines.append("The subtask succeeded." if label == SUCCESS else "The subtask failed.")
        reasoning = " ".join(lines)
        return {**base, "id": f"{images.shard}-exec-{len(examples)}", "mode": EXECUTION, "step_index": k,
                "subtask": {"skill": call.skill, "target": call.target_ids[0], "params": list(call.parameters),
                            "text": describe_step(call, facts[k])},
                "images": {"before": shots[k], "after": after_shots},
                "scene": facts[k].to_dict(), "scene_after": after_facts.to_dict(),
                "label": "success" if label == SUCCESS else "failure", "category": label, "cause": cause,
                "perturbation": perturbation, "reasoning": reasoning,
                "answer": format_answer(reasoning, label == SUCCESS, label)}

    for k, (skill, t, p) in enumerate(steps):
        call = _call(backend, skill, t, p)
        examples.append(exec_example(k, call, shots[k + 1], facts[k + 1], rels[k + 1], SUCCESS, ""))
        for attempt in range(2 * len(EXECUTION_CATEGORIES)):
            category = EXECUTION_CATEGORIES[counter.setdefault(EXECUTION, 0) % len(EXECUTION_CATEGORIES)]
            counter[EXECUTION] += 1
            if category == "no_progress":
                examples.append(exec_example(k, call, shots[k], facts[k], rels[k], category,
                                             "the scene after is the scene before: nothing happened",
                                             {"revert": True}))
                break
            if category == "instruction_mismatch":
                backend.set_state(states[k])
                alt = _mismatched_call(backend, (skill, t, p), facts[k], facts[k + 1], rng, cfg.effect_tolerance)
                if alt is None:
                    continue
                examples.append(exec_example(k, alt, shots[k + 1], facts[k + 1], rels[k + 1], category,
                                             f"what happened is {texts[k]}, not what the subtask asks",
                                             {"instruction": describe_step(alt)}))
                break
            backend.set_state(states[k])
            made = execution_perturbation(category, (skill, t, p), backend, rng)
            if made is None:
                continue
            (s2, t2, p2), pert, cause = made
            try:
                report = backend.execute_skill(s2, t2, p2, perturbation=pert)
            except SkillError:
                continue
            if not report.executed or not _effect_differs(backend, t, facts[k + 1], rels[k + 1], cfg.effect_tolerance):
                continue                              # physics undid the perturbation: not a failure
            after_shots = images.save(f"s{k}_{category}", views.render(backend))
            examples.append(exec_example(k, call, after_shots, scene_facts(backend), backend.relations(), category,
                                         cause, {"skill": s2, "target": names[t2], "params": list(p2), **asdict(pert)}))
            break
    return examples


def _mismatched_call(backend, step, before: SceneFacts, after: SceneFacts, rng, tol: float) -> SkillCall | None:
    """A subtask the observed step does not match: another object's, or the same object's to
    somewhere the step did not take it (checked with the skill library's effects)."""
    skill, t, p = step
    for _ in range(6):
        if rng.random() < 0.5:
            others = _other_movables(backend, {t} | _riders(backend, t))
            if not others:
                continue
            alt = _call(backend, skill, int(rng.choice(others)), p)
        else:
            alt = _call(backend, skill, t, _offset_placement(rng, skill, p))
        out = predict_step(before, alt)
        a = before.index(alt.target_ids[0])
        if out.after is None or float(np.linalg.norm(out.after.center[a] - after.center[a])) > tol:
            return alt
    return None


# ---------------------------------------------------------------------------- the dataset
def generate(cfg: FailCoTConfig, progress: Callable[[int, int, str], None] | None = None) -> FailCoTResult:
    """Make (or finish) the dataset of ``cfg`` under ``cfg.out``; ``progress(done, total, shard)``
    after each scene. Returns the counts over every finished shard of this process's share."""
    t0 = time.perf_counter()
    root = Path(cfg.out)
    (root / "shards").mkdir(parents=True, exist_ok=True)
    world = load_world_config(cfg.world_config, cfg.layout)
    backend = MujocoBackend(world)
    view_sets = {split: Views(world, cameras_of(split), cfg.image_width, cfg.image_height, cfg.fovy_deg)
                 for split in SPLITS}
    result = FailCoTResult(root)
    scenes = cfg.scenes()
    counter: dict = {}
    shard_infos = []
    try:
        for done, (kind, n, seed) in enumerate(scenes):
            split = split_of(kind, n)
            shard = f"{cfg.layout}_{kind}_{n}_{seed}"
            path = root / "shards" / shard / "examples.jsonl"
            skip = root / "shards" / shard / "skipped.json"
            if not path.exists() and not skip.exists():
                rng = np.random.default_rng([cfg.seed, seed, n, TASK_KINDS.index(kind)])
                counter = {PLAN: int(rng.integers(len(PLAN_CATEGORIES))), EXECUTION: int(rng.integers(len(EXECUTION_CATEGORIES)))}
                task = make_task(kind, n, seed, world)
                images = _Images(root, shard, cameras_of(split))
                try:
                    examples = scene_examples(task, backend, view_sets[split], images, rng, counter, cfg, split)
                except ReferenceSolutionError as e:
                    write_atomic(skip, json.dumps({"scene": shard, "reason": str(e)}))
                else:
                    write_atomic(path, "".join(json.dumps(ex) + "\n" for ex in examples))
                result.generated += 1
            if skip.exists():
                result.skipped.append(json.loads(skip.read_text()))
            else:
                info = _count(path, result.examples)
                shard_infos.append({"shard": shard, "split": split, "examples": info})
                result.shards += 1
            if progress is not None:
                progress(done + 1, len(scenes), shard)
    finally:
        for v in view_sets.values():
            v.close()
    result.seconds = time.perf_counter() - t0
    manifest = {"config": asdict(cfg), "splits": {s: {"variants": [list(v) for v in HELD_OUT.get(s, ())] if s != "train"
                                                      else "the others", "cameras": list(cameras_of(s))} for s in SPLITS},
                "examples": result.examples, "shards": shard_infos, "skipped": result.skipped,
                "generated_this_run": result.generated, "seconds": round(result.seconds, 1)}
    name = "manifest.json" if cfg.shard_count == 1 else f"manifest_{cfg.shard_index}_of_{cfg.shard_count}.json"
    write_atomic(root / name, json.dumps(manifest, indent=1))
    return result


def _count(path: Path, counts: dict) -> dict:
    mine: dict = {}
    for line in path.read_text().splitlines():
        ex = json.loads(line)
        for c in (counts, mine):
            m = c.setdefault(ex["split"], {}).setdefault(ex["mode"], {})
            m[ex["category"]] = m.get(ex["category"], 0) + 1
    return mine


def main(argv=None) -> int:
    import argparse
    import sys

    d = FailCoTConfig("")
    p = argparse.ArgumentParser(description="FailCoT failure data for Guardian from the simulator's successes")
    p.add_argument("--out", required=True, help="dataset folder (an interrupted run resumes there)")
    p.add_argument("--scenes-per-variant", type=int, default=d.scenes_per_variant,
                   help="scenes per task kind and object count")
    p.add_argument("--tasks", nargs="+", default=list(d.tasks), choices=TASK_KINDS)
    p.add_argument("--object-counts", nargs="+", type=int, default=list(d.object_counts), choices=OBJECT_COUNTS)
    p.add_argument("--layout", default=d.layout, choices=LAYOUTS)
    p.add_argument("--image-size", nargs=2, type=int, default=[d.image_width, d.image_height], metavar=("W", "H"))
    p.add_argument("--fovy", type=float, default=d.fovy_deg, help="the views' vertical field of view (degrees)")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--shard", nargs=2, type=int, default=[0, 1], metavar=("INDEX", "COUNT"),
                   help="make only every COUNT-th scene from INDEX (split the work between processes)")
    p.add_argument("--world-config", default=None, help="world YAML (default: the installed f2p_sim world.yaml)")
    a = p.parse_args(argv)
    os.environ.setdefault("MUJOCO_GL", "egl")
    try:
        cfg = FailCoTConfig(a.out, a.scenes_per_variant, tuple(a.tasks), tuple(a.object_counts), a.layout,
                            a.image_size[0], a.image_size[1], a.fovy, seed=a.seed, shard_index=a.shard[0],
                            shard_count=a.shard[1], world_config=a.world_config)
        result = generate(cfg, lambda done, total, shard: print(f"[f2p-failcot] scene {done}/{total} {shard}",
                                                                flush=True))
    except (ValueError, RuntimeError) as e:
        print(f"f2p-failcot: {e}", file=sys.stderr)
        return 2
    print(f"[f2p-failcot] {result.shards} scenes ({result.generated} made now, {len(result.skipped)} skipped) in "
          f"{result.seconds:.0f} s: {json.dumps(result.examples)}")
    return 0


if __name__ == "__main__":
    import sys
    sys.exit(main())
