"""Checkpoint layouts of the official lvdm models, on a tiny random model."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from posecrafter_ros.models.checkpoint import CheckpointError
from posecrafter_ros.models.lvdm import configs
from posecrafter_ros.models.lvdm.latent_diffusion import LatentVideoDiffusion
from posecrafter_ros.models.lvdm.loading import load_lvdm_checkpoint, official_state_dict
from posecrafter_ros.models.lvdm.runtime import init_tiny_weights


@pytest.fixture(scope="module")
def source() -> tuple[LatentVideoDiffusion, dict[str, torch.Tensor]]:
    model = LatentVideoDiffusion(configs.tiny(height=64, width=64))
    init_tiny_weights(model, seed=5)
    return model, {k: v.detach().clone() for k, v in official_state_dict(model).items()}


def fresh() -> LatentVideoDiffusion:
    model = LatentVideoDiffusion(configs.tiny(height=64, width=64))
    init_tiny_weights(model, seed=6)
    return model


def assert_same(
    model: LatentVideoDiffusion, state: dict[str, torch.Tensor], atol: float = 0.0
) -> None:
    loaded = official_state_dict(model)
    assert set(loaded) == set(state)
    for key, value in state.items():
        assert torch.allclose(loaded[key].float(), value.float(), atol=atol, rtol=0), key


def test_official_names(source) -> None:
    _, state = source
    assert "model.diffusion_model.input_blocks.1.0.temopral_conv.conv1.0.weight" in state
    assert "first_stage_model.decoder.mid.attn_1.q.weight" in state
    assert state["first_stage_model.decoder.mid.attn_1.q.weight"].ndim == 4
    assert (
        "embedder.model.visual.conv1.weight" in state
        and "cond_stage_model.model.attn_mask" not in state
    )


@pytest.mark.parametrize("layout", ["state_dict", "deepspeed"])
def test_ckpt_wrappers(tmp_path, source, layout) -> None:
    _, state = source
    path = tmp_path / "model.ckpt"
    if layout == "state_dict":
        torch.save({"state_dict": state, "epoch": 3}, path)
    else:
        torch.save({"module": {"_forward_module." + k: v for k, v in state.items()}}, path)
    model = fresh()
    load_lvdm_checkpoint(model, path)
    assert_same(model, state)


def test_bf16_sharded_safetensors(tmp_path, source) -> None:
    _, state = source
    keys = sorted(state)
    thirds = [keys[i::3] for i in range(3)]
    for i, part in enumerate(thirds):
        shard = {k: state[k].to(torch.bfloat16).contiguous() for k in part}
        save_file(shard, str(tmp_path / f"model-{i + 1:05d}-of-00003.safetensors"))
    model = fresh()
    load_lvdm_checkpoint(model, tmp_path / "model-00002-of-00003.safetensors")
    assert model.unet.input_blocks[0][0].weight.dtype == torch.float32
    loaded = official_state_dict(model)
    for key, value in state.items():
        assert torch.allclose(loaded[key], value, rtol=1e-2, atol=1e-6), key
    # The schedule keeps full precision (bf16 alphas_cumprod would distort sampling).
    assert torch.equal(loaded["alphas_cumprod"], state["alphas_cumprod"])
    (tmp_path / "model-00003-of-00003.safetensors").unlink()
    with pytest.raises(CheckpointError, match="00003-of-00003"):
        load_lvdm_checkpoint(fresh(), tmp_path)


def test_missing_and_unexpected_keys_are_named(tmp_path, source) -> None:
    _, state = source
    broken = dict(state)
    del broken["image_proj_model.latents"]
    save_file(broken, str(tmp_path / "missing.safetensors"))
    with pytest.raises(CheckpointError, match="latents"):
        load_lvdm_checkpoint(fresh(), tmp_path / "missing.safetensors")
    extra = dict(
        state,
        **{"first_stage_model.loss.logvar": torch.zeros(1), "model_ema.decay": torch.zeros(1)},
    )
    save_file(extra, str(tmp_path / "extra.safetensors"))
    with pytest.raises(CheckpointError, match="model_ema.decay"):
        load_lvdm_checkpoint(fresh(), tmp_path / "extra.safetensors")
    del extra["model_ema.decay"]
    save_file(extra, str(tmp_path / "extra_vae.safetensors"))
    with pytest.raises(CheckpointError, match="loss.logvar"):
        load_lvdm_checkpoint(fresh(), tmp_path / "extra_vae.safetensors")


def test_pickled_objects_are_refused(tmp_path, source) -> None:
    _, state = source
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": state, "callback": torch.nn.ReLU()}, path)
    with pytest.raises(CheckpointError, match="weights_only"):
        load_lvdm_checkpoint(fresh(), path)


def test_loaded_model_reproduces_source_outputs(tmp_path, source) -> None:
    model_a, state = source
    save_file(state, str(tmp_path / "m.safetensors"))
    model_b = fresh()
    load_lvdm_checkpoint(model_b, tmp_path / "m.safetensors")
    x = torch.randn(1, 8, 2, 8, 8, generator=torch.Generator().manual_seed(0))
    context = torch.randn(1, 77 + 64, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ya = model_a.eval().unet(x, torch.tensor([500]), context, torch.tensor([5]))
        yb = model_b.eval().unet(x, torch.tensor([500]), context, torch.tensor([5]))
    assert torch.equal(ya, yb)


def test_missing_checkpoint_path() -> None:
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_lvdm_checkpoint(fresh(), "")


def test_meta_device_build_then_load(tmp_path, source) -> None:
    """The full-size path: build without memory on `meta`, assign the checkpoint, rebuild
    the non-checkpoint constants, and compute exactly like the source model."""
    model_a, state = source
    save_file(state, str(tmp_path / "m.safetensors"))
    with torch.device("meta"):
        model_b = LatentVideoDiffusion(configs.tiny(height=64, width=64))
    load_lvdm_checkpoint(model_b, tmp_path / "m.safetensors")
    model_b.materialize_constants()
    images = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(2)) * 2 - 1
    with torch.no_grad():
        text_a, text_b = model_a.encode_text(["a dog"]), model_b.eval().encode_text(["a dog"])
        image_a = model_a.eval().encode_image_condition(images)
        image_b = model_b.encode_image_condition(images)
        latents = torch.randn(1, 4, 2, 8, 8, generator=torch.Generator().manual_seed(3))
        frames_a, frames_b = model_a.decode_latents(latents), model_b.decode_latents(latents)
    assert torch.equal(text_a, text_b) and torch.equal(image_a, image_b)
    assert torch.equal(frames_a, frames_b)
    assert torch.equal(model_b.alphas_cumprod, state["alphas_cumprod"])


def test_random_weights_build_the_preset_without_a_checkpoint(monkeypatch) -> None:
    """bench_pipeline --random-weights: the full-size preset (here shrunk to the tiny
    architecture, the path is the same) with seeded random weights and no checkpoint."""
    from posecrafter_ros.models.lvdm.runtime import RuntimeConfig, build_model

    requested = []

    def small_preset(name):
        requested.append(name)
        return configs.tiny("dynamicrafter", 64, 64)

    monkeypatch.setattr(configs, "preset", small_preset)
    conf = RuntimeConfig(random_weights=True, height=64, width=64, seed=3)
    model = build_model(conf, "dynamicrafter", "dynamicrafter_512_interp")
    assert requested == ["dynamicrafter_512_interp"]
    assert model.config.latent_size == (8, 8)  # height // 8, width // 8 as a checkpoint run
    again = build_model(conf, "dynamicrafter", "dynamicrafter_512_interp")
    for (name, p), (_, q) in zip(model.named_parameters(), again.named_parameters()):
        assert torch.equal(p, q), name  # seeded
    with pytest.raises(CheckpointError, match="checkpoint"):
        build_model(RuntimeConfig(height=64, width=64), "dynamicrafter", "dynamicrafter_512_interp")
