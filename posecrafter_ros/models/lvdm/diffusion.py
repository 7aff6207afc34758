"""Noise schedule and the DDIM sampler of lvdm (DynamiCrafter / ViewCrafter), rewritten.

Why not diffusers' DDIMScheduler: the official sampler mixes float32 and float64 schedule
arrays, applies a "dynamic rescale" of pred_x0 (scale_arr), injects eta-noise at every step
including the last, and ViewCrafter changes the first dynamic-rescale factor. Matching that
to 1e-4 after several CFG steps needs the exact arithmetic below.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol, Sequence

import numpy as np
import torch
from torch import nn

# Persistent schedule buffers of the official LatentDiffusion (checkpoint top-level keys).
SCHEDULE_BUFFERS = (
    "betas",
    "alphas_cumprod",
    "alphas_cumprod_prev",
    "sqrt_alphas_cumprod",
    "sqrt_one_minus_alphas_cumprod",
    "log_one_minus_alphas_cumprod",
    "sqrt_recip_alphas_cumprod",
    "sqrt_recipm1_alphas_cumprod",
    "posterior_variance",
    "posterior_log_variance_clipped",
    "posterior_mean_coef1",
    "posterior_mean_coef2",
)


@dataclass
class ScheduleConfig:
    """Diffusion parameters of the official yaml (`model.params`)."""

    timesteps: int = 1000
    linear_start: float = 0.00085
    linear_end: float = 0.012
    rescale_betas_zero_snr: bool = True
    parameterization: str = "v"
    use_dynamic_rescale: bool = True
    base_scale: float = 0.7
    turning_step: int = 400


def rescale_zero_terminal_snr(betas: np.ndarray) -> np.ndarray:
    """Shift/scale sqrt(alphas_cumprod) so the last step has zero SNR (arXiv 2305.08891)."""
    sqrt_bar = np.sqrt(np.cumprod(1.0 - betas))
    first, last = sqrt_bar[0].copy(), sqrt_bar[-1].copy()
    sqrt_bar = (sqrt_bar - last) * (first / (first - last))
    bar = sqrt_bar**2
    alphas = np.concatenate([bar[:1], bar[1:] / bar[:-1]])
    return 1.0 - alphas


class NoiseSchedule(nn.Module):
    """The 12 schedule buffers (+ `scale_arr`) with the official names, dtypes and values."""

    def __init__(self, config: ScheduleConfig):
        super().__init__()
        if config.parameterization != "v":
            raise ValueError("lvdm video models here are v-parameterised")
        self.config = config
        n = config.timesteps
        betas = (
            torch.linspace(
                config.linear_start**0.5,
                config.linear_end**0.5,
                n,
                dtype=torch.float64,
                device="cpu",
            )
            ** 2
        ).numpy()
        if config.rescale_betas_zero_snr:
            betas = rescale_zero_terminal_snr(betas)
        alphas = 1.0 - betas
        ac = np.cumprod(alphas)
        ac_prev = np.append(1.0, ac[:-1])
        with np.errstate(divide="ignore"):
            posterior_variance = betas * (1.0 - ac_prev) / (1.0 - ac)
        values = {
            "betas": betas,
            "alphas_cumprod": ac,
            "alphas_cumprod_prev": ac_prev,
            "sqrt_alphas_cumprod": np.sqrt(ac),
            "sqrt_one_minus_alphas_cumprod": np.sqrt(1.0 - ac),
            "log_one_minus_alphas_cumprod": np.log(1.0 - ac),
            # Unused in v-parameterisation: the official code stores zeros.
            "sqrt_recip_alphas_cumprod": np.zeros(n),
            "sqrt_recipm1_alphas_cumprod": np.zeros(n),
            "posterior_variance": posterior_variance,
            "posterior_log_variance_clipped": np.log(np.maximum(posterior_variance, 1e-20)),
            "posterior_mean_coef1": betas * np.sqrt(ac_prev) / (1.0 - ac),
            "posterior_mean_coef2": (1.0 - ac_prev) * np.sqrt(alphas) / (1.0 - ac),
        }
        for name in SCHEDULE_BUFFERS:
            self.register_buffer(name, torch.tensor(values[name], dtype=torch.float32))
        if config.use_dynamic_rescale:
            scale = np.concatenate(
                [
                    np.linspace(1.0, config.base_scale, config.turning_step),
                    np.full(n, config.base_scale),
                ]
            )
            self.register_buffer("scale_arr", torch.tensor(scale, dtype=torch.float32))


def ddim_timesteps(spacing: str, steps: int, train_steps: int) -> np.ndarray:
    """DDIM timesteps, ascending. "uniform_trailing": round(arange(T, 0, -T/S))[::-1] - 1."""
    if spacing == "uniform_trailing":
        return (
            np.flip(np.round(np.arange(train_steps, 0, -train_steps / steps))).astype(np.int64) - 1
        )
    if spacing == "uniform":
        return np.arange(0, train_steps, train_steps // steps) + 1
    raise ValueError(f"unknown timestep spacing {spacing!r} (uniform_trailing, uniform)")


@dataclass
class DDIMSchedule:
    """Per-step schedule of one sampling run (names as in the official DDIMSampler)."""

    timesteps: np.ndarray  # [S] int64 ascending
    alphas: torch.Tensor  # [S] float32
    alphas_prev: np.ndarray  # [S] float64
    sigmas: np.ndarray  # [S] float64
    scale_arr: torch.Tensor | None  # [S] float32
    scale_arr_prev: torch.Tensor | None  # [S] float32


def make_ddim_schedule(
    schedule: nn.Module,
    steps: int,
    eta: float,
    spacing: str = "uniform_trailing",
    variant: str = "dynamicrafter",
) -> DDIMSchedule:
    """Replicates DDIMSampler.make_schedule including its float32/float64 mix.

    variant "viewcrafter": the dynamic-rescale factor of the last step uses scale_arr[0]
    (ViewCrafter's fix) instead of the step's own value (DynamiCrafter).
    """
    ac = schedule.alphas_cumprod.detach().cpu()
    ts = ddim_timesteps(spacing, steps, ac.shape[0])
    alphas = ac[ts]
    alphas_prev = np.asarray([float(ac[0])] + ac[ts[:-1]].tolist(), dtype=np.float64)
    # The official expression mixes a float64 numpy array with float32 tensors: torch then
    # evaluates `array / tensor` as array * reciprocal(tensor), the reciprocal in float32.
    prev = torch.from_numpy(alphas_prev)
    inverse_one_minus_a = (1 - alphas).reciprocal().double()
    ratio = alphas.double() / prev
    sigmas = (eta * torch.sqrt((1 - prev) * inverse_one_minus_a * (1 - ratio))).numpy()
    scale, scale_prev = None, None
    if hasattr(schedule, "scale_arr"):
        scale_full = schedule.scale_arr.detach().cpu()
        scale = scale_full[ts]
        first = scale_full[0:1] if variant == "viewcrafter" else scale[0:1]
        scale_prev = torch.cat([first, scale[:-1]])
    return DDIMSchedule(ts, alphas, alphas_prev, sigmas, scale, scale_prev)


class NoiseSource(Protocol):
    def randn(self, shape: Sequence[int]) -> torch.Tensor: ...


class TorchNoise:
    """Gaussian draws from a seeded torch.Generator, in call order."""

    def __init__(
        self, seed: int | None = None, device: str | torch.device = "cpu", dtype=torch.float32
    ):
        self.generator = torch.Generator(device=device)
        if seed is not None:
            self.generator.manual_seed(int(seed))
        self.device = device
        self.dtype = dtype

    def randn(self, shape: Sequence[int]) -> torch.Tensor:
        return torch.randn(
            tuple(shape), generator=self.generator, device=self.device, dtype=self.dtype
        )


class RecordedNoise:
    """Replays recorded Gaussian draws (fixtures), checking each requested shape."""

    def __init__(self, tensors: Sequence[torch.Tensor]):
        self.tensors = list(tensors)
        self.calls = 0

    def randn(self, shape: Sequence[int]) -> torch.Tensor:
        if self.calls >= len(self.tensors):
            raise IndexError(f"only {len(self.tensors)} recorded noise tensors")
        out = self.tensors[self.calls]
        if tuple(out.shape) != tuple(shape):
            raise ValueError(
                f"noise draw {self.calls}: recorded {tuple(out.shape)} vs requested {tuple(shape)}"
            )
        self.calls += 1
        return out


def rescale_guidance(
    v_cfg: torch.Tensor, v_cond: torch.Tensor, guidance_rescale: float
) -> torch.Tensor:
    """Mix v_cfg with v_cfg rescaled to v_cond's (unbiased) std over all non-batch dims."""
    dims = list(range(1, v_cond.ndim))
    std_cond = v_cond.std(dim=dims, keepdim=True)
    std_cfg = v_cfg.std(dim=dims, keepdim=True)
    return guidance_rescale * (v_cfg * (std_cond / std_cfg)) + (1 - guidance_rescale) * v_cfg


@dataclass
class StepRecord:
    """What one DDIM step saw and produced (for parity checks and debugging)."""

    t: int
    x_in: torch.Tensor
    v_cond: torch.Tensor
    v_uncond: torch.Tensor | None
    pred_x0: torch.Tensor
    x_prev: torch.Tensor


# (x [B x C x T x H x W], timesteps [B], conditional: bool) -> v prediction, same shape as x.
Denoiser = Callable[[torch.Tensor, torch.Tensor, bool], torch.Tensor]


class DDIMSampler:
    """Official lvdm DDIM sampling loop for v-prediction with CFG and guidance rescale.

    schedule: a module holding the schedule buffers under their official names (a
    NoiseSchedule, or the full model, whose buffers may come from a checkpoint).
    """

    def __init__(self, schedule: nn.Module, variant: str = "dynamicrafter"):
        if variant not in ("dynamicrafter", "viewcrafter"):
            raise ValueError(f"variant must be dynamicrafter or viewcrafter, got {variant!r}")
        self.schedule = schedule
        self.variant = variant

    def sample(
        self,
        denoise: Denoiser,
        shape: Sequence[int],
        noise: NoiseSource,
        steps: int,
        eta: float = 1.0,
        cfg_scale: float = 7.5,
        guidance_rescale: float = 0.7,
        spacing: str = "uniform_trailing",
        callback: Callable[[int, int], None] | None = None,
        record: list[StepRecord] | None = None,
    ) -> torch.Tensor:
        """Runs S steps from x_T ~ noise.randn(shape); returns x_0 latents [B x C x T x H x W].

        `callback(i, S)` runs after step i; it may raise to stop sampling.
        """
        plan = make_ddim_schedule(self.schedule, steps, eta, spacing, self.variant)
        sqrt_ac = self.schedule.sqrt_alphas_cumprod
        sqrt_1m_ac = self.schedule.sqrt_one_minus_alphas_cumprod
        x = noise.randn(shape)
        b = x.shape[0]
        size = (b,) + (1,) * (x.ndim - 1)
        device = x.device
        total = len(plan.timesteps)
        for i, step in enumerate(np.flip(plan.timesteps)):
            index = total - 1 - i
            ts = torch.full((b,), int(step), device=device, dtype=torch.long)
            v_cond = denoise(x, ts, True)
            v_uncond = None
            if cfg_scale != 1.0:
                v_uncond = denoise(x, ts, False)
                v = v_uncond + cfg_scale * (v_cond - v_uncond)
                if guidance_rescale > 0.0:
                    v = rescale_guidance(v, v_cond, guidance_rescale)
            else:
                v = v_cond
            a_sqrt = sqrt_ac.to(device).gather(-1, ts).reshape(size)
            s_sqrt = sqrt_1m_ac.to(device).gather(-1, ts).reshape(size)
            e_t = a_sqrt * v + s_sqrt * x
            pred_x0 = a_sqrt * x - s_sqrt * v
            if plan.scale_arr is not None and plan.scale_arr_prev is not None:
                scale_t = torch.full(size, float(plan.scale_arr[index]), device=device)
                prev_scale_t = torch.full(size, float(plan.scale_arr_prev[index]), device=device)
                pred_x0 = pred_x0 * (prev_scale_t / scale_t)
            a_prev = torch.full(size, float(plan.alphas_prev[index]), device=device)
            sigma_t = torch.full(size, float(plan.sigmas[index]), device=device)
            dir_xt = (1.0 - a_prev - sigma_t**2).sqrt() * e_t
            x_prev = a_prev.sqrt() * pred_x0 + dir_xt + sigma_t * noise.randn(x.shape).to(device)
            if record is not None:
                record.append(StepRecord(int(step), x, v_cond, v_uncond, pred_x0, x_prev))
            x = x_prev
            if callback is not None:
                callback(i, total)
        return x
