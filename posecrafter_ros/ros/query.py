"""posecrafter-query: ask a running posecrafter node for the relative pose of two keyframes.

  posecrafter-query A.png B.png --camera-info cam.yaml          # inline images
  posecrafter-query A.png B.png --K 525 525 319.5 239.5         # inline, intrinsics given
  posecrafter-query --stamps 1700000000.10 1700000003.25        # from the node's buffer
  posecrafter-query --ids kf_12 kf_80                           # keyframes topic ids

Prints the pose (camera B in camera A's optical frame), the covariance diagonal, the status
and per-stage timings. Exit code 0 on SUCCESS, 1 on any other status, 2 on usage errors or
no answer. This stands in for `ros2 service call` where ros2cli is not installed.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.types import status_name
from ..eval.datasets import DatasetError
from ..eval.frames import read_rgb
from ..eval.metrics import rotation_error_deg


@dataclass
class CameraFile:
    """A camera read from a YAML file: K, the image size it was calibrated for (None if the
    file does not say) and its lens distortion (ROS camera_info conventions)."""

    K: np.ndarray
    size: tuple[int, int] | None = None
    D: np.ndarray | None = None
    distortion_model: str = "plumb_bob"


def read_camera_info(path: Path) -> CameraFile:
    """K, (width, height) or None, and the distortion (distortion_model,
    distortion_coefficients.data / d) from a ROS camera_info YAML (camera_matrix.data / k,
    image_width / image_height) or a JSON/YAML with "K". Errors name the file."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise ValueError(f"{path}: not valid YAML{where}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping with camera_matrix / K / k")
    key = next((k for k in ("camera_matrix", "K", "k") if k in data), None)
    if key is None:
        raise ValueError(f"{path}: no camera_matrix / K / k entry")
    value = data[key]
    value = value.get("data") if isinstance(value, dict) else value
    try:
        K = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{path}: {key} is not a list of numbers") from None
    if K.size != 9:
        raise ValueError(f"{path}: {key} has {K.size} values, a 3x3 K needs 9")
    width, height = data.get("image_width"), data.get("image_height")
    size = (int(width), int(height)) if width and height else None
    coeffs = data.get("distortion_coefficients", data.get("d", data.get("D")))
    coeffs = coeffs.get("data") if isinstance(coeffs, dict) else coeffs
    try:
        D = np.asarray(coeffs if coeffs else [], dtype=np.float64).ravel()
    except (TypeError, ValueError):
        raise ValueError(f"{path}: distortion coefficients are not a list of numbers") from None
    model = str(data.get("distortion_model", "plumb_bob"))
    return CameraFile(K.reshape(3, 3), size, D if np.any(D) else None, model)


def inline_intrinsics(args, images: list[np.ndarray]) -> list[CameraFile]:
    """The camera of each inline image from --camera-info (one for both, or one each) or --K."""
    if args.camera_info and args.K:
        raise ValueError("give --camera-info or --K, not both")
    if args.K:
        fx, fy, cx, cy = args.K
        return [CameraFile(np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1.0]]))] * 2
    if not args.camera_info:
        raise ValueError("inline images need --camera-info or --K")
    if len(args.camera_info) > 2:
        raise ValueError(
            f"--camera-info takes one YAML (both images) or two (A, B), got {len(args.camera_info)}"
        )
    paths = args.camera_info * 2 if len(args.camera_info) == 1 else args.camera_info
    cameras = []
    for path, image, label in zip(paths, images, "AB", strict=True):
        camera = read_camera_info(path)
        size, image_size = camera.size, (image.shape[1], image.shape[0])
        if size is not None and size != image_size:
            raise ValueError(
                f"{path}: calibrated for {size[0]}x{size[1]}, image {label} is "
                f"{image_size[0]}x{image_size[1]} (give a camera_info for this size)"
            )
        cameras.append(camera)
    return cameras


def format_response(resp) -> dict:
    from .conversions import pose_from_msg, rotation_to_quaternion

    R, t, cov = pose_from_msg(resp.pose)
    d = resp.diagnostics
    angle = rotation_error_deg(R, np.eye(3))  # the rotation's own angle
    return {
        "status": status_name(resp.status.code),
        "message": resp.message,
        "frame_id": resp.pose.header.frame_id,
        "translation": [round(float(v), 6) for v in t],
        "rotation_xyzw": [round(v, 6) for v in rotation_to_quaternion(R)],
        "rotation_angle_deg": round(angle, 3),
        "translation_scale_known": bool(resp.translation_scale_known),
        "covariance_diagonal": [float(f"{v:.4g}") for v in np.diag(cov)],
        "path": d.path,
        "direct": {
            "matches": d.direct_matches,
            "inliers": d.direct_inliers,
            "confidence": round(d.direct_confidence, 3),
        },
        "selected_frames": list(d.selected_frames),
        "stage_seconds": {
            n: round(s, 4) for n, s in zip(d.stage_names, d.stage_seconds, strict=False)
        },
        "total_seconds": round(d.total_seconds, 4),
    }


def finished_how(response) -> str:
    """The last progress line: the stages after the one that answered never run."""
    status = status_name(response.status.code)
    path = response.diagnostics.path
    if path == "direct":
        return f"{status}: answered directly (matched pair), the bridge was not needed"
    if path == "bridge":
        return f"{status}: answered through the generative bridge"
    return f"{status}: no pose ({response.message})"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="posecrafter-query",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    parser.add_argument("images", nargs="*", type=Path, help="image A and image B (inline request)")
    parser.add_argument(
        "--camera-info",
        nargs="+",
        type=Path,
        metavar="YAML",
        help="camera_info YAML for both images, or one for A and one for B",
    )
    parser.add_argument(
        "--K",
        nargs=4,
        type=float,
        metavar=("FX", "FY", "CX", "CY"),
        help="pinhole intrinsics for both images (instead of --camera-info)",
    )
    parser.add_argument(
        "--frame-id", default="camera_optical_frame", help="frame id of inline images"
    )
    parser.add_argument(
        "--stamps",
        nargs=2,
        type=float,
        metavar=("T_A", "T_B"),
        help="request buffered images by stamp (seconds)",
    )
    parser.add_argument("--ids", nargs=2, metavar=("ID_A", "ID_B"), help="request keyframes by id")
    parser.add_argument(
        "--service", default="/posecrafter/estimate_relative_pose", help="service (and action) name"
    )
    parser.add_argument(
        "--force-bridge", action="store_true", help="run the bridge even if the pair overlaps"
    )
    parser.add_argument(
        "--budget", type=float, default=0.0, help="request budget in seconds (0: node default)"
    )
    parser.add_argument(
        "--timeout", type=float, default=120.0, help="seconds to wait for the answer"
    )
    parser.add_argument("--action", action="store_true", help="use the action and print progress")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    modes = sum([bool(args.images), args.stamps is not None, args.ids is not None])
    if modes != 1:
        print(
            "ERROR: give either two images, --stamps T_A T_B, or --ids ID_A ID_B", file=sys.stderr
        )
        return 2
    try:
        import rclpy

        from .client import PoseCrafterClient, id_ref, inline_ref, stamp_ref
    except ImportError as err:
        print(
            f"ERROR: ROS 2 (rclpy and the posecrafter_ros interfaces) is needed: {err}",
            file=sys.stderr,
        )
        return 2
    try:
        if args.images:
            if len(args.images) != 2:
                raise ValueError("give exactly two images")
            images = [read_rgb(p) for p in args.images]
            cameras = inline_intrinsics(args, images)
            refs = [
                inline_ref(img, cam.K, args.frame_id, None, cam.D, cam.distortion_model)
                for img, cam in zip(images, cameras, strict=False)
            ]
        elif args.stamps:
            refs = [stamp_ref(t) for t in args.stamps]
        else:
            refs = [id_ref(i) for i in args.ids]
    except (ValueError, OSError, DatasetError) as err:
        print(f"ERROR: {err}", file=sys.stderr)
        return 2

    rclpy.init()
    client = PoseCrafterClient(service=args.service)
    try:
        if not client.wait(min(args.timeout, 15.0)):
            print(
                f"ERROR: service {args.service} is not available (is posecrafter_node running?)",
                file=sys.stderr,
            )
            return 2
        request = client.request(refs[0], refs[1], args.force_bridge, args.budget)
        if args.action:

            def show(fb):
                print(
                    f"  [{fb.progress * 100:5.1f}%] {fb.stage} {fb.stage_progress * 100:5.1f}%  {fb.elapsed_sec:.2f}s",
                    file=sys.stderr,
                )

            response, _ = client.call_action(request, feedback=show, timeout_sec=args.timeout)
            if response is not None:
                print(f"  [100.0%] {finished_how(response)}", file=sys.stderr)
        else:
            response = client.call(request, timeout_sec=args.timeout)
        if response is None:
            print(f"ERROR: no answer within {args.timeout} s", file=sys.stderr)
            return 2
        out = format_response(response)
        if args.json:
            print(json.dumps(out))
        else:
            for key, value in out.items():
                print(f"{key:>24}: {value}")
        return 0 if out["status"] == "SUCCESS" else 1
    finally:
        client.destroy()
        rclpy.shutdown()


if __name__ == "__main__":
    sys.exit(main())
