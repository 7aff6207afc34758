"""The generative bridge on a pool of Ray actors that several nodes (robots) share.

A node keeps its direct path in-process and hands only the bridge (candidates -> FMS ->
multi-view pose, `Pipeline.run_bridge`) to the pool, whose actors hold the generative models
on their GPUs. The pool is `pool_size` named, detached actors in a Ray namespace:

    posecrafter-bridge-<profile>-<hash of profile and overrides>-<i>

The first node to start creates them; every later node with the same pipeline configuration
attaches to the same actors (they outlive the nodes and keep their models loaded). Each actor
computes one bridge at a time and refuses a second at once, so a node tries the actors in
turn and answers BUSY when all refuse. While it waits, the node mirrors the actor's stage
progress into the request's RunContext (action feedback); a cancel or an exhausted budget is
passed to the actor, whose RunContext stops between steps. An actor that dies mid-request
gives INTERNAL_ERROR; Ray restarts it (and it reloads its models) while the node keeps serving.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import logging
import os
import socket
import threading
import uuid
from collections.abc import Sequence

from .core.types import (
    BudgetExceeded,
    Canceled,
    Diagnostics,
    EstimateResult,
    Keyframe,
    RunContext,
    Status,
)
from .pipeline import STAGE_SPANS, Pipeline, failure_result

DEFAULT_NAMESPACE = "posecrafter"
# Calls an actor serves at once: its one bridge, plus refusals, progress and cancel calls.
ACTOR_CONCURRENCY = 16
# How long a canceled request waits for its actor to stop (it stops between steps).
CANCEL_GRACE_SEC = 10.0
PROGRESS_TIMEOUT_SEC = 2.0


class BridgeWorker:
    """A Ray actor holding one pipeline (the models) and running one bridge at a time."""

    def __init__(self, profile: str, overrides: dict):
        self.pipeline = Pipeline.from_profile(profile, overrides).load()
        self.where = f"Ray worker {socket.gethostname()} pid {os.getpid()}"  # in its answers
        self._slot = threading.Lock()
        self._running: dict[str, RunContext] = {}
        self._progress: dict[str, tuple[str, float]] = {}

    def describe(self) -> dict[str, str]:
        return self.pipeline.describe()

    def run_bridge(
        self,
        request_id: str,
        a: Keyframe,
        b: Keyframe,
        sequence: Sequence[Keyframe] | None,
        budget_sec: float,
        diag: Diagnostics,
    ) -> EstimateResult:
        """The bridge on this actor, or BUSY at once when it is computing another one."""
        if not self._slot.acquire(blocking=False):
            return EstimateResult(Status.BUSY, "bridge worker busy")
        try:

            def record(stage: str, stage_progress: float, _overall: float) -> None:
                self._progress[request_id] = (stage, stage_progress)

            ctx = RunContext(budget_sec, record)
            self._running[request_id] = ctx
            try:
                result = self.pipeline.run_bridge(a, b, ctx, diag, sequence)
            except Exception as err:  # Canceled, BudgetExceeded or a stage's failure
                result = failure_result(err, ctx.stage)
            result.message += f" [{self.where}]"
            result.diagnostics = diag
            return result
        finally:
            self._running.pop(request_id, None)
            self._progress.pop(request_id, None)
            self._slot.release()

    def progress(self, request_id: str) -> tuple[str, float] | None:
        """(stage, progress within it) of a running request, None before it starts."""
        return self._progress.get(request_id)

    def cancel(self, request_id: str) -> None:
        ctx = self._running.get(request_id)
        if ctx is not None:
            ctx.cancel()


def import_ray():
    try:
        import ray
    except ImportError as err:
        raise RuntimeError(
            f"bridge.executor 'ray' needs Ray: pip install 'posecrafter_ros[ray]' ({err})"
        ) from None
    return ray


def pool_name(profile: str, overrides: dict) -> str:
    """Name prefix of the actors serving one pipeline configuration."""
    conf = json.dumps({"profile": profile, "overrides": overrides}, sort_keys=True, default=str)
    digest = hashlib.sha256(conf.encode()).hexdigest()[:10]
    return f"posecrafter-bridge-{profile.replace('/', '_')}-{digest}"


class RayBridgePool:
    """`Pipeline.remote_bridge` that runs the bridge on a pool of BridgeWorker actors.

    address: head of a running cluster ("HOST:PORT", or "auto" for the one on this machine);
    "" starts a private local Ray instance, stopped by `close`.
    """

    def __init__(
        self,
        profile: str,
        overrides: dict,
        pool_size: int = 1,
        address: str = "",
        namespace: str = DEFAULT_NAMESPACE,
        gpus_per_worker: float = 0.0,
        poll_sec: float = 0.1,
    ):
        if pool_size < 1:
            raise ValueError(f"bridge.pool_size must be at least 1, got {pool_size}")
        self._ray = ray = import_ray()
        self.address = address
        self.poll_sec = poll_sec
        if address:
            ray.init(address=address, namespace=namespace, logging_level=logging.WARNING)
        else:  # a private instance on loopback: nothing outside this machine needs it
            ray.init(
                address="local",
                namespace=namespace,
                include_dashboard=False,
                logging_level=logging.WARNING,
                _node_ip_address="127.0.0.1",
            )
        self.name = pool_name(profile, overrides)
        worker = ray.remote(BridgeWorker)
        self.actors = [
            worker.options(
                name=f"{self.name}-{i}",
                lifetime="detached",
                get_if_exists=True,
                max_concurrency=ACTOR_CONCURRENCY,
                max_restarts=-1,
                max_task_retries=0,
                num_cpus=1,
                num_gpus=gpus_per_worker,
            ).remote(profile, overrides)
            for i in range(pool_size)
        ]
        self._turn = itertools.count()
        self._states: dict[str, str] = {}

    def wait_ready(self, timeout_sec: float) -> dict[str, str]:
        """Block until every actor has loaded its pipeline (or `timeout_sec`); their stages."""
        ray = self._ray
        refs = [actor.describe.remote() for actor in self.actors]
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=timeout_sec)
        states = {"bridge_pool": f"{len(ready)} of {len(refs)} Ray workers ready ({self.name})"}
        if ready:
            try:
                states.update(ray.get(ready[0]))
            except ray.exceptions.RayError as err:
                states["bridge_pool"] += f"; a worker failed to start: {err}"
        self._states = states
        return states

    def describe(self) -> dict[str, str]:
        return dict(self._states) or {"bridge_pool": f"Ray workers starting ({self.name})"}

    def close(self) -> None:
        """Disconnect; the actors stay for the other nodes (a private local instance stops)."""
        self._ray.shutdown()

    def run_bridge(
        self,
        a: Keyframe,
        b: Keyframe,
        ctx: RunContext,
        diag: Diagnostics,
        sequence: Sequence[Keyframe] | None,
    ) -> EstimateResult:
        ray = self._ray
        request_id = uuid.uuid4().hex
        first = next(self._turn) % len(self.actors)
        for actor in self.actors[first:] + self.actors[:first]:
            ctx.check()
            remaining = ctx.remaining()
            budget = 0.0 if remaining is None else max(remaining, 1e-3)
            ref = actor.run_bridge.remote(request_id, a, b, sequence, budget, diag)
            try:
                self._wait(actor, ref, request_id, ctx)
                result = ray.get(ref)
            except ray.exceptions.RayActorError as err:
                return EstimateResult(
                    Status.INTERNAL_ERROR,
                    f"the bridge worker died mid-request ({type(err).__name__}); Ray restarts "
                    "it, retry",
                )
            if result.status != Status.BUSY:
                for field in dataclasses.fields(Diagnostics):
                    setattr(diag, field.name, getattr(result.diagnostics, field.name))
                return result
        return EstimateResult(
            Status.BUSY,
            f"all {len(self.actors)} bridge workers of the Ray pool are busy; retry later",
        )

    def _wait(self, actor, ref, request_id: str, ctx: RunContext) -> None:
        """Until `ref` is done, mirror the actor's progress into `ctx`; on a cancel or an
        exhausted budget, stop the remote work and raise Canceled / BudgetExceeded."""
        ray = self._ray
        while not ray.wait([ref], timeout=self.poll_sec)[0]:
            try:
                try:
                    state = ray.get(actor.progress.remote(request_id), timeout=PROGRESS_TIMEOUT_SEC)
                except ray.exceptions.GetTimeoutError:  # a slow answer only delays feedback
                    state = None
                if state is not None:
                    stage, stage_progress = state
                    if stage != ctx.stage:
                        ctx.begin_stage(stage, *STAGE_SPANS[stage])
                    ctx.report(stage_progress)
                ctx.check()
            except (Canceled, BudgetExceeded) as err:
                actor.cancel.remote(request_id)
                if not ray.wait([ref], timeout=CANCEL_GRACE_SEC)[0]:
                    outcome = f"the remote work did not stop within {CANCEL_GRACE_SEC:g} s"
                else:
                    try:
                        remote = ray.get(ref)
                        outcome = f"the remote work ended {remote.status.name}: {remote.message}"
                    except ray.exceptions.RayError as failed:
                        outcome = f"the remote work failed: {type(failed).__name__}"
                raise type(err)(f"{err} ({outcome})") from None
