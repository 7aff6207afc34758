"""Unit checks of the lvdm building blocks: tokenizer, VAE key conversion, schedule."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from posecrafter_ros.models.checkpoint import select_prefix
from posecrafter_ros.models.lvdm.autoencoder import convert_ldm_vae_state_dict
from posecrafter_ros.models.lvdm.diffusion import (
    NoiseSchedule,
    ScheduleConfig,
    ddim_timesteps,
    make_ddim_schedule,
)
from posecrafter_ros.models.lvdm.loading import read_checkpoint
from posecrafter_ros.models.lvdm.tokenizer import ClipTokenizer
from posecrafter_ros.models.lvdm.unet3d import UNet3D, UNetConfig, timestep_embedding

GOLDEN = Path(__file__).parent / "data" / "golden"


def test_tokenizer_matches_open_clip_ids() -> None:
    tokens = load_file(str(GOLDEN / "dynamicrafter_interp_ddim" / "inputs.safetensors"))[
        "prompt_tokens"
    ]
    ours = ClipTokenizer()(["a man walking his dog in a park at sunset"])
    assert torch.equal(ours, tokens)


def test_tokenizer_truncates_with_end_token() -> None:
    tok = ClipTokenizer()
    ids = tok(["word " * 200])[0]
    assert ids.shape == (77,) and ids[0] == tok.start_id and ids[-1] == tok.end_id
    assert tok([""])[0, :3].tolist() == [tok.start_id, tok.end_id, 0]


def test_vae_key_map_agrees_with_diffusers_converter() -> None:
    from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint

    state = read_checkpoint(
        GOLDEN / "dynamicrafter_interp_ddim" / "state_dict-00001-of-00002.safetensors"
    )
    vae = select_prefix(state, "first_stage_model.")
    ours, unknown = convert_ldm_vae_state_dict(vae, levels=4)
    config = {
        "down_block_types": ["DownEncoderBlock2D"] * 4,
        "up_block_types": ["UpDecoderBlock2D"] * 4,
    }
    theirs = convert_ldm_vae_checkpoint(vae, config)
    assert not unknown and set(ours) == set(theirs)
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)


def test_vae_unknown_keys_are_named() -> None:
    _, unknown = convert_ldm_vae_state_dict({"encoder.bogus.weight": torch.zeros(1)}, levels=4)
    assert unknown == ["encoder.bogus.weight"]


def test_schedule_zero_terminal_snr_and_spacing() -> None:
    schedule = NoiseSchedule(ScheduleConfig())
    assert schedule.alphas_cumprod[-1].item() == 0.0
    assert schedule.alphas_cumprod.dtype == torch.float32 and schedule.scale_arr.shape == (1400,)
    assert ddim_timesteps("uniform_trailing", 6, 1000).tolist() == [166, 332, 499, 666, 832, 999]
    ref = load_file(str(GOLDEN / "viewcrafter_ddim" / "schedule.safetensors"))
    assert torch.equal(schedule.alphas_cumprod, ref["alphas_cumprod"])


@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
def test_ddim_sigmas_follow_eta(eta: float) -> None:
    """sigma_t = eta * sqrt((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev)) (DDIM, Song et al.
    eq. 16), computed here in float64 from the schedule's alphas_cumprod: eta = 0 is the
    deterministic sampler, and sigma scales linearly with eta."""
    schedule = NoiseSchedule(ScheduleConfig())
    plan = make_ddim_schedule(schedule, 10, eta)
    ac = schedule.alphas_cumprod.double().numpy()
    a_t = ac[plan.timesteps]
    a_prev = np.concatenate([[ac[0]], ac[plan.timesteps[:-1]]])
    expected = eta * np.sqrt((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev))
    np.testing.assert_allclose(plan.sigmas, expected, rtol=1e-5, atol=1e-12)
    if eta == 0.0:
        assert np.all(plan.sigmas == 0.0)
    else:
        assert np.all(plan.sigmas[1:] > 0.0)


def test_timestep_embedding_is_cos_first() -> None:
    emb = timestep_embedding(torch.tensor([0, 7]), 8)
    assert torch.allclose(emb[0], torch.tensor([1.0] * 4 + [0.0] * 4))
    assert emb[1, 0].item() == pytest.approx(np.cos(7.0), abs=1e-6)


def test_unet_per_frame_image_context_split() -> None:
    """77 + 16*T tokens -> each frame sees its own 16 image tokens; otherwise all of them."""
    unet = UNet3D(
        UNetConfig(
            model_channels=32,
            channel_mult=[1],
            num_res_blocks=1,
            num_head_channels=16,
            context_dim=8,
        )
    )
    context = torch.randn(1, 77 + 3 * 16, 8)
    per_frame = unet.frame_context(context, 3)
    assert per_frame.shape == (3, 77 + 16, 8)
    assert torch.equal(per_frame[1, 77:], context[0, 77 + 16 : 77 + 32])
    assert unet.frame_context(context, 4).shape == (4, 77 + 48, 8)


def test_unsupported_unet_flags_are_rejected() -> None:
    with pytest.raises(ValueError, match="use_relative_position"):
        UNet3D(UNetConfig(use_relative_position=True))
    with pytest.raises(ValueError, match="unknown UNet config keys"):
        UNetConfig.from_dict({"bogus": 1})


def test_sdpa_backend_matches_einsum() -> None:
    from posecrafter_ros.models.lvdm.attention import set_attention_backend

    torch.manual_seed(0)
    unet = UNet3D(
        UNetConfig(
            model_channels=32,
            channel_mult=[1, 1],
            num_res_blocks=1,
            num_head_channels=16,
            context_dim=8,
        )
    ).eval()
    x, context = torch.randn(1, 8, 3, 8, 8), torch.randn(1, 77 + 48, 8)
    with torch.no_grad():
        exact = unet(x, torch.tensor([10]), context)
        set_attention_backend(unet, "sdpa")
        fused = unet(x, torch.tensor([10]), context)
    assert torch.allclose(exact, fused, atol=1e-5)
    with pytest.raises(ValueError, match="backend"):
        set_attention_backend(unet, "xformers")
