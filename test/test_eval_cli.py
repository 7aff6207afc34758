"""posecrafter-eval end to end: rows side by side, the summary.json contract, skipped rows."""

from __future__ import annotations

import csv
import importlib.machinery
import json
import os
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from posecrafter_ros.cli import eval as eval_cli
from posecrafter_ros.core.types import Diagnostics, EstimateResult, RelativePose, Status
from posecrafter_ros.eval.datasets import ROTATION_BINS, rotation_bin
from posecrafter_ros.eval.loaders import load_dataset
from posecrafter_ros.eval.metrics import FAILED_DEG

REPO = Path(__file__).resolve().parent.parent
TEMPLE = REPO / "test" / "data" / "eval" / "templering"
METRICS = {
    "n",
    "MRE",
    "MTE",
    "R@5",
    "R@15",
    "R@30",
    "T@5",
    "T@15",
    "T@30",
    "AUC@30",
    "sec_per_pair",
    "inside95",
}


def check_contract(summary: dict, rows: list[str]) -> None:
    assert list(summary["rows"]) == rows
    for body in summary["rows"].values():
        assert "all" in body["bins"]
        assert set(body["bins"]) <= {"all", *ROTATION_BINS}
        for stats in body["bins"].values():
            assert set(stats) == METRICS
        assert body["bins"]["all"]["n"] == sum(
            s["n"] for b, s in body["bins"].items() if b != "all"
        )


def test_cli_module_runs_baseline_and_direct_and_writes_every_report_file(tmp_path):
    out = tmp_path / "report"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "posecrafter_ros.cli.eval",
            "--data",
            str(TEMPLE),
            "--rows",
            "baseline,direct",
            "--out",
            str(out),
            "--pairs-per-bin",
            "2",
            "--seed",
            "1",
            "--max-side",
            "320",
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    check_contract(summary, ["baseline", "direct"])
    expected = load_dataset(TEMPLE).sample_pairs(2, seed=1)
    assert summary["rows"]["baseline"]["bins"]["all"]["n"] == len(expected)
    with (out / "pairs.csv").open() as f:
        lines = list(csv.DictReader(f))
    assert len(lines) == 2 * len(expected)
    assert {ln["pair"] for ln in lines} == {p.name for p in expected}
    # A failed pair is kept, at 180°.
    for line in lines:
        if line["success"] == "False":
            assert float(line["rotation_error_deg"]) == FAILED_DEG
    # Trust columns: the direct row returns a covariance with every pose, the baseline none.
    for line in lines:
        if line["row"] == "baseline" or line["success"] == "False":
            assert line["rotation_sigma_deg"] == line["rotation_mahalanobis2"] == ""
        else:
            assert float(line["rotation_sigma_deg"]) > 0.0
            assert float(line["rotation_mahalanobis2"]) >= 0.0
    direct_all = summary["rows"]["direct"]["bins"]["all"]
    answered = [ln for ln in lines if ln["row"] == "direct" and ln["rotation_mahalanobis2"]]
    inside = [float(ln["rotation_mahalanobis2"]) < 7.8147 for ln in answered]
    assert direct_all["inside95"] == pytest.approx(sum(inside) / len(inside))
    assert summary["rows"]["baseline"]["bins"]["all"]["inside95"] is None
    assert (out / "error_cdf.png").stat().st_size > 10_000
    results_md = (out / "results.md").read_text()
    assert "| baseline | all |" in results_md and "in 95%" in results_md
    assert "row,bin,n,MRE" in (out / "summary.csv").read_text()


def _gt_poses():
    """stamp_ns -> (R_w2c, t_w2c) of the templeRing views, stamped as the runner does."""
    views = load_dataset(TEMPLE).views
    return {(i + 1) * 100_000_000: (v.R_w2c, v.t_w2c) for i, v in enumerate(views)}


def _perfect_result(a, b) -> EstimateResult:
    """The exact answer in the core convention: B in A, p_A = R p_B + t."""
    gt = _gt_poses()
    (Ra, ta), (Rb, tb) = gt[a.stamp_ns], gt[b.stamp_ns]
    R_0to1, t_0to1 = Rb @ Ra.T, tb - Rb @ Ra.T @ ta
    pose = RelativePose(R_0to1.T, -R_0to1.T @ t_0to1, np.eye(6), False)
    return EstimateResult(Status.SUCCESS, "stub", pose, Diagnostics(path="direct"))


@pytest.fixture
def stub_pipeline(monkeypatch):
    """A stand-in pipeline / core.oracle with the lead's entry points, answering exactly."""
    calls = {"profiles": [], "oracle_frames": [], "options": []}

    class Pipeline:
        def __init__(self, sequence=None):
            self.sequence = sequence

        @classmethod
        def from_profile(cls, name_or_path, overrides=None):
            calls["profiles"].append(name_or_path)
            return cls((overrides or {}).get("oracle_sequence"))

        def estimate(self, a, b, options=None, ctx=None):
            calls["options"].append(options)
            if self.sequence is not None:
                stamps = [kf.stamp_ns for kf in self.sequence]
                assert all(a.stamp_ns < s < b.stamp_ns for s in stamps)
                calls["oracle_frames"].append(len(stamps))
            if a.stamp_ns == 100_000_000:  # every pair from view 0 fails, like a real failure
                return EstimateResult(Status.INSUFFICIENT_OVERLAP, "stub failure")
            return _perfect_result(a, b)

    pipeline_module = types.ModuleType("posecrafter_ros.pipeline")
    pipeline_module.Pipeline = Pipeline
    oracle_module = types.ModuleType("posecrafter_ros.core.oracle")
    oracle_module.__spec__ = importlib.machinery.ModuleSpec("posecrafter_ros.core.oracle", None)
    monkeypatch.setitem(sys.modules, "posecrafter_ros.pipeline", pipeline_module)
    monkeypatch.setitem(sys.modules, "posecrafter_ros.core.oracle", oracle_module)
    return calls


def test_pipeline_and_oracle_rows_use_the_pipeline_entry_points(tmp_path, stub_pipeline):
    out = tmp_path / "report"
    code = eval_cli.main(
        [
            "--data",
            str(TEMPLE),
            "--rows",
            "pipeline:tiny,oracle",
            "--out",
            str(out),
            "--pairs-per-bin",
            "3",
            "--no-progress",
        ]
    )
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    check_contract(summary, ["pipeline:tiny", "oracle"])
    assert "tiny" in stub_pipeline["profiles"] and "cpu" in stub_pipeline["profiles"]
    assert any(n > 0 for n in stub_pipeline["oracle_frames"])
    assert any(o.force_bridge for o in stub_pipeline["options"])
    with (out / "pairs.csv").open() as f:
        lines = list(csv.DictReader(f))
    for line in lines:
        if line["pair"].startswith("templeR0001-"):
            assert float(line["rotation_error_deg"]) == FAILED_DEG
            assert "INSUFFICIENT_OVERLAP" in line["message"]
        else:  # exact answers come out exact: the B-in-A -> 0to1 conversion is right
            assert float(line["rotation_error_deg"]) < 1e-4
            assert float(line["translation_error_deg"]) < 1e-3
    failed = sum(ln["pair"].startswith("templeR0001-") for ln in lines) // 2
    assert summary["rows"]["oracle"]["bins"]["all"]["R@5"] == pytest.approx(
        1 - failed / (len(lines) // 2)
    )


def test_force_bridge_makes_pipeline_rows_bridge_every_pair(tmp_path, stub_pipeline):
    def run(*extra):
        stub_pipeline["options"].clear()
        out = tmp_path / f"report{len(extra)}"
        args = ["--data", str(TEMPLE), "--rows", "pipeline:tiny", "--out", str(out)]
        assert eval_cli.main(args + ["--pairs-per-bin", "2", "--no-progress", *extra]) == 0
        return json.loads((out / "summary.json").read_text())["meta"]

    meta = run()
    assert stub_pipeline["options"] and not any(o.force_bridge for o in stub_pipeline["options"])
    assert meta["force_bridge"] is False
    meta = run("--force-bridge")
    assert stub_pipeline["options"] and all(o.force_bridge for o in stub_pipeline["options"])
    assert meta["force_bridge"] is True


def test_rows_without_their_code_are_skipped_with_a_reason(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "posecrafter_ros.pipeline", None)  # import fails
    out = tmp_path / "report"
    code = eval_cli.main(
        [
            "--data",
            str(TEMPLE),
            "--rows",
            "direct,pipeline:cpu,oracle",
            "--out",
            str(out),
            "--pairs-per-bin",
            "1",
            "--bins",
            "0-50",
            "--no-progress",
            "--skip-unavailable",
        ]
    )
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary["rows"]) == ["direct"]
    assert "posecrafter_ros.pipeline is not importable" in summary["skipped"]["pipeline:cpu"]
    assert "oracle" in summary["skipped"]
    assert "`pipeline:cpu` skipped" in (out / "results.md").read_text()


def test_max_pairs_keeps_every_bin_represented():
    pairs = load_dataset(TEMPLE).sample_pairs(10)
    capped = eval_cli.cap_pairs(pairs, 4)
    assert len(capped) == 4
    assert len({rotation_bin(p.rotation_deg) for p in capped}) == 4


def test_bad_arguments_are_reported_not_raised(tmp_path, capsys):
    assert eval_cli.main(["--data", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "layout not recognised" in capsys.readouterr().err
    assert (
        eval_cli.main(["--data", str(TEMPLE), "--rows", "magic", "--out", str(tmp_path / "o")]) == 2
    )
    assert "unknown row 'magic'" in capsys.readouterr().err


def test_evaluation_imports_neither_ros_nor_torch():
    """The layers point one way: evaluation without a live node needs no rclpy, and the
    classical rows start without torch."""
    code = (
        "import sys\n"
        "import posecrafter_ros.cli.eval, posecrafter_ros.ros.bag, posecrafter_ros.eval.bag\n"
        "import posecrafter_ros.eval.runner, posecrafter_ros.eval.report\n"
        "print(sorted(m for m in ('rclpy', 'torch', 'rosbags', 'matplotlib') if m in sys.modules))"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_resume_continues_a_run_that_died(tmp_path):
    """A run that dies leaves the pairs it finished in pairs.csv; --resume keeps them (not
    computed again) and computes only the rest; the report equals an uninterrupted run's."""
    from posecrafter_ros.eval.executors import LocalExecutor, run_evaluation
    from posecrafter_ros.eval.report import PairsCsv, read_pairs_csv
    from posecrafter_ros.eval.runner import dataset_items

    args = [
        "--data", str(TEMPLE), "--rows", "baseline,direct", "--pairs-per-bin", "2",
        "--seed", "1", "--max-side", "320", "--no-progress",
    ]  # fmt: skip
    full, resumed = tmp_path / "full", tmp_path / "resumed"
    assert eval_cli.main([*args, "--out", str(full)]) == 0
    expected = read_pairs_csv(full / "pairs.csv")
    assert len(expected) >= 6

    class Dies(RuntimeError):
        pass

    original_run = LocalExecutor.run

    def run_then_die(self, indices):
        for finished, result in enumerate(original_run(self, indices)):
            if finished == 2:
                raise Dies("the machine went down")
            yield result

    dataset = load_dataset(TEMPLE)
    items = dataset_items(dataset, dataset.sample_pairs(2, seed=1), 320)
    make_rows = lambda: eval_cli.build_rows(["baseline", "direct"], "sift")  # noqa: E731
    executor = LocalExecutor(make_rows, items)
    executor.run = run_then_die.__get__(executor)
    with pytest.raises(Dies), executor:
        run_evaluation(executor, resumed / "pairs.csv", progress=False)
    partial = read_pairs_csv(resumed / "pairs.csv")
    assert [r.pair for r in partial] == [r.pair for r in expected[:4]]  # two whole pairs
    # Mark the finished pairs: a recomputed pair would lose the mark.
    for result in partial:
        result.message = "kept from the first run"
    with PairsCsv(resumed / "pairs.csv") as log:
        log.write(partial)
    assert eval_cli.main([*args, "--out", str(resumed), "--resume"]) == 0
    final = read_pairs_csv(resumed / "pairs.csv")
    assert [r.message for r in final[:4]] == ["kept from the first run"] * 4
    assert all(r.message != "kept from the first run" for r in final[4:])

    def numbers(results):
        return [(r.row, r.pair, r.rotation_error_deg, r.translation_error_deg) for r in results]

    assert numbers(final) == numbers(expected)
    summary = json.loads((resumed / "summary.json").read_text())
    assert summary["rows"]["direct"]["bins"]["all"]["n"] == len(expected) // 2


def test_pairs_csv_round_trips_the_trust_columns(tmp_path):
    """--resume reads pairs.csv back: the trust columns keep their numbers, empty stays None."""
    from posecrafter_ros.eval.report import PairsCsv, read_pairs_csv
    from posecrafter_ros.eval.runner import PairResult

    written = [
        PairResult("direct", "a-b", "0-50", 31.0, 0.2, 0.1, True, 0.1, "direct", "ok", 0.7, 1.3),
        PairResult(
            "direct", "a-c", "90-180", 130.0, 180.0, 180.0, False, 0.1, "", "no", None, None
        ),
    ]
    with PairsCsv(tmp_path / "pairs.csv") as log:
        log.write(written)
    assert read_pairs_csv(tmp_path / "pairs.csv") == written
