"""Neural models (torch): video diffusion (lvdm family), OpenCLIP towers, DUSt3R.

Everything here imports torch; the core imports these modules lazily.
"""
