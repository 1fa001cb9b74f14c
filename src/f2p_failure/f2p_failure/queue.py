"""A durable queue of failure events in a folder: the robot's spool and the learner's job queue.

The ``.f2pevent`` files are the queue (no index to corrupt). ``<folder>/*.f2pevent`` are
pending, oldest first by the time they were queued; each later state is a subfolder an event
moves to by an atomic rename followed by an fsync of both folders (``shipped/`` once the learner
acknowledged it, ``learned/``, ``failed/``, ``refused/``...). An event is in exactly one place
at any moment, so a process killed at any point restarts from the folder: a pending event is
still pending, a moved one stays moved. :meth:`EventQueue.put` is idempotent by event id (an
event already queued or moved on is not queued again): a producer may resend after a crash,
and a consumer acknowledges a resent event it already has. An event's producer signature
(``f2p_failure.events.sign_event``), when it has one, is kept beside it as
``<event_id>.f2pevent.sig``, written before the event and moved with it. No ROS.
"""
from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from f2p_common.resources import f2p_home
from f2p_common.files import fsync_dir, write_atomic
from f2p_failure.events import (EVENT_SUFFIX, FailureEvent, FailureEventError, event_path, list_events, load_event,
                                save_event)

_STATE = re.compile(r"[a-z][a-z0-9_]*")


def default_spool_dir() -> Path:
    """The robot's failure-event spool: ``$ROS_HOME/f2p/failure_events`` (ROS_HOME defaults to
    ~/.ros). Its one writer is the failure recorder."""
    return f2p_home() / "failure_events"


def _sig_path(event_file: Path) -> Path:
    return event_file.with_name(event_file.name + ".sig")


class EventIdConflict(FailureEventError):
    """Another event is already stored under this id."""


@dataclass(frozen=True)
class QueueStats:
    """``pending`` events, the ``oldest_age_s`` of them (0 when none), events per later state."""

    pending: int
    oldest_age_s: float
    moved: dict[str, int]


class EventQueue:
    """The events of ``folder`` (module docstring); ``states``: the subfolders events move to."""

    def __init__(self, folder: str | os.PathLike, states: tuple[str, ...]):
        self.folder = Path(folder)
        for s in states:
            if not _STATE.fullmatch(s):
                raise ValueError(f"a queue state is a lower-case name, got {s!r}")
        self.states = tuple(states)
        for sub in (self.folder, *(self.folder / s for s in self.states)):
            sub.mkdir(parents=True, exist_ok=True)

    def where(self, event_id: str) -> str | None:
        """``"pending"``, the state the event moved to, or None if the queue never had it."""
        if event_path(self.folder, event_id).is_file():
            return "pending"
        for s in self.states:
            if event_path(self.folder / s, event_id).is_file():
                return s
        return None

    def signature(self, event_id: str) -> str:
        """The producer signature kept with the event (hex), '' when it has none."""
        state = self.where(event_id)
        if state is None:
            return ""
        sig = _sig_path(event_path(self.folder if state == "pending" else self.folder / state, event_id))
        try:
            return sig.read_text().strip()
        except FileNotFoundError:
            return ""

    def put(self, event: FailureEvent, signature: str = "") -> tuple[Path, bool]:
        """Store ``event`` durably as pending unless the queue has it already: (its path, whether
        it was new). FailureEventError for an event that does not validate; EventIdConflict when
        the queue holds another event under this id (issue 43: a forged copy must not replace or
        shadow the genuine one); OSError when the folder cannot be written (full disk,
        read-only): then nothing was queued."""
        state = self.where(event.event_id)
        if state is not None:
            folder = self.folder if state == "pending" else self.folder / state
            path = event_path(folder, event.event_id)
            try:
                same = load_event(path) == event
            except FileNotFoundError:          # moved on meanwhile: it is stored, where does not matter
                same = True
            except FailureEventError:          # the stored copy no longer loads: it is not this event
                same = False
            if not same:
                raise EventIdConflict(f"event {event.event_id} is already stored ({state}) with other content: an id "
                                      "names one event only, the stored one is kept")
            if signature and not _sig_path(path).is_file():
                write_atomic(_sig_path(path), signature + "\n")
            return path, False
        event.validate()
        if signature:                          # first: an event file that exists has its signature beside it
            write_atomic(_sig_path(event_path(self.folder, event.event_id)), signature + "\n")
        return save_event(event, self.folder), True

    def put_file(self, path: str | os.PathLike) -> tuple[Path, bool]:
        """:meth:`put` for an event file (its bytes are checked by loading it)."""
        return self.put(load_event(path))

    def _queued(self) -> list[tuple[int, Path]]:
        out = []
        for p in list_events(self.folder):
            try:
                out.append((p.stat().st_mtime_ns, p))
            except FileNotFoundError:          # moved on by another process meanwhile
                continue
        return sorted(out, key=lambda t: (t[0], t[1].name))

    def pending(self) -> list[Path]:
        """Pending event files, oldest queued first (ties by name)."""
        return [p for _t, p in self._queued()]

    def move(self, event_id: str, state: str) -> Path:
        """Move a pending event to ``state``, durably; its new path. KeyError if not pending."""
        if state not in self.states:
            raise ValueError(f"unknown state {state!r}; this queue has {self.states}")
        src = event_path(self.folder, event_id)
        if not src.is_file():
            raise KeyError(f"event {event_id} is not pending in {self.folder}")
        dst = event_path(self.folder / state, event_id)
        if _sig_path(src).is_file():
            os.replace(_sig_path(src), _sig_path(dst))
        os.replace(src, dst)
        fsync_dir(self.folder / state)
        fsync_dir(self.folder)
        return dst

    def prune(self, state: str, keep: int, keep_bytes: int, max_age_s: float) -> list[Path]:
        """Delete the oldest events of ``state`` (never pending ones) until at most ``keep`` events
        of at most ``keep_bytes`` bytes in all are left, none older than ``max_age_s``; the
        deleted paths. The retention of a spool's ``shipped/``: the learner holds those events."""
        if state not in self.states:
            raise ValueError(f"unknown state {state!r}; this queue has {self.states}")
        files = []
        for p in list_events(self.folder / state):
            try:
                st = p.stat()
            except FileNotFoundError:
                continue
            files.append((st.st_mtime, p.name, p, st.st_size))
        files.sort()                                            # oldest first
        total, now, removed = sum(f[3] for f in files), time.time(), []
        for k, (mtime, _name, path, size) in enumerate(files):
            if len(files) - k <= keep and total <= keep_bytes and now - mtime <= max_age_s:
                break
            path.unlink(missing_ok=True)
            _sig_path(path).unlink(missing_ok=True)
            total -= size
            removed.append(path)
        if removed:
            fsync_dir(self.folder / state)
        return removed

    def stats(self) -> QueueStats:
        queued = self._queued()
        oldest = (time.time_ns() - queued[0][0]) / 1e9 if queued else 0.0
        return QueueStats(len(queued), max(0.0, oldest),
                          {s: len(list((self.folder / s).glob("*" + EVENT_SUFFIX))) for s in self.states})
