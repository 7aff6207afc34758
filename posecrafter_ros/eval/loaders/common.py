"""Small geometry helpers shared by the layout readers."""

from __future__ import annotations

import numpy as np

# OpenGL / nerfstudio camera axes (x right, y up, z backward) -> OpenCV (x right, y down,
# z forward): flip y and z. As a right factor of a camera-to-world matrix it relabels the
# camera axes only; the world frame is unchanged.
GL_TO_CV = np.diag([1.0, -1.0, -1.0, 1.0])


def pinhole(fx: float, fy: float, cx: float, cy: float) -> np.ndarray:
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
