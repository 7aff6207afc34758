"""Image <-> model-tensor conversions shared by the DynamiCrafter and ViewCrafter APIs."""

from __future__ import annotations

import numpy as np


def resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Plain resize of [H x W x 3] uint8 (area when shrinking, bilinear when enlarging)."""
    if image.shape[:2] == (height, width):
        return image.copy()
    import cv2

    shrink = height < image.shape[0] and width < image.shape[1]
    interpolation = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    return cv2.resize(image, (width, height), interpolation=interpolation)


def images_to_tensor(images: np.ndarray):
    """uint8 [... x H x W x 3] -> float32 torch tensor [... x 3 x H x W] in [-1, 1].

    Same arithmetic as the official ToTensor + Normalize(0.5, 0.5): (x/255 - 0.5)/0.5.
    """
    import torch

    x = torch.from_numpy(np.ascontiguousarray(images)).float() / 255.0
    return ((x - 0.5) / 0.5).movedim(-1, -3)


def interpolation_video(image_a: np.ndarray, image_b: np.ndarray, frames: int):
    """DynamiCrafter interp input: A repeated frames//2 times then B -> [1 x 3 x T x H x W]."""
    import torch

    a, b = images_to_tensor(image_a), images_to_tensor(image_b)
    half = frames // 2
    return torch.stack([a] * half + [b] * (frames - half), dim=1)[None].contiguous()


def tensor_to_images(video) -> np.ndarray:
    """[3 x T x H x W] in [-1, 1] -> uint8 [T x H x W x 3] (clamped, rounded)."""
    import torch

    x = ((video.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(1, 2, 3, 0).cpu().numpy()
