"""``f2p-bringup`` as a subprocess for tests: :class:`Runner` reads its output line by line,
``sim_graph`` starts the simulated robot's graph with it and stops it after the test."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading

import pytest


class Runner:
    """``f2p-bringup`` as a subprocess, its output read line by line."""

    def __init__(self, tmp_path, *args, robot="sim", env: dict | None = None):
        env = {**os.environ, "ROS_HOME": str(tmp_path / "ros_home"), **(env or {})}
        self.proc = subprocess.Popen([sys.executable, "-m", "f2p_bringup.runner", robot, "--log-dir",
                                      str(tmp_path / "logs"), *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, env=env)
        self.lines, self.running, self._said = [], threading.Event(), threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            with self._said:
                self.lines.append(line.rstrip())
                self._said.notify_all()
            if "graph running" in line:
                self.running.set()
        with self._said:
            self._said.notify_all()

    def wait_for(self, pattern: str, after: int = 0, timeout: float = 60.0) -> re.Match:
        """The first line from line ``after`` on that matches ``pattern`` (AssertionError with the
        output if none came in ``timeout`` s or the runner ended)."""
        with self._said:
            found = self._said.wait_for(lambda: self._match(pattern, after) or self.proc.poll() is not None, timeout)
            m = self._match(pattern, after)
        assert found and m, f"no line matching {pattern!r}:\n" + "\n".join(self.lines)
        return m

    def _match(self, pattern: str, after: int) -> re.Match | None:
        return next((m for line in self.lines[after:] for m in [re.search(pattern, line)] if m), None)

    def pid_of(self, node: str) -> int:
        """The pid of ``node``'s latest process."""
        pids = [int(m.group(1)) for line in self.lines for m in [re.search(rf"started {node} \(pid (\d+)\)", line)] if m]
        assert pids, f"{node} was not started: {self.lines}"
        return pids[-1]

    def finish(self, timeout=60):
        code = self.proc.wait(timeout)
        return code, "\n".join(self.lines)


@pytest.fixture
def sim_graph(tmp_path, request):
    """The sim graph under f2p-bringup; a test's ``runner_args`` marker adds arguments."""
    marker = request.node.get_closest_marker("runner_args")
    runner = Runner(tmp_path, *(marker.args if marker else ()))
    try:
        assert runner.running.wait(120), "\n".join(runner.lines)
        yield runner, tmp_path
    finally:
        if runner.proc.poll() is None:
            runner.proc.send_signal(signal.SIGINT)
            runner.proc.wait(60)
