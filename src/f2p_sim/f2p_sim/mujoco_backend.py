"""MuJoCo implementation of :class:`f2p_sim.backend.SimBackend` (the embedded default).

The scene is compiled from generated MJCF (``scene.build_mjcf``). The floating gripper is a
mocap body with one box "pad" geom: it pushes through contacts, and grasps through a weld
equality that is switched on with its relative pose set to the current gripper-to-object
pose (so the object does not jump) — the MuJoCo recipe in the project's environment notes.
Everything that happens to non-grasped objects (contents of a carried bin, a row of pushed
boxes, a released object falling) is contact physics, never scripted.
"""
from __future__ import annotations

import numpy as np
import mujoco

from f2p_common.vocabulary import MOVABLE_CLASSES
from f2p_relations.relations import CONTACT_DISTANCE, compute_relations
from f2p_sim.backend import SegmentState, SimBackend
from f2p_sim.config import load_world_config
from f2p_sim.scene import GRIPPER_GEOM_GROUP, SceneError, SceneSpec, Segment, build_mjcf, class_mass, drawer_layout
from f2p_sim.skills import (ExecutionPerturbation, SkillError, SkillMonitor, SkillReport, SkillStopped, check_skill,
                             grasp_point, push_start, smooth_path)

#: Rays see geom groups 0-4; the gripper lives in group 5.
_RAY_GROUPS = np.array([1 if g != GRIPPER_GEOM_GROUP else 0 for g in range(6)], dtype=np.uint8)
#: A segment "moved" when its box center changed by more than this (m).
MOVED_DISTANCE = 0.005
#: Pick-and-place: the grasp holds if the target rose by at least this fraction of the lift.
GRASP_LIFT_FRACTION = 0.5
#: Drawer skills stop when the drawer lags the commanded hand travel by this much (m).
STALL_LAG = 0.01


def _quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    w1, x1, y1, z1 = a
    w2, x2, y2, z2 = b
    return np.array([w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2, w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
                     w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2, w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2])


class MujocoBackend(SimBackend):
    """One MuJoCo world. ``cfg`` is the world config dict (default: config/sim/world.yaml)."""

    def __init__(self, cfg: dict | None = None, robot=None):
        """``robot``: a robot added to every scene (``add(spec)`` before it compiles,
        ``initialise(model, data)`` before it settles; e.g. ``f2p_sim.arm_model.Ur5eRig``);
        None: the floating pad alone."""
        self.cfg = cfg if cfg is not None else load_world_config()
        self.robot = robot
        self.model: mujoco.MjModel | None = None
        self.data: mujoco.MjData | None = None
        self._scene: SceneSpec | None = None
        self._segments: list[Segment] = []
        self._dirty = True
        self._carried = -1
        self._riders = np.zeros(0, dtype=bool)
        self._monitor = SkillMonitor()
        self._perturbation = ExecutionPerturbation()

    # ------------------------------------------------------------------ loading / state
    def load(self, scene: SceneSpec, settle: bool = True) -> None:
        scene.validate(self.cfg)
        try:
            if self.robot is None:
                self.model = mujoco.MjModel.from_xml_string(build_mjcf(scene, self.cfg))
            else:
                spec = mujoco.MjSpec.from_string(build_mjcf(scene, self.cfg))
                self.robot.add(spec)
                self.model = spec.compile()
        except ValueError as e:  # MuJoCo compile errors are ValueErrors with the XML reason
            raise SceneError(f"MuJoCo could not compile the scene: {e}") from None
        m = self.model
        self.data = mujoco.MjData(m)
        if self.robot is not None:
            self.robot.initialise(m, self.data)
        self._scene = scene
        self._segments = scene.segments()
        nseg = len(self._segments)
        self._seg_body = np.array([m.body(s.body).id for s in self._segments])
        self._gripper_body = m.body("gripper").id
        self._pad_geom = m.geom("gripper/pad").id
        self._pad_half = np.array(m.geom_size[self._pad_geom])
        self._geom_seg = np.full(m.ngeom, -1, dtype=np.int64)
        body_to_seg = {b: i for i, b in enumerate(self._seg_body)}
        for g in range(m.ngeom):
            self._geom_seg[g] = body_to_seg.get(int(m.geom_bodyid[g]), -1)
        geoms = np.nonzero(self._geom_seg >= 0)[0]
        order = np.argsort(self._geom_seg[geoms], kind="stable")
        self._geom_ids = geoms[order]
        self._seg_starts = np.searchsorted(self._geom_seg[self._geom_ids], np.arange(nseg))
        if np.any(np.bincount(self._geom_seg[self._geom_ids], minlength=nseg) == 0):
            raise SceneError("a segment has no geoms")
        self._weld = np.full(nseg, -1)
        for e in range(m.neq):
            name = m.eq(e).name
            if name.startswith("grasp/"):
                self._weld[body_to_seg[m.body(name[len("grasp/"):]).id]] = e
        self._drawer_qadr = np.full(nseg, -1)
        self._drawer_size = np.zeros((nseg, 3))
        self._mass = np.zeros(nseg)
        self._friction = np.zeros(nseg)
        for i, s in enumerate(self._segments):
            obj = scene.objects[s.object_index]
            self._friction[i] = m.geom_friction[self._geom_ids[self._seg_starts[i]], 0]
            if s.cls == "drawer":
                j = m.joint(f"{s.body}/slide").id
                self._drawer_qadr[i] = m.jnt_qposadr[j]
                _, self._drawer_size[i], _ = drawer_layout(obj, self.cfg)
                self.data.qpos[self._drawer_qadr[i]] = -obj.drawer_opening
                self._mass[i] = m.body_mass[self._seg_body[i]]
            elif obj.movable:
                self._mass[i] = class_mass(obj, self.cfg)
        self._home = np.asarray(self.cfg["gripper"]["home"], dtype=np.float64)
        self._state_spec = mujoco.mjtState.mjSTATE_INTEGRATION
        self._dirty = True
        self._sync()
        if settle:
            self.settle()
        self._initial_state = self.get_state()

    @property
    def scene(self) -> SceneSpec:
        return self._scene

    @property
    def segments(self) -> list[Segment]:
        return self._segments

    def get_state(self) -> np.ndarray:
        size = mujoco.mj_stateSize(self.model, self._state_spec)
        state = np.empty(size)
        mujoco.mj_getState(self.model, self.data, state, self._state_spec)
        return state

    def set_state(self, state: np.ndarray) -> None:
        state = np.asarray(state, dtype=np.float64)
        if state.shape != (mujoco.mj_stateSize(self.model, self._state_spec),):
            raise ValueError("state vector does not belong to the loaded scene")
        mujoco.mj_setState(self.model, self.data, state, self._state_spec)
        self._dirty = True

    def reset(self) -> None:
        """Back to the state right after load (and settling)."""
        self.set_state(self._initial_state)

    def step(self, n: int = 1) -> None:
        mujoco.mj_step(self.model, self.data, nstep=int(n))
        self._dirty = True

    def settle(self) -> int:
        phys = self.cfg["physics"]
        limit, speed = int(phys["settle_max_steps"]), float(phys["settle_speed"])
        steps = 0
        while steps < limit:
            mujoco.mj_step(self.model, self.data, nstep=10)
            steps += 10
            if self.model.nv == 0 or np.max(np.abs(self.data.qvel)) < speed:
                break
        self._dirty = True
        return steps

    def _sync(self) -> None:
        # mj_step leaves kinematics/contacts of the pre-step state; recompute for queries.
        if self._dirty:
            mujoco.mj_forward(self.model, self.data)
            self._dirty = False

    # ------------------------------------------------------------------ queries
    def _segment_aabbs(self) -> tuple[np.ndarray, np.ndarray]:
        self._sync()
        d, ids = self.data, self._geom_ids
        ext = np.einsum("gij,gj->gi", np.abs(d.geom_xmat[ids].reshape(-1, 3, 3)), self.model.geom_size[ids])
        lo = d.geom_xpos[ids] - ext
        hi = d.geom_xpos[ids] + ext
        return np.minimum.reduceat(lo, self._seg_starts), np.maximum.reduceat(hi, self._seg_starts)

    def segment_state(self) -> SegmentState:
        lo, hi = self._segment_aabbs()
        d = self.data
        pose = np.concatenate([d.xpos[self._seg_body], d.xquat[self._seg_body]], axis=1)
        return SegmentState(pose=pose, box_lower=lo, box_upper=hi, mass=self._mass.copy(),
                            friction=self._friction.copy(), drawer_opening=self.drawer_openings())

    def drawer_openings(self) -> np.ndarray:
        out = np.full(len(self._segments), np.nan)
        mask = self._drawer_qadr >= 0
        out[mask] = -self.data.qpos[self._drawer_qadr[mask]]
        return out

    def _contacts(self) -> tuple[np.ndarray, np.ndarray]:
        self._sync()
        n = self.data.ncon
        if n == 0:
            return np.zeros((0, 2), dtype=np.int64), np.zeros(0)
        return np.array(self.data.contact.geom[:n]), np.array(self.data.contact.dist[:n])

    def contact_pairs(self) -> list[tuple[int, int]]:
        """Segment pairs touching now: MuJoCo contacts, plus geoms within CONTACT_DISTANCE.

        Resting objects sit at distance ~0 where MuJoCo may or may not emit a contact
        (exactly flush faces); the distance query makes "touching" robust to that.
        """
        geoms, dist = self._contacts()
        pairs = set()
        if len(dist):
            seg = self._geom_seg[geoms]
            keep = (seg[:, 0] >= 0) & (seg[:, 1] >= 0) & (seg[:, 0] != seg[:, 1]) & (dist <= CONTACT_DISTANCE)
            pairs = {(int(min(a, b)), int(max(a, b))) for a, b in seg[keep]}
        d, ids = self.data, self._geom_ids
        ext = np.einsum("gij,gj->gi", np.abs(d.geom_xmat[ids].reshape(-1, 3, 3)), self.model.geom_size[ids])
        glo, ghi = d.geom_xpos[ids] - ext, d.geom_xpos[ids] + ext
        gseg = self._geom_seg[ids]
        gap = np.max(np.maximum(glo[:, None] - ghi[None], glo[None] - ghi[:, None]), axis=-1)
        cand = np.argwhere((gap <= CONTACT_DISTANCE) & (gseg[:, None] < gseg[None, :]))
        fromto = np.zeros(6)
        for a, b in cand:
            sa, sb = int(gseg[a]), int(gseg[b])
            if (sa, sb) in pairs:
                continue
            if mujoco.mj_geomDistance(self.model, d, int(ids[a]), int(ids[b]), CONTACT_DISTANCE * 2, fromto) \
                    <= CONTACT_DISTANCE:
                pairs.add((sa, sb))
        return sorted(pairs)

    def raycast(self, origin, directions, cutoff: float = 10.0):
        self._sync()
        dirs = np.ascontiguousarray(directions, dtype=np.float64).reshape(-1, 3)
        n = dirs.shape[0]
        geomid = np.empty(n, dtype=np.int32)
        dist = np.empty(n, dtype=np.float64)
        mujoco.mj_multiRay(self.model, self.data, np.asarray(origin, dtype=np.float64), dirs.reshape(-1),
                           _RAY_GROUPS, 1, -1, geomid, dist, None, n, float(cutoff))
        hit = geomid >= 0
        seg = np.full(n, -1, dtype=np.int64)
        seg[hit] = self._geom_seg[geomid[hit]]
        dist[~hit] = np.inf
        return dist, seg

    def gripper_pose(self) -> tuple[np.ndarray, np.ndarray]:
        w, x, y, z = self.data.mocap_quat[0]
        return np.array(self.data.mocap_pos[0], dtype=np.float64), np.array([x, y, z, w], dtype=np.float64)

    @property
    def time(self) -> float:
        return float(self.data.time)

    def stability_issues(self) -> list[str]:
        phys, ws = self.cfg["physics"], self.cfg["workspace"]
        issues = []
        d = self.data
        if not (np.all(np.isfinite(d.qpos)) and np.all(np.isfinite(d.qvel))):
            return ["non-finite simulator state"]
        if self.model.nv and np.max(np.abs(d.qvel)) > float(phys["unstable_speed"]):
            issues.append(f"object still moving at {np.max(np.abs(d.qvel)):.2f} after settling")
        lo, hi = self._segment_aabbs()
        margin = 0.05
        out = np.any(lo < np.asarray(ws["lower"]) - margin, axis=1) | np.any(hi > np.asarray(ws["upper"]) + margin, axis=1)
        for i in np.nonzero(out)[0]:
            issues.append(f"segment {self._segments[i].name} left the workspace")
        _, dist = self._contacts()
        if len(dist) and dist.min() < -float(phys["max_penetration"]):
            issues.append(f"penetration {-dist.min() * 1000:.1f} mm")
        return issues

    # ------------------------------------------------------------------ gripper motion
    def _teleport(self, p: np.ndarray) -> None:
        self.data.mocap_pos[0] = p
        self._dirty = True

    def _follow(self, path: np.ndarray, touched: set, stop_when_touching: np.ndarray | None = None,
                stop_if=None) -> int:
        """Move the mocap pad along ``path`` (one point per step); record what it touches.

        ``stop_when_touching``: boolean mask over segments; stop early once a geom of the
        carried segment touches a geom of one of them (placing by contact). ``stop_if(k)``:
        stop once it returns True (checked every 4 steps; a force-limited controller
        stalling). Returns steps.
        """
        m, d = self.model, self.data
        steps = 0
        for k in range(path.shape[0]):
            d.mocap_pos[0] = path[k]
            mujoco.mj_step(m, d)
            steps += 1
            if k % 4 == 0 and self._monitor.stop_requested():
                self._dirty = True
                raise SkillStopped()
            if k % 4 == 0 and stop_if is not None and stop_if(k):
                break
            if k % 4 == 0 and d.ncon:
                g = d.contact.geom[:d.ncon]
                pad = (g == self._pad_geom)
                if pad.any():
                    other = np.where(pad[:, 0], g[:, 1], g[:, 0])[pad.any(axis=1)]
                    touched.update(int(s) for s in self._geom_seg[other] if s >= 0)
                if stop_when_touching is not None:
                    seg = self._geom_seg[g]
                    carried = self._carried
                    a = (seg[:, 0] == carried) & (seg[:, 1] >= 0) & stop_when_touching[np.maximum(seg[:, 1], 0)]
                    b = (seg[:, 1] == carried) & (seg[:, 0] >= 0) & stop_when_touching[np.maximum(seg[:, 0], 0)]
                    floor = ((seg[:, 0] == carried) & (seg[:, 1] < 0) & (g[:, 1] != self._pad_geom)) | \
                            ((seg[:, 1] == carried) & (seg[:, 0] < 0) & (g[:, 0] != self._pad_geom))
                    if a.any() or b.any() or floor.any():
                        break
        self._dirty = True
        return steps

    def _weld_on(self, seg: int) -> None:
        mujoco.mj_forward(self.model, self.data)
        m, d = self.model, self.data
        e = self._weld[seg]
        b1, b2 = self._gripper_body, self._seg_body[seg]
        r1 = d.xmat[b1].reshape(3, 3)
        q1_inv = d.xquat[b1] * np.array([1.0, -1.0, -1.0, -1.0])
        m.eq_data[e, 0:3] = 0.0
        m.eq_data[e, 3:6] = r1.T @ (d.xpos[b2] - d.xpos[b1])
        m.eq_data[e, 6:10] = _quat_mul(q1_inv, d.xquat[b2])
        m.eq_data[e, 10] = 1.0
        d.eq_active[e] = 1
        self._carried = seg

    def _closes_on(self, target: int, pad_at: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> bool:
        """Whether the jaws close on ``target`` with the pad at ``pad_at``: they are told to
        close (the perturbation may say not), and the pad's centre lies over the target's top
        (alignment; an unperturbed grasp point always does)."""
        if not self._perturbation.close_gripper:
            return False
        inside = (pad_at[:2] >= lo[target, :2] - 1e-6) & (pad_at[:2] <= hi[target, :2] + 1e-6)
        return bool(inside.all())

    def _weld_off(self) -> None:
        self.data.eq_active[:] = 0
        self._carried = -1

    def _column_top(self, xy: np.ndarray, exclude: int = -2) -> tuple[float, int]:
        """Highest surface (z, segment) under ``xy``, ignoring segment ``exclude``; floor -> (0, -1)."""
        origin = np.array([xy[0], xy[1], float(self.cfg["workspace"]["upper"][2]) + 1.0])
        dist, seg = self.raycast(origin, np.array([[0.0, 0.0, -1.0]]), 20.0)
        if seg[0] == exclude:
            # Look again just below the excluded segment's surface.
            z = origin[2] - dist[0] - 1e-4
            d2, s2 = self.raycast(np.array([xy[0], xy[1], z]), np.array([[0.0, 0.0, -1.0]]), 20.0)
            return (z - d2[0] if np.isfinite(d2[0]) else 0.0), int(s2[0])
        return (origin[2] - dist[0] if np.isfinite(dist[0]) else 0.0), int(seg[0])

    # ------------------------------------------------------------------ step-wise gripper control
    # (f2p_sim.control: a learned controller commands the pad in small steps; the jaws hold only
    # what control decides they close on — never a scripted weld.)
    def pad_center(self) -> np.ndarray:
        self._sync()
        return np.array(self.data.geom_xpos[self._pad_geom])

    @property
    def pad_half(self) -> np.ndarray:
        return self._pad_half.copy()

    @property
    def held(self) -> int:
        """Segment the jaws hold (-1: none)."""
        return int(self._carried)

    def move_gripper(self, to: np.ndarray, substeps: int) -> set[int]:
        """Move the mocap gripper in a straight line to ``to`` over ``substeps`` physics steps;
        the segments its pad touches at the end."""
        start = np.array(self.data.mocap_pos[0])
        path = start[None] + np.linspace(0.0, 1.0, int(substeps) + 1)[1:, None] * (np.asarray(to) - start)[None]
        m, d = self.model, self.data
        for p in path:
            d.mocap_pos[0] = p
            mujoco.mj_step(m, d)
        self._dirty = True
        return set(self.pad_contacts(0.002))

    def pad_contacts(self, distance: float = 0.003) -> dict[int, float]:
        """Segments with a geom within ``distance`` (m) of the gripper pad now -> their distance
        (MuJoCo's geom distance: a pad resting a millimetre above a top face touches it)."""
        self._sync()
        d, ids = self.data, self._geom_ids
        ext = np.einsum("gij,gj->gi", np.abs(d.geom_xmat[ids].reshape(-1, 3, 3)), self.model.geom_size[ids])
        p = d.geom_xpos[self._pad_geom]
        gap = np.max(np.abs(d.geom_xpos[ids] - p) - ext - self._pad_half - 1e-3, axis=1)
        fromto = np.zeros(6)
        out: dict[int, float] = {}
        for k in np.nonzero(gap <= distance)[0]:
            seg = int(self._geom_seg[ids[k]])
            dist = mujoco.mj_geomDistance(self.model, d, self._pad_geom, int(ids[k]), 2 * distance, fromto)
            if dist <= distance:
                out[seg] = min(out.get(seg, np.inf), float(dist))
        return out

    def held_supported(self) -> bool:
        """What the jaws hold touches a segment that is not riding in it, or the floor (the
        support taking the weight: when a placement releases)."""
        if self._carried < 0:
            return False
        geoms, dist = self._contacts()
        c = self._carried
        for (a, b), dd in zip(geoms, dist):
            if dd > 0.002 or self._pad_geom in (a, b):
                continue
            sa, sb = int(self._geom_seg[a]), int(self._geom_seg[b])
            other = sb if sa == c else sa if sb == c else None
            if other is None:
                continue
            if other < 0 or not self._riders[other]:
                return True
        return False

    def grip(self, seg: int) -> None:
        """Close the jaws on ``seg`` (weld at the current relative pose); what rests inside it
        rides along through contact."""
        rel = compute_relations(self.segment_state().boxes, [s.cls for s in self._segments])
        self._riders = rel.binary[:, seg, 8].copy()
        self._riders[seg] = False
        self._weld_on(seg)
        self._dirty = True

    def drawer_front(self, seg: int) -> tuple[np.ndarray, np.ndarray]:
        """(centre of drawer ``seg``'s front panel, unit slide axis pointing into the cabinet)."""
        self._sync()
        body = self._seg_body[seg]
        axis = self.data.xmat[body].reshape(3, 3)[:, 0]
        return self.data.xpos[body] - axis * 0.5 * self._drawer_size[seg, 0], np.array(axis)

    def teleport_gripper(self, p: np.ndarray | None = None) -> None:
        """Put the gripper (its pad centre) at ``p`` without moving through the world (a free-space
        arm motion); None: home."""
        self._teleport(self._home if p is None else np.asarray(p, dtype=np.float64))

    def grip_state(self) -> tuple:
        """What the jaws hold, for :meth:`set_grip_state` (the weld's pose lives in the model,
        outside ``get_state``)."""
        c = int(self._carried)
        return c, self._riders.copy(), (self.model.eq_data[self._weld[c]].copy() if c >= 0 else None)

    def set_grip_state(self, grip: tuple) -> None:
        c, riders, eq = grip
        self.data.eq_active[:] = 0
        self._carried, self._riders = int(c), np.array(riders, dtype=bool)
        if c >= 0:
            self.model.eq_data[self._weld[c]] = eq
            self.data.eq_active[self._weld[c]] = 1
        self._dirty = True

    def release(self) -> None:
        self._weld_off()
        self._dirty = True

    # ------------------------------------------------------------------ skills
    def execute_skill(self, name: str, target: int, params, monitor: SkillMonitor | None = None,
                      perturbation: ExecutionPerturbation | None = None) -> SkillReport:
        params = check_skill(name, params)
        if not isinstance(target, (int, np.integer)) or not 0 <= int(target) < len(self._segments):
            raise SkillError(f"target {target!r} is not a segment index 0..{len(self._segments) - 1}")
        target = int(target)
        seg = self._segments[target]
        if name in ("pick_place", "push") and seg.cls not in MOVABLE_CLASSES:
            raise SkillError(f"{name} needs a movable target; {seg.name!r} is a {seg.cls}")
        if name in ("open_drawer", "close_drawer") and seg.cls != "drawer":
            raise SkillError(f"{name} needs a drawer target; {seg.name!r} is a {seg.cls}")
        self._weld_off()
        lo0, hi0 = self._segment_aabbs()
        opening0 = self.drawer_openings()
        report = SkillReport(skill=name, target=target, params=params)
        touched: set = set()
        self._monitor = monitor or SkillMonitor()
        self._perturbation = perturbation or ExecutionPerturbation()
        try:
            if name == "pick_place":
                self._pick_place(target, np.array(params), report, touched, lo0, hi0)
            elif name == "push":
                self._push(target, params[0], params[1], report, touched, lo0, hi0)
            else:
                self._drawer(target, params[0], name == "open_drawer", report, touched)
        except SkillStopped:
            report.stopped = True
            report.message = "stopped on request before the motion ended"
        finally:
            self._monitor = SkillMonitor()
            self._perturbation = ExecutionPerturbation()
        self._weld_off()
        self._teleport(self._home)
        report.steps += self.settle()
        lo1, hi1 = self._segment_aabbs()
        disp = 0.5 * (lo1 + hi1) - 0.5 * (lo0 + hi0)
        report.displacement = disp
        report.moved = [int(i) for i in np.nonzero(np.linalg.norm(disp, axis=1) > MOVED_DISTANCE)[0]]
        report.gripper_contacts = sorted(touched)
        if name == "pick_place":
            report.achieved = disp[target]
        elif name == "push":
            report.achieved = float(disp[target] @ np.array([np.cos(params[0]), np.sin(params[0]), 0.0]))
        else:
            report.achieved = float(self.drawer_openings()[target] - opening0[target])
        report.flags = self.stability_issues()
        return report

    def _pick_place(self, target, offset, report, touched, lo, hi):
        gcfg = self.cfg["gripper"]
        clearance, speed = float(gcfg["clearance"]), float(gcfg["speed"])
        dt = self.model.opt.timestep
        obj = self._scene.objects[self._segments[target].object_index]
        ccfg = self.cfg["classes"][obj.cls]
        wall = float(ccfg["wall_thickness"]) if ccfg["shape"] == "open_box" else None
        g = grasp_point(lo[target], hi[target], wall)
        top, top_seg = self._column_top(g[:2])
        if top_seg != target:
            report.executed, report.grasp_success = False, False
            other = self._segments[top_seg].name if top_seg >= 0 else "nothing"
            report.message = f"grasp point of {self._segments[target].name} is covered by {other}"
            return
        g[2] = top
        pad_hz = self._pad_half[2]
        g[:2] += self._perturbation.contact_offset        # where the arm really goes
        self._teleport(g + [0.0, 0.0, clearance + pad_hz])
        grasp_pad = g + [0.0, 0.0, pad_hz + 0.002]
        self._monitor.phase("approach", 0.0)
        report.steps += self._follow(smooth_path([g + [0, 0, clearance + pad_hz], grasp_pad], speed, dt), touched)
        if self._closes_on(target, g, lo, hi):
            self._weld_on(target)
        place = g + offset
        # Riders: segments inside the carried one (e.g. a bin's contents) — touching them
        # is not "placed"; everything else (tables, other objects, floor) is.
        rel = compute_relations(self.segment_state().boxes, [s.cls for s in self._segments])
        stop_mask = ~rel.binary[:, target, 8]
        stop_mask[target] = False
        height = hi[target, 2] - lo[target, 2]
        z_transfer = max(grasp_pad[2], place[2] + pad_hz) + clearance + height
        z_before = lo[target, 2]
        lift = [grasp_pad, np.array([grasp_pad[0], grasp_pad[1], z_transfer])]
        self._monitor.phase("grasp", 0.2)
        report.steps += self._follow(smooth_path(lift, speed, dt), touched)
        lo_l, _ = self._segment_aabbs()
        report.grasp_success = bool(lo_l[target, 2] - z_before > GRASP_LIFT_FRACTION * (z_transfer - grasp_pad[2]))
        above_place = np.array([place[0], place[1], z_transfer])
        self._monitor.phase("transport", 0.4)
        transport = smooth_path([lift[-1], above_place], speed, dt)
        slip = self._perturbation.slip_at
        if slip is not None:       # the object slips out of the jaws part way
            k = int(round(slip * len(transport)))
            report.steps += self._follow(transport[:k], touched)
            self._weld_off()
            transport = transport[k:]
        report.steps += self._follow(transport, touched)
        place_pad = place + [0.0, 0.0, pad_hz + 0.002]
        self._monitor.phase("place", 0.7)
        report.steps += self._follow(smooth_path([above_place, place_pad], 0.5 * speed, dt), touched,
                                     stop_when_touching=stop_mask)
        self._weld_off()
        here = np.array(self.data.mocap_pos[0])
        self._monitor.phase("retreat", 0.9)
        report.steps += self._follow(smooth_path([here, here + [0.0, 0.0, clearance]], speed, dt), touched)

    def _push(self, target, direction, distance, report, touched, lo, hi):
        gcfg = self.cfg["gripper"]
        clearance, speed, gap = float(gcfg["clearance"]), float(gcfg["speed"]), float(gcfg["approach_gap"])
        dt = self.model.opt.timestep
        start, u = push_start(lo[target], hi[target], direction, self._pad_half, gap)
        start[:2] += self._perturbation.contact_offset
        pad_bottom = start[2] - self._pad_half[2]
        hx, hy = self._pad_half[0], self._pad_half[1]
        for cx, cy in ((0, 0), (hx, hy), (hx, -hy), (-hx, hy), (-hx, -hy)):
            z, s = self._column_top(start[:2] + [cx, cy])
            if z > pad_bottom - 0.001 and s >= 0:
                report.executed = False
                report.message = f"push start pose of {self._segments[target].name} is blocked by {self._segments[s].name}"
                return
        above = start + [0.0, 0.0, clearance]
        self._teleport(above)
        self._monitor.phase("approach", 0.0)
        report.steps += self._follow(smooth_path([above, start], speed, dt), touched)
        end = start + u * (distance + gap)
        self._monitor.phase("push", 0.3)
        report.steps += self._follow(smooth_path([start, end], 0.5 * speed, dt), touched)
        self._monitor.phase("retreat", 0.9)
        report.steps += self._follow(smooth_path([end, end + [0.0, 0.0, clearance]], speed, dt), touched)

    def _drawer(self, target, distance, opening, report, touched):
        gcfg = self.cfg["gripper"]
        speed, gap = float(gcfg["speed"]), float(gcfg["approach_gap"])
        dt = self.model.opt.timestep
        self._sync()
        body = self._seg_body[target]
        axis = self.data.xmat[body].reshape(3, 3)[:, 0]
        front = self.data.xpos[body] - axis * 0.5 * self._drawer_size[target, 0]
        pre = front - axis * (self._pad_half[0] + gap)
        touch = front - axis * (self._pad_half[0] + 0.002)
        self._teleport(pre)
        self._monitor.phase("approach", 0.0)
        # Both skills hold the front panel (a handle grasp): the drawer follows the gripper
        # and cannot coast past the commanded distance; the joint limits still stop it.
        report.steps += self._follow(smooth_path([pre, touch], 0.5 * speed, dt), touched)
        if self._perturbation.close_gripper:
            self._weld_on(target)
        before = self.drawer_openings()[target]
        end = touch - axis * distance if opening else touch + axis * distance
        path = smooth_path([touch, end], 0.5 * speed, dt)
        sign = 1.0 if opening else -1.0
        qadr = self._drawer_qadr[target]

        def stalled(k: int) -> bool:
            # The drawer lags the hand by more than STALL_LAG: it hit a joint limit or an
            # obstacle; a force-limited arm stops there instead of crushing through.
            commanded = float(np.linalg.norm(path[k] - touch))
            return commanded - sign * (-self.data.qpos[qadr] - before) > STALL_LAG
        self._monitor.phase("pull" if opening else "push", 0.3)
        report.steps += self._follow(path, touched, stop_if=stalled)
        end = np.array(self.data.mocap_pos[0])
        if opening:
            report.grasp_success = bool(self.drawer_openings()[target] - before > -1e-3)
        self._weld_off()
        report.steps += self._follow(smooth_path([end, end - axis * 0.05], speed, dt), touched)
