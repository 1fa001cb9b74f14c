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

    def __init__(self, tmp_path, *args, robot="sim"):
        env = {**os.environ, "ROS_HOME": str(tmp_path / "ros_home")}
        self.proc = subprocess.Popen([sys.executable, "-m", "f2p_bringup.runner", robot, "--log-dir",
                                      str(tmp_path / "logs"), *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, env=env)
        self.lines, self.running = [], threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line.rstrip())
            if "graph running" in line:
                self.running.set()

    def pid_of(self, node: str) -> int:
        for line in self.lines:
            m = re.search(rf"started {node} \(pid (\d+)\)", line)
            if m:
                return int(m.group(1))
        raise AssertionError(f"{node} was not started: {self.lines}")

    def finish(self, timeout=60):
        code = self.proc.wait(timeout)
        return code, "\n".join(self.lines)


@pytest.fixture
def sim_graph(tmp_path):
    runner = Runner(tmp_path)
    try:
        assert runner.running.wait(120), "\n".join(runner.lines)
        yield runner, tmp_path
    finally:
        if runner.proc.poll() is None:
            runner.proc.send_signal(signal.SIGINT)
            runner.proc.wait(60)
