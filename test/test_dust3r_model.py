"""DUSt3R network: manifests of the released checkpoints, official-code parity, loading."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from posecrafter_ros.models.checkpoint import CheckpointError
from posecrafter_ros.models.dust3r.config import (
    NAMED_CONFIGS,
    TINY_CONFIG,
    Dust3rConfig,
    infer_config,
    parse_ctor_string,
)
from posecrafter_ros.models.dust3r.inference import complete_symmetric_pairs, infer_pairs
from posecrafter_ros.models.dust3r.model import Dust3rModel, load_dust3r
from posecrafter_ros.models.dust3r.parity import fixture_config, load_fixture_model
from posecrafter_ros.models.dust3r.preprocessing import load_image_file, prepare_image

GOLDEN = Path(__file__).resolve().parent / "data" / "golden"
MODEL_FIXTURES = ("dust3r_dpt", "dust3r_linear")


@pytest.fixture(autouse=True, scope="module")
def _fixture_threads():
    """The fixtures were produced with 2 intra-op threads; DPT outputs move by ~2e-5 with 1."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("name", sorted(NAMED_CONFIGS))
def test_full_size_state_dict_equals_manifest(name):
    manifest = json.loads((GOLDEN / "manifests" / f"{name}.manifest.json").read_text())
    with torch.device("meta"):
        model = Dust3rModel(NAMED_CONFIGS[name])
    ours = {
        k: (list(v.shape), str(v.dtype).removeprefix("torch."))
        for k, v in model.state_dict().items()
    }
    expected = {k: (v["shape"], v["dtype"]) for k, v in manifest["tensors"].items()}
    assert ours == expected
    assert sum(v.numel() for v in model.state_dict().values()) == manifest["total_numel"]


def test_ctor_string_is_parsed_as_data_never_evaluated():
    ctor = json.loads((GOLDEN / "dust3r_dpt" / "config.json").read_text())["ckpt_args_model"]
    kwargs = parse_ctor_string(ctor)
    assert kwargs["depth_mode"] == ("exp", -float("inf"), float("inf"))
    assert Dust3rConfig.from_ctor_string(ctor).enc_num_heads == kwargs["enc_num_heads"]
    with pytest.raises(ValueError):
        parse_ctor_string("AsymmetricCroCo3DStereo(head_type=__import__('os').getcwd())")
    released = json.loads(
        (GOLDEN / "manifests" / "DUSt3R_ViTLarge_BaseDecoder_512_dpt.manifest.json").read_text()
    )["ckpt_args_model_assumed"]
    assert (
        Dust3rConfig.from_ctor_string(released)
        == NAMED_CONFIGS["DUSt3R_ViTLarge_BaseDecoder_512_dpt"]
    )


@pytest.mark.parametrize("name", MODEL_FIXTURES)
def test_pairwise_inference_matches_official(name):
    from safetensors.torch import load_file

    folder = GOLDEN / name
    meta = json.loads((folder / "meta.json").read_text())
    model = load_fixture_model(folder)
    inputs = load_file(str(folder / "inputs.safetensors"))
    outputs = load_file(str(folder / "outputs.safetensors"))
    views = [inputs[f"view{k}_img"] for k in range(len(meta["view_true_shapes"]))]
    pairs = [tuple(p) for p in meta["pairs"]]
    assert pairs == complete_symmetric_pairs(len(views))
    for batch_size in (1, 3):
        preds = infer_pairs(model, views, pairs, batch_size=batch_size)
        for p, pred in enumerate(preds):
            for ours, key in (
                (pred.pts_i, "pred1_pts3d"),
                (pred.conf_i, "pred1_conf"),
                (pred.pts_j, "pred2_pts3d_in_other_view"),
                (pred.conf_j, "pred2_conf"),
            ):
                ref = outputs[f"pair{p}_{key}"]
                assert ours.shape == ref.shape
                torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)


def test_checkpoint_formats_load_and_name_their_errors(tmp_path):
    from safetensors.torch import save_file

    folder = GOLDEN / "dust3r_linear"
    config = fixture_config(folder)
    reference = load_fixture_model(folder)
    state = reference.state_dict()
    ctor = json.loads((folder / "config.json").read_text())["ckpt_args_model"]
    torch.save({"args": argparse.Namespace(model=ctor), "model": state}, tmp_path / "m.pth")
    # A CroCo-style single-decoder copy: dec_blocks2 is restored from dec_blocks.
    single = {k: v for k, v in state.items() if not k.startswith("dec_blocks2.")}
    save_file({k: v.contiguous() for k, v in single.items()}, str(tmp_path / "m.safetensors"))
    for path in (tmp_path / "m.pth", tmp_path / "m.safetensors"):
        model = load_dust3r(path, config)
        for key, value in model.state_dict().items():
            expected = (
                state[key.replace("dec_blocks2.", "dec_blocks.")]
                if path.suffix == ".safetensors"
                else state[key]
            )
            assert torch.equal(value, expected), key
    with pytest.raises(CheckpointError, match="no DUSt3R checkpoint"):
        load_dust3r("", config)
    with pytest.raises(CheckpointError, match="not found"):
        load_dust3r(tmp_path / "missing.pth", config)
    wrong = dict(single)
    wrong["downstream_head1.proj.weight"] = torch.zeros(3, 3)
    save_file({k: v.contiguous() for k, v in wrong.items()}, str(tmp_path / "bad.safetensors"))
    with pytest.raises(CheckpointError, match="shape"):
        load_dust3r(tmp_path / "bad.safetensors", config)


def test_config_is_inferred_from_dpt_shapes():
    folder = GOLDEN / "dust3r_dpt"
    model = load_fixture_model(folder)
    inferred = infer_config(model.state_dict(), base=fixture_config(folder))
    assert inferred == fixture_config(folder)
    with torch.device("meta"):
        full = Dust3rModel(NAMED_CONFIGS["DUSt3R_ViTLarge_BaseDecoder_512_dpt"]).state_dict()
    assert infer_config(full) == NAMED_CONFIGS["DUSt3R_ViTLarge_BaseDecoder_512_dpt"]


def test_preprocessing_shapes_follow_official_rules():
    meta = json.loads((GOLDEN / "dust3r_dpt" / "meta.json").read_text())
    size = max(max(s) for s in meta["view_true_shapes"])
    rng = np.random.default_rng(0)
    for (w, h), expected in zip(meta["source_png_sizes_WH"], meta["view_true_shapes"]):
        prepared = prepare_image(rng.integers(0, 255, (h, w, 3), dtype=np.uint8), size)
        assert list(prepared.true_shape) == expected
        assert prepared.tensor.shape == (1, 3, *expected)
        assert -1.0 <= float(prepared.tensor.min()) and float(prepared.tensor.max()) <= 1.0
    # Square -> 4:3 (landscape); 224 -> centre square; long side / short side rules.
    assert prepare_image(np.zeros((300, 300, 3), np.uint8), 512).true_shape == (384, 512)
    assert prepare_image(np.zeros((300, 400, 3), np.uint8), 224).true_shape == (224, 224)
    assert prepare_image(np.zeros((700, 500, 3), np.uint8), 512).true_shape == (
        512,
        352,
    )  # 366 wide -> 22 patches


def test_intrinsics_map_to_working_pixels_and_back():
    """A bright dot at a known original pixel lands where the mapped intrinsics project it."""
    K = np.array([[400.0, 0, 330.0], [0, 400.0, 250.0], [0, 0, 1]])
    image = np.zeros((480, 640, 3), np.uint8)
    u0, v0 = 500, 140
    image[v0 - 6 : v0 + 7, u0 - 6 : u0 + 7] = 255
    prepared = prepare_image(image, 512)
    K_work = prepared.intrinsics_to_working(K)
    ray = np.linalg.inv(K) @ np.array([u0, v0, 1.0])
    expected = (K_work @ ray)[:2] / (K_work @ ray)[2]
    weights = prepared.image[..., 0].astype(float)
    rows, cols = np.nonzero(weights > 0)
    centroid = np.array(
        [
            np.average(cols, weights=weights[rows, cols]),
            np.average(rows, weights=weights[rows, cols]),
        ]
    )
    assert np.abs(centroid - expected).max() < 0.3
    np.testing.assert_allclose(prepared.intrinsics_to_original(K_work), K, atol=1e-9)


def test_tiny_config_runs_in_bfloat16_with_float32_heads():
    torch.manual_seed(0)
    model = Dust3rModel(TINY_CONFIG).to(torch.bfloat16)
    model.downstream_head1.float()
    model.downstream_head2.float()
    image = torch.rand(1, 3, 64, 96) * 2 - 1
    preds = infer_pairs(model.eval(), [image, image.flip(-1)], complete_symmetric_pairs(2))
    assert all(p.pts_i.dtype == torch.float32 and torch.isfinite(p.pts_j).all() for p in preds)


def test_image_files_load_like_arrays(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 255, (90, 130, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "view.png")
    from_file = load_image_file(tmp_path / "view.png", 64)
    from_array = prepare_image(pixels, 64)
    assert from_file.true_shape == from_array.true_shape == (32, 64)
    assert torch.equal(from_file.tensor, from_array.tensor)
