"""Parity of our lvdm models with official-code fixtures (`posecrafter-parity FIXTURE_DIR`).

Three fixture kinds are recognised from their content:
- UNet forward: config.json holds the official UNetModel kwargs; inputs/outputs safetensors;
- DDIM sampling: config.json holds an official yaml ({"model": {"target": "lvdm...."}}), with
  inputs, conditioning, noise (every randn in call order), schedule, steps and outputs;
- manifests: *.manifest.json of full-size lvdm models (key -> shape -> dtype).
Everything is built from the folder's own config; nothing about a fixture is hard-coded.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from ..parity_types import ParityResult

LVDM_REPOS = ("Doubiiu/DynamiCrafter", "Drexubery/ViewCrafter")
NETWORK_TOL = 1e-5
CONDITIONING_TOL = 1e-5
SAMPLER_TOL = 1e-4


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _lvdm_manifests(folder: Path) -> list[Path]:
    out = []
    for path in sorted(folder.glob("*.manifest.json")):
        data = _json(path)
        if isinstance(data, dict) and (
            data.get("repo") in LVDM_REPOS or str(data.get("target", "")).startswith("lvdm.")
        ):
            out.append(path)
    return out


def _fixture_kind(folder: Path) -> str | None:
    config = _json(folder / "config.json")
    meta = _json(folder / "meta.json")
    meta = meta if isinstance(meta, dict) else {}
    from_lvdm = meta.get("repo") in LVDM_REPOS or "openaimodel3d" in str(meta.get("official_class"))
    if isinstance(config, dict):
        if "model_channels" in config and (from_lvdm or "temporal_conv" in config):
            return "unet"
        model = config.get("model")
        target = str(model.get("target", "")) if isinstance(model, dict) else ""
        if target.startswith("lvdm.") and "official_function" in meta:
            return "ddim"
    if _lvdm_manifests(folder):
        return "manifests"
    return None


def claims(folder: Path) -> bool:
    """True for lvdm UNet / DDIM fixture folders and folders with lvdm manifests."""
    return _fixture_kind(Path(folder)) is not None


def check_fixture(folder: Path) -> list[ParityResult]:
    folder = Path(folder)
    kind = _fixture_kind(folder)
    if kind == "unet":
        return check_unet(folder)
    if kind == "ddim":
        return check_ddim(folder)
    if kind == "manifests":
        return check_manifests(folder)
    raise ValueError(f"{folder} is not an lvdm fixture folder")


def _worst(current: float, diff: float) -> float:
    """The larger difference, NaN winning (Python's max(0.0, nan) is 0.0: a step whose output
    is NaN would pass)."""
    return diff if math.isnan(diff) or diff > current else current


def _diff(name: str, ours, ref, tol: float, detail: str = "") -> ParityResult:
    if tuple(ours.shape) != tuple(ref.shape):
        return ParityResult(
            name, float("inf"), tol, f"shape {tuple(ours.shape)} vs {tuple(ref.shape)}"
        )
    diff = (ours.double() - ref.double()).abs().max().item() if ref.numel() else 0.0
    return ParityResult(name, float(diff), tol, detail)


def _fixture_state(folder: Path) -> dict:
    """The fixture's state dict: one file or shards; or a sibling's (shared weights) + overrides."""
    from safetensors.torch import load_file

    from .loading import read_checkpoint

    shards = sorted(folder.glob("state_dict*.safetensors"))
    shards = [p for p in shards if "overrides" not in p.name]
    if shards:
        state = read_checkpoint(shards[0])
    else:
        state = _shared_state(folder)
    overrides = folder / "state_dict_overrides.safetensors"
    if overrides.is_file():
        state.update(load_file(str(overrides)))
    return state


def _shared_state(folder: Path) -> dict:
    """ViewCrafter fixtures share the DynamiCrafter fixture's weights (same weight_seed)."""
    from .loading import read_checkpoint

    meta = _json(folder / "meta.json") or {}
    seed = meta.get("weight_seed")
    for sibling in sorted(folder.parent.iterdir()):
        if sibling == folder or not sibling.is_dir():
            continue
        other = _json(sibling / "meta.json")
        shards = [
            p for p in sorted(sibling.glob("state_dict*.safetensors")) if "overrides" not in p.name
        ]
        if not (isinstance(other, dict) and shards and _fixture_kind(sibling) == "ddim"):
            continue
        same_repo = other.get("repo") == LVDM_REPOS[0] or not meta.get("weights_shared_with_dc")
        if other.get("weight_seed") == seed and same_repo:
            return read_checkpoint(shards[0])
    raise FileNotFoundError(
        f"{folder}: no state dict here and no sibling fixture with weight_seed {seed}"
    )


def check_unet(folder: Path) -> list[ParityResult]:
    import torch
    from safetensors.torch import load_file

    from ..checkpoint import load_exact
    from .unet3d import UNet3D, UNetConfig

    config = UNetConfig.from_dict(_json(folder / "config.json"))
    unet = UNet3D(config).eval()
    load_exact(unet, _fixture_state(folder), f"{folder.name} UNet")
    inputs = load_file(str(folder / "inputs.safetensors"))
    outputs = load_file(str(folder / "outputs.safetensors"))
    with torch.no_grad():
        y = unet(inputs["x"], inputs["timesteps"], inputs["context"], inputs["fs"])
        y_default = unet(inputs["x"], inputs["timesteps"], inputs["context"])
    return [
        _diff(f"{folder.name}/y", y, outputs["y"], NETWORK_TOL),
        _diff(f"{folder.name}/y_default_fs", y_default, outputs["y_default_fs"], NETWORK_TOL),
    ]


def check_ddim(folder: Path) -> list[ParityResult]:
    import torch
    from safetensors.torch import load_file

    from .diffusion import RecordedNoise, StepRecord, make_ddim_schedule
    from .latent_diffusion import LatentVideoDiffusion, LVDMConfig
    from .loading import load_lvdm_state_dict
    from .tokenizer import default_tokenizer

    meta = _json(folder / "meta.json")
    config = LVDMConfig.from_official(_json(folder / "config.json"))
    model = LatentVideoDiffusion(config).eval()
    load_lvdm_state_dict(model, _fixture_state(folder), f"{folder.name} state dict")
    load = lambda name: load_file(str(folder / f"{name}.safetensors"))  # noqa: E731
    inputs, cond_ref, noise_ref = load("inputs"), load("conditioning"), load("noise")
    sched_ref, steps_ref, outputs = load("schedule"), load("steps"), load("outputs")
    call = meta["call_args"]
    videos = inputs["videos"]
    batch = videos.shape[0]
    prompts = list(meta["prompts"]) if call.get("text_input", True) else [""] * batch
    name = folder.name
    results: list[ParityResult] = []

    tokens = default_tokenizer()(prompts)
    results.append(_diff(f"{name}/prompt_tokens", tokens, inputs["prompt_tokens"], 0.0))
    results.append(
        _diff(
            f"{name}/empty_prompt_tokens",
            default_tokenizer()([""]),
            inputs["empty_prompt_tokens"],
            0.0,
        )
    )

    t = videos.shape[2]
    if "images_uint8" in inputs:  # DynamiCrafter interp input: A repeated T/2 times, then B.
        from .video import interpolation_video

        ours = interpolation_video(
            inputs["images_uint8"][0].numpy(), inputs["images_uint8"][1].numpy(), t
        )
        results.append(_diff(f"{name}/videos_from_uint8", ours, videos, 1e-6))
    if "renderings" in inputs:
        # ViewCrafter builds its video as a permuted VIEW of the [T x H x W x 3] renders; the
        # VAE then convolves channels-last memory, which rounds differently: keep that layout.
        from_renders = (inputs["renderings"] * 2.0 - 1.0).permute(3, 0, 1, 2).unsqueeze(0)
        results.append(_diff(f"{name}/videos_from_renderings", from_renders, videos, 0.0))
        videos = from_renders

    condition_frame = int((call.get("condition_index") or [0])[0])
    noise = RecordedNoise([noise_ref[k] for k in sorted(noise_ref)])
    with torch.no_grad():
        image = videos[:, :, condition_frame]
        preprocessed = model.embedder.preprocess(image)
        clip_tokens = model.embedder(image)
        uc_clip_tokens = model.embedder(torch.zeros_like(image))
        z = model.encode_frames(videos, noise)
        if call.get("interp") or call.get("loop"):
            concat = torch.zeros_like(z)
            concat[:, :, 0], concat[:, :, -1] = z[:, :, 0], z[:, :, -1]
        elif config.variant == "viewcrafter":
            concat = z
        else:
            concat = z[:, :, :1].expand_as(z).clone()
        cond, uncond = model.conditionings(prompts, image, concat)
        text_len = cond.context.shape[1] - model.image_proj_model.latents.shape[1]
        checks = {
            "embedder_preprocessed": preprocessed,
            "img_emb_clip": clip_tokens,
            "uc_img_emb_clip": uc_clip_tokens,
            "img_emb_proj": cond.context[:, text_len:],
            "uc_img_emb_proj": uncond.context[:, text_len:],
            "text_emb": cond.context[:, :text_len],
            "uc_text_emb": uncond.context[:, :text_len],
            "z": z.transpose(1, 2).reshape(-1, *z.shape[1:2], *z.shape[3:]),
            "c_concat": cond.concat,
            "uc_c_concat": uncond.concat,
            "c_crossattn": cond.context,
            "uc_c_crossattn": uncond.context,
        }
        for key, value in checks.items():
            if key in cond_ref:
                results.append(_diff(f"{name}/{key}", value, cond_ref[key], CONDITIONING_TOL))

        steps = int(call["ddim_steps"])
        plan = make_ddim_schedule(
            model, steps, float(call["ddim_eta"]), call["timestep_spacing"], config.variant
        )
        planned = {
            "ddim_timesteps": torch.as_tensor(plan.timesteps.copy()),
            "ddim_alphas": plan.alphas,
            "ddim_alphas_prev": torch.as_tensor(plan.alphas_prev),
            "ddim_sigmas": torch.as_tensor(plan.sigmas),
            "ddim_scale_arr": plan.scale_arr,
            "ddim_scale_arr_prev": plan.scale_arr_prev,
        }
        for key, value in planned.items():
            if key in sched_ref and value is not None:
                results.append(_diff(f"{name}/schedule.{key}", value, sched_ref[key], 1e-7))

        record: list[StepRecord] = []
        latent = model.sample(
            cond,
            uncond,
            noise,
            steps,
            fs=int(inputs["fs"][0]),
            eta=float(call["ddim_eta"]),
            cfg_scale=float(call["unconditional_guidance_scale"]),
            guidance_rescale=float(call.get("guidance_rescale", 0.0)),
            spacing=call["timestep_spacing"],
            record=record,
        )
        step_max = {"apply_out": 0.0, "pred_x0": 0.0, "x_prev": 0.0}
        # UNet calls in order: cond then uncond per step (cond only without CFG).
        applies = [steps_ref[k] for k in sorted(k for k in steps_ref if k.startswith("apply"))]
        ours_applies = [v for rec in record for v in (rec.v_cond, rec.v_uncond) if v is not None]
        if len(applies) != len(ours_applies):
            results.append(
                ParityResult(
                    f"{name}/UNet calls",
                    float("inf"),
                    0.0,
                    f"{len(ours_applies)} vs {len(applies)}",
                )
            )
        for ours, ref in zip(ours_applies, applies, strict=False):
            step_max["apply_out"] = _worst(step_max["apply_out"], (ours - ref).abs().max().item())
        for i, rec in enumerate(record):
            for key, ours in (("pred_x0", rec.pred_x0), ("x_prev", rec.x_prev)):
                ref = steps_ref.get(f"step{i}_{key}")
                if ref is not None:
                    step_max[key] = _worst(step_max[key], (ours - ref).abs().max().item())
        for key, value in step_max.items():
            results.append(
                ParityResult(
                    f"{name}/steps.{key} (max over {len(record)} steps)", value, SAMPLER_TOL
                )
            )
        results.append(_diff(f"{name}/final_latent", latent, outputs["final_latent"], SAMPLER_TOL))
        decoded = model.decode_latents(latent)
        results.append(
            _diff(f"{name}/decoded_video", decoded, outputs["decoded_video"], SAMPLER_TOL)
        )
        # The decoder alone, from the official final latent (isolates the VAE from the sampler).
        decoded_ref_latent = model.decode_latents(outputs["final_latent"])
        results.append(
            _diff(
                f"{name}/decode(official final_latent)",
                decoded_ref_latent,
                outputs["decoded_video"],
                NETWORK_TOL,
            )
        )
    if noise.calls != len(noise.tensors):
        results.append(
            ParityResult(
                f"{name}/noise draws used",
                float(len(noise.tensors) - noise.calls),
                0.0,
                f"{noise.calls} of {len(noise.tensors)} recorded draws consumed",
            )
        )
    return results


def check_manifests(folder: Path) -> list[ParityResult]:
    """Full-size modules built on the meta device vs each lvdm manifest: keys, shapes, dtypes."""
    import torch

    from .configs import OFFICIAL_YAMLS, preset
    from .latent_diffusion import LatentVideoDiffusion
    from .loading import official_state_shapes

    results = []
    for path in _lvdm_manifests(folder):
        manifest = _json(path)
        yaml = manifest.get("config", "")
        if yaml not in OFFICIAL_YAMLS:
            results.append(
                ParityResult(
                    path.name, float("inf"), 0.0, f"no preset for official config {yaml!r}"
                )
            )
            continue
        with torch.device("meta"):
            model = LatentVideoDiffusion(preset(OFFICIAL_YAMLS[yaml]))
        ours = official_state_shapes(model)
        expected = {k: (tuple(v["shape"]), v["dtype"]) for k, v in manifest["tensors"].items()}
        missing = sorted(set(expected) - set(ours))
        extra = sorted(set(ours) - set(expected))
        wrong = sorted(k for k in set(ours) & set(expected) if ours[k] != expected[k])
        bad = len(missing) + len(extra) + len(wrong)
        detail = (
            f"{len(expected)} tensors; missing {missing[:3]}, extra {extra[:3]}, mismatched {wrong[:3]}"
            if bad
            else f"{len(expected)} tensors, keys/shapes/dtypes equal"
        )
        results.append(ParityResult(f"{path.name} (mismatches)", float(bad), 0.0, detail))
    return results
