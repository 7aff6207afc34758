"""Where an evaluation's pairs are computed: in this process, or over the actors of a Ray cluster.

Both executors take a `make_rows` factory (-> (rows, {row: reason skipped})) and the list of
EvalItems, build the rows once (the pipeline and its models stay loaded) and then yield
`(item index, [PairResult per row])` as each pair finishes. `run_evaluation` streams those
into pairs.csv, so a run that dies leaves what it finished and `resume=True` continues it.

    local  every row on every pair in this process, in order (the default)
    ray    `workers` actors, each holding its own rows (its own pipeline on its own GPU when
           `gpus_per_worker` > 0); pairs go to whichever actor is free. The cluster's nodes
           must have this package installed and the data at the same path.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from .report import PairsCsv, read_pairs_csv
from .rows import Row
from .runner import EvalItem, PairResult, evaluate_item

logger = logging.getLogger(__name__)

RowFactory = Callable[[], "tuple[list[Row], dict[str, str]]"]
EXECUTORS = ("local", "ray")
# Pairs queued on each actor: the next pair is already there when one finishes.
PAIRS_IN_FLIGHT_PER_WORKER = 2
LOOPBACK = "127.0.0.1"


class ExecutorError(RuntimeError):
    """The executor cannot run (Ray missing, a cluster too small for the workers asked for)."""


class LocalExecutor:
    """Every row on every pair in this process (today's behaviour)."""

    def __init__(self, make_rows: RowFactory, items: Sequence[EvalItem]):
        self._make_rows = make_rows
        self.items = list(items)
        self.rows: list[Row] = []
        self.skipped: dict[str, str] = {}

    def __enter__(self) -> "LocalExecutor":
        self.rows, self.skipped = self._make_rows()
        return self

    def __exit__(self, *exc) -> None:
        self.rows = []

    @property
    def row_names(self) -> list[str]:
        return [row.name for row in self.rows]

    def run(self, indices: Sequence[int]) -> Iterator[tuple[int, list[PairResult]]]:
        for index in indices:
            yield index, evaluate_item(self.items[index], self.rows)


class EvalWorker:
    """A Ray actor: builds its rows once, keeps the items, evaluates pairs by index."""

    def __init__(self, make_rows: RowFactory, items: Sequence[EvalItem]):
        self.rows, self.skipped = make_rows()
        self.items = items

    def started(self) -> tuple[list[str], dict[str, str]]:
        """(names of the rows that run, rows skipped with their reasons)."""
        return [row.name for row in self.rows], self.skipped

    def evaluate(self, index: int) -> tuple[int, list[PairResult]]:
        return index, evaluate_item(self.items[index], self.rows)


def import_ray():
    try:
        import ray
    except ImportError as err:
        raise ExecutorError(
            f"the ray executor needs Ray: pip install 'posecrafter_ros[ray]' ({err})"
        ) from None
    return ray


class RayExecutor:
    """Pairs spread over `workers` Ray actors.

    address: a running cluster ("HOST:PORT" of its head, or "auto"); None starts a local Ray
    instance for the run and stops it after. Actors that die are restarted by Ray and their
    pair is tried again once; a pair that kills its actor twice ends the run (--resume goes on).
    """

    def __init__(
        self,
        make_rows: RowFactory,
        items: Sequence[EvalItem],
        workers: int = 2,
        address: str | None = None,
        gpus_per_worker: float = 0.0,
        cpus_per_worker: float = 1.0,
    ):
        if workers < 1:
            raise ExecutorError(f"--workers must be at least 1, got {workers}")
        if gpus_per_worker < 0 or cpus_per_worker <= 0:
            raise ExecutorError(
                f"resources per worker must be positive (gpus {gpus_per_worker}, "
                f"cpus {cpus_per_worker})"
            )
        self._make_rows = make_rows
        self.items = list(items)
        self.workers = workers
        self.address = address
        self.gpus_per_worker = gpus_per_worker
        self.cpus_per_worker = cpus_per_worker
        self.row_names: list[str] = []
        self.skipped: dict[str, str] = {}
        self._actors: list = []
        self._ray = None

    def __enter__(self) -> "RayExecutor":
        ray = self._ray = import_ray()
        if self.address:
            ray.init(address=self.address, logging_level=logging.WARNING)
        else:  # "local" always starts a new instance, never joins another user's cluster
            ray.init(
                address="local",
                num_cpus=max(1, int(self.workers * self.cpus_per_worker + 0.999)),
                include_dashboard=False,
                logging_level=logging.WARNING,
                _node_ip_address=LOOPBACK,  # a private instance: nothing outside needs it
            )
        try:
            self._check_resources()
            actor_class = ray.remote(EvalWorker).options(
                num_cpus=self.cpus_per_worker,
                num_gpus=self.gpus_per_worker,
                max_restarts=1,
                max_task_retries=1,
            )
            items_ref = ray.put(self.items)
            self._actors = [
                actor_class.remote(self._make_rows, items_ref) for _ in range(self.workers)
            ]
            logger.info("%d Ray workers building their rows", self.workers)
            started = ray.get([actor.started.remote() for actor in self._actors])
        except BaseException:
            self.__exit__()
            raise
        self.row_names, self.skipped = started[0]
        return self

    def _check_resources(self) -> None:
        """Fail at once when the cluster can never place the workers (else they wait forever)."""
        total = self._ray.cluster_resources()
        for name, per_worker in (("CPU", self.cpus_per_worker), ("GPU", self.gpus_per_worker)):
            needed = self.workers * per_worker
            if needed > total.get(name, 0.0) + 1e-9:
                raise ExecutorError(
                    f"{self.workers} workers x {per_worker:g} {name} need {needed:g} {name}, "
                    f"the Ray cluster has {total.get(name, 0.0):g}"
                )

    def __exit__(self, *exc) -> None:
        if self._ray is None:
            return
        for actor in self._actors:
            self._ray.kill(actor)
        self._actors = []
        self._ray.shutdown()
        self._ray = None

    def run(self, indices: Sequence[int]) -> Iterator[tuple[int, list[PairResult]]]:
        ray = self._ray
        pending = deque(indices)
        in_flight: dict = {}  # ObjectRef -> actor computing it

        def submit(actor) -> None:
            if pending:
                in_flight[actor.evaluate.remote(pending.popleft())] = actor

        for _ in range(PAIRS_IN_FLIGHT_PER_WORKER):
            for actor in self._actors:
                submit(actor)
        while in_flight:
            (ready,), _ = ray.wait(list(in_flight), num_returns=1)
            actor = in_flight.pop(ready)
            try:
                index, results = ray.get(ready)
            except ray.exceptions.RayActorError as err:
                raise ExecutorError(
                    f"a Ray worker died twice on one pair ({err}); pairs.csv keeps the finished "
                    "pairs: run again with --resume"
                ) from err
            submit(actor)
            yield index, results


def build_executor(
    name: str,
    make_rows: RowFactory,
    items: Sequence[EvalItem],
    *,
    workers: int = 2,
    address: str | None = None,
    gpus_per_worker: float = 0.0,
):
    if name == "local":
        return LocalExecutor(make_rows, items)
    if name == "ray":
        return RayExecutor(make_rows, items, workers, address, gpus_per_worker)
    raise ExecutorError(f"unknown executor {name!r} (known: {', '.join(EXECUTORS)})")


def finished_pairs(
    pairs_csv: Path, items: Sequence[EvalItem], row_names: Sequence[str]
) -> dict[int, list[PairResult]]:
    """{item index: its results} for the pairs of an earlier run's pairs.csv that have every
    row of this run (a pair missing a row is computed again, whole)."""
    if not pairs_csv.is_file():
        return {}
    by_pair: dict[str, dict[str, PairResult]] = {}
    for result in read_pairs_csv(pairs_csv):
        by_pair.setdefault(result.pair, {})[result.row] = result
    done = {}
    for index, item in enumerate(items):
        rows = by_pair.get(item.pair.name, {})
        if all(name in rows for name in row_names):
            done[index] = [rows[name] for name in row_names]
    return done


def run_evaluation(
    executor,
    pairs_csv: Path,
    resume: bool = False,
    progress: bool = True,
) -> list[PairResult]:
    """Every pair of the (entered) executor's items, pairs.csv streamed as pairs finish.

    resume: pairs already in `pairs_csv` with every row are kept, not computed again.
    Returns the results in item order and row order, whatever order the pairs finished in.
    """
    from tqdm import tqdm

    items = executor.items
    done = finished_pairs(pairs_csv, items, executor.row_names) if resume else {}
    if done:
        logger.info("resuming: %d of %d pairs already in %s", len(done), len(items), pairs_csv)
    todo = [index for index in range(len(items)) if index not in done]
    pairs_csv.parent.mkdir(parents=True, exist_ok=True)
    with (
        PairsCsv(pairs_csv) as log,
        tqdm(total=len(todo), unit="pair", disable=not progress, desc="evaluating") as bar,
    ):
        for index in sorted(done):
            log.write(done[index])
        for index, results in executor.run(todo):
            done[index] = results
            log.write(results)
            bar.set_postfix_str(items[index].pair.name[:40])
            bar.update(1)
    return [result for index in range(len(items)) for result in done[index]]
