"""A real Ray cluster of separate processes on loopback, for the tests: a head node and one
worker node, each a `ray start --block` in its own process group, every port chosen free and
the session files in a private temp dir (other Ray users on this machine are not touched).
Stopped by process group; `stop` then checks that none of its processes is left."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

RAY = Path(sys.executable).parent / "ray"
# `ray start` for a worker node, with the head address used as given (loopback stays loopback).
WORKER_NODE = (
    "import ray._private.services as services; services.resolve_ip_for_localhost = str; "
    "from ray.scripts.scripts import main; main()"
)


def free_ports(count: int) -> list[int]:
    sockets = []
    for _ in range(count):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        sockets.append(s)
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


class LocalRayCluster:
    def __init__(self, head_cpus: int = 1, worker_cpus: int = 1):
        self.head_cpus, self.worker_cpus = head_cpus, worker_cpus
        self.temp_dir = tempfile.mkdtemp(prefix="rayt", dir="/tmp")  # socket paths must be short
        self.procs: list[subprocess.Popen] = []
        self.address = ""

    def _node_args(self, cpus: int) -> list[str]:
        node_manager, object_manager, agent_grpc, agent_http, metrics, runtime_env, lo = free_ports(
            7
        )
        return [
            "--block",
            "--node-ip-address=127.0.0.1",
            f"--num-cpus={cpus}",
            "--num-gpus=0",
            "--disable-usage-stats",
            f"--node-manager-port={node_manager}",
            f"--object-manager-port={object_manager}",
            f"--dashboard-agent-grpc-port={agent_grpc}",
            f"--dashboard-agent-listen-port={agent_http}",
            f"--metrics-export-port={metrics}",
            f"--runtime-env-agent-port={runtime_env}",
            f"--min-worker-port={lo}",
            f"--max-worker-port={lo + 40}",
        ]

    def _spawn(self, command: list[str], log_name: str, env: dict[str, str] | None = None) -> None:
        log = open(Path(self.temp_dir) / log_name, "w")
        self.procs.append(
            subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                env=env,
            )
        )  # fmt: skip

    def start(self, timeout: float = 120.0) -> str:
        (port,) = free_ports(1)
        self.address = f"127.0.0.1:{port}"
        head = [
            "--head",
            f"--port={port}",
            "--include-dashboard=false",
            f"--temp-dir={self.temp_dir}",
            *self._node_args(self.head_cpus),
        ]
        self._spawn([str(RAY), "start", *head], "head.log")
        self._wait_started("head.log", timeout)
        # `ray start --address` refuses to join with RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 (the
        # tests' loopback setting, see conftest.py) and otherwise rewrites a loopback head
        # address to this machine's outward one; the worker node keeps the address as given.
        join = [sys.executable, "-c", WORKER_NODE, "start", f"--address={self.address}"]
        env = dict(os.environ, RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="1")
        self._spawn([*join, *self._node_args(self.worker_cpus)], "worker.log", env)
        self._wait_started("worker.log", timeout)
        return self.address

    def _wait_started(self, log_name: str, timeout: float) -> None:
        """Until `ray start` reports its node up (it prints this once the node is registered)."""
        log = Path(self.temp_dir) / log_name
        deadline = time.monotonic() + timeout
        while "Ray runtime started" not in log.read_text():
            if any(proc.poll() is not None for proc in self.procs):
                raise RuntimeError(f"ray start exited early:\n{self.logs()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"Ray node not up within {timeout} s:\n{self.logs()}")
            time.sleep(0.2)

    def logs(self) -> str:
        return "\n".join(p.read_text() for p in sorted(Path(self.temp_dir).glob("*.log")))

    def processes(self) -> list[psutil.Process]:
        """Every live process of this cluster: the `ray start` processes and their descendants
        (raylet, GCS, agents, the workers that run actors), and any process left in their
        process groups or naming the session dir."""
        groups = {p.pid for p in self.procs}
        found: dict[int, psutil.Process] = {}
        for proc in self.procs:
            if proc.poll() is not None:  # reaped: its pid may already belong to someone else
                continue
            try:
                root = psutil.Process(proc.pid)
                for member in [root, *root.children(recursive=True)]:
                    found[member.pid] = member
            except psutil.Error:
                continue
        for proc in psutil.process_iter(["cmdline"]):
            try:
                cmdline = " ".join(proc.info["cmdline"] or [])
                if self.temp_dir in cmdline or os.getpgid(proc.pid) in groups:
                    found.setdefault(proc.pid, proc)
            except (psutil.Error, ProcessLookupError):
                continue
        return list(found.values())

    def stop(self) -> list[str]:
        """Stop every process of the cluster; returns the command lines of any that outlived
        their node (killed then by pid; none, when the nodes clean up after themselves)."""
        known = self.processes()
        # SIGTERM to every process of a node, then SIGKILL to what is left of the group
        # (some of Ray's agents take ~30 s to honour SIGTERM).
        for sig, grace in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 10.0)):
            for proc in reversed(self.procs):
                try:
                    os.killpg(proc.pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + grace
            while any(proc.poll() is None for proc in self.procs) and time.monotonic() < deadline:
                time.sleep(0.1)
            if all(proc.poll() is not None for proc in self.procs):
                break
        # Workers notice their raylet is gone and exit by themselves: give them a moment.
        _, alive = psutil.wait_procs(known, timeout=15)
        leftovers = []
        for proc in alive + [p for p in self.processes() if p not in alive]:
            try:
                leftovers.append(" ".join(proc.cmdline()))
                proc.kill()
            except psutil.Error:
                pass
        shutil.rmtree(self.temp_dir, ignore_errors=True)
        return leftovers
