"""posecrafter-parity FIXTURE_DIR...: compare our models against official-code fixtures.

The fixtures shipped with the repository are in test/data/golden/ (one folder per model
and code path; each folder's README gives the official call that produced it):
  posecrafter-parity test/data/golden/*
Any folder in the same format works (tiny config + state dict + inputs + outputs, or a
folder of *.manifest.json): each model family decides which folders it owns.
Prints one line per output with its max abs difference and PASS/FAIL; exits 1 on any FAIL,
2 when no checker recognises the folder."""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

# Each checker module exposes claims(folder) -> bool and check_fixture(folder) -> [ParityResult].
CHECKERS = (
    "posecrafter_ros.models.lvdm.parity",
    "posecrafter_ros.models.dust3r.parity",
)


def run(folder: Path) -> int:
    results = []
    claimed = False
    for name in CHECKERS:
        checker = importlib.import_module(name)
        if checker.claims(folder):
            claimed = True
            results.extend(checker.check_fixture(folder))
    if not claimed:
        print(
            f"ERROR: {folder} is not a fixture folder any checker recognises "
            "(the repository's fixtures: test/data/golden/*)",
            file=sys.stderr,
        )
        return 2
    width = max((len(r.name) for r in results), default=10)
    for r in results:
        verdict = "PASS" if r.passed else "FAIL"
        extra = f"  {r.detail}" if r.detail else ""
        print(
            f"{r.name:<{width}}  max|diff| = {r.max_abs_diff:.3e}  tol = {r.tolerance:.1e}  {verdict}{extra}"
        )
    failed = sum(not r.passed for r in results)
    print(f"{len(results) - failed}/{len(results)} passed")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="posecrafter-parity",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "fixtures", type=Path, nargs="+", help="fixture folder(s), e.g. test/data/golden/*"
    )
    args = parser.parse_args(argv)
    codes = []
    for folder in args.fixtures:
        if not folder.is_dir():
            print(f"ERROR: {folder} is not a directory", file=sys.stderr)
            codes.append(2)
            continue
        print(f"== {folder}")
        codes.append(run(folder))
    return max(codes)


if __name__ == "__main__":
    sys.exit(main())
