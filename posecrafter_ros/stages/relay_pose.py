"""DUSt3R stages of the pipeline: relay-frame reconstruction and the final multi-view pose.

Both stages run the same steps: official preprocessing of every view (long side to
`image_size`, crop to multiples of 16), pairwise inference on the complete symmetric graph,
then global alignment (PointCloudOptimizer with MST init, or the two-view path for a pair
without known intrinsics). Known intrinsics are fixed during alignment, mapped to the working
resolution exactly as the images are resized (`known_intrinsics`):
    "ends" (default): the first and last views, i.e. the real keyframes A and B (or their
        cover-crops); the views between them are generated frames (relay frames, ViewCrafter
        frames) whose intrinsics nobody knows, so their focals are optimised with the principal
        point at the image centre, as ViewCrafter's `run_dust3r` and the DUSt3R demo optimise
        every focal (`global_aligner(...).compute_global_alignment(init='mst')`).
    "all": every view (all views are real images with calibrated cameras).
    "none": nothing fixed, the official default.
The network runs in float32 by default, as the official `inference` does; bfloat16 is an
option (docs/gpu.md gives its measured effect on the parity fixtures).

Conf keys (all optional except `checkpoint` unless `tiny`):
    checkpoint: path to DUSt3R_ViTLarge_BaseDecoder_512_dpt.pth or its .safetensors copy
    tiny: true -> a small random network (seeded by `seed`) for CPU plumbing tests
    random_weights: true -> the full-size network with random weights, no checkpoint (the
        official model's compute and memory, for cost benchmarks)
    model: {Dust3rConfig field: value} overrides (e.g. head counts of a non-released network)
    device ("cpu"), dtype ("float32" | "bfloat16"), image_size (512), batch_size (1)
    niter (300), lr (0.01), schedule ("linear" | "cosine"), known_intrinsics ("ends"),
    min_conf_thr (3.0), report_every (10)
    Dust3rPoseModel only: leave_one_out (4: max number of middle views left out, in turn, to
    measure the spread of the pose), rotation_sigma_deg (2.0), direction_sigma_deg (5.0),
    baseline_variance (1e4: variance along the unit translation, whose scale is unknown).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..core.config import strict_config
from ..core.imageops import resize_to_model
from ..core.types import (
    EstimationError,
    Keyframe,
    RunContext,
    SceneReconstruction,
    Status,
)

DTYPES = ("float32", "bfloat16")
KNOWN_INTRINSICS = ("ends", "all", "none")
MIN_CONFIDENT_PIXELS = 16


@dataclass(frozen=True)
class Dust3rStageConfig:
    checkpoint: str = ""
    tiny: bool = False
    random_weights: bool = False
    seed: int = 0
    model: dict = field(default_factory=dict)
    device: str = "cpu"
    dtype: str = "float32"
    image_size: int = 512
    batch_size: int = 1
    niter: int = 300
    lr: float = 0.01
    schedule: str = "linear"
    known_intrinsics: str = "ends"
    min_conf_thr: float = 3.0
    report_every: int = 10
    leave_one_out: int = 4
    rotation_sigma_deg: float = 2.0
    direction_sigma_deg: float = 5.0
    baseline_variance: float = 1e4

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {DTYPES}, got {self.dtype!r}")
        if self.image_size % 16 or self.image_size < 32:
            raise ValueError(
                f"image_size must be a multiple of 16 and >= 32, got {self.image_size}"
            )
        if self.known_intrinsics not in KNOWN_INTRINSICS:
            raise ValueError(
                f"known_intrinsics must be one of {KNOWN_INTRINSICS}, got {self.known_intrinsics!r}"
            )
        if self.niter < 1 or self.batch_size < 1:
            raise ValueError("niter and batch_size must be >= 1")

    @classmethod
    def from_dict(
        cls, conf: Mapping[str, Any], section: str = "bridge (dust3r)"
    ) -> "Dust3rStageConfig":
        """Raises ValueError naming `section` and the valid keys for an unknown key; a null
        checkpoint means none."""
        values = dict(conf)
        if values.get("checkpoint") is None:
            values.pop("checkpoint", None)
        return strict_config(cls, section, values)


_MODELS: dict[tuple, Any] = {}
_MODELS_LOCK = threading.Lock()


def _shared_model(config: Dust3rStageConfig):
    """One network per (weights, device, dtype): the relay poser and pose model share it."""
    import torch

    from ..models.checkpoint import CheckpointError
    from ..models.dust3r.config import TINY_CONFIG, Dust3rConfig
    from ..models.dust3r.model import Dust3rModel, load_dust3r, to_device_dtype

    dtype = getattr(torch, config.dtype)
    key = (
        config.checkpoint,
        config.tiny,
        config.random_weights,
        config.seed,
        json.dumps(config.model, sort_keys=True),
        config.device,
        config.dtype,
    )
    with _MODELS_LOCK:
        if key in _MODELS:
            return _MODELS[key]
        if config.tiny or config.random_weights:
            base = TINY_CONFIG.to_dict() if config.tiny else Dust3rConfig().to_dict()
            net_config = Dust3rConfig.from_dict({**base, **config.model})
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(config.seed)
                model = Dust3rModel(net_config)
            _make_confident(model)
            model = to_device_dtype(model, config.device, dtype)
        else:
            if not str(config.checkpoint).strip():
                raise CheckpointError(
                    "DUSt3R stage: no `checkpoint` configured (path to "
                    "DUSt3R_ViTLarge_BaseDecoder_512_dpt.pth or .safetensors), and tiny is false"
                )
            model = load_dust3r(
                config.checkpoint, None, config.device, dtype, overrides=config.model
            )
        _MODELS[key] = model
        return model


TINY_CONFIDENCE_LOGIT = 2.0


def _make_confident(model) -> None:
    """Shift a random network's confidence logit so conf = 1 + exp(c) clears the default
    threshold of 3; otherwise every pixel of a tiny test model is rejected and the stages
    downstream of it can never be exercised."""
    import torch

    from ..models.dust3r.heads import DPTHead

    with torch.no_grad():
        for head in (model.downstream_head1, model.downstream_head2):
            if isinstance(head, DPTHead):
                head.dpt.head[-1].bias[3] += TINY_CONFIDENCE_LOGIT
            else:
                patch_area = head.patch_size**2
                head.proj.bias[3 * patch_area :] += TINY_CONFIDENCE_LOGIT


@dataclass
class AlignedViews:
    """Output of `align_views`: per-view working images and the aligned scene.

    cam_to_world: [N x 4 x 4], K: [N x 3 x 3] (working pixels), points / confidence per view
    ([H x W x 3] / [H x W]), prepared: the PreparedImage of each view (pixel maps).
    """

    prepared: list
    cam_to_world: np.ndarray
    K: np.ndarray
    points: list[np.ndarray]
    confidence: list[np.ndarray]
    masks: list[np.ndarray]
    predictions: list
    loss: float

    def intrinsics_in_original_pixels(self) -> np.ndarray:
        """[N x 3 x 3] the aligned intrinsics mapped back to each input image's own pixels."""
        return np.stack([p.intrinsics_to_original(K) for p, K in zip(self.prepared, self.K)])


class Dust3rStage:
    """Shared loading and view alignment of both DUSt3R stages."""

    def __init__(self, config: Dust3rStageConfig):
        self.config = config
        self.model = _shared_model(config)

    @classmethod
    def from_config(cls, conf: dict[str, Any]):
        return cls(Dust3rStageConfig.from_dict(dict(conf)))

    def to(self, device: str) -> "Dust3rStage":
        """Move the network (pipeline offloading between stages)."""
        self.model.to(device)
        return self

    def _predict(self, frames: Sequence[Keyframe], ctx: RunContext, same_size: bool = False):
        from ..models.dust3r.inference import complete_symmetric_pairs, infer_pairs
        from ..models.dust3r.preprocessing import prepare_image

        if len(frames) < 2:
            raise EstimationError(
                Status.INVALID_REQUEST, f"DUSt3R needs >= 2 views, got {len(frames)}"
            )
        prepared = [prepare_image(f.image, self.config.image_size) for f in frames]
        shapes = sorted({p.true_shape for p in prepared})
        if same_size and len(shapes) != 1:
            raise EstimationError(
                Status.INVALID_REQUEST,
                f"frames must share one working size to form a reconstruction; got {shapes} (H, W)",
            )
        predictions = infer_pairs(
            self.model,
            [p.tensor for p in prepared],
            complete_symmetric_pairs(len(frames)),
            self.config.batch_size,
            ctx.check,
        )
        return prepared, predictions

    def _known_intrinsics(self, frames: Sequence[Keyframe], prepared: list):
        focals, centres = [], []
        for frame, view in zip(frames, prepared):
            K = view.intrinsics_to_working(np.asarray(frame.K, dtype=np.float64))
            focals.append(float(np.sqrt(K[0, 0] * K[1, 1])))
            centres.append((float(K[0, 2]), float(K[1, 2])))
        return focals, centres

    def _known_views(self, num_views: int) -> list[int]:
        """Positions (in the aligned subset) of the views whose intrinsics are fixed."""
        if self.config.known_intrinsics == "all":
            return list(range(num_views))
        if self.config.known_intrinsics == "ends":
            return [0, num_views - 1]
        return []

    def align_views(
        self,
        frames: Sequence[Keyframe],
        ctx: RunContext,
        subset: Sequence[int] | None = None,
        cached: tuple | None = None,
    ) -> AlignedViews:
        """Inference (or `cached` = (prepared, predictions)) + global alignment of `subset`.

        Reports its progress over the whole of `ctx`'s current span (callers that run several
        alignments give each one a `ctx.subspan`).
        """
        from ..models.dust3r.alignment import (
            AlignmentConfig,
            AlignmentError,
            global_alignment,
            two_view_alignment,
        )

        prepared, predictions = cached if cached is not None else self._predict(frames, ctx)
        views = list(range(len(frames))) if subset is None else list(subset)
        index = {v: k for k, v in enumerate(views)}
        selected = [_reindex(p, index) for p in predictions if p.i in index and p.j in index]
        config = AlignmentConfig(
            niter=self.config.niter,
            lr=self.config.lr,
            schedule=self.config.schedule,
            min_conf_thr=self.config.min_conf_thr,
        )
        try:
            known_views = self._known_views(len(views))
            if len(views) == 2 and not known_views:
                two = two_view_alignment(selected, config.min_conf_thr)
                cam_to_world = two.cam_to_world.numpy().astype(np.float64)
                K = np.stack(
                    [
                        _pinhole(float(f), pp.tolist())
                        for f, pp in zip(two.focals, two.principal_points)
                    ]
                )
                points = [p.astype(np.float32) for p in two.world_points]
                masks = [m.numpy() for m in two.masks]
                loss = 0.0
            else:
                known = None
                if known_views:
                    known = self._known_intrinsics(
                        [frames[views[k]] for k in known_views],
                        [prepared[views[k]] for k in known_views],
                    )

                def report(iteration: int, _loss: float) -> None:
                    ctx.report((iteration + 1) / self.config.niter)

                optimizer, loss = global_alignment(
                    selected,
                    config,
                    known,
                    report,
                    self.config.report_every,
                    self.config.device,
                    known_views,
                )
                import torch

                with torch.no_grad():
                    cam_to_world = optimizer.cam_to_world().numpy().astype(np.float64)
                    K = optimizer.intrinsics().numpy().astype(np.float64)
                    points = [p.numpy().astype(np.float32) for p in optimizer.world_points()]
                masks = [m.numpy() for m in optimizer.masks()]
        except AlignmentError as err:
            raise EstimationError(
                Status.INSUFFICIENT_OVERLAP, f"DUSt3R alignment failed: {err}"
            ) from None
        confidence = _view_confidence(selected, len(views))
        _check_result(cam_to_world, K, points, masks, loss)
        return AlignedViews(
            [prepared[v] for v in views],
            cam_to_world,
            K,
            points,
            confidence,
            masks,
            predictions,
            float(loss),
        )


def _reindex(prediction, index: dict[int, int]):
    from ..models.dust3r.inference import PairPrediction

    return PairPrediction(
        index[prediction.i],
        index[prediction.j],
        prediction.pts_i,
        prediction.conf_i,
        prediction.pts_j,
        prediction.conf_j,
    )


def _pinhole(focal: float, pp: Sequence[float]) -> np.ndarray:
    return np.array([[focal, 0.0, pp[0]], [0.0, focal, pp[1]], [0.0, 0.0, 1.0]])


def _view_confidence(predictions, num_views: int) -> list[np.ndarray]:
    """Per view [H x W] float32: the best confidence any edge gives each pixel."""
    from ..models.dust3r.inference import view_confidence

    return [c.numpy().astype(np.float32) for c in view_confidence(predictions, num_views)]


def _check_result(cam_to_world, K, points, masks, loss) -> None:
    """Refuse non-finite or unsupported solutions instead of returning them."""
    if not (np.isfinite(cam_to_world).all() and np.isfinite(K).all() and np.isfinite(loss)):
        raise EstimationError(
            Status.INSUFFICIENT_OVERLAP, "DUSt3R alignment produced non-finite poses"
        )
    if (K[:, 0, 0] <= 0).any():
        raise EstimationError(
            Status.INSUFFICIENT_OVERLAP, "DUSt3R alignment produced a non-positive focal"
        )
    weak = [v for v, m in enumerate(masks) if int(m.sum()) < MIN_CONFIDENT_PIXELS]
    if weak:
        raise EstimationError(
            Status.INSUFFICIENT_OVERLAP,
            f"DUSt3R is not confident about views {weak} (< {MIN_CONFIDENT_PIXELS} pixels above "
            "the confidence threshold)",
        )


class Dust3rRelayPoser(Dust3rStage):
    """RelayPoser: cameras and per-pixel world points of the relay frames."""

    def reconstruct(
        self, frames: Sequence[Keyframe], ctx: RunContext | None = None
    ) -> SceneReconstruction:
        ctx = ctx or RunContext()
        aligned = self.align_views(frames, ctx, cached=self._predict(frames, ctx, same_size=True))
        return SceneReconstruction(
            images=[p.image for p in aligned.prepared],
            K=aligned.K,
            cam_to_world=aligned.cam_to_world,
            points=np.stack(aligned.points).astype(np.float32),
            confidence=np.stack(aligned.confidence).astype(np.float32),
        )


def relay_indices(num_frames: int, num_relay: int) -> list[int]:
    """Indices of the relay frames: the `num_relay / 2` frames nearest each end.

    The paper keeps {I0, I1, I_{T-1}, I_T} (4 relay frames beat 2, 6, 8 and all 16).
    """
    if num_frames < 2:
        raise ValueError(f"need at least 2 interpolated frames, got {num_frames}")
    per_end = max(1, min(num_relay // 2, num_frames // 2))
    head = list(range(per_end))
    tail = list(range(num_frames - per_end, num_frames))
    return sorted(set(head + tail))


def relay_frames(
    a: Keyframe, b: Keyframe, frames: Sequence[Keyframe], num_relay: int
) -> list[Keyframe]:
    """The relay frames {I0, I1, ..., I_{T-1}, I_T} of an interpolated video `frames`.

    I0 and I_T are the input keyframes themselves, cover-cropped to the video's geometry with
    their intrinsics mapped (PoseCrafter: the relay set holds the inputs, not the video
    model's regenerated end frames, which are only close to them); the frames next to the
    ends come from the video.
    """
    indices = relay_indices(len(frames), num_relay)
    out = [frames[i] for i in indices]
    for position, (end, generated) in ((0, (a, frames[0])), (-1, (b, frames[-1]))):
        size = (generated.image.shape[1], generated.image.shape[0])
        image = end.image if end.image.ndim == 3 else np.repeat(end.image[:, :, None], 3, axis=2)
        image, K, _ = resize_to_model(image, end.K, size)
        out[position] = Keyframe(image=image, K=K, frame_id=end.frame_id, stamp_ns=end.stamp_ns)
    return out
