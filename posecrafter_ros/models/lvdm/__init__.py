"""DynamiCrafter / ViewCrafter (lvdm) video diffusion models, checkpoint-compatible rewrites.

Modules (state-dict names = the official checkpoint keys):
- unet3d.py, attention.py: the 3D UNet (`model.diffusion_model.*`);
- resampler.py: image-projection Resampler (`image_proj_model.*`);
- clip.py, tokenizer.py: OpenCLIP ViT-H-14 text / image towers (`cond_stage_model.model.*`,
  `embedder.model.*`) and a BPE tokenizer reading open_clip's vocabulary (assets/, MIT);
- autoencoder.py: diffusers AutoencoderKL with the LDM key map (`first_stage_model.*`);
- diffusion.py: schedule buffers and the official DDIM sampler (v, zero-SNR, CFG rescale);
- latent_diffusion.py: the full model and its conditioning; configs.py: official presets
  and tiny test configs; loading.py: .ckpt / safetensors / shards; runtime.py: conf dicts,
  device/dtype/offload (progress reaches the sampler as a plain callback); parity.py:
  fixture checks.
The stage adapters live in posecrafter_ros.stages: interpolate (DynamiCrafterInterpolator)
and synthesize (ViewCrafterGenerator).
"""
