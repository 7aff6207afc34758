"""The generative bridge stage by stage, with each stage's invariants checked and its cost.

Used by scripts/gpu_smoke.py (the first GPU run: PASS/FAIL per invariant) and
scripts/bench_pipeline.py --random-weights (per-stage seconds and peak GPU memory of the
full-size models without their checkpoints). The stages run in the pipeline's order and with
its helpers (`relay_frames`, each stage resident on the device only while it runs):
interpolate -> relay frames -> relay poses -> renders + video clips -> FMS -> multi-view pose.

Thresholds marked real_weights_only hold for the official checkpoints; on random networks
(tiny profile, random weights) their figures are reported as INFO.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

# Thresholds that hold for the official weights (random networks are not expected to meet them).
MIN_END_FRAME_PSNR_DB = 18.0  # DynamiCrafter's regenerated end frames vs the inputs
MAX_RELAY_VS_DIRECT_DEG = 15.0  # relay cameras' relative rotation vs the direct estimate
MIN_RENDER_COVERAGE = 0.5  # share of each clip's pixels the point cloud reaches
MIN_CLIP_ENDPOINT_PSNR_DB = 18.0  # ViewCrafter's first frame vs its conditioning image
MAX_ROTATION_ERROR_DEG = 30.0  # final pose vs ground truth (paper: MRE 11-18 deg at 50-65)


@dataclass
class Check:
    stage: str
    name: str
    passed: bool
    figure: str
    real_weights_only: bool = False


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    error = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if error == 0 else float(10 * np.log10(255.0**2 / error))


def rotation_angle_deg(R: np.ndarray) -> float:
    return float(np.degrees(np.arccos(np.clip((np.trace(R) - 1) / 2, -1.0, 1.0))))


class Smoke:
    """Runs the stages, records checks and per-stage cost."""

    def __init__(self, pipeline, device: str, real_weights: bool, stand_ins: bool = False):
        """stand_ins: when a stage cannot produce its output from random weights (alignment
        of random points, FMS on random frames), continue with a stand-in of the same size
        so that the later stages' cost is still measured (cost runs only)."""
        self.pipeline = pipeline
        self.stand_ins = stand_ins
        self.cuda = device.startswith("cuda")
        self.real_weights = real_weights
        self.checks: list[Check] = []
        self.costs: list[tuple[str, float, float | None]] = []

    def check(self, stage: str, name: str, passed: bool, figure: str, real_weights_only=False):
        """Record and print one invariant (INFO instead of PASS/FAIL when it only holds for
        the official weights and these are random)."""
        self.checks.append(Check(stage, name, bool(passed), figure, real_weights_only))
        status = "PASS" if passed else "FAIL"
        if real_weights_only and not self.real_weights:
            status = "INFO"
        marker = " [real weights]" if real_weights_only else ""
        print(f"  {status:<4} {stage:<11} {name}: {figure}{marker}", flush=True)

    def note(self, stage: str, text: str) -> None:
        """Print a figure that is context, not a check."""
        print(f"  INFO {stage:<11} {text}", flush=True)

    @contextmanager
    def stage(self, name: str, slot: str | None):
        """Time a stage with its model resident on the device (as the pipeline does)."""
        if self.cuda:
            import torch

            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        started = time.monotonic()
        try:
            with self.pipeline._resident(slot):
                yield
        finally:
            self._record(name, started)

    def _record(self, name: str, started: float) -> None:
        if self.cuda:
            import torch

            torch.cuda.synchronize()
            peak = torch.cuda.max_memory_allocated() / 2**30
        else:
            peak = None
        seconds = time.monotonic() - started
        self.costs.append((name, seconds, peak))
        memory = f"peak GPU {peak:.2f} GiB" if peak is not None else "peak GPU n/a (CPU)"
        print(f"  ---- {name:<11} {seconds:8.2f} s   {memory}", flush=True)

    @property
    def applicable(self) -> list[Check]:
        """The checks that decide the outcome (all of them with the official weights)."""
        return [c for c in self.checks if self.real_weights or not c.real_weights_only]

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.applicable if not c.passed]


def run_bridge_stages(smoke: Smoke, a, b, pair) -> None:
    """Every bridge stage on keyframes a, b of a posed `pair`, checks and costs into `smoke`."""
    from ..core.imageops import resize_to_model
    from ..core.twoview import estimate_two_view
    from ..core.types import EstimationError, RunContext
    from ..stages.relay_pose import relay_frames
    from .metrics import rotation_error_deg

    pipeline, stages, ctx = smoke.pipeline, smoke.pipeline.stages, RunContext()

    with smoke.stage("direct", None):
        direct = estimate_two_view(a, b, pipeline.direct_conf)
    smoke.note(
        "direct",
        f"direct estimate: {direct.num_inliers} inliers, confidence {direct.confidence:.2f} "
        "(the bridge runs regardless)",
    )

    with smoke.stage("interpolate", "interpolator"):
        frames = stages["interpolator"].interpolate(a, b, ctx)
    height, width = frames[0].image.shape[:2]
    ends = [resize_to_model(end.image, end.K, (width, height))[0] for end in (a, b)]
    end_psnr = [psnr(frames[0].image, ends[0]), psnr(frames[-1].image, ends[1])]
    smoke.check(
        "interpolate",
        "frames",
        len(frames) >= 2 and all(f.image.shape == frames[0].image.shape for f in frames),
        f"{len(frames)} frames of {width}x{height}",
    )
    smoke.check(
        "interpolate",
        f"end frames close to the inputs (PSNR >= {MIN_END_FRAME_PSNR_DB} dB)",
        min(end_psnr) >= MIN_END_FRAME_PSNR_DB,
        f"first {end_psnr[0]:.1f} dB, last {end_psnr[1]:.1f} dB",
        real_weights_only=True,
    )

    relay_views = relay_frames(a, b, frames, int(pipeline.bridge_conf.get("num_relay_frames", 4)))
    try:
        with smoke.stage("relay_pose", "relay_poser"):
            relay = stages["relay_poser"].reconstruct(relay_views, ctx)
    except EstimationError as err:
        smoke.check("relay_pose", "relay reconstruction", False, err.message)
        if not smoke.stand_ins:
            return
        relay = stand_in_relay(relay_views)
        print("  ---- relay_pose  continuing with a stand-in reconstruction of the same size")
    poses = np.asarray(relay.cam_to_world)
    rotations_ok = all(
        np.allclose(R.T @ R, np.eye(3), atol=1e-4) and np.linalg.det(R) > 0
        for R in poses[:, :3, :3]
    )
    spread = np.linalg.norm(poses[:, :3, 3] - poses[:, :3, 3].mean(axis=0), axis=1).max()
    depth_scale = float(
        np.nanmedian(np.linalg.norm(relay.points - poses[:, None, None, :3, 3], axis=-1))
    )
    smoke.check(
        "relay_pose",
        "poses finite, rotations orthonormal, cameras apart",
        np.isfinite(poses).all() and rotations_ok and spread > 1e-6 * depth_scale,
        f"{len(poses)} cameras, spread {spread:.3g} (scene depth {depth_scale:.3g})",
    )
    relay_relative = np.linalg.inv(poses[0]) @ poses[-1]  # B in A
    if direct.pose is not None:
        gap = rotation_angle_deg(relay_relative[:3, :3].T @ np.asarray(direct.pose.R))
        smoke.check(
            "relay_pose",
            f"A-B rotation agrees with the direct estimate (<= {MAX_RELAY_VS_DIRECT_DEG} deg)",
            gap <= MAX_RELAY_VS_DIRECT_DEG,
            f"{gap:.1f} deg apart",
            real_weights_only=True,
        )
    R_gt_b_in_a = np.asarray(pair.R_0to1).T
    error = rotation_angle_deg(relay_relative[:3, :3].T @ R_gt_b_in_a)
    smoke.note("relay_pose", f"A-B rotation of the relay cameras vs ground truth: {error:.1f} deg")

    synthesizer = stages["synthesizer"]
    recorder = RecordingGenerator(synthesizer.generator)
    synthesizer.generator = recorder
    with smoke.stage("synthesize", "synthesizer"):
        candidates = synthesizer.synthesize(relay, ctx)
        rendered = synthesizer.render_trajectory(relay, ctx)
    synthesizer.generator = recorder.generator
    step = synthesizer.conf.num_frames - 1
    coverage = [
        float(rendered.masks[clip * step : clip * step + step + 1].mean())
        for clip in range(len(recorder.calls))
    ]
    smoke.check(
        "synthesize",
        f"render coverage of each clip (>= {MIN_RENDER_COVERAGE:.0%})",
        min(coverage) >= MIN_RENDER_COVERAGE,
        ", ".join(f"{c:.0%}" for c in coverage),
        real_weights_only=True,
    )
    endpoint_psnr = [psnr(out[0], reference) for reference, out in recorder.calls]
    smoke.check(
        "synthesize",
        f"clip first frames close to their conditioning images (>= {MIN_CLIP_ENDPOINT_PSNR_DB} dB)",
        min(endpoint_psnr) >= MIN_CLIP_ENDPOINT_PSNR_DB,
        ", ".join(f"{p:.1f} dB" for p in endpoint_psnr),
        real_weights_only=True,
    )
    smoke.check(
        "synthesize",
        "candidates (input copies left out)",
        len(candidates) == len(rendered.masks) - 2,
        f"{len(candidates)} candidates from {len(recorder.calls)} clips",
    )

    with smoke.stage("select", "selector"):
        selection = stages["selector"].select(a, b, candidates, ctx)
    scores = list(selection.scores)
    smoke.check(
        "select", "frames kept", len(selection.indices) > 0, f"{len(selection.indices)} kept"
    )
    indices = list(selection.indices)
    if not indices and smoke.stand_ins:
        top_k = int(pipeline.bridge_conf.get("selector", {}).get("top_k", 6))
        indices = list(np.argsort(selection.all_scores, kind="stable")[::-1][:top_k])
        print(f"  ---- select      continuing with the {len(indices)} best-scored candidates")
    smoke.check(
        "select",
        "FMS scores of the kept frames above zero",
        bool(scores) and min(scores) > 0,
        f"scores {scores}",
        real_weights_only=True,
    )
    if not indices:
        return

    views = [a] + [candidates[i].keyframe for i in indices] + [b]
    try:
        with smoke.stage("pose", "pose_model"):
            pose = stages["pose_model"].estimate(views, ctx)
    except EstimationError as err:
        smoke.check("pose", "multi-view pose", False, err.message)
        return
    R_0to1, _ = pose.to_epipolar()
    error = rotation_error_deg(R_0to1, pair.R_0to1)
    smoke.check(
        "pose",
        "finite pose, unit translation",
        np.isfinite(pose.R).all() and abs(np.linalg.norm(pose.t) - 1) < 1e-6,
        f"t = {np.round(pose.t, 3).tolist()}",
    )
    smoke.check(
        "pose",
        f"rotation error vs ground truth (<= {MAX_ROTATION_ERROR_DEG} deg)",
        error <= MAX_ROTATION_ERROR_DEG,
        f"{error:.1f} deg (pair {rotation_angle_deg(np.asarray(pair.R_0to1)):.1f} deg apart)",
        real_weights_only=True,
    )


class RecordingGenerator:
    """Wraps the synthesizer's video generator: keeps (reference, output) of every clip."""

    def __init__(self, generator):
        self.generator = generator
        self.calls: list[tuple[np.ndarray, np.ndarray]] = []

    def __getattr__(self, name):
        return getattr(self.generator, name)

    def generate(self, renders, reference, ctx, **kwargs):
        out = self.generator.generate(renders, reference, ctx, **kwargs)
        self.calls.append((np.asarray(reference), np.asarray(out)))
        return out


def stand_in_relay(frames):
    """A relay reconstruction of the frames' size: cameras side by side, each seeing a
    fronto-parallel plane at depth 1 textured with its frame (cost runs only)."""
    from ..core.types import SceneReconstruction

    height, width = frames[0].image.shape[:2]
    xs, ys = np.meshgrid(np.arange(width, dtype=float), np.arange(height, dtype=float))
    poses, points = [], []
    for view, frame in enumerate(frames):
        cam_to_world = np.eye(4)
        cam_to_world[0, 3] = 0.05 * view
        rays = np.stack([xs, ys, np.ones_like(xs)], axis=-1) @ np.linalg.inv(frame.K).T
        points.append(rays + cam_to_world[:3, 3])
        poses.append(cam_to_world)
    return SceneReconstruction(
        images=[frame.image for frame in frames],
        K=np.stack([frame.K for frame in frames]),
        cam_to_world=np.stack(poses),
        points=np.stack(points).astype(np.float32),
        confidence=np.full((len(frames), height, width), 10.0, dtype=np.float32),
    )


VIDEO_SLOTS = ("interpolator", "synthesizer")
DUST3R_SLOTS = ("relay_poser", "pose_model")


def model_overrides(
    checkpoints: dict[str, str] | None = None,
    random_weights: bool = False,
    ddim_steps: int | None = None,
    niter: int | None = None,
    dust3r_dtype: str | None = None,
) -> dict:
    """`bridge:` profile overrides of the model stages (the synthesizer's model settings go
    under its `generator:` part). checkpoints: {slot: path}; empty paths are left out."""
    bridge: dict = {}

    def model_section(slot: str) -> dict:
        section = bridge.setdefault(slot, {})
        return section.setdefault("generator", {}) if slot == "synthesizer" else section

    for slot, path in (checkpoints or {}).items():
        if path:
            model_section(slot)["checkpoint"] = path
    for slot in VIDEO_SLOTS + DUST3R_SLOTS:
        if random_weights:
            model_section(slot)["random_weights"] = True
    for slot in VIDEO_SLOTS:
        if ddim_steps:
            model_section(slot)["ddim_steps"] = ddim_steps
    for slot in DUST3R_SLOTS:
        if niter:
            model_section(slot)["niter"] = niter
        if dust3r_dtype:
            model_section(slot)["dtype"] = dust3r_dtype
    return bridge
