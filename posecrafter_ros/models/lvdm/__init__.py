"""DynamiCrafter / ViewCrafter (lvdm) video diffusion models, checkpoint-compatible rewrites."""
