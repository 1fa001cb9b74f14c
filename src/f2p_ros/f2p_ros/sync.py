"""Approximate-time synchronisation of camera streams (colour, depth, CameraInfo), as ``message_filters``.

An RGB-D driver publishes its colour image, its depth image and their ``CameraInfo`` on separate
topics, each stamped with the time of exposure; a frame is the set of one message per stream
whose stamps lie within ``slop``. ROS installs ``message_filters`` (its
``ApproximateTimeSynchronizer``); the PyPI ROS wheels this project also runs on do not, so
:class:`ApproximateTimeSync` is a small one with the same contract, used where
``message_filters`` is absent (:func:`synchronise`):

* each stream keeps its ``queue_size`` newest messages;
* when a message arrives, the message of every other stream nearest to it in time is taken; if
  all lie within ``slop`` of each other the set is delivered, and every queue drops what is
  not newer than what was delivered (a frame is delivered once, never out of order);
* a message that finds no partner waits in its queue, and falls out as newer ones arrive
  (``dropped`` counts them): a stream that stops (no CameraInfo) delivers nothing, which the
  node reports from ``last_arrival``.

Stamps are integers in ns. :class:`ApproximateTimeSync` does not import rclpy.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from typing import Callable, Sequence


class ApproximateTimeSync:
    def __init__(self, streams: Sequence[str], slop_s: float, queue_size: int,
                 callback: Callable[[dict], None]):
        if len(streams) < 2 or len(set(streams)) != len(streams):
            raise ValueError(f"synchronise two or more distinct streams, got {list(streams)}")
        if slop_s < 0 or queue_size < 1:
            raise ValueError(f"slop must be >= 0 and queue_size >= 1, got {slop_s}, {queue_size}")
        self.streams, self.slop_ns, self.callback = tuple(streams), int(round(slop_s * 1e9)), callback
        self._queues = {s: deque(maxlen=queue_size) for s in self.streams}
        self._lock = threading.Lock()
        self.delivered = self.dropped = 0
        self.received = {s: 0 for s in self.streams}
        self.last_arrival: dict[str, float | None] = {s: None for s in self.streams}   # time.monotonic()

    def add(self, stream: str, stamp_ns: int, msg) -> bool:
        """Add ``msg`` of ``stream`` stamped ``stamp_ns``; delivers (calls back, outside the lock)
        the frame it completes, if any. True when a frame was delivered."""
        if stream not in self._queues:
            raise KeyError(f"unknown stream {stream!r}; streams: {', '.join(self.streams)}")
        with self._lock:
            q = self._queues[stream]
            self.received[stream] += 1
            self.last_arrival[stream] = time.monotonic()
            if len(q) == q.maxlen:
                self.dropped += 1                            # the oldest falls out unmatched
            q.append((int(stamp_ns), msg))
            frame = {stream: (int(stamp_ns), msg)}
            for other, oq in self._queues.items():
                if other == stream:
                    continue
                if not oq:
                    return False
                frame[other] = min(oq, key=lambda item: abs(item[0] - stamp_ns))
            stamps = [item[0] for item in frame.values()]
            if max(stamps) - min(stamps) > self.slop_ns:
                return False
            for name, (stamp, _msg) in frame.items():     # delivered: it and everything older go
                oq = self._queues[name]
                while oq and oq[0][0] <= stamp:
                    oq.popleft()
            self.delivered += 1
        self.callback({name: m for name, (_s, m) in frame.items()})
        return True

    def silent(self, max_age_s: float) -> list[str]:
        """Streams that sent nothing for ``max_age_s`` (or never) while another one did."""
        now = time.monotonic()
        heard = [s for s, t in self.last_arrival.items() if t is not None and now - t <= max_age_s]
        if not heard:
            return []
        return [s for s, t in self.last_arrival.items() if t is None or now - t > max_age_s]


def stamp_ns(msg) -> int:
    """A stamped message's header time in ns."""
    return int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)


def synchronise(node, topics: dict, qos, slop_s: float, queue_size: int, callback: Callable[[dict], None],
                callback_group=None):
    """Subscribe ``node`` to ``topics`` ({stream: (msg type, topic)}) and call ``callback({stream: msg})``
    with each synchronised frame: ``message_filters.ApproximateTimeSynchronizer`` where it is
    installed, else :class:`ApproximateTimeSync`. Returns (the synchroniser, the subscriptions
    to destroy; message_filters keeps its own)."""
    names = list(topics)
    try:
        import message_filters
    except ImportError:
        message_filters = None
    if message_filters is not None:
        subs = [message_filters.Subscriber(node, t, topic, qos_profile=qos, callback_group=callback_group)
                for t, topic in topics.values()]
        sync = message_filters.ApproximateTimeSynchronizer(subs, queue_size, slop_s)
        sync.registerCallback(lambda *msgs: callback(dict(zip(names, msgs))))
        return sync, []
    sync = ApproximateTimeSync(names, slop_s, queue_size, callback)
    subs = [node.create_subscription(t, topic, lambda m, s=name: sync.add(s, stamp_ns(m), m), qos,
                                     callback_group=callback_group)
            for name, (t, topic) in topics.items()]
    return sync, subs
