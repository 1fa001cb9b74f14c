"""One learner, many robots (issue 46 part 2): which robot gets a learned child, and when.

Robots are named by their ``robot_id``: what their failure events carry and their signed commands
name. The rollout of a child, learned from robot R's failure, goes through three stages:

``canary``
    The child goes to R alone (or, when R is not in the fleet, to the first robot serving the
    child's parent, or to the one robot of a fleet of one). Everyone else keeps the parent.
``fleet``
    Once the canary has finished a task on the child successfully (its executor's
    ``task_progress`` at done: ``success`` with the child's ``model_version``), or an operator
    approved the child (the learner's ``approve_model``), it goes to every robot serving the
    child's parent, including one that comes to serve the parent later.
``halted``
    A robot whose first task on the child fails reports a regression: it is rolled back to the
    model it served before (its planner's ``rollback_model``) and nobody else gets the child;
    an operator's approval resumes the rollout.

Which robot serves what comes from each planner's ``model_info`` (:meth:`Fleet.note_serving`).
The rollouts outlive a learner restart: ``rollouts.json`` (``f2p_common.files.write_atomic``).
Decisions are returned as :class:`Actions` for the caller (the learner node) to carry out; this
module calls nothing. No ROS.
"""
from __future__ import annotations

import functools
import json
import re
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable

from f2p_common.files import write_atomic

STAGES = ("canary", "fleet", "halted")
#: What a robot's part in a rollout is: it was sent the child, serves it, succeeded on it,
#: regressed on it (and was rolled back), or refused it (its planner's admission said no).
ROBOT_STATES = ("pushed", "serving", "succeeded", "regressed", "refused")
_ROBOT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


@dataclass
class Rollout:
    """One child's way through the fleet: ``version`` and ``sha256``, its ``parent`` version, the
    ``canary`` robot, the ``stage``, who approved it (``approved_by``) and each robot's state."""

    version: str
    sha256: str
    parent: str
    canary: str
    stage: str = "canary"
    approved_by: str = ""
    robots: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Actions:
    """What the learner does now for rollout ``version``: swap ``push`` robots to it, roll
    ``rollback`` robots back; ``note`` says why (for logs and progress)."""

    version: str = ""
    push: tuple[str, ...] = ()
    rollback: tuple[str, ...] = ()
    note: str = ""


def parse_robots(entries: Iterable[str]) -> dict[str, str]:
    """``robot_id`` -> ROS namespace from ``"id"`` or ``"id=/namespace"`` entries (ValueError for a
    malformed id or a robot named twice)."""
    robots: dict[str, str] = {}
    for entry in entries:
        rid, _, ns = entry.partition("=")
        rid, ns = rid.strip(), ns.strip()
        if not _ROBOT_ID.fullmatch(rid):
            raise ValueError(f"robots: {entry!r} does not start with a robot id (letters, digits, '_', '.', '-')")
        if rid in robots:
            raise ValueError(f"robots: {rid!r} is named twice")
        if ns and not re.fullmatch(r"(/[A-Za-z_][A-Za-z0-9_]*)+", ns):
            raise ValueError(f"robots: {entry!r}: the namespace must look like /name or /name/sub")
        robots[rid] = ns
    if not robots:
        raise ValueError("robots: name at least one robot")
    return robots


def _locked(method):
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with self._lock:
            return method(self, *args, **kwargs)
    return wrapper


class Fleet:
    """The rollouts of one learner's children over ``robots`` (module docstring); state in
    ``state_file``."""

    def __init__(self, robots: Iterable[str], state_file: str | Path):
        self.robots = tuple(robots)
        self.state_file = Path(state_file)
        self.serving: dict[str, str] = {}
        self.rollouts: dict[str, Rollout] = {}
        self._lock = threading.RLock()          # robots' callbacks, the job and the deploy threads
        if self.state_file.is_file():
            for r in json.loads(self.state_file.read_text()).get("rollouts", []):
                self.rollouts[r["version"]] = Rollout(**r)

    # --- what robots say -------------------------------------------------------------
    @_locked
    def note_serving(self, robot: str, version: str) -> list[Actions]:
        """``robot``'s planner serves ``version`` (its ``model_info``): a rollout at the fleet
        stage whose parent this is sends it the child."""
        if robot not in self.robots:
            return []
        self.serving[robot] = version
        out = []
        for r in self.rollouts.values():
            state = r.robots.get(robot)
            if state == "pushed" and version == r.version:
                r.robots[robot] = "serving"
                self._save()
            elif r.stage == "fleet" and version == r.parent and state is None:
                r.robots[robot] = "pushed"
                self._save()
                out.append(Actions(r.version, push=(robot,), note=f"{robot} serves {r.parent}: it gets {r.version}"))
        return out

    @_locked
    def child_learned(self, version: str, sha256: str, parent: str, from_robot: str) -> Actions:
        """A deployable child of ``parent``, learned from ``from_robot``'s failure: its canary."""
        if version in self.rollouts:
            return Actions(version, note=f"{version} is already rolling out ({self.rollouts[version].stage})")
        canary = from_robot if from_robot in self.robots else next(
            (rb for rb in self.robots if self.serving.get(rb) == parent), self.robots[0] if len(self.robots) == 1 else "")
        r = Rollout(version, sha256, parent, canary)
        if canary:
            r.robots[canary] = "pushed"
        self.rollouts[version] = r
        self._save()
        if not canary:
            return Actions(version, note=f"no robot of the fleet serves {parent}: {version} waits for an approval")
        return Actions(version, push=(canary,), note=f"canary: {canary} gets {version} first")

    @_locked
    def swap_answered(self, robot: str, version: str, ok: bool) -> None:
        """``robot``'s planner admitted (``ok``) or refused ``version``."""
        r = self.rollouts.get(version)
        if r is not None and r.robots.get(robot) == "pushed":
            r.robots[robot] = "serving" if ok else "refused"
            self._save()

    @_locked
    def task_done(self, robot: str, model_version: str, success: bool) -> Actions:
        """``robot`` finished a task planned with ``model_version``: its first on a child decides
        (module docstring)."""
        r = self.rollouts.get(model_version)
        if r is None or r.robots.get(robot) not in ("pushed", "serving"):
            return Actions(model_version)
        if not success:
            r.robots[robot], r.stage = "regressed", "halted"
            self._save()
            return Actions(r.version, rollback=(robot,),
                           note=f"{robot}'s first task on {r.version} failed: rolled back, rollout halted")
        r.robots[robot] = "succeeded"
        if robot == r.canary and r.stage == "canary":
            r.stage = "fleet"
            self._save()
            return Actions(r.version, push=self._to_fleet(r),
                           note=f"canary {robot} succeeded on {r.version}: every robot serving {r.parent} gets it")
        self._save()
        return Actions(r.version)

    @_locked
    def approve(self, version: str, who: str) -> Actions:
        """An operator approves ``version`` for the fleet (KeyError for an unknown version)."""
        r = self.rollouts[version]
        r.stage, r.approved_by = "fleet", who
        self._save()
        return Actions(r.version, push=self._to_fleet(r), note=f"{who} approved {r.version}: every robot serving "
                                                               f"{r.parent} gets it")

    # --- state -----------------------------------------------------------------------
    def _to_fleet(self, r: Rollout) -> tuple[str, ...]:
        targets = tuple(rb for rb in self.robots if self.serving.get(rb) == r.parent and rb not in r.robots)
        for rb in targets:
            r.robots[rb] = "pushed"
        self._save()
        return targets

    def _save(self) -> None:
        write_atomic(self.state_file, json.dumps({"rollouts": [asdict(r) for r in self.rollouts.values()]},
                                                 indent=1) + "\n")
