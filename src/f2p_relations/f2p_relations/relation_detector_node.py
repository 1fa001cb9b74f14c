"""``relation_detector`` lifecycle node: SegmentedScene -> RelationState (paper 000 A.9).

=========================  ===============================  ====================================
interface                  type                             what
=========================  ===============================  ====================================
sub ``segmented_scene``    f2p_interfaces/SegmentedScene    perception's scenes (transient local)
pub ``relation_state``     f2p_interfaces/RelationState     every relation of every object (pair),
                                                            probabilities; transient local
pub ``/diagnostics``       diagnostic_msgs/DiagnosticArray  per scene: OK, or ERROR with why
=========================  ===============================  ====================================

``backend`` picks the detector (``f2p_relations.detectors``): ``geometric`` (the relation
definitions on the objects' point boxes) or ``learned`` (the skill-effect model's detection
head, from ``checkpoint``; '' = the shipped pre-trained model). The learned backend holds a
model, loaded at configure and freed at cleanup. A scene that cannot be read (an object
without points, an unknown class) is reported and skipped; the node keeps running.
"""
from __future__ import annotations

import time

from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.lifecycle import LifecycleState, TransitionCallbackReturn

from f2p_interfaces.msg import RelationState as RelationStateMsg
from f2p_interfaces.msg import SegmentedScene as SegmentedSceneMsg
from f2p_relations.detectors import DETECTORS, LearnedDetector
from f2p_ros import parameters as P
from f2p_ros import qos
from f2p_ros.conversions import relations_to_msg, scene_from_msg
from f2p_ros.nodes import ERROR, NO_EVENT_HANDLERS, ManagedNode, OK, diagnostics, run_node

PARAMS = [
    P.Param("backend", "geometric", "relation detector: 'geometric' (rules on point boxes) or 'learned' "
                                    "(the skill-effect model's detection head)", P.one_of(*DETECTORS)),
    P.Param("checkpoint", "", "checkpoint of the learned backend ('' = the shipped pre-trained model; a shipped "
                              "model's file name; a path)"),
]


def backend_options(v: dict) -> dict:
    """The options of the chosen detector from the node's parameter values."""
    return {"checkpoint": v["checkpoint"]} if v["backend"] == "learned" else {}


class RelationDetectorNode(ManagedNode):
    def __init__(self, **kwargs):
        super().__init__("relation_detector", **kwargs)
        P.declare(self, PARAMS)
        self.detector = None
        self._pub = self._diag = None
        self._group = MutuallyExclusiveCallbackGroup()
        self.accepted = self.rejected = 0

    # --- lifecycle -------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            v = P.load(self, PARAMS)
            self.detector = DETECTORS.make(v["backend"], **backend_options(v))
        except (ValueError, OSError) as exc:
            self.get_logger().error(f"configure failed: {exc}")
            return TransitionCallbackReturn.FAILURE
        latched = qos.latched()
        self._pub = self.until_cleanup(self.create_lifecycle_publisher(RelationStateMsg, "relation_state", latched,
                                                                       event_callbacks=NO_EVENT_HANDLERS["pub"]))
        self._diag = self.create_diagnostics_publisher()
        self._latched = latched
        self.get_logger().info(f"configured: {self.detector.name} detector"
                               + (f", model {self.detector.version}" if isinstance(self.detector, LearnedDetector) else ""))
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.until_deactivate(self.create_subscription(SegmentedSceneMsg, "segmented_scene", self._on_scene,
                                                       self._latched, callback_group=self._group,
                                                       event_callbacks=NO_EVENT_HANDLERS["sub"]))
        return super().on_activate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._pub = self._diag = self.detector = None
        return super().on_cleanup(state)

    # --- data ------------------------------------------------------------------------
    def _on_scene(self, msg: SegmentedSceneMsg) -> None:
        t0 = time.perf_counter()
        try:
            state = self.detector.detect(scene_from_msg(msg))
        except ValueError as exc:
            self.rejected += 1
            self.get_logger().warning(f"scene not detected: {exc}", throttle_duration_sec=5.0)
            self._diag.publish(diagnostics(self, "scene", ERROR, str(exc), accepted=self.accepted,
                                           rejected=self.rejected))
            return
        self._pub.publish(relations_to_msg(state))
        self.accepted += 1
        self._diag.publish(diagnostics(
            self, "scene", OK, f"{len(state.object_ids)} objects in {1000 * (time.perf_counter() - t0):.0f} ms",
            accepted=self.accepted, rejected=self.rejected, backend=self.detector.name))


def main(args=None) -> None:
    run_node(RelationDetectorNode, args)


if __name__ == "__main__":
    main()
