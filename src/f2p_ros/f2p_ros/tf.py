"""tf for f2p's nodes: the real ``tf2_ros`` where the ROS install has it (a robot), else
``f2p_common.frames.TransformBuffer`` fed from the same ``/tf`` and ``/tf_static`` topics (the
PyPI wheels lack ``tf2_ros``; ``tf2_msgs`` comes from the workspace's overlay, src/overlays).

``TransformListener(node)`` gives poses as (x, y, z, qx, qy, qz, qw) arrays and raises
``f2p_common.frames.TransformError`` subclasses whichever backend runs; ``backend`` says which.
``TransformPublisher(node)`` publishes ``/tf`` and ``/tf_static`` as tf2's broadcasters do (the
static one keeps every static transform in its one latched message).
"""
from __future__ import annotations

import importlib.util
import threading
import time

import numpy as np
from tf2_msgs.msg import TFMessage

from f2p_common.frames import (ConnectivityError, ExtrapolationError, TransformBuffer, TransformError,
                               UnknownFrameError)
from f2p_ros import qos
from f2p_ros.conversions import ConversionError, transform_from_msg, transform_to_msg
from f2p_ros.nodes import NO_EVENT_HANDLERS


def tf2_ros_available() -> bool:
    return importlib.util.find_spec("tf2_ros") is not None


class TransformListener:
    """Look up transforms for ``node`` (module docstring). ``lookup`` waits up to ``timeout_s``
    for a transform that has not arrived yet. ``backend``: "tf2_ros" or "f2p" (``prefer``
    "f2p" forces the workspace buffer, for tests of it where tf2_ros exists)."""

    def __init__(self, node, cache_s: float = 10.0, callback_group=None, prefer: str = "tf2_ros"):
        self.node = node
        self._changed = threading.Condition()
        self.rejected = 0
        if prefer == "tf2_ros" and tf2_ros_available():
            import rclpy.duration
            import tf2_ros
            self.backend = "tf2_ros"
            self._tf2 = tf2_ros.Buffer(cache_time=rclpy.duration.Duration(seconds=cache_s))
            self._listener = tf2_ros.TransformListener(self._tf2, node)
            self.buffer, self.endpoints = None, []
            return
        self.backend, self._tf2, self._listener = "f2p", None, None
        self.buffer = TransformBuffer(cache_s)
        sub = NO_EVENT_HANDLERS["sub"]
        self.endpoints = [
            node.create_subscription(TFMessage, "/tf", lambda m: self._on_tf(m, False), qos.tf(),
                                     callback_group=callback_group, event_callbacks=sub),
            node.create_subscription(TFMessage, "/tf_static", lambda m: self._on_tf(m, True), qos.latched(100),
                                     callback_group=callback_group, event_callbacks=sub)]

    def _on_tf(self, msg: TFMessage, static: bool) -> None:
        for t in msg.transforms:
            try:
                parent, child, pose, stamp = transform_from_msg(t)
                self.buffer.set_transform(parent, child, pose, stamp, static=static)
            except (ConversionError, ValueError) as exc:     # one bad transform: the others still count
                self.rejected += 1
                self.node.get_logger().warning(f"ignored a transform on {'/tf_static' if static else '/tf'}: {exc}",
                                               throttle_duration_sec=5.0)
        with self._changed:
            self._changed.notify_all()

    def lookup(self, target: str, source: str, stamp_ns: int = 0, timeout_s: float = 0.0) -> np.ndarray:
        """``source``'s pose in ``target`` at ``stamp_ns`` (0: the latest), as tf2's
        ``lookup_transform(target, source, time)``; TransformError subclasses otherwise."""
        if self._tf2 is not None:
            return self._lookup_tf2(target, source, stamp_ns, timeout_s)
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                return self.buffer.lookup(target, source, stamp_ns)
            except TransformError:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise
                with self._changed:
                    self._changed.wait(min(left, 0.05))

    def _lookup_tf2(self, target: str, source: str, stamp_ns: int, timeout_s: float) -> np.ndarray:
        import rclpy.duration
        import rclpy.time
        import tf2_ros
        try:
            t = self._tf2.lookup_transform(target, source, rclpy.time.Time(nanoseconds=int(stamp_ns)),
                                           timeout=rclpy.duration.Duration(seconds=timeout_s)).transform
        except tf2_ros.ExtrapolationException as exc:
            raise ExtrapolationError(str(exc)) from None
        except tf2_ros.ConnectivityException as exc:
            raise ConnectivityError(str(exc)) from None
        except tf2_ros.TransformException as exc:
            raise UnknownFrameError(str(exc)) from None
        return np.array([t.translation.x, t.translation.y, t.translation.z,
                         t.rotation.x, t.rotation.y, t.rotation.z, t.rotation.w])

    def close(self) -> None:
        """Stop listening (the f2p backend's subscriptions are destroyed by their owner: ``endpoints``)."""
        if self._listener is not None:
            self._listener.unregister()
            self._listener = None


class TransformPublisher:
    """``/tf`` and ``/tf_static`` for ``node``, as tf2_ros's TransformBroadcaster and
    StaticTransformBroadcaster publish them. ``endpoints``: the two publishers, for the node to
    own. ``lifecycle``: lifecycle publishers (they publish only while the node is active)."""

    def __init__(self, node, lifecycle: bool = False):
        make = node.create_lifecycle_publisher if lifecycle else node.create_publisher
        pub = NO_EVENT_HANDLERS["pub"]
        self._tf = make(TFMessage, "/tf", qos.tf(), event_callbacks=pub)
        self._static = make(TFMessage, "/tf_static", qos.latched(), event_callbacks=pub)
        self._statics: dict[str, object] = {}
        self.endpoints = [self._tf, self._static]

    def send(self, transforms) -> None:
        """Publish (parent, child, pose, stamp_ns) transforms on ``/tf``."""
        self._tf.publish(TFMessage(transforms=[transform_to_msg(*t) for t in transforms]))

    def send_static(self, transforms) -> None:
        """Add or replace (parent, child, pose) static transforms and publish all of them on
        ``/tf_static`` (a late joiner gets the whole set)."""
        for parent, child, pose in transforms:
            self._statics[child] = transform_to_msg(parent, child, pose)
        self._static.publish(TFMessage(transforms=list(self._statics.values())))
