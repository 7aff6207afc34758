"""Official full-size lvdm configurations and tiny random ones for tests.

Full-size presets reproduce the official yamls:
- "dynamicrafter_512_interp": Doubiiu/DynamiCrafter configs/inference_512_v1.0.yaml (the config
  `dynamicrafter_512_interp_v1/model.ckpt` is run with), 320x512, 16 frames, default_fs 24;
- "viewcrafter_25_512": Drexubery/ViewCrafter configs/inference_pvd_512.yaml (ViewCrafter_25_512),
  320x512, 25 frames, default_fs 10, base_scale 0.7;
- "viewcrafter_25_1024": configs/inference_pvd_1024.yaml (ViewCrafter_25 and ViewCrafter_25_sparse,
  `model_sparse.ckpt`), 576x1024, base_scale 0.3.
All three have the same state-dict keys and shapes; only non-weight settings differ.
"""

from __future__ import annotations

from .autoencoder import VAEConfig
from .clip import CLIPConfig, CLIPTextConfig, CLIPVisionConfig
from .diffusion import ScheduleConfig
from .latent_diffusion import LVDMConfig
from .resampler import ResamplerConfig
from .unet3d import UNetConfig

# Official yaml path (as recorded in the manifests) -> preset name.
OFFICIAL_YAMLS = {
    "configs/inference_512_v1.0.yaml": "dynamicrafter_512_interp",
    "configs/inference_pvd_512.yaml": "viewcrafter_25_512",
    "configs/inference_pvd_1024.yaml": "viewcrafter_25_1024",
}


def dynamicrafter_512_interp() -> LVDMConfig:
    return LVDMConfig(
        unet=UNetConfig(default_fs=24),
        vae=VAEConfig(),
        clip=CLIPConfig(),
        resampler=ResamplerConfig(),
        schedule=ScheduleConfig(base_scale=0.7),
        latent_size=(40, 64),
        variant="dynamicrafter",
    )


def viewcrafter_25_512() -> LVDMConfig:
    return dynamicrafter_512_interp().replace(unet=UNetConfig(default_fs=10), variant="viewcrafter")


def viewcrafter_25_1024() -> LVDMConfig:
    return viewcrafter_25_512().replace(
        schedule=ScheduleConfig(base_scale=0.3), latent_size=(72, 128)
    )


PRESETS = {
    "dynamicrafter_512_interp": dynamicrafter_512_interp,
    "viewcrafter_25_512": viewcrafter_25_512,
    "viewcrafter_25_1024": viewcrafter_25_1024,
}


def preset(name: str) -> LVDMConfig:
    if name not in PRESETS:
        raise ValueError(f"unknown lvdm preset {name!r}; choose from {sorted(PRESETS)}")
    return PRESETS[name]()


def tiny(variant: str = "dynamicrafter", height: int = 64, width: int = 128) -> LVDMConfig:
    """A ~1.5M-parameter model with every official flag on, for CPU tests (random weights).

    height/width: pixel size, multiples of 16 (the VAE downsamples by 8, the UNet once more).
    """
    return LVDMConfig(
        unet=UNetConfig(
            model_channels=32,
            channel_mult=[1, 1],
            num_res_blocks=1,
            num_head_channels=16,
            context_dim=16,
            default_fs=24 if variant == "dynamicrafter" else 10,
        ),
        vae=VAEConfig(ch=32, ch_mult=[1, 1, 1, 1], num_res_blocks=1, resolution=max(height, width)),
        clip=CLIPConfig(
            embed_dim=16,
            vision_cfg=CLIPVisionConfig(
                image_size=224, layers=2, width=32, head_width=16, patch_size=32
            ),
            text_cfg=CLIPTextConfig(width=16, heads=2, layers=2),
        ),
        resampler=ResamplerConfig(
            dim=32,
            depth=1,
            dim_head=8,
            heads=4,
            num_queries=16,
            embedding_dim=32,
            output_dim=16,
            video_length=4,
        ),
        schedule=ScheduleConfig(base_scale=0.7),
        latent_size=(height // 8, width // 8),
        variant=variant,
    )
