"""Image <-> model-tensor conversions shared by the DynamiCrafter and ViewCrafter APIs."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class CropTransform:
    """Pixel mapping of a resize (scale) followed by a crop (offset): u' = u*scale - offset.

    Maps pixel-centre coordinates: u' + 0.5 = (u + 0.5) * scale - offset_px.
    """

    scale_x: float
    scale_y: float
    offset_x: float
    offset_y: float

    def map_intrinsics(self, K: np.ndarray) -> np.ndarray:
        """[3 x 3] intrinsics of the source image -> intrinsics of the resized, cropped image."""
        out = np.asarray(K, dtype=np.float64).copy()
        out[0, 0] *= self.scale_x
        out[0, 1] *= self.scale_x
        out[1, 1] *= self.scale_y
        out[0, 2] = (out[0, 2] + 0.5) * self.scale_x - 0.5 - self.offset_x
        out[1, 2] = (out[1, 2] + 0.5) * self.scale_y - 0.5 - self.offset_y
        return out


def resize_center_crop(
    image: np.ndarray, height: int, width: int
) -> tuple[np.ndarray, CropTransform]:
    """Scale `image` [H x W x 3] uint8 so it covers height x width, then crop the centre.

    The official loaders resize the SHORT side to min(height, width) and centre-crop, which
    pads with black when the image is less wide than 1.6:1 (e.g. 4:3 at 320x512); covering
    the target keeps every output pixel real, at the cost of cropping more.
    """
    import cv2

    h, w = image.shape[:2]
    scale = max(height / h, width / w)
    new_h, new_w = max(height, round(h * scale)), max(width, round(w * scale))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    resized = (
        image
        if (new_h, new_w) == (h, w)
        else cv2.resize(image, (new_w, new_h), interpolation=interpolation)
    )
    top, left = (new_h - height) // 2, (new_w - width) // 2
    crop = np.ascontiguousarray(resized[top : top + height, left : left + width])
    return crop, CropTransform(new_w / w, new_h / h, float(left), float(top))


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
