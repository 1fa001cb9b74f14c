"""Real arms in simulation (issue 44): ``make bench-arms``.

For the UR5e cell (``f2p_sim.sim_arm_node``: UR's DH kinematics, a parallel gripper, physical
grasps, UR's driver interfaces) driven by f2p's skill server (``f2p_skills``), both in this
process over DDS on loopback:

1. **Reachability**: the share of top-down grasp poses the arm reaches (IK within the joint
   limits), over a 2 x 2 m grid around the base at the tables' height and 10 cm above; a map
   (``arms_reach.png``) with the tables drawn in.
2. **Skills**: ``--skills`` pick_place goals (``ExecuteSkill`` with the object's true box, and
   every object's true box on ``segmented_scene``, as a perfect perception would give them) on fresh transport and organize scenes of 3 and 5 objects,
   each carrying a random movable object to a random free spot on a random table: success (the
   skill server says so and the object rests within 3 cm of where it was sent), the error codes
   of the rest, wall and simulated seconds per skill.
3. **Safety on every trajectory**: the driver refuses a point beyond the joint limits (counted as
   controller refusals), and the world counts the physics steps in which the arm or gripper
   touched anything not movable (tables, the pedestal, the floor) and the largest such force,
   and the protective stops. Target: no contact with a support, no limit refused.

One executed skill is drawn from above and from the side (``arms_skill.png``: the TCP's path
over the scene). Writes results/arms.{json,md}. ``--real-time-factor`` speeds the simulated
driver up (its control loop keeps up to ~60x on this CPU; DDS and the skill server do not).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
WAIT_S = 60.0


def _wait(future, timeout=WAIT_S):
    done = threading.Event()
    future.add_done_callback(lambda _f: done.set())
    if not done.wait(timeout):
        raise TimeoutError(f"no answer within {timeout} s")
    return future.result()


def reachability(out: Path) -> dict:
    """IK success of top-down poses over a grid (section 1 of the docstring)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from f2p_skills.arms import UR5E
    from f2p_skills.kinematics import Kinematics, top_down
    kin = Kinematics(UR5E)
    xs = ys = np.linspace(-1.0, 1.0, 81)
    result, maps = {}, {}
    t0 = time.perf_counter()
    for z in (0.03, 0.13):
        ok = np.zeros((len(ys), len(xs)), bool)
        for i, y in enumerate(ys):
            for j, x in enumerate(xs):
                try:
                    kin.ik(top_down([x, y, z], 0.0), UR5E.home)
                    ok[i, j] = True
                except ValueError:
                    pass
        maps[z] = ok
        r = np.hypot(*np.meshgrid(xs, ys))
        result[f"z={z:.2f}"] = {"reachable_share_within_0.85m": round(float(ok[r <= 0.85].mean()), 3),
                                "max_reach_m": round(float(r[ok].max()), 3)}
    result["ik_us"] = round(1e6 * (time.perf_counter() - t0) / (2 * len(xs) * len(ys)), 1)
    fig, axes = plt.subplots(1, 2, figsize=(10, 5))
    for ax, (z, ok) in zip(axes, maps.items()):
        ax.imshow(ok, origin="lower", extent=[xs[0], xs[-1], ys[0], ys[-1]], cmap="Greens", vmin=0, vmax=1.5)
        for cx, cy in ((0.38, -0.32), (0.37, 0.34)):              # the paper layout's tables, base_link frame
            ax.add_patch(plt.Rectangle((cx - 0.25, cy - 0.25), 0.5, 0.5, fill=False, color="saddlebrown", lw=1.5))
        ax.plot(0, 0, "ko")
        ax.set_title(f"UR5e top-down reach, TCP {z:.2f} m above base_link")
        ax.set_xlabel("x (m)")
        ax.set_ylabel("y (m)")
    fig.tight_layout()
    fig.savefig(out / "arms_reach.png", dpi=90)
    plt.close(fig)
    return result


class Cell:
    """sim_arm + skill_server + a probe, spinning in this process."""

    def __init__(self, real_time_factor: float):
        import rclpy
        import rclpy.node
        from f2p_ros.actions import ActionClient
        from rclpy.executors import MultiThreadedExecutor
        from rclpy.parameter import Parameter

        from f2p_interfaces.action import ExecuteSkill
        from f2p_interfaces.srv import ResetScene
        from f2p_sim.sim_arm_node import SimArmNode
        from f2p_skills.skill_server_node import SkillServerNode
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.sim = SimArmNode(context=self.context, parameter_overrides=[
            Parameter("real_time_factor", value=real_time_factor)])
        self.server = SkillServerNode(context=self.context, parameter_overrides=[Parameter("speed", value=0.5)])
        self.probe = rclpy.node.Node("arms_bench", context=self.context)
        self.executor = MultiThreadedExecutor(num_threads=6, context=self.context)
        for n in (self.sim, self.server, self.probe):
            self.executor.add_node(n)
        threading.Thread(target=self.executor.spin, daemon=True).start()
        for node in (self.sim, self.server):
            node.trigger_configure()
            node.trigger_activate()
        from f2p_interfaces.msg import SegmentedScene
        from f2p_ros import qos
        self.reset = self.probe.create_client(ResetScene, "/reset_scene")
        self.scene = self.probe.create_publisher(SegmentedScene, "/segmented_scene", qos.latched())
        self.skill = ActionClient(self.probe, ExecuteSkill, "/execute_skill")
        assert self.reset.wait_for_service(timeout_sec=WAIT_S) and self.skill.wait_for_server(timeout_sec=WAIT_S)

    def close(self):
        import rclpy
        self.executor.shutdown(timeout_sec=5.0)
        for n in (self.sim, self.server, self.probe):
            n.destroy_node()
        rclpy.try_shutdown(context=self.context)


def _free_spot(rng, tables, objects, exclude, footprint):
    """A random xy on a random table's top, ≥ 6 cm from every other movable object (None after 50 tries)."""
    for _ in range(50):
        t = tables[rng.integers(len(tables))]
        half = 0.5 * np.asarray(t.size[:2]) - 0.08 - 0.5 * footprint
        if np.any(half <= 0):
            continue
        xy = np.asarray(t.center[:2]) + rng.uniform(-half, half)
        if all(np.linalg.norm(xy - o.center[:2]) > 0.06 + 0.5 * (footprint + max(o.size[:2]))
               for k, o in objects.items() if k != exclude):
            return xy, float(t.center[2] + 0.5 * t.size[2])
    return None


def skills(cell, n_skills: int, seed: int, picture: Path) -> dict:
    from action_msgs.msg import GoalStatus

    from f2p_common.interfaces import SegmentedObject, SegmentedScene, SkillCall
    from f2p_interfaces.action import ExecuteSkill
    from f2p_interfaces.srv import ResetScene
    from f2p_ros.conversions import box_from_msg, box_to_msg, scene_to_msg, skill_call_to_msg
    names = {getattr(ExecuteSkill.Result, n): n[6:].lower() for n in dir(ExecuteSkill.Result) if n.startswith("ERROR_")}
    rng = np.random.default_rng(seed)
    world = cell.sim.world
    rows, drawn = [], None
    scenes = [("transport", 3), ("organize", 3), ("transport", 5), ("organize", 5)]
    k = 0
    while len(rows) < n_skills:
        task, n = scenes[k % len(scenes)]
        resp = _wait(cell.reset.call_async(ResetScene.Request(task=task, n_objects=n, seed=seed + k)))
        k += 1
        assert resp.success, resp.message
        reset_at = time.monotonic()              # the arm is back home: plan from its new joint states
        boxes = {o: box_from_msg(b) for o, b in zip(resp.object_ids, resp.boxes)}
        cell.scene.publish(scene_to_msg(SegmentedScene(
            [SegmentedObject(o, label, _corners(boxes[o]), box=boxes[o]) for o, label in zip(resp.object_ids, resp.labels)],
            "world", int(resp.stamp.sec * 10**9 + resp.stamp.nanosec), "true boxes")))     # a perfect perception
        while cell.server._joints_at < reset_at + 0.05 or len(cell.server._obstacles) != len(resp.object_ids):
            time.sleep(0.01)
        tables = [boxes[o] for o, label in zip(resp.object_ids, resp.labels) if label == "table"]
        movable = [o for o, label in zip(resp.object_ids, resp.labels) if label not in ("table", "shelf", "cabinet")]
        for target in rng.permutation(movable)[:2]:             # two skills per scene
            box = boxes[target]
            spot = _free_spot(rng, tables, {o: boxes[o] for o in movable}, target, float(max(box.size[:2])))
            if spot is None:
                continue
            xy, top = spot
            bottom = box.center[2] - 0.5 * box.size[2]
            offset = np.clip([xy[0] - box.center[0], xy[1] - box.center[1], top - bottom + 0.005],
                             [-0.8, -0.8, -0.2], [0.8, 0.8, 0.6])
            goal = ExecuteSkill.Goal(skill=skill_call_to_msg(SkillCall("pick_place", (str(target),), tuple(offset))),
                                     target_boxes=[box_to_msg(box)])
            goal.header.frame_id = "world"
            before = world.object_centres()[target]
            contacts0, t_sim0, t0 = world.support_contact_steps, world.time_ns(), time.perf_counter()
            tcp = []
            record = drawn is None
            stop_tcp = threading.Event()
            if record:
                threading.Thread(target=_trace, args=(world, tcp, stop_tcp), daemon=True).start()
            handle = _wait(cell.skill.send_goal_async(goal))
            wrapped = _wait(handle.get_result_async(), timeout=180.0)
            stop_tcp.set()
            wall, sim_s = time.perf_counter() - t0, (world.time_ns() - t_sim0) / 1e9
            after = world.object_centres()[target]
            sent = before + offset - [0, 0, 0.005]
            placed = bool(np.linalg.norm(after[:2] - sent[:2]) < 0.03 and abs(after[2] - sent[2]) < 0.03)
            ok = wrapped.status == GoalStatus.STATUS_SUCCEEDED and wrapped.result.success
            rows.append({"task": f"{task}-{n}", "target": str(target), "success": bool(ok and placed),
                         "server_success": bool(ok), "error": "none" if ok else names.get(wrapped.result.error_code, "?"),
                         "message": wrapped.result.message[:200], "wall_s": round(wall, 2), "sim_s": round(sim_s, 2),
                         "support_contact_steps": world.support_contact_steps - contacts0,
                         "placement_error_m": round(float(np.linalg.norm(after[:2] - sent[:2])), 4),
                         "placement_dz_m": round(float(after[2] - sent[2]), 4)})
            if world.protective_stopped:
                rows[-1]["error"] = "protective stop: " + world.stop_reason
                world.unlock_protective_stop()
            if record and ok:
                drawn = {"tcp": tcp, "boxes": boxes, "target": str(target), "offset": offset.tolist()}
            print(f"[bench-arms] {len(rows)}/{n_skills} {task}-{n} {target}: "
                  f"{'ok' if rows[-1]['success'] else rows[-1]['error']} ({wall:.1f} s wall, {sim_s:.1f} s sim)",
                  flush=True)
            if len(rows) >= n_skills:
                break
    if drawn:
        _draw(drawn, picture)
    succ = [r for r in rows if r["success"]]
    return {"skills": len(rows), "success": len(succ), "success_rate": round(len(succ) / len(rows), 3),
            "errors": dict(Counter(r["error"] for r in rows if not r["success"])),
            "server_success_but_misplaced": sum(r["server_success"] and not r["success"] for r in rows),
            "wall_s_per_skill_median": round(float(np.median([r["wall_s"] for r in succ])), 2) if succ else None,
            "sim_s_per_skill_median": round(float(np.median([r["sim_s"] for r in succ])), 2) if succ else None,
            "support_contact_steps": int(sum(r["support_contact_steps"] for r in rows)),
            "max_support_force_n": round(world.max_support_force, 2), "rows": rows}


def _corners(box) -> np.ndarray:
    from scipy.spatial.transform import Rotation
    signs = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], float)
    return (Rotation.from_quat(box.orientation).apply(0.5 * signs * box.size) + box.center).astype(np.float32)


def _trace(world, out: list, stop: threading.Event) -> None:
    from f2p_skills.arms import UR5E
    from f2p_skills.kinematics import Kinematics
    from f2p_common.frames import quat_rotate
    kin = Kinematics(UR5E)
    base = world.body_pose("base_link")                 # the trace in world, as reset_scene's boxes
    while not stop.wait(0.05):
        out.append((base[:3] + quat_rotate(base[3:], kin.fk(world.joint_state()[1][:6])[:3, 3])).tolist())


def _draw(drawn: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    tcp = np.asarray(drawn["tcp"])
    fig, (top, side) = plt.subplots(1, 2, figsize=(11, 5))
    for name, b in drawn["boxes"].items():
        c, s = b.center, b.size
        color = "red" if name == drawn["target"] else ("saddlebrown" if name.startswith("table") else "gray")
        top.add_patch(plt.Rectangle((c[0] - s[0] / 2, c[1] - s[1] / 2), s[0], s[1], fill=False, color=color))
        side.add_patch(plt.Rectangle((c[1] - s[1] / 2, c[2] - s[2] / 2), s[1], s[2], fill=False, color=color))
    top.plot(tcp[:, 0], tcp[:, 1], "b-", lw=1)
    side.plot(tcp[:, 1], tcp[:, 2], "b-", lw=1)
    top.set(title=f"pick_place {drawn['target']}: TCP from above", xlabel="x (m)", ylabel="y (m)", aspect="equal")
    side.set(title="from the side", xlabel="y (m)", ylabel="z (m)", aspect="equal")
    top.autoscale()
    side.autoscale()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--skills", type=int, default=200)
    p.add_argument("--seed", type=int, default=4400)
    p.add_argument("--real-time-factor", type=float, default=6.0)
    p.add_argument("--out", default=str(RESULTS / "arms"))
    a = p.parse_args()
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    assert os.environ.get("ROS_AUTOMATIC_DISCOVERY_RANGE") == "LOCALHOST", "run through make bench-arms"
    t0 = time.time()
    reach = reachability(out.parent)
    cell = Cell(a.real_time_factor)
    try:
        sk = skills(cell, a.skills, a.seed, out.parent / "arms_skill.png")
    finally:
        cell.close()
    report = {"benchmark": "arms", "robot": "ur5e (simulated: sim_arm)", "machine": f"{platform.machine()}, "
              f"{os.cpu_count()} cores, no GPU; nothing else running", "real_time_factor": a.real_time_factor,
              "reachability": reach, "skills": sk, "minutes": round((time.time() - t0) / 60, 1)}
    out.with_suffix(".json").write_text(json.dumps(report, indent=1))
    errors = ", ".join(f"{k} {v}" for k, v in sk["errors"].items()) or "none"
    md = [
        "# Real arms in simulation: the UR5e cell (`make bench-arms`)", "",
        f"{report['machine']}; `python benchmarks/arms.py --skills {a.skills}` ({report['minutes']} min).", "",
        "| what | figure |", "|---|---|",
        f"| pick_place through the skill server and the simulated UR/Robotiq drivers | **{sk['success']}/{sk['skills']}**"
        f" ({100 * sk['success_rate']:.0f} %) placed within 3 cm |",
        f"| failures by error code | {errors}; server success but misplaced: {sk['server_success_but_misplaced']} |",
        f"| time per skill (median) | {sk['sim_s_per_skill_median']} s of robot time at speed 0.5, "
        f"{sk['wall_s_per_skill_median']} s wall at {a.real_time_factor:g}x |",
        f"| arm or gripper touching a support (physics steps) / largest force | {sk['support_contact_steps']} / "
        f"{sk['max_support_force_n']} N |",
        f"| top-down reach within 0.85 m, TCP 0.03 / 0.13 m above base_link | "
        f"{100 * reach['z=0.03']['reachable_share_within_0.85m']:.0f} % / "
        f"{100 * reach['z=0.13']['reachable_share_within_0.85m']:.0f} %; IK {reach['ik_us']} us a pose |",
        "", "![reach](arms_reach.png)", "", "![one skill](arms_skill.png)", ""]
    out.with_suffix(".md").write_text("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
