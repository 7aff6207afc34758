"""View synthesis for the bridging path (HVG): trajectories, point rasterisation, video models.

Heavy dependencies (torch) are imported inside the functions that need them.
"""

from .imageops import MODEL_SIZE, CoverCrop, cover_crop, resize_to_model
from .render import PointRasterRenderer, Rendering
from .trajectory import CameraTrajectory, interpolate_trajectory, slerp_rotations
from .view_synthesis import (
    PointCloudViewSynthesizer,
    RenderOnlyGenerator,
    VideoGenerator,
    ViewSynthesisConfig,
)

__all__ = [
    "MODEL_SIZE",
    "CameraTrajectory",
    "CoverCrop",
    "PointCloudViewSynthesizer",
    "PointRasterRenderer",
    "RenderOnlyGenerator",
    "Rendering",
    "VideoGenerator",
    "ViewSynthesisConfig",
    "cover_crop",
    "interpolate_trajectory",
    "resize_to_model",
    "slerp_rotations",
]
