"""``visualizer`` lifecycle node: what the stack sees, believes, does and got wrong, as rviz markers.

=========================  ===============================  ====================================
interface                  type                             what
=========================  ===============================  ====================================
sub ``segmented_scene``    f2p_interfaces/SegmentedScene    perception (transient local)
sub ``relation_state``     f2p_interfaces/RelationState     the relation detector (transient local)
sub ``plan``               f2p_interfaces/Plan              the executor's adopted plans (latched)
sub ``task_progress``      f2p_interfaces/TaskProgress      the executor's stage and step (latched)
sub ``failure_events``     f2p_interfaces/FailureEvent      recorded failures (reliable)
pub ``markers``            visualization_msgs/MarkerArray   ``f2p_viz.drawing``'s namespaces:
                                                            objects, labels, relations, step,
                                                            mismatches; reliable, transient local
pub ``/diagnostics``       diagnostic_msgs/DiagnosticArray  drawn / unreadable inputs
=========================  ===============================  ====================================

The markers are redrawn at most ``rate_hz`` times a second, when an input changed; each array
replaces the previous one (it starts with a DELETEALL). The executing step is drawn while the
task executor executes or checks it; a failure's mismatched relations stay until the next task
starts. A message that cannot be read is reported on ``/diagnostics`` and the last good one
stays drawn. ``config/f2p.rviz`` (f2p_bringup) shows these markers with the camera cloud.
"""
from __future__ import annotations

import threading

from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.lifecycle import LifecycleState, TransitionCallbackReturn

from visualization_msgs.msg import MarkerArray

from f2p_common.vocabulary import BINARY_RELATIONS
from f2p_failure.events import FailureEventError
from f2p_interfaces.msg import FailureEvent as FailureEventMsg
from f2p_interfaces.msg import Plan as PlanMsg
from f2p_interfaces.msg import RelationState as RelationStateMsg
from f2p_interfaces.msg import SegmentedScene as SegmentedSceneMsg
from f2p_interfaces.msg import TaskProgress
from f2p_ros import parameters as P
from f2p_ros import qos
from f2p_ros.conversions import (ConversionError, PointCloudError, failure_event_from_msg, plan_from_msg,
                                 progress_from_msg, relations_from_msg, scene_from_msg, shapes_to_msg)
from f2p_ros.nodes import NO_EVENT_HANDLERS, ManagedNode, OK, WARN, diagnostics, run_node
from f2p_viz.drawing import DEFAULT_PREDICATES, ViewState

PARAMS = [
    P.Param("rate_hz", 5.0, "most marker arrays per second", P.positive),
    P.Param("predicates", list(DEFAULT_PREDICATES), "binary relations drawn as edges (A.9 names)",
            lambda v: None if v and set(v) <= set(BINARY_RELATIONS) else f"must be among {list(BINARY_RELATIONS)}", live=True),
]

class VisualizerNode(ManagedNode):
    def __init__(self, **kwargs):
        super().__init__("visualizer", **kwargs)
        P.declare(self, PARAMS)
        self._lock = threading.Lock()
        self._view = ViewState()
        self._dirty = False
        self._pub = self._diag = None
        self._group = MutuallyExclusiveCallbackGroup()
        self.drawn = self.unreadable = 0

    # --- lifecycle -------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self.v = P.load(self, PARAMS)
        except ValueError as exc:
            self.get_logger().error(f"configure failed: {exc}")
            return TransitionCallbackReturn.FAILURE
        self._latched = qos.latched()
        pub = NO_EVENT_HANDLERS["pub"]
        self._pub = self.until_cleanup(self.create_lifecycle_publisher(MarkerArray, "markers", self._latched,
                                                                       event_callbacks=pub))
        self._diag = self.create_diagnostics_publisher()
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        sub, latched = NO_EVENT_HANDLERS["sub"], self._latched
        reliable = qos.events()
        for t, topic, cb, profile in ((SegmentedSceneMsg, "segmented_scene", self._on_scene, latched),
                                      (RelationStateMsg, "relation_state", self._on_relations, latched),
                                      (PlanMsg, "plan", self._on_plan, latched),
                                      (TaskProgress, "task_progress", self._on_progress, latched),
                                      (FailureEventMsg, "failure_events", self._on_failure, reliable)):
            self.until_deactivate(self.create_subscription(t, topic, cb, profile, callback_group=self._group,
                                                           event_callbacks=sub))
        self.until_deactivate(self.create_timer(1.0 / self.v["rate_hz"], self._draw, callback_group=self._group))
        return super().on_activate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._pub = self._diag = None
        with self._lock:
            self._view = ViewState()
        return super().on_cleanup(state)

    # --- inputs ------------------------------------------------------------------------
    def _read(self, what: str, convert, msg):
        """``convert(msg)``, or None after reporting why it cannot be read."""
        try:
            return convert(msg)
        except (ConversionError, PointCloudError, FailureEventError, ValueError) as exc:
            self.unreadable += 1
            self.get_logger().warning(f"unreadable {what}: {exc}", throttle_duration_sec=5.0)
            self._diag.publish(diagnostics(self, "inputs", WARN, f"unreadable {what}: {exc}", drawn=self.drawn,
                                           unreadable=self.unreadable))
            return None

    def _set(self, **values) -> None:
        with self._lock:
            for k, v in values.items():
                setattr(self._view, k, v)
            self._dirty = True

    def _on_scene(self, msg):
        scene = self._read("segmented_scene", scene_from_msg, msg)
        if scene is not None:
            self._set(scene=scene)

    def _on_relations(self, msg):
        relations = self._read("relation_state", relations_from_msg, msg)
        if relations is not None:
            self._set(relations=relations)

    def _on_plan(self, msg):
        plan = self._read("plan", plan_from_msg, msg)
        if plan is not None:
            self._set(plan=plan)

    def _on_progress(self, msg: TaskProgress):
        with self._lock:
            self._view.on_progress(progress_from_msg(msg))
            self._dirty = True

    def _on_failure(self, msg):
        event = self._read("failure event", failure_event_from_msg, msg)
        if event is not None:
            with self._lock:
                self._view.on_failure(event)
                self._dirty = True

    # --- drawing -----------------------------------------------------------------------
    def _draw(self) -> None:
        with self._lock:
            if not self._dirty or self._view.scene is None:
                return
            self._dirty = False
            self._view.predicates = tuple(self.v["predicates"])
            shapes, stamp = self._view.shapes(), self._view.scene.stamp_ns
        self._pub.publish(shapes_to_msg(shapes, stamp))
        self.drawn += 1
        if self.drawn == 1 or self.drawn % 50 == 0:
            self._diag.publish(diagnostics(self, "inputs", OK, f"{len(shapes)} markers", drawn=self.drawn,
                                           unreadable=self.unreadable))


def main(args=None) -> None:
    run_node(VisualizerNode, args)


if __name__ == "__main__":
    main()
