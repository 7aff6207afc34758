"""What kind of official-code fixture a folder holds, decided from its content (see parity.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def is_model_fixture(folder: Path) -> bool:
    config = read_json(folder / "config.json")
    ctor = str(config.get("load_model_instantiates", config.get("ckpt_args_model", "")))
    return "ctor_kwargs" in config and ctor.startswith("AsymmetricCroCo3DStereo")


def is_alignment_fixture(folder: Path) -> bool:
    meta = read_json(folder / "meta.json")
    calls = " ".join(meta.get("pco_calls", []) + meta.get("pairviewer_calls", []))
    return "global_aligner" in calls
