"""Start posecrafter_node in a child process (demo, tests, benchmarks, live replay)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path


def local_ros_env(
    domain_id: int | None = None, base: dict[str, str] | None = None
) -> dict[str, str]:
    """Environment that keeps DDS traffic on this machine, on a private domain."""
    env = dict(os.environ if base is None else base)
    env["ROS_DOMAIN_ID"] = str(domain_id if domain_id is not None else random.randint(1, 200))
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    env["ROS_LOCALHOST_ONLY"] = "1"
    return env


# Executable name (launch files, `ros2 run`) -> its module.
EXECUTABLES = {
    "posecrafter_node": "posecrafter_ros.ros.node",
    "posecrafter_lifecycle_node": "posecrafter_ros.ros.lifecycle_node",
}


class NodeProcess:
    """posecrafter_node (or another of EXECUTABLES) as a child process started with explicit
    `--ros-args`.

    The child inherits this process's environment (set ROS_DOMAIN_ID etc. before starting).
    """

    def __init__(
        self,
        ros_args: list[str],
        namespace: str = "",
        log_path: Path | None = None,
        executable: str = "posecrafter_node",
    ):
        self.namespace = namespace.rstrip("/")
        module = EXECUTABLES[executable]
        self.cmd = [sys.executable, "-m", module, "--ros-args", *ros_args]
        if namespace:
            self.cmd += ["-r", f"__ns:={namespace}"]
        self.log_path = log_path
        self._log = open(log_path, "w") if log_path else subprocess.DEVNULL
        self.proc = subprocess.Popen(
            self.cmd, stdout=self._log, stderr=subprocess.STDOUT, env=dict(os.environ)
        )

    @property
    def service(self) -> str:
        return f"{self.namespace}/posecrafter/estimate_relative_pose"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path else ""

    def stop(self, timeout: float = 15.0) -> int:
        """SIGINT (a clean rclpy shutdown), then SIGKILL if it hangs; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self._log is not subprocess.DEVNULL:
            self._log.close()
        return self.proc.returncode
