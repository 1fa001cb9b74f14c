"""f2p's stream in a rerun recording (``f2p-view``): what the stack sees, believes, does, got
wrong and learned, on one timeline (no ROS import; :mod:`f2p_viz.view_node` feeds it from a bag or
the live graph).

Why rerun: one time-indexed store for 3D, text and plots, a viewer that runs offline from its
wheel in a browser (``rerun --serve-web``) or natively, ``.rrd`` files a reviewer opens without
ROS, and the viewer LeRobot uses. (Foxglove opens the bags directly but its desktop app is not a
wheel; viser draws 3D scenes without a timeline.)

================================  ===========================================================
entity                            what
================================  ===========================================================
``world/<namespace>/<kind>``      :class:`f2p_viz.drawing.ViewState`'s shapes, as rviz draws them:
                                  objects, labels, relations, step, mismatches
``world/camera``                  the camera's pose (``camera/pose``); its cloud under it
``plan``                          the adopted plan: steps, predictions, p(goal)
``timeline/task``                 the executor's stages and what it said
``timeline/failures``             each failure: the step, its category, every mismatched relation
``timeline/learner``              the learner's stages for each event
``timeline/model``                the model the planner serves, and each swap
================================  ===========================================================

The timeline is ``ros_time``: the time a message was recorded (a bag's log time) or received
(live) — one clock for every entity, whatever the messages' own stamps were taken on.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from f2p_common.interfaces import CameraCloud, ModelInfo, Plan, Shape, StepProgress
from f2p_failure.events import FailureEvent
from f2p_viz.drawing import ViewState

#: At most this many points of a camera cloud are logged (a 640x480 cloud is 307,200).
MAX_CLOUD_POINTS = 30_000
TIMELINE = "ros_time"


def _rgba(color) -> list[int]:
    return [int(round(255 * c)) for c in color]


def shape_archetypes(shapes: Sequence[Shape]) -> dict[str, object]:
    """``{"world/<namespace>/<kind>": rerun archetype}`` for ``shapes`` (boxes, lines, arrows,
    texts as labelled points)."""
    import rerun as rr
    groups: dict[tuple[str, str], list[Shape]] = defaultdict(list)
    for s in shapes:
        groups[(s.namespace, s.kind)].append(s)
    out = {}
    for (ns, kind), group in groups.items():
        colors = [_rgba(s.color) for s in group]
        if kind == "box":
            arch = rr.Boxes3D(centers=[s.center for s in group], half_sizes=[np.asarray(s.scale) / 2 for s in group],
                              quaternions=[rr.Quaternion(xyzw=s.orientation) for s in group], colors=colors)
        elif kind == "lines":
            strips, strip_colors, radii = [], [], []
            for s, c in zip(group, colors):
                for a, b in zip(s.points[0::2], s.points[1::2]):
                    strips.append([a, b])
                    strip_colors.append(c)
                    radii.append(s.scale[0] / 2)
            arch = rr.LineStrips3D(strips, colors=strip_colors, radii=radii)
        elif kind == "arrow":
            arch = rr.Arrows3D(origins=[s.points[0] for s in group], vectors=[s.points[1] - s.points[0] for s in group],
                               colors=colors, radii=[s.scale[0] / 2 for s in group])
        elif kind == "text":
            arch = rr.Points3D([s.center for s in group], labels=[s.text for s in group], colors=colors, radii=0.002,
                               show_labels=True)
        else:                                    # points, spheres: what the stack does not draw today
            arch = rr.Points3D(np.concatenate([s.points if len(s.points) else s.center[None] for s in group]))
        out[f"world/{ns}/{kind}"] = arch
    return out


def mismatch_lines(event: FailureEvent) -> list[str]:
    """One line per relation a failure's observation contradicted: ``inside(cuboid_3, bin_2):
    predicted 0.93, observed no``."""
    ids, out = event.segment_ids, []
    for m in event.mismatches:
        args = ids[m["subject"]] + ("" if m["object"] is None else f", {ids[m['object']]}")
        observed = "yes" if m.get("observed", m["predicted"] < 0.5) else "no"
        out.append(f"{m['predicate']}({args}): predicted {m['predicted']:.2f}, observed {observed}")
    return out


def plan_markdown(plan: Plan) -> str:
    """The plan as a short markdown document: each step and p(goal)."""
    lines = [f"### plan `{plan.plan_id}`", "", f"p(goal) = **{plan.goal_probability:.2f}**", ""]
    for k, ((skill, target), params) in enumerate(zip(plan.skeleton, plan.parameters)):
        lines.append(f"{k + 1}. `{skill}` {plan.object_ids[target]} ({', '.join(f'{p:.2f}' for p in params)})")
    if plan.goal:
        lines += ["", "goal: " + ", ".join(
            f"{pred}({plan.object_ids[s]}" + ("" if o is None else f", {plan.object_ids[o]}") + ")"
            for pred, s, o in plan.goal)]
    return "\n".join(lines)


class RerunView:
    """Logs f2p's stream into ``recording`` (a ``rerun.RecordingStream``; module docstring).
    Each ``on_*`` takes the time (ns, the timeline's) and an f2p dataclass."""

    def __init__(self, recording, max_cloud_points: int = MAX_CLOUD_POINTS):
        self.rec, self.max_cloud_points = recording, int(max_cloud_points)
        self.state = ViewState()
        self._drawn: set[str] = set()
        self.failures = 0
        self.scene_frame = "world"

    def _at(self, t_ns: int) -> None:
        self.rec.set_time(TIMELINE, timestamp=np.datetime64(int(t_ns), "ns"))

    def _text(self, t_ns: int, entity: str, text: str, level: str = "INFO") -> None:
        import rerun as rr
        self._at(t_ns)
        self.rec.log(entity, rr.TextLog(text, level=level))

    def _draw(self, t_ns: int) -> None:
        """Log the view's shapes; namespaces it no longer draws are cleared."""
        import rerun as rr
        self._at(t_ns)
        entities = shape_archetypes(self.state.shapes())
        for path, arch in entities.items():
            self.rec.log(path, arch)
        for gone in self._drawn - set(entities):
            self.rec.log(gone, rr.Clear(recursive=False))
        self._drawn = set(entities)

    # --- inputs ------------------------------------------------------------------------
    def on_scene(self, t_ns: int, scene) -> None:
        self.state.scene, self.scene_frame = scene, scene.frame_id
        self._draw(t_ns)

    def on_relations(self, t_ns: int, relations) -> None:
        self.state.relations = relations
        self._draw(t_ns)

    def on_plan(self, t_ns: int, plan: Plan) -> None:
        import rerun as rr
        self.state.plan = plan
        self._at(t_ns)
        self.rec.log("plan", rr.TextDocument(plan_markdown(plan), media_type=rr.MediaType.MARKDOWN))
        self._draw(t_ns)

    def on_progress(self, t_ns: int, progress: StepProgress) -> None:
        self.state.on_progress(progress)
        step = f" step {progress.step_index + 1}" if progress.stage in ("execute", "verify_step") else ""
        self._text(t_ns, "timeline/task", f"{progress.stage}{step}: {progress.message}".rstrip(": "),
                   "WARN" if progress.stage == "failed" else "INFO")
        self._draw(t_ns)

    def on_failure(self, t_ns: int, event: FailureEvent) -> None:
        self.state.on_failure(event)
        self.failures += 1
        skill_target = event.segment_ids[event.target] if 0 <= event.target < len(event.segment_ids) else "?"
        head = (f"failure {event.event_id[:8]} ({event.category}): step {event.step_index + 1} {event.skill} "
                f"{skill_target}, model {event.model_version}")
        for line in (head, *mismatch_lines(event)):        # one entry each: a log view lists them all
            self._text(t_ns, "timeline/failures", line, "ERROR")
        self._draw(t_ns)

    def on_cloud(self, t_ns: int, cloud: CameraCloud) -> None:
        import rerun as rr
        pts = cloud.points.reshape(-1, 3)
        keep = np.flatnonzero(np.isfinite(pts).all(axis=1))
        if len(keep) > self.max_cloud_points:
            keep = keep[:: int(np.ceil(len(keep) / self.max_cloud_points))]
        colors = cloud.colors.reshape(-1, 3)[keep] if cloud.colors is not None else None
        # in the scene's frame, or under the camera's pose (world/camera) when it is the camera's own
        entity = "world/cloud" if cloud.frame_id == self.scene_frame else "world/camera/cloud"
        self._at(t_ns)
        self.rec.log(entity, rr.Points3D(pts[keep], colors=colors, radii=0.002))

    def on_camera_pose(self, t_ns: int, position: Sequence[float], quaternion_xyzw: Sequence[float]) -> None:
        import rerun as rr
        self._at(t_ns)
        self.rec.log("world/camera", rr.Transform3D(translation=position, quaternion=rr.Quaternion(xyzw=quaternion_xyzw)))

    def on_model(self, t_ns: int, info: ModelInfo, why: str = "serving") -> None:
        parent = f", parent {info.parent_version}" if info.parent_version else ""
        metrics = ", ".join(f"{k} {v:.3f}" for k, v in sorted(info.metrics.items()) if isinstance(v, (int, float)))
        self._text(t_ns, "timeline/model", f"{why} {info.name} {info.version}{parent}" + (f" ({metrics})" if metrics else ""))

    def on_learner(self, t_ns: int, event_id: str, stage: str, fraction: float, status: str) -> None:
        level = "ERROR" if stage == "failed" else "INFO"
        self._text(t_ns, "timeline/learner", f"event {event_id[:8]}: {stage} {100 * fraction:.0f} % {status}".rstrip(),
                   level)


def blueprint():
    """The default layout: the 3D world beside the plan and the timeline's text logs."""
    import rerun.blueprint as rrb
    return rrb.Blueprint(rrb.Horizontal(
        rrb.Spatial3DView(origin="world", name="what the robot sees and believes"),
        rrb.Vertical(rrb.TextDocumentView(origin="plan", name="plan"),
                     rrb.TextLogView(origin="timeline", name="task, failures, learner, model"),
                     row_shares=[1, 2]),
        column_shares=[3, 2]), collapse_panels=True)
