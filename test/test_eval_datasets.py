"""Dataset readers: each native layout, written here with a scene whose answer is known.

Two kinds of checks per layout:
- a hand-made two-camera scene: camera 0 at the origin with world axes; camera 1 at
  (1, 0, 0), turned +90° about the world y axis. By hand, x_cam1 = R_0to1 x_cam0 + t_0to1
  with R_0to1 = [[0,0,-1],[0,1,0],[1,0,0]] and t_0to1 = (0,0,-1) (camera 0's centre seen
  from camera 1 lies 1 m behind it);
- the repository's templeRing views (Middlebury) re-written in the layout, whose relative
  poses must equal those of the Middlebury reader.
The writers use independent conversions (scipy quaternions, explicit axis flips).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from posecrafter_ros.eval.datasets import (
    ROTATION_BINS,
    DatasetError,
    PosedView,
    all_pairs,
    load_middlebury,
    load_posed_pairs,
    make_pair,
    rotation_bin,
    sample_pairs_by_bin,
    sample_view_pairs,
)
from posecrafter_ros.eval.frames import view_keyframe
from posecrafter_ros.eval.loaders import detect_layout, load_dataset

TEMPLE = Path(__file__).parent / "data" / "eval" / "templering"
R_0TO1_BY_HAND = np.array([[0.0, 0, -1], [0, 1, 0], [1, 0, 0]])
T_0TO1_BY_HAND = np.array([0.0, 0, -1])
# Camera-to-world poses of the hand-made scene (OpenCV camera axes).
HAND_C2W = [np.eye(4), np.array([[0.0, 0, 1, 1], [0, 1, 0, 0], [-1, 0, 0, 0], [0, 0, 0, 1]])]
GL_FLIP = np.diag([1.0, -1.0, -1.0, 1.0])


def quat_wxyz(R: np.ndarray) -> list[float]:
    x, y, z, w = Rotation.from_matrix(R).as_quat()
    return [w, x, y, z]


def c2w_of(view: PosedView) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = view.R_w2c.T
    T[:3, 3] = -view.R_w2c.T @ view.t_w2c
    return T


def write_image(path: Path, size=(64, 48)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    cv2.imwrite(str(path), rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))


# ---------------------------------------------------------------- layout writers
def write_cambridge(scene: Path, c2ws, focal=None, image_size=(64, 48)) -> None:
    lines = ["Visual Landmark Dataset V1", "ImageFile, Camera Position [X Y Z W P Q R]", ""]
    nvm = ["NVM_V3", "", str(len(c2ws))]
    for i, T in enumerate(c2ws):
        name = f"seq1/frame{i + 1:05d}"
        R_w2c, centre = T[:3, :3].T, T[:3, 3]
        lines.append(
            " ".join(f"{v:.10f}" for v in [*centre, *quat_wxyz(R_w2c)]).join([f"{name}.png ", ""])
        )
        nvm.append(
            f"{name}.jpg {focal or 0} "
            + " ".join(f"{v:.10f}" for v in [*quat_wxyz(R_w2c), *centre])
            + " 0 0"
        )
        write_image(scene / f"{name}.png", image_size)
    (scene / "dataset_test.txt").write_text("\n".join(lines) + "\n")
    if focal:
        (scene / "reconstruction.nvm").write_text("\n".join(nvm) + "\n0\n")


def write_scannet(scene: Path, c2ws, K) -> None:
    (scene / "pose").mkdir(parents=True)
    (scene / "intrinsic").mkdir()
    K4 = np.eye(4)
    K4[:3, :3] = K
    np.savetxt(scene / "intrinsic" / "intrinsic_color.txt", K4)
    for i, T in enumerate(c2ws):
        np.savetxt(scene / "pose" / f"{i}.txt", T)
        write_image(scene / "color" / f"{i}.jpg")
    # A frame whose tracking failed: ScanNet writes -inf; it must be skipped.
    np.savetxt(scene / "pose" / f"{len(c2ws)}.txt", np.full((4, 4), -np.inf))
    write_image(scene / "color" / f"{len(c2ws)}.jpg")


def write_dl3dv(scene: Path, c2ws, K, size, image_dir="images", per_frame_intrinsics=False) -> None:
    intr = {
        "fl_x": K[0, 0],
        "fl_y": K[1, 1],
        "cx": K[0, 2],
        "cy": K[1, 2],
        "w": size[0],
        "h": size[1],
    }
    frames = []
    for i, T in enumerate(c2ws):
        frame = {
            "file_path": f"images/frame_{i + 1:05d}.png",
            "transform_matrix": (T @ GL_FLIP).tolist(),
        }
        if per_frame_intrinsics:
            frame.update(intr)
        frames.append(frame)
    meta = {"camera_model": "OPENCV", "k1": 0.0, "frames": frames[::-1]}  # not in capture order
    if not per_frame_intrinsics:
        meta.update(intr)
    scene.mkdir(parents=True, exist_ok=True)
    (scene / "transforms.json").write_text(json.dumps(meta))
    for i in range(len(c2ws)):
        write_image(scene / image_dir / f"frame_{i + 1:05d}.png", (size[0] // 4, size[1] // 4))


def write_navi(scene: Path, c2ws, focal, size) -> None:
    annotations = []
    for i, T in enumerate(c2ws):
        R_w2c = T[:3, :3].T
        annotations.append(
            {
                "object_id": "toy",
                "filename": f"{i:03d}.jpg",
                "image_size": [size[1], size[0]],
                "camera": {
                    "q": quat_wxyz(R_w2c),
                    "t": (-R_w2c @ T[:3, 3]).tolist(),
                    "focal_length": focal,
                    "camera_model": "pixel_5",
                },
                "scene_name": scene.name,
                "split": "train",
                "occluded": False,
            }
        )
        write_image(scene / "images" / f"{i:03d}.jpg", size)
    (scene / "annotations.json").write_text(json.dumps(annotations))


def assert_hand_pair(views):
    pair = make_pair(views[0], views[1])
    np.testing.assert_allclose(pair.R_0to1, R_0TO1_BY_HAND, atol=1e-8)
    np.testing.assert_allclose(pair.t_0to1, T_0TO1_BY_HAND, atol=1e-8)
    assert pair.rotation_deg == pytest.approx(90.0)


# ---------------------------------------------------------------- hand-made scene
def test_cambridge_reads_centre_and_world_to_camera_quaternion_and_nvm_focal(tmp_path):
    scene = tmp_path / "ShopFacade"
    write_cambridge(scene, HAND_C2W, focal=1500.0, image_size=(960, 540))
    assert detect_layout(tmp_path) == "cambridge"
    data = load_dataset(tmp_path, split="test")
    assert data.layout == "cambridge" and len(data.views) == 2
    assert_hand_pair(data.views)
    # NVM focal is given for 1920x1080 frames; images stored at 960x540 halve K.
    kf = view_keyframe(data.views[1])
    np.testing.assert_allclose(kf.K, [[750, 0, 480], [0, 750, 270], [0, 0, 1]])
    with pytest.raises(DatasetError, match="no usable views"):
        load_dataset(tmp_path, split="train")


def test_cambridge_without_reconstruction_uses_the_documented_default_focal(tmp_path):
    write_cambridge(tmp_path, HAND_C2W, focal=None)
    view = load_dataset(tmp_path).views[0]
    assert view.K[0, 0] == pytest.approx(1670.0)
    assert (view.K[0, 2], view.K[1, 2]) == (960.0, 540.0)


def test_scannet_reads_camera_to_world_and_skips_invalid_poses(tmp_path):
    K = np.array([[1170.0, 0, 647], [0, 1170, 483], [0, 0, 1]])
    write_scannet(tmp_path / "scene0000_00", HAND_C2W, K)
    assert detect_layout(tmp_path) == "scannet"
    data = load_dataset(tmp_path)
    assert len(data.views) == 2  # the -inf frame is gone
    assert_hand_pair(data.views)
    np.testing.assert_allclose(data.views[0].K, K)
    assert data.views[0].image_path.suffix == ".jpg"


@pytest.mark.parametrize("per_frame", [False, True])
def test_dl3dv_converts_opengl_poses_and_rescales_downsampled_images(tmp_path, per_frame):
    K = np.array([[800.0, 0, 320], [0, 810, 240], [0, 0, 1]])
    write_dl3dv(
        tmp_path / "0a1b2c",
        HAND_C2W,
        K,
        (640, 480),
        image_dir="images_4",
        per_frame_intrinsics=per_frame,
    )
    assert detect_layout(tmp_path) == "dl3dv"
    data = load_dataset(tmp_path)
    assert [v.name for v in data.views] == ["0a1b2c/frame_00001", "0a1b2c/frame_00002"]
    assert_hand_pair(data.views)
    kf = view_keyframe(data.views[0])  # found in images_4/ at 160x120
    assert (kf.width, kf.height) == (160, 120)
    np.testing.assert_allclose(kf.K, [[200, 0, 80], [0, 202.5, 60], [0, 0, 1]])


def test_navi_reads_object_to_camera_extrinsics(tmp_path):
    write_navi(tmp_path / "toy" / "multiview-00-pixel_5", HAND_C2W, focal=3000.0, size=(400, 300))
    assert detect_layout(tmp_path) == "navi"
    data = load_dataset(tmp_path)
    assert_hand_pair(data.views)
    assert data.views[0].group == "toy/multiview-00-pixel_5"
    np.testing.assert_allclose(data.views[0].K, [[3000, 0, 200], [0, 3000, 150], [0, 0, 1]])


def test_options_a_reader_does_not_take_are_refused(tmp_path):
    write_scannet(tmp_path, HAND_C2W, np.eye(3))
    assert len(load_dataset(tmp_path, frame_stride=2).views) == 1
    with pytest.raises(DatasetError, match="scannet reader takes no option \\['split'\\]"):
        load_dataset(tmp_path, split="test")


def test_unknown_folder_is_a_clear_error(tmp_path):
    with pytest.raises(DatasetError, match="layout not recognised"):
        load_dataset(tmp_path)
    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset(tmp_path / "nope")


# ---------------------------------------------------------------- templeRing in every layout
@pytest.fixture(scope="module")
def temple_views():
    return load_middlebury(TEMPLE)


def _relative_poses(views):
    return {
        (i, j): make_pair(views[i], views[j])
        for i in range(len(views))
        for j in range(i + 1, len(views))
    }


@pytest.mark.parametrize("layout", ["cambridge", "scannet", "dl3dv", "navi"])
def test_every_layout_reproduces_the_middlebury_relative_poses(tmp_path, temple_views, layout):
    c2ws = [c2w_of(v) for v in temple_views]
    K = temple_views[0].K
    if layout == "cambridge":
        write_cambridge(tmp_path, c2ws, focal=K[0, 0])
    elif layout == "scannet":
        write_scannet(tmp_path, c2ws, K)
    elif layout == "dl3dv":
        write_dl3dv(tmp_path, c2ws, K, (640, 480))
    else:
        write_navi(tmp_path / "temple" / "wild_set", c2ws, K[0, 0], (640, 480))
    data = load_dataset(tmp_path)
    assert data.layout == layout and len(data.views) == len(temple_views)
    expected, got = _relative_poses(temple_views), _relative_poses(data.views)
    for key, pair in expected.items():
        np.testing.assert_allclose(got[key].R_0to1, pair.R_0to1, atol=1e-7)
        np.testing.assert_allclose(got[key].t_0to1, pair.t_0to1, atol=1e-7)


def test_posed_pairs_and_middlebury_are_detected(tmp_path, temple_views):
    assert detect_layout(TEMPLE) == "middlebury"
    pair = make_pair(temple_views[0], temple_views[1])
    entry = {
        "image0": "a.png",
        "image1": "b.png",
        "K0": pair.K0.tolist(),
        "K1": pair.K1.tolist(),
        "R_0to1": pair.R_0to1.tolist(),
        "t_0to1": pair.t_0to1.tolist(),
        "source": "x",
    }
    (tmp_path / "pairs.json").write_text(json.dumps([entry]))
    data = load_dataset(tmp_path)
    assert data.layout == "posed-pairs" and not data.is_sequence
    loaded = load_posed_pairs(tmp_path)[0]
    np.testing.assert_allclose(loaded.R_0to1, pair.R_0to1)
    assert loaded.meta["source"] == "x"
    (tmp_path / "pairs.json").write_text(json.dumps([{"image0": "a.png"}]))
    with pytest.raises(DatasetError, match="entry 0 lacks"):
        load_posed_pairs(tmp_path)


# ---------------------------------------------------------------- pair sampling
def _ring_views(n=40, groups=2):
    """Cameras on a ring around the origin, looking inward; `groups` separate worlds."""
    views = []
    for g in range(groups):
        for k in range(n):
            yaw = 360.0 * k / n
            R_c2w = Rotation.from_euler("y", yaw, degrees=True).as_matrix()
            centre = R_c2w @ np.array([0.0, 0.0, -2.0])
            views.append(
                PosedView(
                    Path(f"{g}_{k}.png"),
                    np.eye(3),
                    R_c2w.T,
                    -R_c2w.T @ centre,
                    name=f"{g}/{k}",
                    group=f"g{g}",
                )
            )
    return views


def test_view_pair_sampling_is_binned_deterministic_and_within_groups():
    views = _ring_views()
    brute = Counter(rotation_bin(p.rotation_deg) for p in all_pairs(views))
    everything = sample_view_pairs(views, per_bin=10**6, chunk_rows=7)
    assert Counter(rotation_bin(p.rotation_deg) for p in everything) == brute
    assert all(views[p.meta["index0"]].group == views[p.meta["index1"]].group for p in everything)
    first = sample_view_pairs(views, per_bin=5, seed=3, bins=["50-65", "65-90"])
    again = sample_view_pairs(views, per_bin=5, seed=3, bins=["50-65", "65-90"])
    other = sample_view_pairs(views, per_bin=5, seed=4, bins=["50-65", "65-90"])
    assert [p.name for p in first] == [p.name for p in again]
    assert [p.name for p in first] != [p.name for p in other]
    assert Counter(rotation_bin(p.rotation_deg) for p in first) == {"50-65": 5, "65-90": 5}
    for p in first:
        lo, hi = ROTATION_BINS[rotation_bin(p.rotation_deg)]
        assert lo <= p.rotation_deg < hi


def test_fixed_pair_sampling_caps_each_bin():
    pairs = all_pairs(_ring_views(groups=1))
    chosen = sample_pairs_by_bin(pairs, per_bin=3, seed=0)
    counts = Counter(rotation_bin(p.rotation_deg) for p in chosen)
    assert counts == {name: 3 for name in ROTATION_BINS}
    assert [p.name for p in chosen] == [p.name for p in sample_pairs_by_bin(pairs, 3, seed=0)]
    with pytest.raises(ValueError, match="unknown rotation bin"):
        sample_pairs_by_bin(pairs, 3, bins=["10-20"])


def test_frames_between_a_pair_stay_in_its_group(temple_views):
    data = load_dataset(TEMPLE)
    pair = make_pair(data.views[1], data.views[5], index0=1, index1=5)
    assert data.between_indices(pair) == [2, 3, 4]
    backwards = make_pair(data.views[5], data.views[1], index0=5, index1=1)
    assert data.between_indices(backwards) == [4, 3, 2]  # walked from the pair's first view
