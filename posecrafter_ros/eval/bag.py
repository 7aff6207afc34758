"""Posed image sets as ROS 2 bags, and back (rosbags; sqlite3 and mcap storage).

A bag written by `write_bag` holds, per image, at one stamp (one image per stamp, at a
fixed rate):
  <image topic>        sensor_msgs/msg/Image (rgb8), header.frame_id = the camera frame
  <camera_info topic>  sensor_msgs/msg/CameraInfo with the intrinsics of that image
  /tf                  tf2_msgs/msg/TFMessage: world -> camera optical frame (REP 103)
  /ground_truth/pose   geometry_msgs/msg/PoseStamped: the camera's pose in the world frame
Views of different groups (scenes, videos, posed pairs) do not share a world: each group
gets its own world frame, "<world>_<group>", when there is more than one.

`index_bag` + `read_images` read such a bag (or any bag with images, camera_info and
ground-truth poses on /ground_truth/pose or /tf) back into posed frames.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.rotations import matrix_to_quaternion_wxyz, quaternion_wxyz_to_matrix
from .datasets import PosedDataset, PosedView
from .frames import view_keyframe

STORAGES = ("sqlite3", "mcap")
ENCODING_CHANNELS = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1}


class BagError(Exception):
    """A bag cannot be written or lacks what the evaluation needs."""


@contextmanager
def open_bag(path: str | Path) -> Iterator:
    """An open rosbags AnyReader; a folder or file that is not a readable bag is a BagError."""
    from rosbags.highlevel import AnyReader, AnyReaderError

    path = Path(path)
    if not path.exists():
        raise BagError(f"{path} does not exist")
    try:
        reader = AnyReader([path], default_typestore=_typestore())
        reader.open()
    except (FileNotFoundError, AnyReaderError) as err:
        msg = f"{path} is not a readable ROS bag (a rosbag2 folder or a ROS 1 .bag): {err}"
        raise BagError(msg) from None
    try:
        yield reader
    finally:
        reader.close()


@dataclass(frozen=True)
class BagTopics:
    image: str = "/camera/image_raw"
    camera_info: str = "/camera/camera_info"
    tf: str = "/tf"
    pose: str = "/ground_truth/pose"


DEFAULT_TOPICS = BagTopics()


@dataclass(frozen=True)
class BagFrame:
    """An image of a bag (without its pixels) with intrinsics and ground-truth pose."""

    stamp_ns: int
    frame_id: str
    K: np.ndarray
    R_w2c: np.ndarray
    t_w2c: np.ndarray
    group: str


def _typestore():
    from rosbags.typesys import Stores, get_typestore

    return get_typestore(Stores.ROS2_KILTED)


def _sanitize(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", name).strip("_") or "0"


def dataset_views(dataset: PosedDataset) -> list[PosedView]:
    """The views of a data set; a pair set becomes two views per pair, each pair its group.

    A pair's first camera is put at the origin of its world: x_w = x_cam0, so the second
    camera's world-to-camera pose is exactly (R_0to1, t_0to1).
    """
    if dataset.views:
        return list(dataset.views)
    views = []
    for k, pair in enumerate(dataset.fixed_pairs):
        group = f"pair{k:03d}"
        views.append(
            PosedView(
                pair.image0,
                pair.K0,
                np.eye(3),
                np.zeros(3),
                f"{pair.name}/0",
                group,
                pair.meta.get("size0"),
            )
        )
        views.append(
            PosedView(
                pair.image1,
                pair.K1,
                pair.R_0to1,
                pair.t_0to1,
                f"{pair.name}/1",
                group,
                pair.meta.get("size1"),
            )
        )
    return views


def write_bag(
    views: Sequence[PosedView],
    out: str | Path,
    storage: str = "sqlite3",
    rate_hz: float = 10.0,
    topics: BagTopics = DEFAULT_TOPICS,
    camera_frame: str = "camera_optical_frame",
    world_frame: str = "world",
    max_side: int = 0,
    start_ns: int = 1_000_000_000,
    progress: bool = False,
) -> int:
    """Write `views` (in order, one per stamp at `rate_hz`) as a ROS 2 bag; returns the count."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    from tqdm import tqdm

    if storage not in STORAGES:
        raise BagError(f"unknown storage {storage!r} (known: {STORAGES})")
    if rate_hz <= 0:
        raise BagError(f"rate must be positive, got {rate_hz}")
    out = Path(out)
    if out.exists():
        raise BagError(f"{out} exists already, not overwriting")
    ts = _typestore()
    T = ts.types
    groups = list(dict.fromkeys(v.group for v in views))
    worlds = {
        g: world_frame if len(groups) == 1 else f"{world_frame}_{_sanitize(g)}" for g in groups
    }
    plugin = StoragePlugin.SQLITE3 if storage == "sqlite3" else StoragePlugin.MCAP
    period_ns = int(round(1e9 / rate_hz))
    with Writer(out, version=9, storage_plugin=plugin) as writer:
        conns = {
            "image": writer.add_connection(
                topics.image, T["sensor_msgs/msg/Image"].__msgtype__, typestore=ts
            ),
            "info": writer.add_connection(
                topics.camera_info, T["sensor_msgs/msg/CameraInfo"].__msgtype__, typestore=ts
            ),
            "tf": writer.add_connection(
                topics.tf, T["tf2_msgs/msg/TFMessage"].__msgtype__, typestore=ts
            ),
            "pose": writer.add_connection(
                topics.pose, T["geometry_msgs/msg/PoseStamped"].__msgtype__, typestore=ts
            ),
        }
        for k, view in enumerate(tqdm(views, desc="writing bag", unit="img", disable=not progress)):
            stamp_ns = start_ns + k * period_ns
            kf = view_keyframe(view, max_side)
            stamp = T["builtin_interfaces/msg/Time"](
                sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000
            )
            for kind, msg in _messages(
                T, kf.image, kf.K, view, stamp, camera_frame, worlds[view.group]
            ):
                writer.write(conns[kind], stamp_ns, ts.serialize_cdr(msg, msg.__msgtype__))
    return len(views)


def _messages(
    T, image: np.ndarray, K: np.ndarray, view: PosedView, stamp, camera_frame: str, world: str
):
    """(kind, message) of one view: image, camera_info, tf and pose."""
    height, width = image.shape[:2]
    camera_header = T["std_msgs/msg/Header"](stamp=stamp, frame_id=camera_frame)
    world_header = T["std_msgs/msg/Header"](stamp=stamp, frame_id=world)
    yield (
        "info",
        T["sensor_msgs/msg/CameraInfo"](
            header=camera_header,
            height=height,
            width=width,
            distortion_model="plumb_bob",
            d=np.zeros(5),
            k=np.asarray(K, float).ravel(),
            r=np.eye(3).ravel(),
            p=np.hstack([np.asarray(K, float), np.zeros((3, 1))]).ravel(),
            binning_x=0,
            binning_y=0,
            roi=T["sensor_msgs/msg/RegionOfInterest"](
                x_offset=0, y_offset=0, height=0, width=0, do_rectify=False
            ),
        ),
    )
    yield (
        "image",
        T["sensor_msgs/msg/Image"](
            header=camera_header,
            height=height,
            width=width,
            encoding="rgb8",
            is_bigendian=0,
            step=width * 3,
            data=np.ascontiguousarray(image, dtype=np.uint8).reshape(-1),
        ),
    )
    # The camera's pose in the world: rotation camera-to-world, translation = its centre.
    R_c2w = view.R_w2c.T
    centre = -R_c2w @ view.t_w2c
    w, x, y, z = matrix_to_quaternion_wxyz(R_c2w)
    quaternion = T["geometry_msgs/msg/Quaternion"](x=x, y=y, z=z, w=w)
    yield (
        "tf",
        T["tf2_msgs/msg/TFMessage"](
            transforms=[
                T["geometry_msgs/msg/TransformStamped"](
                    header=world_header,
                    child_frame_id=camera_frame,
                    transform=T["geometry_msgs/msg/Transform"](
                        translation=T["geometry_msgs/msg/Vector3"](
                            x=centre[0], y=centre[1], z=centre[2]
                        ),
                        rotation=quaternion,
                    ),
                )
            ]
        ),
    )
    yield (
        "pose",
        T["geometry_msgs/msg/PoseStamped"](
            header=world_header,
            pose=T["geometry_msgs/msg/Pose"](
                position=T["geometry_msgs/msg/Point"](x=centre[0], y=centre[1], z=centre[2]),
                orientation=quaternion,
            ),
        ),
    )


def _world_to_camera(translation, rotation) -> tuple[np.ndarray, np.ndarray]:
    R_c2w = quaternion_wxyz_to_matrix([rotation.w, rotation.x, rotation.y, rotation.z])
    centre = np.array([translation.x, translation.y, translation.z])
    return R_c2w.T, -R_c2w.T @ centre


def _stamp_ns(header) -> int:
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


def index_bag(
    path: str | Path, topics: BagTopics = DEFAULT_TOPICS, tolerance_ns: int = 5_000_000
) -> list[BagFrame]:
    """Every image of the bag that has intrinsics and a ground-truth pose, in stamp order.

    Ground truth: the PoseStamped on `topics.pose` at the image's stamp, else the /tf
    transform whose child is the image's frame (nearest within `tolerance_ns`). The
    group of a frame is the ground truth's parent (world) frame.
    """
    images: list[tuple[int, str, int, int]] = []
    infos: dict[str, list[tuple[int, np.ndarray]]] = {}
    poses: dict[
        str, list[tuple[int, str, np.ndarray, np.ndarray]]
    ] = {}  # child -> (stamp, world, R, t)
    with open_bag(path) as reader:
        wanted = {topics.image, topics.camera_info, topics.tf, topics.pose}
        connections = [c for c in reader.connections if c.topic in wanted]
        if not any(c.topic == topics.image for c in connections):
            raise BagError(
                f"{path}: no image topic {topics.image!r} (topics: {sorted(reader.topics)})"
            )
        for conn, _, raw in reader.messages(connections=connections):
            msg = reader.deserialize(raw, conn.msgtype)
            if conn.topic == topics.image:
                images.append((_stamp_ns(msg.header), msg.header.frame_id, msg.width, msg.height))
            elif conn.topic == topics.camera_info:
                infos.setdefault(msg.header.frame_id, []).append(
                    (_stamp_ns(msg.header), np.asarray(msg.k, float).reshape(3, 3))
                )
            elif conn.topic == topics.pose:
                R, t = _world_to_camera(msg.pose.position, msg.pose.orientation)
                poses.setdefault("<pose>", []).append(
                    (_stamp_ns(msg.header), msg.header.frame_id, R, t)
                )
            else:
                for tf in msg.transforms:
                    R, t = _world_to_camera(tf.transform.translation, tf.transform.rotation)
                    poses.setdefault(tf.child_frame_id, []).append(
                        (_stamp_ns(tf.header), tf.header.frame_id, R, t)
                    )
    frames = []
    for stamp, frame_id, _, _ in sorted(images):
        K = _nearest(infos.get(frame_id) or next(iter(infos.values()), []), stamp, None)
        gt = _nearest(poses.get("<pose>", []), stamp, tolerance_ns) or _nearest(
            poses.get(frame_id, []), stamp, tolerance_ns
        )
        if K is None or gt is None:
            continue
        _, world, R, t = gt
        frames.append(BagFrame(stamp, frame_id, K[1], R, t, world))
    if not frames:
        raise BagError(
            f"{path}: no image with camera_info and a ground-truth pose "
            f"({topics.pose} or {topics.tf})"
        )
    return frames


def _nearest(entries: list, stamp: int, tolerance_ns: int | None):
    """The entry (stamp first) nearest to `stamp`; with a tolerance, None beyond it."""
    if not entries:
        return None
    best = min(entries, key=lambda e: abs(e[0] - stamp))
    if tolerance_ns is not None and abs(best[0] - stamp) > tolerance_ns:
        return None
    return best


def decode_image(msg) -> np.ndarray:
    """[H x W x 3] uint8 RGB (or [H x W] grey) of a sensor_msgs/Image."""
    channels = ENCODING_CHANNELS.get(msg.encoding)
    if channels is None:
        raise BagError(
            f"unsupported image encoding {msg.encoding!r} (known: {sorted(ENCODING_CHANNELS)})"
        )
    rows = np.asarray(msg.data, dtype=np.uint8).reshape(msg.height, msg.step)
    image = rows[:, : msg.width * channels].reshape(msg.height, msg.width, channels)
    if msg.encoding in ("bgr8", "bgra8"):
        image = image[..., 2::-1]
    elif msg.encoding == "rgba8":
        image = image[..., :3]
    return np.ascontiguousarray(image[..., 0] if channels == 1 else image)


def read_images(
    path: str | Path, stamps: Iterable[int], topics: BagTopics = DEFAULT_TOPICS
) -> dict[int, np.ndarray]:
    """The images at the given stamps (only those are decoded), by stamp."""
    wanted = set(stamps)
    images: dict[int, np.ndarray] = {}
    with open_bag(path) as reader:
        connections = [c for c in reader.connections if c.topic == topics.image]
        for conn, _, raw in reader.messages(connections=connections):
            msg = reader.deserialize(raw, conn.msgtype)
            stamp = _stamp_ns(msg.header)
            if stamp in wanted:
                images[stamp] = decode_image(msg)
    missing = wanted - images.keys()
    if missing:
        raise BagError(
            f"{path}: {len(missing)} image(s) not found again, e.g. stamp {min(missing)}"
        )
    return images


def bag_views(frames: Sequence[BagFrame], bag: Path) -> list[PosedView]:
    """PosedViews of indexed bag frames (image_path names the bag and stamp)."""
    return [
        PosedView(
            Path(f"{bag}#{f.stamp_ns}"), f.K, f.R_w2c, f.t_w2c, name=str(f.stamp_ns), group=f.group
        )
        for f in frames
    ]
