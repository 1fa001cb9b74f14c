"""``f2p-bringup``: start a robot's graph as processes where ``ros2 launch`` is not available.

    f2p-bringup sim                          # the simulated robot and the whole stack
    f2p-bringup ur5 --sim                    # simulated UR5e drivers and the ur5 robot's graph
    f2p-bringup stretch --params-file my_stretch.yaml --namespace robot1
    f2p-bringup learner                      # off-board: the learner node

It starts every node of :func:`f2p_bringup.graph.graph` (its executable with ``--ros-args``: name,
namespace, the robot's params file, remaps, ``use_sim_time``), then — unless ``--no-autostart`` —
drives each lifecycle node through configure and activate over its own lifecycle services, in
the graph's order, saying which node refused. It then watches the processes: Ctrl-C (SIGINT or
SIGTERM) is forwarded to every node and the runner exits 0 once they ended; a node that dies
ends the graph, and the runner exits 1 naming it; a node that hangs (its ``heartbeat`` silent
for ``heartbeat_timeout_s``: stopped, every executor thread blocked) ends it too, exit 3 naming
it. Startup problems exit 2.

With ``--respawn`` (``ros2 launch``'s ``use_respawn:=true``) a node that dies or hangs is not
the end of the graph, unless the graph description marks it critical (a simulator, a skill
server driving an arm): a hung node is SIGKILLed, and the node is started again after
``--respawn-delay`` seconds, configured and activated on its own (the others keep running),
each time said in one line with how long it took. Back-off: the delay doubles for each death
within ``RESPAWN_STABLE_S`` of the node's last start (up to ``RESPAWN_MAX_DELAY_S``), and after
``--respawn-max-retries`` such deaths in a row (-1: no limit) the next ends the graph as without
respawn. A respawned node that refuses to configure ends the graph (exit 1).

The runner says how its nodes are on ``/diagnostics`` (one ``f2p_bringup: <node>`` status each,
once a second and at every change): OK while its heartbeat comes, WARN while it is respawned
and for a minute after (how many times, why), ERROR when it died or hung for good.

The nodes die with the runner: each is started with the parent-death signal (SIGTERM when the
runner ends, even by ``kill -9``). The runner keeps its nodes' process ids in
``$ROS_HOME/f2p/run/<robot>[-<namespace>].json`` while it runs; a runner that finds the file of
one that did not stop cleanly ends the nodes still running from it and says so before it
starts its own. ``run_graph(BringupConfig)`` is the same as a library call.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from f2p_bringup.distro import current_distro
from f2p_bringup.graph import (GRAPHS, RESPAWN_DELAY_S, RESPAWN_MAX_DELAY_S, RESPAWN_MAX_RETRIES, RESPAWN_STABLE_S,
                               NodeSpec, graph, params_files, ros_args)
from f2p_common.files import write_atomic

EXIT_STOPPED, EXIT_NODE_DIED, EXIT_STARTUP, EXIT_NODE_HUNG = 0, 1, 2, 3
#: diagnostic_msgs/DiagnosticStatus levels (a ``byte`` field: bytes in rclpy)
OK, WARN, ERROR = b"\x00", b"\x01", b"\x02"


class BringupError(RuntimeError):
    """The graph could not be started (missing executable, a lifecycle transition refused)."""


@dataclass
class BringupConfig:
    """robot: a graph of f2p_bringup.graph; params_file: a params file or several, applied in
    order (a later one's value wins); None = the robot's installed ones (f2p_bringup.graph.
    params_files: with ``sim``, its simulated drivers' overlay too); sim: start the robot's
    simulated vendor drivers before its graph; namespace, use_sim_time: as for ``ros2 launch``
    (use_sim_time None: true with ``sim``, whose drivers publish /clock); autostart: configure and activate the
    lifecycle nodes; transition_timeout_s: per lifecycle service call; log_dir: each node's
    output to ``<log_dir>/<node>.log`` (None: the runner's own stdout/stderr); environment:
    variables set for the node processes on top of the runner's (e.g. ROS_HOME); nodes: a part
    of the graph to run (default: all of ``robot``'s); heartbeat_timeout_s: a node whose
    heartbeat is silent this long is hung (0: not watched); respawn: start a non-critical node that
    died or hung again (module docstring) after respawn_delay_s (doubled for each quick death in a
    row), at most respawn_max_retries quick deaths in a row (-1: no limit)."""

    robot: str = "sim"
    params_file: str | Path | tuple[str | Path, ...] | None = None
    namespace: str = ""
    use_sim_time: bool | None = None
    autostart: bool = True
    transition_timeout_s: float = 60.0
    log_dir: str | Path | None = None
    environment: dict[str, str] = field(default_factory=dict)
    nodes: tuple[NodeSpec, ...] = field(default=(), repr=False)
    heartbeat_timeout_s: float = 10.0
    sim: bool = False
    respawn: bool = False
    respawn_delay_s: float = RESPAWN_DELAY_S
    respawn_max_retries: int = RESPAWN_MAX_RETRIES

    def __post_init__(self):
        self.nodes = tuple(self.nodes) or graph(self.robot, self.sim)
        if self.use_sim_time is None:           # simulated drivers: their /clock runs on, the graph follows it
            self.use_sim_time = self.sim
        if self.params_file is None:
            self.params_file = params_files(self.robot, self.sim)
        elif isinstance(self.params_file, (str, Path)):
            self.params_file = (self.params_file,)
        self.params_file = tuple(Path(p) for p in self.params_file)
        for path in self.params_file:
            if not path.is_file():
                raise ValueError(f"no params file {path}")
        if self.respawn_delay_s < 0:
            raise ValueError(f"respawn_delay_s must be >= 0, not {self.respawn_delay_s}")


def executable(spec: NodeSpec) -> Path:
    """``<prefix>/lib/<package>/<executable>`` of an installed package (what ``ros2 run`` runs)."""
    from ament_index_python.packages import PackageNotFoundError, get_package_prefix
    try:
        prefix = Path(get_package_prefix(spec.package))
    except (PackageNotFoundError, LookupError, ValueError, OSError) as e:
        raise BringupError(f"node {spec.name}: package {spec.package!r} is not installed ({e})") from None
    path = prefix / "lib" / spec.package / spec.executable
    if not os.access(path, os.X_OK):
        raise BringupError(f"node {spec.name}: no executable {path}")
    return path


class Graph:
    """The running graph: its processes and the lifecycle client that activates them."""

    def __init__(self, cfg: BringupConfig, log=print):
        self.cfg, self.log = cfg, log
        self.procs: dict[str, subprocess.Popen] = {}
        self.respawns: dict[str, int] = {}          # respawns of each node so far
        self.quick_deaths: dict[str, int] = {}      # deaths in a row, each within RESPAWN_STABLE_S of its start
        self.started_at: dict[str, float] = {}
        self._logs = []
        self._watched: set[str] | None = None

    def pid_file(self) -> Path:
        """Where this graph's node process ids are kept while it runs (module docstring)."""
        from f2p_common.resources import f2p_home
        home = Path(self.cfg.environment["ROS_HOME"]) / "f2p" if "ROS_HOME" in self.cfg.environment else f2p_home()
        ns = self.cfg.namespace.strip("/").replace("/", "_")
        return home / "run" / f"{self.cfg.robot}{'-' + ns if ns else ''}.json"

    def clean_up_after_an_unclean_stop(self) -> list[str]:
        """End the nodes a runner of this graph left running (its pid file names them, and each
        process still runs the same command); what was done, one line per node."""
        path = self.pid_file()
        if not path.is_file():
            return []
        try:
            left = json.loads(path.read_text())
        except (OSError, ValueError):
            left = {}
        done = []
        for name, entry in left.items():
            pid, cmdline = int(entry.get("pid", 0)), entry.get("cmdline", "")
            if pid > 0 and _cmdline(pid) == cmdline:
                os.kill(pid, signal.SIGKILL)
                done.append(f"ended {name} (pid {pid}) left running by a runner that did not stop cleanly")
        path.unlink(missing_ok=True)
        return (done or ["a runner of this graph did not stop cleanly; none of its nodes was still running"]) + [
            "nodes killed abruptly can leave Fast DDS shared-memory segments in /dev/shm, and a process reopening "
            "one can crash at start (SIGSEGV, eProsima/Fast-DDS#6501): `fastdds shm clean` removes them; "
            "FASTDDS_BUILTIN_TRANSPORTS=UDPv4 avoids shared memory"]

    def start(self) -> None:
        for line in self.clean_up_after_an_unclean_stop():
            self.log(f"[f2p-bringup] {line}")
        for spec in self.cfg.nodes:
            self._spawn(spec)
        self._write_pid_file()

    def _spawn(self, spec: NodeSpec) -> None:
        """Start ``spec``'s process (its log appended to: a respawned node's output follows its
        last life's)."""
        cmd = [str(executable(spec)), *ros_args(spec, self.cfg.params_file, self.cfg.namespace,
                                                self.cfg.use_sim_time)]
        out = None
        if self.cfg.log_dir is not None:
            Path(self.cfg.log_dir).mkdir(parents=True, exist_ok=True)
            out = open(Path(self.cfg.log_dir) / f"{spec.name}.log", "a" if spec.name in self.procs else "w")
            self._logs.append(out)
        # its own session: Ctrl-C reaches the runner, which forwards it to each node
        self.procs[spec.name] = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT if out else None,
                                                 start_new_session=True, preexec_fn=_die_with_parent,
                                                 env={**os.environ, **self.cfg.environment})
        self.started_at[spec.name] = time.monotonic()
        self.log(f"[f2p-bringup] started {spec.name} (pid {self.procs[spec.name].pid})")

    def _write_pid_file(self) -> None:
        # the command as /proc/<pid>/cmdline shows it (read back here it may still be empty: exec in progress)
        write_atomic(self.pid_file(), json.dumps({name: {"pid": p.pid, "cmdline": " ".join(p.args)}
                                                  for name, p in self.procs.items()}, indent=1))

    def died(self, name: str) -> bool:
        """Note that ``name`` ended (died, or killed as hung); whether it is respawned: not
        critical, respawn on, and fewer quick deaths in a row than the bound (module docstring)."""
        spec = next(s for s in self.cfg.nodes if s.name == name)
        quick = time.monotonic() - self.started_at.get(name, 0.0) < RESPAWN_STABLE_S
        self.quick_deaths[name] = self.quick_deaths.get(name, 0) + 1 if quick else 1
        limit = self.cfg.respawn_max_retries
        return self.cfg.respawn and not spec.critical and (limit < 0 or self.quick_deaths[name] <= limit)

    def respawn_delay(self, name: str) -> float:
        """The back-off before ``name``'s next start: the delay, doubled for each quick death in a row."""
        return min(self.cfg.respawn_delay_s * 2 ** (self.quick_deaths.get(name, 1) - 1),
                   max(RESPAWN_MAX_DELAY_S, self.cfg.respawn_delay_s))

    def respawn(self, name: str, stop: threading.Event) -> bool:
        """Start the ended node ``name`` again after its back-off, configure and activate it
        (BringupError if it refuses); False if ``stop`` was set while waiting."""
        if stop.wait(self.respawn_delay(name)):
            return False
        spec = next(s for s in self.cfg.nodes if s.name == name)
        self.respawns[name] = self.respawns.get(name, 0) + 1
        self._spawn(spec)
        self._write_pid_file()
        if self.cfg.autostart and spec.lifecycle:
            self.activate((spec,))
        return True

    def activate(self, nodes: tuple[NodeSpec, ...] | None = None) -> None:
        """configure then activate every lifecycle node of ``nodes`` (default: the graph's), in
        order, over its lifecycle services."""
        import rclpy
        from lifecycle_msgs.msg import State, Transition
        from lifecycle_msgs.srv import ChangeState, GetState
        from rclpy.executors import SingleThreadedExecutor
        context = rclpy.Context()
        rclpy.init(context=context)
        node = rclpy.create_node(f"f2p_bringup_{self.cfg.robot}", context=context)
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(node)
        # a node of the graph that ends meanwhile ends the start-up; a respawn waits on its node only
        self._watched = None if nodes is None else {s.name for s in nodes}
        try:
            ns = self.cfg.namespace.strip("/")
            for spec in (s for s in (nodes or self.cfg.nodes) if s.lifecycle):
                prefix = f"/{ns + '/' if ns else ''}{spec.name}"
                change = node.create_client(ChangeState, f"{prefix}/change_state")
                get = node.create_client(GetState, f"{prefix}/get_state")
                deadline = time.monotonic() + self.cfg.transition_timeout_s
                while not (change.wait_for_service(timeout_sec=0.2) and get.service_is_ready()):
                    self._check_alive()
                    if time.monotonic() > deadline:
                        raise BringupError(f"node {spec.name}: no lifecycle service {prefix}/change_state after "
                                           f"{self.cfg.transition_timeout_s:g} s")
                for label, tid, goal in (("configure", Transition.TRANSITION_CONFIGURE, State.PRIMARY_STATE_INACTIVE),
                                         ("activate", Transition.TRANSITION_ACTIVATE, State.PRIMARY_STATE_ACTIVE)):
                    self._transition(executor, spec.name, label, goal,
                                     lambda t=tid: change.call_async(ChangeState.Request(transition=Transition(id=t))),
                                     lambda: get.call_async(GetState.Request()))
                self.log(f"[f2p-bringup] {spec.name} active")
        finally:
            executor.shutdown()
            node.destroy_node()
            context.try_shutdown()

    def _transition(self, executor, name: str, label: str, goal: int, request, ask_state,
                    patience: float = 5.0) -> None:
        """One lifecycle transition, robust to a lost answer.

        A service's answer can be lost when the server has not yet matched the client's reply
        reader (Fast DDS waits 100 ms for it, then drops the reply; rmw_fastrtps#390, #467),
        which a loaded machine starting nine processes does hit. So an unanswered request is
        followed by ``get_state``: at the goal state the transition happened; mid-transition,
        wait; back at the start state, the request is sent again (a refused configure has no
        side effect, so asking twice gets the same refusal, answered this time). goal: the
        lifecycle_msgs/State id the transition ends in; patience: seconds before asking."""
        deadline = time.monotonic() + self.cfg.transition_timeout_s
        future = request()
        while True:
            executor.spin_until_future_complete(future, timeout_sec=min(patience, self._left(deadline)))
            if future.done():
                if future.result().success or self._state(executor, ask_state, deadline) == goal:
                    return
                raise BringupError(f"node {name} refused to {label}: see its log")
            self._check_alive()
            if self._left(deadline) <= 0:
                raise BringupError(f"node {name}: no answer to {label} in {self.cfg.transition_timeout_s:g} s")
            state = self._state(executor, ask_state, deadline)   # unanswered: where is the node now?
            if state == goal:
                return
            if 0 < state < 10:                  # settled (10+: in a transition) but not there: ask again
                future, patience = request(), min(2 * patience, 20.0)

    @staticmethod
    def _left(deadline: float) -> float:
        return max(0.0, deadline - time.monotonic())

    @staticmethod
    def _state(executor, ask_state, deadline: float) -> int:
        """The node's lifecycle_msgs/State id (1 unconfigured, 2 inactive, 3 active, 10+ in a
        transition); 0 if unanswered."""
        future = ask_state()
        executor.spin_until_future_complete(future, timeout_sec=min(2.0, max(0.1, deadline - time.monotonic())))
        return future.result().current_state.id if future.done() else 0

    def _check_alive(self) -> None:
        dead = self.dead(self._watched)
        if dead:
            raise BringupError(f"node {dead[0]} exited with code {dead[1]} while it was "
                               + ("started" if self._watched else "the graph started"))

    def dead(self, names=None) -> tuple[str, int] | None:
        """(name, exit code) of a node (of ``names``, default any) that has ended, if any."""
        for name, p in self.procs.items():
            if (names is None or name in names) and p.poll() is not None:
                return name, p.returncode
        return None

    def stop(self, timeout: float = 10.0) -> None:
        """SIGINT to every node still running, then SIGKILL to those that did not end in time."""
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        deadline = time.monotonic() + timeout
        for p in self.procs.values():
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for f in self._logs:
            f.close()
        self.pid_file().unlink(missing_ok=True)


def _die_with_parent() -> None:
    """In a node's process before it runs: SIGTERM when the runner ends, however it ends
    (PR_SET_PDEATHSIG; kept across exec)."""
    import ctypes
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)         # 1 = PR_SET_PDEATHSIG


def _cmdline(pid: int) -> str:
    """The process's command line ('' when it is gone)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


class HeartbeatWatch:
    """Each node's last ``heartbeat`` (``f2p_interfaces/Heartbeat``), received on its own rclpy
    context in a background thread; :meth:`silent` names a node silent for longer than a
    timeout, counted from its last heartbeat or, before its first, from the watch's start.
    It also says how each node is on ``/diagnostics`` (module docstring; :meth:`report`)."""

    #: Seconds a respawned node stays WARN on /diagnostics.
    WARN_AFTER_RESPAWN_S = 60.0

    def __init__(self, robot: str, namespace: str, names: list[str]):
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.executors import SingleThreadedExecutor
        from f2p_interfaces.msg import Heartbeat
        ns = namespace.strip("/")
        self._names = {f"/{ns + '/' if ns else ''}{n}": n for n in names}
        self.hardware_id = f"{robot}{' /' + ns if ns else ''}"
        # every node counts from now: one stopped before its first heartbeat arrived is silent too
        self.last: dict[str, float] = {n: time.monotonic() for n in names}
        self._lock = threading.Lock()
        self._status = {n: (OK, "active", 0.0) for n in names}      # level, message, since (monotonic)
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(f"f2p_bringup_watch_{robot}", namespace=f"/{ns}" if ns else None, context=self.context)
        self.node.create_subscription(Heartbeat, "heartbeat", self._on_beat, 50)
        self._diagnostics = self.node.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.node.create_timer(1.0, self.publish)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self.executor.spin, daemon=True)
        self._thread.start()

    def _on_beat(self, msg) -> None:
        name = self._names.get(msg.node)
        if name is not None:
            self.last[name] = time.monotonic()

    def restart(self, name: str) -> None:
        """``name`` was started again: its silence counts from now."""
        self.last[name] = time.monotonic()

    def report(self, name: str, level: bytes, message: str) -> None:
        """``name``'s status (diagnostic_msgs/DiagnosticStatus level), published at once."""
        with self._lock:
            self._status[name] = (level, message, time.monotonic())
        self.publish()

    def publish(self) -> None:
        """One ``f2p_bringup: <node>`` status per node on /diagnostics."""
        from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
        now = time.monotonic()
        msg = DiagnosticArray()
        msg.header.stamp = self.node.get_clock().now().to_msg()
        with self._lock:
            for name, (level, message, since) in self._status.items():
                if level == WARN and now - since > self.WARN_AFTER_RESPAWN_S:
                    level = OK                              # respawned a while ago and still up
                msg.status.append(DiagnosticStatus(level=level, name=f"f2p_bringup: {name}", message=message,
                                                   hardware_id=self.hardware_id))
        try:
            self._diagnostics.publish(msg)
        except Exception:                                   # the watch is closing: nothing to say to
            pass

    def silent(self, timeout: float) -> tuple[str, float] | None:
        now = time.monotonic()
        for name, t in list(self.last.items()):
            if now - t > timeout:
                return name, now - t
        return None

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=2.0)
        self.node.destroy_node()
        self.context.try_shutdown()


def run_graph(cfg: BringupConfig, stop: threading.Event | None = None, ready: threading.Event | None = None,
              log=print) -> int:
    """Start ``cfg``'s graph and watch it until ``stop`` is set (the CLI sets it on SIGINT/SIGTERM)
    or a node dies; ``ready`` is set once every node is active. The exit code (module docstring)."""
    stop = stop or threading.Event()
    g = Graph(cfg, log)
    try:
        g.start()
        if cfg.autostart:
            g.activate()
    except BringupError as exc:
        log(f"[f2p-bringup] error: {exc}")
        g.stop()
        return EXIT_STARTUP
    log(f"[f2p-bringup] {cfg.robot} graph running (ROS 2 {current_distro()}): {', '.join(g.procs)}")
    watch = HeartbeatWatch(cfg.robot, cfg.namespace, list(g.procs)) if cfg.heartbeat_timeout_s > 0 else None
    if ready is not None:
        ready.set()
    say = watch.report if watch is not None else (lambda *_a: None)
    try:
        while not stop.wait(0.2):
            dead = g.dead()
            hung = watch.silent(cfg.heartbeat_timeout_s) if watch is not None and not dead else None
            if hung:
                g.procs[hung[0]].kill()             # it cannot answer SIGINT: the others can
                g.procs[hung[0]].wait()
                if not g.died(hung[0]):
                    log(f"[f2p-bringup] node {hung[0]} (pid {g.procs[hung[0]].pid}) hung: no heartbeat for "
                        f"{hung[1]:.1f} s: stopping the graph")
                    say(hung[0], ERROR, f"hung: no heartbeat for {hung[1]:.1f} s; the graph was stopped")
                    return EXIT_NODE_HUNG
                log(f"[f2p-bringup] node {hung[0]} (pid {g.procs[hung[0]].pid}) hung: no heartbeat for "
                    f"{hung[1]:.1f} s: killed it")
                why = f"hung (no heartbeat for {hung[1]:.1f} s), killed"
            elif dead:
                if not g.died(dead[0]):
                    log(f"[f2p-bringup] node {dead[0]} exited with code {dead[1]}: stopping the graph")
                    say(dead[0], ERROR, f"exited with code {dead[1]}; the graph was stopped")
                    return EXIT_NODE_DIED
                why = f"exited with code {dead[1]}"
            else:
                continue
            name = (hung or dead)[0]
            n = g.respawns.get(name, 0) + 1
            log(f"[f2p-bringup] node {name} {why}: respawning it in {g.respawn_delay(name):g} s (respawn {n})")
            say(name, WARN, f"{why}: respawning it (respawn {n})")
            t0 = time.monotonic()
            try:
                if not g.respawn(name, stop):
                    break
            except BringupError as exc:
                log(f"[f2p-bringup] error: respawning {name}: {exc}: stopping the graph")
                say(name, ERROR, f"{why}; its respawn failed: {exc}")
                return EXIT_NODE_DIED
            if watch is not None:
                watch.restart(name)
            log(f"[f2p-bringup] {name} respawned, active after {time.monotonic() - t0:.1f} s")
            say(name, WARN, f"respawned {n} time(s), last after it {why}; active again after "
                            f"{time.monotonic() - t0:.1f} s")
        log("[f2p-bringup] stopping the graph")
        return EXIT_STOPPED
    finally:
        if watch is not None:
            watch.close()
        g.stop()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="f2p-bringup", description=__doc__.split("\n\n")[0])
    d = BringupConfig.__dataclass_fields__
    p.add_argument("robot", choices=sorted(GRAPHS), help="a robot's graph, or the off-board learner")
    p.add_argument("--params-file", action="append", default=None,
                   help="repeatable, applied in order (a later file's value wins); default: the robot's "
                        "installed config/<robot>.yaml (and config/<robot>_sim.yaml with --sim)")
    p.add_argument("--sim", action="store_true",
                   help="start the robot's simulated vendor drivers (f2p_sim) before its graph")
    p.add_argument("--namespace", default=d["namespace"].default)
    p.add_argument("--use-sim-time", action=argparse.BooleanOptionalAction, default=None,
                   help="follow /clock (default: with --sim, whose drivers publish it)")
    p.add_argument("--no-autostart", dest="autostart", action="store_false",
                   help="start the processes only; configure and activate them yourself")
    p.add_argument("--log-dir", default=None, help="each node's output to <log-dir>/<node>.log")
    p.add_argument("--respawn", action="store_true",
                   help="start a node that died or hung again, configured and activated (the graph keeps running)")
    p.add_argument("--respawn-delay", type=float, default=d["respawn_delay_s"].default,
                   help="seconds before a node is started again (default %(default)s)")
    p.add_argument("--respawn-max-retries", type=int, default=d["respawn_max_retries"].default,
                   help="deaths in a row (each within %g s of the node's start) that are respawned; the next "
                        "ends the graph (-1: no limit; default %%(default)s)" % RESPAWN_STABLE_S)
    a = p.parse_args(argv)
    try:
        cfg = BringupConfig(a.robot, a.params_file, a.namespace, a.use_sim_time, a.autostart, log_dir=a.log_dir,
                            sim=a.sim, respawn=a.respawn, respawn_delay_s=a.respawn_delay,
                            respawn_max_retries=a.respawn_max_retries)
    except ValueError as e:
        print(f"f2p-bringup: error: {e}", file=sys.stderr)
        return EXIT_STARTUP
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return run_graph(cfg, stop, log=lambda msg: print(msg, flush=True))


if __name__ == "__main__":
    sys.exit(main())
