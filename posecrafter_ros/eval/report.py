"""Evaluation reports: summary.json (the public contract), CSV, Markdown and an error-CDF plot.

summary.json:
  {"rows": {ROW: {"bins": {BIN: {"n", "MRE", "MTE", "R@5", "R@15", "R@30",
                                 "T@5", "T@15", "T@30", "AUC@30", "sec_per_pair",
                                 "inside95"}}}},
   "skipped": {ROW: reason}, "meta": {...}}
ROW: baseline, direct, oracle, pipeline:<profile>; BIN: all, 0-50, 50-65, 65-90, 90-180
(a bin without pairs is absent). Errors in degrees, recalls and AUC in [0, 1]. inside95: share
of the answers that came with a covariance whose rotation error lies inside its 95% region
(chi-square, 3 dof), null when none did (pairs.csv: rotation_sigma_deg, rotation_mahalanobis2).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .metrics import FAILED_DEG
from .runner import PairResult

METRIC_KEYS = (
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
)
FILES = {
    "summary": "summary.json",
    "table_csv": "summary.csv",
    "pairs_csv": "pairs.csv",
    "table_md": "results.md",
    "cdf_png": "error_cdf.png",
}


def _format(key: str, value: float | None) -> str:
    if key == "n":
        return str(int(value))
    if key in ("MRE", "MTE"):
        return f"{value:.2f}"
    if key == "sec_per_pair":
        return f"{value:.3f}"
    if value is None:  # inside95 when no answer carried a covariance
        return "–"
    return f"{100.0 * value:.1f}"  # recalls and AUC as percentages


def markdown_table(rows: dict[str, dict]) -> str:
    """One line per (row, bin): MRE/MTE in degrees, recalls and AUC@30 in percent."""
    header = [
        "row",
        "bin",
        "n",
        "MRE°",
        "MTE°",
        "R@5",
        "R@15",
        "R@30",
        "T@5",
        "T@15",
        "T@30",
        "AUC@30",
        "s/pair",
        "in 95%",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row, body in rows.items():
        for bin_name, stats in body["bins"].items():
            cells = [row, bin_name] + [_format(k, stats[k]) for k in METRIC_KEYS]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_error_cdf(results: Sequence[PairResult], path: Path, title: str = "") -> None:
    """Cumulative share of pairs below an error, rotation and translation, one curve per row."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    rows = list(dict.fromkeys(r.row for r in results))
    for key, axis, label in (
        ("rotation_error_deg", axes[0], "rotation error (deg)"),
        ("translation_error_deg", axes[1], "translation direction error (deg)"),
    ):
        for row in rows:
            errors = np.sort([getattr(r, key) for r in results if r.row == row])
            share = np.arange(1, errors.size + 1) / errors.size
            axis.step(
                np.concatenate(([0.0], errors)),
                np.concatenate(([0.0], share)),
                where="post",
                label=f"{row} (n={errors.size})",
            )
        axis.set_xlim(0, FAILED_DEG)
        axis.set_ylim(0, 1)
        axis.set_xlabel(label)
        axis.grid(alpha=0.3)
        for threshold in (5, 15, 30):
            axis.axvline(threshold, color="grey", lw=0.5, ls=":")
    axes[0].set_ylabel("share of pairs (failures at 180°)")
    axes[1].legend(loc="lower right", fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


class PairsCsv:
    """pairs.csv written as results arrive, so a run that dies leaves what it finished
    (posecrafter-eval --resume reads it back with `read_pairs_csv`)."""

    FIELDS = list(PairResult.__dataclass_fields__)

    def __init__(self, path: Path):
        self._file = Path(path).open("w", newline="")
        self._writer = csv.DictWriter(self._file, fieldnames=self.FIELDS)
        self._writer.writeheader()

    def write(self, results: Sequence[PairResult]) -> None:
        for result in results:
            self._writer.writerow(result.as_dict())
        self._file.flush()

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> "PairsCsv":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_pairs_csv(path: Path) -> list[PairResult]:
    """The PairResults of a pairs.csv (floats round-trip exactly through their repr)."""
    types = {name: field.type for name, field in PairResult.__dataclass_fields__.items()}
    results = []
    with Path(path).open(newline="") as f:
        for line in csv.DictReader(f):
            if None in line or None in line.values():  # a line cut short when a run died
                continue
            values = {}
            for name, text in line.items():
                if types[name] in ("float", float):
                    values[name] = float(text)
                elif types[name] == "float | None":  # trust columns: empty when no pose
                    values[name] = float(text) if text else None
                elif types[name] in ("bool", bool):
                    values[name] = text == "True"
                else:
                    values[name] = text
            results.append(PairResult(**values))
    return results


def write_report(
    out_dir: str | Path,
    rows: dict[str, dict],
    results: Sequence[PairResult],
    skipped: dict[str, str] | None = None,
    meta: dict | None = None,
) -> dict[str, Path]:
    """Write every report file into `out_dir`; returns {kind: path} (see FILES)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {kind: out / name for kind, name in FILES.items()}
    summary = {"rows": rows, "skipped": dict(skipped or {}), "meta": dict(meta or {})}
    paths["summary"].write_text(json.dumps(summary, indent=1) + "\n")
    with paths["table_csv"].open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["row", "bin", *METRIC_KEYS])
        for row, body in rows.items():
            for bin_name, stats in body["bins"].items():
                writer.writerow([row, bin_name, *(stats[k] for k in METRIC_KEYS)])
    with PairsCsv(paths["pairs_csv"]) as pairs_csv:
        pairs_csv.write(results)
    notes = "".join(f"- `{row}` skipped: {reason}\n" for row, reason in (skipped or {}).items())
    title = (meta or {}).get("title", "Relative pose evaluation")
    paths["table_md"].write_text(
        f"# {title}\n\nMRE/MTE: mean rotation / translation-direction error (degrees); "
        "R@k/T@k: share of pairs under k degrees (%); AUC@30: min of the rotation and "
        "translation AUCs (%); failures count as 180°; in 95%: share of the answers with a "
        "covariance whose rotation error lies inside its 95% region (%).\n\n"
        + markdown_table(rows)
        + ("\n" + notes if notes else "")
    )
    if results:
        plot_error_cdf(results, paths["cdf_png"], title)
    else:
        paths.pop("cdf_png")
    return paths
