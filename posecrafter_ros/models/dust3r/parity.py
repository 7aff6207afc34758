"""Parity of our DUSt3R against fixtures produced by the official code (posecrafter-parity).

Recognised folders (decided from their content):
- model fixtures: config.json with `ctor_kwargs` of an AsymmetricCroCo3DStereo, a
  state_dict, inputs (view{k}_img) and outputs (pair{p}_pred{1,2}_*);
- global-alignment fixtures: meta.json with `pco_calls` (PointCloudOptimizer) and/or
  `pairviewer_calls`;
- manifest folders: one or more DUSt3R_*.manifest.json files.
Everything (sizes, pairs, iterations, learning rates) is read from the folder itself.
"""

from __future__ import annotations

from pathlib import Path

from ..parity_types import ParityResult
from .fixtures import is_alignment_fixture, is_model_fixture, read_json

# float32 forwards: the official numbers are reproduced bit for bit here; the tolerance
# leaves room for other thread counts / BLAS builds (the fixtures measured <= 2.3e-5).
FORWARD_RTOL = 1e-5


def _manifests(folder: Path) -> list[Path]:
    return sorted(folder.glob("DUSt3R_*.manifest.json"))


def claims(folder: Path) -> bool:
    folder = Path(folder)
    return is_model_fixture(folder) or is_alignment_fixture(folder) or bool(_manifests(folder))


def fixture_config(folder: Path):
    """Our config for a model fixture: official ctor kwargs + its documented DPT sizes."""
    from .config import Dust3rConfig

    config = read_json(Path(folder) / "config.json")
    return Dust3rConfig.from_ctor_kwargs(config["ctor_kwargs"], config.get("tiny_dpt_deviation"))


def load_fixture_model(folder: Path):
    """Our network with the fixture's state dict (float32, CPU, eval)."""
    from .model import load_dust3r

    return load_dust3r(Path(folder) / "state_dict.safetensors", fixture_config(folder))


def _max_abs(a, b) -> float:
    if a.shape != b.shape:
        return float("inf")
    return float((a.double() - b.double()).abs().max()) if a.numel() else 0.0


def fixture_predictions(folder: Path, dtype=None) -> tuple[list, dict]:
    """(our pairwise predictions on the fixture's pairs, the official outputs by key); the
    network in `dtype` on the CPU when given (float32 otherwise)."""
    from safetensors.torch import load_file

    from .inference import infer_pairs
    from .model import to_device_dtype

    folder = Path(folder)
    meta = read_json(folder / "meta.json")
    model = load_fixture_model(folder)
    if dtype is not None:
        model = to_device_dtype(model, "cpu", dtype)
    inputs = load_file(str(folder / "inputs.safetensors"))
    outputs = load_file(str(folder / "outputs.safetensors"))
    num_views = sum(1 for k in inputs if k.startswith("view") and k.endswith("_img"))
    views = [inputs[f"view{k}_img"] for k in range(num_views)]
    pairs = [tuple(int(v) for v in p) for p in meta["pairs"]]
    return infer_pairs(model, views, pairs), outputs


def check_model_outputs(folder: Path) -> list[ParityResult]:
    """Pairwise inference on the fixture's symmetrised pairs vs the official outputs."""
    folder = Path(folder)
    predictions, outputs = fixture_predictions(folder)
    results = []
    fields = (
        ("pred1_pts3d", "pts_i"),
        ("pred1_conf", "conf_i"),
        ("pred2_pts3d_in_other_view", "pts_j"),
        ("pred2_conf", "conf_j"),
    )
    for key, attr in fields:
        worst, scale = 0.0, 0.0
        for p, pred in enumerate(predictions):
            ref = outputs[f"pair{p}_{key}"]
            worst = max(worst, _max_abs(getattr(pred, attr), ref))
            scale = max(scale, float(ref.abs().max()))
        results.append(
            ParityResult(
                f"{folder.name}/{key}",
                worst,
                FORWARD_RTOL * max(1.0, scale),
                f"{len(predictions)} pairs, max |ref| {scale:.3g}",
            )
        )
    return results


def check_training_layout(folder: Path) -> list[ParityResult]:
    """The fixture's `manyar_*` batch: portrait views stored transposed (training layout).

    Our network always runs views in their native orientation; transposing such a view back,
    running it, and transposing its outputs into the stored layout must give the same numbers.
    """
    import torch
    from safetensors.torch import load_file

    folder = Path(folder)
    inputs = load_file(str(folder / "inputs.safetensors"))
    outputs = load_file(str(folder / "outputs.safetensors"))
    if "manyar_view1_img" not in inputs:
        return []
    model = load_fixture_model(folder)

    def native(image: torch.Tensor, true_shape: torch.Tensor) -> torch.Tensor:
        height, width = (int(v) for v in true_shape)
        return image.transpose(-1, -2) if height > width else image

    def stored(value: torch.Tensor, true_shape: torch.Tensor) -> torch.Tensor:
        height, width = (int(v) for v in true_shape)
        return value.transpose(0, 1) if height > width else value

    worst = {
        "pred1_pts3d": 0.0,
        "pred1_conf": 0.0,
        "pred2_pts3d_in_other_view": 0.0,
        "pred2_conf": 0.0,
    }
    shapes1, shapes2 = inputs["manyar_view1_true_shape"], inputs["manyar_view2_true_shape"]
    with torch.no_grad():
        for row in range(len(shapes1)):
            img1 = native(inputs["manyar_view1_img"][row], shapes1[row])[None]
            img2 = native(inputs["manyar_view2_img"][row], shapes2[row])[None]
            pred1, pred2 = model(img1, img2)
            ours = {
                "pred1_pts3d": stored(pred1["pts3d"][0], shapes1[row]),
                "pred1_conf": stored(pred1["conf"][0], shapes1[row]),
                "pred2_pts3d_in_other_view": stored(pred2["pts3d_in_other_view"][0], shapes2[row]),
                "pred2_conf": stored(pred2["conf"][0], shapes2[row]),
            }
            for key, value in ours.items():
                worst[key] = max(worst[key], _max_abs(value, outputs[f"manyar_{key}"][row]))
    return [
        ParityResult(
            f"{folder.name}/manyar_{key}",
            diff,
            FORWARD_RTOL * max(1.0, float(outputs[f"manyar_{key}"].abs().max())),
            "portrait views stored transposed",
        )
        for key, diff in worst.items()
    ]


def check_manifests(folder: Path) -> list[ParityResult]:
    """Full-size networks built on `meta`: keys, shapes and dtypes equal each manifest."""
    import torch

    from .config import Dust3rConfig
    from .model import Dust3rModel

    results = []
    for path in _manifests(Path(folder)):
        manifest = read_json(path)
        config = Dust3rConfig.from_ctor_string(
            manifest.get("instantiated_by_load_model") or manifest["ckpt_args_model_assumed"]
        )
        with torch.device("meta"):
            state = Dust3rModel(config).state_dict()
        expected = manifest["tensors"]
        missing = sorted(set(expected) - set(state))
        unexpected = sorted(set(state) - set(expected))
        wrong = [
            k
            for k, v in expected.items()
            if k in state
            and (
                list(state[k].shape) != list(v["shape"])
                or str(state[k].dtype).removeprefix("torch.") != v["dtype"]
            )
        ]
        mismatches = len(missing) + len(unexpected) + len(wrong)
        detail = (
            (
                f"{len(state)} tensors; missing {missing[:3]}, unexpected {unexpected[:3]}, "
                f"shape/dtype {wrong[:3]}"
            )
            if mismatches
            else f"{len(state)} tensors"
        )
        results.append(ParityResult(f"manifest/{path.name}", float(mismatches), 0.0, detail))
    return results


def check_fixture(folder: Path) -> list[ParityResult]:
    folder = Path(folder)
    results: list[ParityResult] = []
    if is_model_fixture(folder):
        results += check_model_outputs(folder)
        results += check_training_layout(folder)
    if is_alignment_fixture(folder):
        from .alignment_parity import check_alignment_fixture

        results += check_alignment_fixture(folder)
    if _manifests(folder):
        results += check_manifests(folder)
    return results
