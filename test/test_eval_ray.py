"""posecrafter-eval on a real Ray cluster (a head and a worker node, separate processes on
loopback): the same per-pair results as a local run, each actor builds its rows once and
both actors get pairs, a cluster too small for the request fails at once."""

from __future__ import annotations

import csv
import json
import os
import sys
from pathlib import Path

import pytest

from posecrafter_ros.cli import eval as eval_cli

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
TEMPLE = REPO / "test" / "data" / "eval" / "templering"
# Four pairs (one per rotation bin), three rows: the pipeline row builds a Pipeline per actor.
ARGS = [
    "--data", str(TEMPLE), "--rows", "baseline,direct,pipeline:cpu", "--pairs-per-bin", "1",
    "--seed", "3", "--max-side", "320", "--no-progress",
]  # fmt: skip


def pair_lines(out: Path) -> list[dict]:
    """pairs.csv without the timing column (the only one a different machine may change)."""
    with (out / "pairs.csv").open() as f:
        return [{k: v for k, v in line.items() if k != "seconds"} for line in csv.DictReader(f)]


def summary_without_timing(out: Path) -> dict:
    summary = json.loads((out / "summary.json").read_text())
    for body in summary["rows"].values():
        for stats in body["bins"].values():
            stats.pop("sec_per_pair")
    summary["meta"].pop("command")
    return summary


def test_ray_evaluation_gives_the_local_per_pair_results(cluster, tmp_path):
    local, remote = tmp_path / "local", tmp_path / "ray"
    assert eval_cli.main([*ARGS, "--out", str(local)]) == 0
    ray_args = ["--executor", "ray", "--ray-address", cluster.address, "--workers", "2"]
    assert eval_cli.main([*ARGS, "--out", str(remote), *ray_args]) == 0
    assert not ray.is_initialized(), "the executor must disconnect from the cluster"

    expected = pair_lines(local)
    assert len(expected) == 4 * 3
    assert {line["row"] for line in expected} == {"baseline", "direct", "pipeline:cpu"}
    assert pair_lines(remote) == expected  # same pairs, same order, same numbers and messages
    assert summary_without_timing(remote) == summary_without_timing(local)
    for name in ("results.md", "summary.csv", "error_cdf.png"):
        assert (remote / name).stat().st_size > 0


class ProbeRow:
    """Answers nothing; its message says which process and which row instance computed it."""

    name = "probe"
    needs_between = False
    skip_reason = None
    instances = 0

    def __init__(self):
        ProbeRow.instances += 1
        self.instance = ProbeRow.instances
        self.calls = 0

    def estimate(self, a, b, between=None):
        from posecrafter_ros.eval.rows import RowOutcome

        self.calls += 1
        return RowOutcome(None, None, f"{os.getpid()} {self.instance} {self.calls}", "probe")


def make_probe_rows():
    return [ProbeRow()], {}


def test_each_worker_builds_its_rows_once_and_pairs_spread_over_workers(cluster, tmp_path):
    from ray import cloudpickle

    from posecrafter_ros.eval.executors import RayExecutor, run_evaluation
    from posecrafter_ros.eval.loaders import load_dataset
    from posecrafter_ros.eval.runner import dataset_items

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers cannot import tests
    dataset = load_dataset(TEMPLE)
    items = dataset_items(dataset, dataset.sample_pairs(3, seed=0), max_side=64)
    assert len(items) >= 6
    with RayExecutor(make_probe_rows, items, workers=2, address=cluster.address) as executor:
        assert executor.row_names == ["probe"] and executor.skipped == {}
        results = run_evaluation(executor, tmp_path / "pairs.csv", progress=False)
    assert [r.pair for r in results] == [item.pair.name for item in items]  # item order
    calls_by_process: dict[str, list[int]] = {}
    for result in results:
        pid, instance, calls = result.message.split()
        assert instance == "1", "a worker built its rows more than once"
        calls_by_process.setdefault(pid, []).append(int(calls))
    assert len(calls_by_process) == 2, "both workers must get pairs"
    assert os.getpid() not in map(int, calls_by_process)
    for calls in calls_by_process.values():
        assert sorted(calls) == list(range(1, len(calls) + 1))
    assert len(pair_lines(tmp_path)) == len(items)


def test_a_cluster_without_the_gpus_asked_for_fails_at_once(cluster, tmp_path, capsys):
    args = [*ARGS, "--out", str(tmp_path), "--executor", "ray", "--ray-address", cluster.address]
    assert eval_cli.main([*args, "--workers", "2", "--gpus-per-worker", "1"]) == 2
    assert "need 2 GPU, the Ray cluster has 0" in capsys.readouterr().err
    assert not ray.is_initialized()


def test_without_an_address_a_local_ray_instance_is_started_and_stopped(tmp_path):
    args = [*ARGS, "--max-pairs", "2", "--rows", "direct", "--out", str(tmp_path)]
    assert eval_cli.main([*args, "--executor", "ray", "--workers", "1"]) == 0
    assert not ray.is_initialized()
    assert len(pair_lines(tmp_path)) == 2
