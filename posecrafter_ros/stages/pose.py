"""Bridge slot "pose_model": the relative pose of the last view in the first from N views.

Two adapters: `ColmapMultiViewPose` (CPU: COLMAP on the project's own matches, below) and
`Dust3rPoseModel` (DUSt3R pairwise inference + global alignment, sharing
`relay_pose.Dust3rStage` with the relay poser).

COLMAP, for views {I0, selected frames, IT} with known intrinsics:
1. every view's features are extracted once with the configured matcher (ORB by default,
   ALIKED / XFeat through the matcher registry); the views come in sequence order (the
   pipeline sorts the selected frames by their place between A and B) and each is matched with
   the next `pair_window` views (every pair with 0);
2. COLMAP verifies each pair (`estimate_calibrated_two_view_geometry`: essential matrix
   RANSAC with the known cameras); pairs with enough inliers link the views, and I0 and IT must
   be linked through them;
3. COLMAP's incremental mapper (`incremental_mapping`) reconstructs the views from a database
   holding those keypoints and verified matches, the intrinsics held fixed;
4. the model must explain the pairs it was built from (`min_pair_agreement` of each strongly
   linked pair's verified matches within the RANSAC threshold of its epipolar geometry), or the
   answer is refused;
5. the pose of IT in I0 is read off the two cameras and its translation normalised (scale is
   unknown);
6. its covariance (`bridge_covariance`): the error level the model's own pairs show, i.e. the
   median angle d between a verified pair's two-view rotation (from its essential matrix, or
   its homography on a plane) and the model's rotation of the same two views, as d^2 on every
   rotation axis and across the translation, plus the bundle adjustment's marginal covariance of the relative pose
   (`estimate_ba_covariance`, gauge fixed by three points so both poses stay free) times
   `covariance_scale`, plus `rotation_sigma_per_link_deg` per link (those two fitted leaving
   one scene out: scripts/bridge_covariance.py; both 0 today, d alone carries it).
"""

from __future__ import annotations

import logging
import tempfile
import threading
from collections import deque
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..core.config import strict_config
from ..core.covariance import sampson_residuals, so3_log
from ..core.geometry import calibrate, mean_focal
from ..core.matching import get_matcher
from ..core.types import EstimationError, Keyframe, RelativePose, RunContext, Status
from .relay_pose import Dust3rStage, Dust3rStageConfig

logger = logging.getLogger(__name__)

# Two-view verdicts that do not link two views: no geometry, or matches along the border only.
UNUSABLE_GEOMETRIES = ("UNDEFINED", "DEGENERATE", "WATERMARK")


def _direct_path_matcher() -> dict[str, Any]:
    # As the direct path: ORB 4000, FAST 10. ORB 2000 halves the CPU time of a bridge but loses
    # textureless views (templeRing 50-65 deg oracle MRE 19 deg against 0.9 deg with 4000).
    return {"name": "orb", "num_features": 4000, "fast_threshold": 10}


@dataclass(frozen=True)
class ColmapPoseConfig:
    """Profile section `bridge.pose_model` (type `colmap`)."""

    matcher: dict[str, Any] = field(default_factory=_direct_path_matcher)
    pair_window: int = 3  # views i, j are matched when |i - j| <= this (0: every pair)
    min_edge_inliers: int = 25  # a verified view pair with fewer inliers does not link its views
    # Essential-matrix RANSAC threshold (COLMAP's default). 2 px fixed two bent models but cost
    # registrations: oracle templeRing 65-90 deg 6 of 10 refused, Herz-Jesus 90-180 7 of 8.
    ransac_max_error_px: float = 4.0
    # The model must explain every strongly linked pair (>= 4 min_edge_inliers matches): at
    # least this fraction of its verified matches within ransac_max_error_px of the model's
    # own epipolar geometry (else: refused).
    min_pair_agreement: float = 0.5
    ransac_max_trials: int = (
        2000  # caps the time spent on pairs that do not overlap (COLMAP: 10000)
    )
    init_min_inliers: int = 50  # inliers of the mapper's initial pair (COLMAP: 100, for big sets)
    # View pairs matched and verified at once. COLMAP's mapper always runs on one thread: on
    # two its answer changed from run to run on the same verified matches (templeRing 16->23
    # at 640 px: 0.636 or 0.687 deg; on one thread 0.687 in 12 of 12 runs; docs/geometry.md,
    # "Seconds per bridge").
    num_threads: int = 2
    ba_max_iterations: int = 50  # per bundle adjustment (COLMAP: until converged)
    ba_global_refinements: int = 2  # global BA rounds after each model growth (COLMAP: 5)
    # Bridge covariance (rotation; across the translation alike), `bridge_covariance`:
    #   pair_disagreement_weight * d^2 * I + covariance_scale * C_BA + (views - 1) * sigma^2 * I
    # d: the median angle between each verified pair's own two-view rotation and the model's
    # rotation of that pair, a per-answer error level. The BA's 1-px noise model does not see
    # the errors that differ between scenes (answers 0.15-0.6 deg off on fountain, up to 4 on
    # entry-P10 at the same BA sigma); d does (0.2-0.7 deg on fountain, 1.1-3.1 on entry).
    # The weight 1 (d^2 as the variance per axis) is set, not fitted. It errs on the wide side:
    # for isotropic noise the median angle is about 1.5 sigma per axis, and d also holds the
    # two-view estimates' own noise. Fitted together with the two terms below, the weight chose
    # models too sharp for the scene left out (pooled held-out 85-91%).
    # covariance_scale and sigma: fitted by scripts/bridge_covariance.py on the oracle answers
    # of templeRing and the Strecha walks, leaving one scene out (held-out coverage pooled 0.98,
    # per scene 0.93-1.00; docs/geometry.md). With d in the model the sharpest calibrated fit
    # takes neither: the BA term is off (its covariance is still computed, recorded by the
    # oracle report for refits, and a model without a finite one is refused), no per-link floor.
    pair_disagreement_weight: float = 1.0
    covariance_scale: float = 0.0
    rotation_sigma_per_link_deg: float = 0.0
    scale_variance: float = 1.0  # variance along the unit translation (scale is unobservable)
    # COLMAP 4 retries a view its 2D-3D registration could not place from 2D-2D matches alone
    # (structure-less registration): 6-9 s per attempt on a bridge that cannot be built. Off,
    # the oracle table (Herz-Jesus, templeRing; 58 bridges) kept every answer but one, a
    # templeRing 90-180 deg bridge 24 deg off that is now refused, and the median CPU per
    # bridge fell from 4.3-35.9 s to 3.5-5.7 s (docs/geometry.md).
    structure_less_fallback: bool = False

    def __post_init__(self) -> None:
        if (
            self.pair_window < 0
            or self.min_edge_inliers < 1
            or min(
                self.covariance_scale,
                self.rotation_sigma_per_link_deg,
                self.pair_disagreement_weight,
            )
            < 0
            or max(self.covariance_scale, self.pair_disagreement_weight) == 0
            or self.num_threads < 1
        ):
            raise ValueError(
                "colmap pose: pair_window must be >= 0, min_edge_inliers >= 1, "
                "covariance_scale, rotation_sigma_per_link_deg and pair_disagreement_weight "
                ">= 0 with covariance_scale or pair_disagreement_weight > 0, num_threads >= 1"
            )

    @classmethod
    def from_dict(cls, conf: Mapping[str, Any] | None) -> "ColmapPoseConfig":
        return strict_config(cls, "bridge.pose_model (colmap)", conf)


def _camera(view: Keyframe):
    import pycolmap

    K = np.asarray(view.K, float)
    height, width = view.image.shape[:2]
    return pycolmap.Camera(
        model="PINHOLE",
        width=width,
        height=height,
        params=[K[0, 0], K[1, 1], K[0, 2], K[1, 2]],
    )


class ColmapMultiViewPose:
    """MultiViewPoseModel: relative pose of the last view in the first view's frame."""

    def __init__(self, conf: ColmapPoseConfig | None = None):
        import pycolmap  # noqa: F401  (fail at load time, not on the first request)

        self.conf = conf or ColmapPoseConfig()
        self.matcher = get_matcher(self.conf.matcher)

    @classmethod
    def from_config(cls, conf: Mapping[str, Any] | None) -> "ColmapMultiViewPose":
        """From the profile section (a dict; unknown keys are an error)."""
        return cls(ColmapPoseConfig.from_dict(conf))

    def _verified_pairs(self, views, cameras, feats, ctx) -> dict[tuple[int, int], VerifiedPair]:
        """{(i, j): its inlier matches and two-view rotation} of the view pairs COLMAP verifies.

        The pairs are matched and verified `num_threads` at a time. Each pair's answer depends on
        its two views only (exact-integer Hamming distances, a RANSAC seeded per call), and the
        pairs are returned in their fixed order whichever thread finished first, so the mapper
        reads the same database on any thread count.
        """
        import pycolmap

        options = pycolmap.TwoViewGeometryOptions()
        options.ransac.max_error = self.conf.ransac_max_error_px
        options.ransac.max_num_trials = self.conf.ransac_max_trials
        options.ransac.random_seed = 0  # COLMAP's default (-1) draws a new seed per call
        options.min_num_inliers = self.conf.min_edge_inliers
        options.compute_relative_pose = True  # the pair's own rotation (same inliers; ~1 ms)
        n = len(views)
        window = self.conf.pair_window or n
        pairs = [(i, j) for i in range(n) for j in range(i + 1, min(i + window, n - 1) + 1)]

        def verify(pair: tuple[int, int]) -> VerifiedPair | None:
            i, j = pair
            matches = self.matcher.match(feats[i], feats[j]).astype(np.uint32)
            if len(matches) < self.conf.min_edge_inliers:
                return None
            geometry = pycolmap.estimate_calibrated_two_view_geometry(
                cameras[i], feats[i].keypoints, cameras[j], feats[j].keypoints, matches, options
            )
            inliers = np.asarray(geometry.inlier_matches)
            # UNCALIBRATED too: on a planar facade the fundamental matrix explains more
            # matches than the essential one and COLMAP says so, yet the pair overlaps
            # (its mapper uses such pairs as well).
            verdict = pycolmap.TwoViewGeometryConfiguration(int(geometry.config)).name
            if verdict in UNUSABLE_GEOMETRIES or len(inliers) < self.conf.min_edge_inliers:
                return None
            # No relative pose when no match triangulates in front of both cameras (COLMAP then
            # leaves cam2_from_cam1 unset); the pair still links its views.
            pose = geometry.cam2_from_cam1
            rotation = None if pose is None else np.asarray(pose.rotation.matrix())
            return VerifiedPair(inliers, rotation)

        verified = {}
        with (
            _blas_threads(1 if self.conf.num_threads > 1 else None),
            ThreadPoolExecutor(max_workers=self.conf.num_threads) as pool,
        ):
            for done, (pair, result) in enumerate(zip(pairs, pool.map(verify, pairs)), start=1):
                if result is not None:
                    verified[pair] = result
                ctx.report(done / len(pairs))
        return verified

    def estimate(self, views: Sequence[Keyframe], ctx: RunContext) -> RelativePose:
        return self.estimate_with_terms(views, ctx)[0]

    def estimate_with_terms(
        self, views: Sequence[Keyframe], ctx: RunContext
    ) -> tuple[RelativePose, CovarianceTerms]:
        """The pose of the last view in the first, and what its covariance was made of
        (scripts/oracle_report.py records the terms so that the weights can be refitted)."""
        n = len(views)
        if n < 2:
            raise EstimationError(
                Status.INVALID_REQUEST, f"multi-view pose needs >= 2 views, got {n}"
            )
        cameras = [_camera(v) for v in views]
        feats = [self.matcher.extract(v.image) for v in views]
        with ctx.subspan(0.0, 0.6):  # two-view verification; the mapper then takes most of the rest
            verified = self._verified_pairs(views, cameras, feats, ctx)
        if not connected(n, verified, 0, n - 1):
            raise EstimationError(
                Status.INSUFFICIENT_OVERLAP,
                f"the {n} views do not connect the first to the last: only {len(verified)} of "
                f"{n * (n - 1) // 2} view pairs share enough matches "
                f"(>= {self.conf.min_edge_inliers} inliers); pairs: {sorted(verified)}",
            )
        with tempfile.TemporaryDirectory(prefix="posecrafter_colmap_") as workdir:
            reconstruction = self._map(Path(workdir), cameras, feats, verified)
        ctx.report(0.9)
        self._check_agreement(reconstruction, views, feats, verified)
        images = {image.name: image for image in reconstruction.images.values()}
        first, last = images[view_name(0)], images[view_name(n - 1)]
        a_from_world, b_from_world = first.cam_from_world(), last.cam_from_world()
        a_from_b = a_from_world * b_from_world.inverse()
        R = np.asarray(a_from_b.rotation.matrix())
        t = np.asarray(a_from_b.translation, float).ravel()
        norm = float(np.linalg.norm(t))
        if norm < 1e-9:
            raise EstimationError(
                Status.INSUFFICIENT_OVERLAP, "first and last camera centres coincide"
            )
        terms = CovarianceTerms(
            ba=self._ba_covariance(reconstruction, first, last, a_from_b, norm),
            links=n - 1,
            pair_disagreement=pair_disagreement(reconstruction, verified),
            t_unit=t / norm,
        )
        covariance = bridge_covariance(terms, self.conf)
        if np.linalg.eigvalsh(covariance).min() <= 0:  # d = 0 with the BA term off
            raise EstimationError(
                Status.INSUFFICIENT_OVERLAP,
                "the bridge's covariance is degenerate: its view pairs show no error level and "
                "the configured covariance adds none",
            )
        ctx.report(1.0)
        return RelativePose(R, t / norm, covariance, scale_known=False), terms

    def _map(self, workdir: Path, cameras, feats, verified):
        """COLMAP's incremental reconstruction holding the first and the last view."""
        import pycolmap

        database_path = workdir / "database.db"
        database = pycolmap.Database.open(database_path)
        try:
            for index, (camera, view_feats) in enumerate(zip(cameras, feats)):
                camera_id = database.write_camera(camera)
                sensor = pycolmap.sensor_t(pycolmap.SensorType.CAMERA, camera_id)
                rig = pycolmap.Rig()
                rig.add_ref_sensor(sensor)
                rig_id = database.write_rig(rig)
                image_id = database.write_image(
                    pycolmap.Image(name=view_name(index), camera_id=camera_id)
                )
                frame = pycolmap.Frame()
                frame.rig_id = rig_id
                frame.add_data_id(pycolmap.data_t(sensor, image_id))
                database.write_frame(frame)
                database.write_keypoints(image_id, view_feats.keypoints.astype(np.float32))
            for (i, j), pair in verified.items():
                inliers = pair.inliers
                geometry = pycolmap.TwoViewGeometry()
                geometry.config = pycolmap.TwoViewGeometryConfiguration.CALIBRATED
                geometry.inlier_matches = inliers.astype(np.uint32)
                database.write_matches(i + 1, j + 1, inliers.astype(np.uint32))
                database.write_two_view_geometry(i + 1, j + 1, geometry)
        finally:
            database.close()
        options = pycolmap.IncrementalPipelineOptions()
        options.ba_refine_focal_length = False
        options.ba_refine_principal_point = False
        options.ba_refine_extra_params = False
        options.extract_colors = False
        options.multiple_models = False
        options.min_num_matches = self.conf.min_edge_inliers
        options.num_threads = 1  # see ColmapPoseConfig.num_threads
        options.random_seed = 0
        options.ba_global_max_num_iterations = self.conf.ba_max_iterations
        options.ba_local_max_num_iterations = self.conf.ba_max_iterations
        options.ba_global_max_refinements = self.conf.ba_global_refinements
        options.ba_local_max_refinements = 1
        # A global BA when the model has grown by half (COLMAP: by 10%), and always at the end.
        options.ba_global_frames_ratio = 1.5
        options.ba_global_points_ratio = 1.5
        options.structure_less_registration_fallback = self.conf.structure_less_fallback
        options.mapper.init_min_num_inliers = self.conf.init_min_inliers
        options.mapper.abs_pose_refine_focal_length = False
        options.mapper.abs_pose_refine_extra_params = False
        output = workdir / "sparse"
        output.mkdir()
        reconstructions = pycolmap.incremental_mapping(database_path, workdir, output, options)
        names_wanted = {view_name(0), view_name(len(cameras) - 1)}
        for reconstruction in reconstructions.values():
            names = {image.name for image in reconstruction.images.values() if image.has_pose}
            if names_wanted <= names:
                return reconstruction
        registered = [
            sorted(int(im.name[1:]) for im in r.images.values() if im.has_pose)
            for r in reconstructions.values()
        ]
        raise EstimationError(
            Status.INSUFFICIENT_OVERLAP,
            f"COLMAP could not register the first and the last view in one reconstruction "
            f"(registered views per model: {registered or 'none'})",
        )

    def _check_agreement(self, reconstruction, views, feats, verified) -> None:
        """Refuse a model that contradicts the view pairs it was built from.

        Incremental mapping can settle in a bent model (a bad initial pair, tracks through a
        wrong match): every view registered, the answer tens of degrees off. Such a model's
        relative pose of a linked pair no longer explains that pair's verified matches, which
        a sound model does (their Sampson distances to its epipolar geometry, in pixels).
        Only pairs with at least 4 x `min_edge_inliers` verified matches are judged: a weak
        pair can be a chance geometry (repeated structure) that a sound model rightly ignores
        (a templeRing bridge answered within 2.5 deg while contradicting 33- and 56-match pairs).
        """
        threshold = self.conf.ransac_max_error_px
        strong = 4 * self.conf.min_edge_inliers
        for (i, j), pair, j_from_i in modelled_pairs(reconstruction, verified):
            inliers = pair.inliers
            if len(inliers) < strong:
                continue
            K_i, K_j = np.asarray(views[i].K, float), np.asarray(views[j].K, float)
            distances = mean_focal(K_i, K_j) * np.abs(
                sampson_residuals(
                    np.asarray(j_from_i.rotation.matrix()),
                    np.asarray(j_from_i.translation, float).ravel(),
                    calibrate(feats[i].keypoints[inliers[:, 0]], K_i),
                    calibrate(feats[j].keypoints[inliers[:, 1]], K_j),
                )
            )
            agreement = float(np.mean(distances <= threshold))
            if agreement < self.conf.min_pair_agreement:
                raise EstimationError(
                    Status.INSUFFICIENT_OVERLAP,
                    f"COLMAP's model contradicts the views it was built from: only "
                    f"{agreement:.0%} of the {len(inliers)} verified matches of views {i} and "
                    f"{j} agree with it (within {threshold:g} px; "
                    f">= {self.conf.min_pair_agreement:.0%} needed)",
                )

    def _ba_covariance(self, reconstruction, first, last, a_from_b, norm: float) -> np.ndarray:
        """[6 x 6] (translation, rotation) BA marginal covariance of the unit-translation pose of
        B in A, as COLMAP computes it (unit pixel noise)."""
        import pycolmap

        covariance = None
        try:
            config = pycolmap.BundleAdjustmentConfig()
            for image_id in reconstruction.reg_image_ids():
                config.add_image(image_id)
            for camera_id in reconstruction.cameras:
                config.set_constant_cam_intrinsics(camera_id)
            config.fix_gauge(pycolmap.BundleAdjustmentGauge.THREE_POINTS)
            adjuster = pycolmap.create_default_ceres_bundle_adjuster(
                pycolmap.BundleAdjustmentOptions(), config, reconstruction
            )
            options = pycolmap.BACovarianceOptions()
            options.params = pycolmap.BACovarianceOptionsParams.POSES
            ba_cov = pycolmap.estimate_ba_covariance(options, reconstruction, adjuster)
            if ba_cov is not None:
                b_from_a_cov = ba_cov.get_cam2_cov_from_cam1(
                    first.image_id, first.cam_from_world(), last.image_id, last.cam_from_world()
                )
                if b_from_a_cov is not None:
                    covariance = pycolmap.get_covariance_for_inverse(
                        a_from_b.inverse(), np.asarray(b_from_a_cov)
                    )
        except Exception as err:  # COLMAP's covariance can fail on a near-degenerate problem
            logger.warning("BA covariance failed: %s", err)
        if covariance is None or not np.all(np.isfinite(covariance)):
            raise EstimationError(
                Status.INSUFFICIENT_OVERLAP,
                "the bundle adjustment does not constrain the relative pose (no covariance)",
            )
        # COLMAP orders (rotation, translation); ours is (translation, rotation) and |t| = 1.
        order = [3, 4, 5, 0, 1, 2]
        covariance = np.asarray(covariance)[np.ix_(order, order)]
        covariance[:3, :] /= norm
        covariance[:, :3] /= norm
        return covariance


@dataclass(frozen=True, eq=False)
class VerifiedPair:
    """A view pair COLMAP verified: [K x 2] inlier keypoint indices, its two-view rotation."""

    inliers: np.ndarray
    # View j from view i, from the pair's essential matrix (or its homography on a plane);
    # None when COLMAP found no pose for the pair.
    rotation: np.ndarray | None


@dataclass(frozen=True, eq=False)
class CovarianceTerms:
    """What a bridged answer's covariance is made of, before the configured weights."""

    ba: np.ndarray  # [6 x 6] BA marginal covariance (translation, rotation), unit pixel noise
    links: int  # view-to-view links of the chain: views - 1
    pair_disagreement: float  # radians, `pair_disagreement`
    t_unit: np.ndarray  # the answer's unit translation


def modelled_pairs(reconstruction, verified: Mapping[tuple[int, int], VerifiedPair]):
    """((i, j), verified pair, the model's pose of view j from view i) for the verified pairs
    whose two views the model registered, in pair order."""
    poses = {
        image.name: image.cam_from_world()
        for image in reconstruction.images.values()
        if image.has_pose
    }
    for (i, j), pair in sorted(verified.items()):
        if view_name(i) in poses and view_name(j) in poses:
            yield (i, j), pair, poses[view_name(j)] * poses[view_name(i)].inverse()


def pair_disagreement(reconstruction, verified: Mapping[tuple[int, int], VerifiedPair]) -> float:
    """Median angle (radians) between each verified pair's own two-view rotation and the
    model's rotation of the same two views, over the pairs with a two-view pose and both views
    in the model.

    A sound model of consistent views reproduces its pairs' rotations to a fraction of a degree
    (fountain-P11: 0.2-0.7 deg); views whose geometry the model cannot reconcile (a planar facade
    seen at grazing angles, a lens the intrinsics do not describe) leave a larger spread, and the
    answer's error grows with it (entry-P10: 1.1-3.1 deg, answers 0.2-4 deg off). It also holds
    the two-view estimates' own noise, so it errs on the wide side.

    Raises INSUFFICIENT_OVERLAP with fewer than two such pairs: the model of a single pair
    reproduces it by construction, so its answer's error level cannot be measured (a bridge
    has at least one frame between its ends; two views are the direct path's job).
    """
    angles = []
    for _, pair, j_from_i in modelled_pairs(reconstruction, verified):
        if pair.rotation is not None:
            relative = pair.rotation @ np.asarray(j_from_i.rotation.matrix()).T
            angles.append(float(np.linalg.norm(so3_log(relative))))
    if len(angles) < 2:
        raise EstimationError(
            Status.INSUFFICIENT_OVERLAP,
            f"the model holds {len(angles)} view pair(s) with a two-view pose: at least 2 are "
            "needed to measure its error level (a multi-view answer needs a view between the "
            "two ends)",
        )
    return float(np.median(angles))


def bridge_covariance(terms: CovarianceTerms, conf: ColmapPoseConfig) -> np.ndarray:
    """[6 x 6] (translation, rotation) covariance of a bridged answer (ColmapPoseConfig)."""
    covariance = conf.covariance_scale * terms.ba
    # Each link of the chain adds its own error, which the BA's 1-px independent-noise model
    # does not see (a random walk of `links` steps); the pairs' disagreement is the error
    # level the model itself shows. Both on the rotation and across the translation.
    level = (
        terms.links * np.radians(conf.rotation_sigma_per_link_deg) ** 2
        + conf.pair_disagreement_weight * terms.pair_disagreement**2
    )
    along = np.outer(terms.t_unit, terms.t_unit)
    covariance[3:, 3:] += level * np.eye(3)
    covariance[:3, :3] += level * (np.eye(3) - along)
    covariance[:3, :3] += conf.scale_variance * along
    return 0.5 * (covariance + covariance.T)


_blas_lock = threading.Lock()
_blas_users = 0
_blas_limiter = None


@contextmanager
def _blas_threads(limit: int | None):
    """BLAS on `limit` threads while the view pairs run side by side (None: unchanged).

    Each pair's Hamming matrix product already has a core of its own; BLAS's own threads would
    then wait busily on the shared cores (+1.2 s CPU per benchmark bridge). The limit is
    process-wide, so concurrent bridges share it: set by the first, restored by the last.
    """
    global _blas_users, _blas_limiter
    if limit is None:
        yield
        return
    from threadpoolctl import threadpool_limits

    with _blas_lock:
        if _blas_users == 0:
            _blas_limiter = threadpool_limits(limits=limit, user_api="blas")
        _blas_users += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas_users -= 1
            if _blas_users == 0:
                _blas_limiter.restore_original_limits()
                _blas_limiter = None


def view_name(index: int) -> str:
    return f"v{index}"


def connected(num_views: int, pairs, start: int, goal: int) -> bool:
    """Whether `goal` is reachable from `start` over the view pairs (breadth-first)."""
    neighbours: dict[int, set[int]] = {v: set() for v in range(num_views)}
    for i, j in pairs:
        neighbours[i].add(j)
        neighbours[j].add(i)
    seen, queue = {start}, deque([start])
    while queue:
        node = queue.popleft()
        for nxt in neighbours[node] - seen:
            seen.add(nxt)
            queue.append(nxt)
    return goal in seen


class Dust3rPoseModel(Dust3rStage):
    """MultiViewPoseModel: pose of the last view in the first view's frame, scale unknown."""

    def estimate(self, views: Sequence[Keyframe], ctx: RunContext | None = None) -> RelativePose:
        ctx = ctx or RunContext()
        prepared, predictions = self._predict(views, ctx)
        middle = list(range(1, len(views) - 1))
        left_out: list[int] = []
        if middle and self.config.leave_one_out > 0:
            step = max(1, len(middle) // self.config.leave_one_out)
            left_out = middle[::step][: self.config.leave_one_out]
        runs = 1 + len(left_out)
        with ctx.subspan(0.0, 1 / runs):
            aligned = self.align_views(views, ctx, cached=(prepared, predictions))
        rotation, t = RelativePose.from_cam_to_world(
            aligned.cam_to_world[0], aligned.cam_to_world[-1]
        )
        # The spread of the pose when one middle view is left out measures how much it hinges
        # on any single view (the pairwise predictions are reused; only alignment reruns).
        samples = []
        for run, view in enumerate(left_out, start=1):
            subset = [v for v in range(len(views)) if v != view]
            try:
                with ctx.subspan(run / runs, (run + 1) / runs):
                    sub = self.align_views(views, ctx, subset, cached=(prepared, predictions))
            except EstimationError:
                continue
            samples.append(
                RelativePose.from_cam_to_world(sub.cam_to_world[0], sub.cam_to_world[-1])
            )
        return pose_with_covariance(rotation, t, samples, self.config)


def _rotation_vector(rotation: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.Rodrigues(np.asarray(rotation, dtype=np.float64))[0].ravel()


def pose_with_covariance(
    rotation: np.ndarray,
    t: np.ndarray,
    samples: list[tuple[np.ndarray, np.ndarray]],
    config: Dust3rStageConfig,
) -> RelativePose:
    """Unit-translation RelativePose with a 6x6 covariance (x, y, z, rot x, rot y, rot z).

    Rotation block: prior sigma^2 I plus the spread of the leave-one-out rotations, as
    small-angle perturbations R_k R^T. Translation block: direction spread (lateral, unit
    vector) plus `baseline_variance` along t, since DUSt3R's scale is arbitrary.
    """
    norm = float(np.linalg.norm(t))
    if not np.isfinite(norm):
        raise EstimationError(
            Status.INSUFFICIENT_OVERLAP, "DUSt3R returned a non-finite translation"
        )
    direction = t / norm if norm > 1e-12 else np.zeros(3)
    rot_sigma = np.deg2rad(config.rotation_sigma_deg)
    dir_sigma = np.deg2rad(config.direction_sigma_deg)
    rot_cov = np.eye(3) * rot_sigma**2
    dir_cov = (np.eye(3) - np.outer(direction, direction)) * dir_sigma**2
    if samples:
        rot_dev = np.array([_rotation_vector(r @ rotation.T) for r, _ in samples])
        dir_dev = np.array([(tk / max(np.linalg.norm(tk), 1e-12)) - direction for _, tk in samples])
        rot_cov += rot_dev.T @ rot_dev / len(samples)
        dir_cov += dir_dev.T @ dir_dev / len(samples)
    if norm <= 1e-12:
        # Pure rotation: no direction at all, every translation axis is unknown.
        dir_cov = np.eye(3) * config.baseline_variance
    else:
        dir_cov += np.outer(direction, direction) * config.baseline_variance
    covariance = np.zeros((6, 6))
    covariance[:3, :3] = dir_cov
    covariance[3:, 3:] = rot_cov
    return RelativePose(
        R=np.asarray(rotation, dtype=np.float64),
        t=direction.astype(np.float64),
        covariance=covariance,
        scale_known=False,
    )
