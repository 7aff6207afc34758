"""Launch files: loaded against recording stubs of launch / launch_ros, then the real node is
started with exactly the recorded arguments and its parameters / remaps are read back over ROS.
A real `ros2 launch` run happens only where launch_ros imports (a ROS machine)."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import time
import types
import uuid
from pathlib import Path

import pytest
from conftest import REPO, requires_ros

LAUNCH_DIR = REPO / "launch"


class Substitution:
    def __init__(self, *parts):
        self.parts = parts


class LaunchConfiguration(Substitution):
    def __init__(self, name):
        super().__init__(name)
        self.name = name


class PythonExpression(Substitution):
    pass


class Recorded:
    """Any launch action/description: keeps its positional and keyword arguments."""

    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


def stub_modules() -> dict[str, types.ModuleType]:
    mods = {
        name: types.ModuleType(name)
        for name in (
            "launch",
            "launch.actions",
            "launch.substitutions",
            "launch.conditions",
            "launch.launch_description_sources",
            "launch_ros",
            "launch_ros.actions",
        )
    }
    mods["launch"].LaunchDescription = type("LaunchDescription", (Recorded,), {})
    for name in ("DeclareLaunchArgument", "IncludeLaunchDescription"):
        setattr(mods["launch.actions"], name, type(name, (Recorded,), {}))
    mods["launch.substitutions"].LaunchConfiguration = LaunchConfiguration
    mods["launch.substitutions"].PythonExpression = PythonExpression
    mods["launch.conditions"].IfCondition = type("IfCondition", (Recorded,), {})
    mods["launch.launch_description_sources"].PythonLaunchDescriptionSource = type(
        "PythonLaunchDescriptionSource", (Recorded,), {}
    )
    mods["launch_ros.actions"].Node = type("Node", (Recorded,), {})
    return mods


def load_description(path: Path, monkeypatch):
    for name, module in stub_modules().items():
        monkeypatch.setitem(sys.modules, name, module)
    spec = importlib.util.spec_from_file_location(
        f"launch_under_test_{path.stem.replace('.', '_')}", path
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.generate_launch_description()


def resolve(value, config: dict[str, str]):
    if isinstance(value, LaunchConfiguration):
        return config[value.name]
    if isinstance(value, PythonExpression):
        return str(
            eval("".join(resolve(p, config) for p in value.parts[0]))
        )  # test-only: our own expressions
    return value


def node_ros_args(description, overrides: dict[str, str]):
    """(declared launch arguments with values, Node kwargs, the node's --ros-args list)."""
    entities = description.args[0]
    declared = {
        e.args[0]: e.kwargs for e in entities if type(e).__name__ == "DeclareLaunchArgument"
    }
    for name, kwargs in declared.items():
        assert kwargs.get("description"), f"launch argument {name} has no description"
    config = {name: kw["default_value"] for name, kw in declared.items()}
    config.update(overrides)
    nodes = [e for e in entities if type(e).__name__ == "Node"]
    assert len(nodes) == 1
    kw = nodes[0].kwargs
    args = ["-r", f"__node:={kw['name']}"]
    namespace = resolve(kw.get("namespace", ""), config)
    if namespace:
        args += ["-r", f"__ns:={namespace}"]
    for entry in kw.get("parameters", []):
        if isinstance(entry, dict):
            for key, value in entry.items():
                args += ["-p", f"{key}:={resolve(value, config)}"]
        else:
            args += ["--params-file", resolve(entry, config)]
    for src, dst in kw.get("remappings", []):
        args += ["-r", f"{src}:={resolve(dst, config)}"]
    extra = [resolve(a, config) for a in kw.get("arguments", [])]
    assert extra[0] == "--ros-args"
    args += extra[1:]
    return declared, config, kw, args, namespace


def get_parameters(node_name: str, names: list[str]):
    import rclpy
    from rcl_interfaces.srv import GetParameters
    from rclpy.parameter import parameter_value_to_python

    helper = rclpy.create_node("launch_test_reader")
    try:
        client = helper.create_client(GetParameters, f"{node_name}/get_parameters")
        assert client.wait_for_service(timeout_sec=30)
        for _ in range(10):  # a request sent before the server matched us can be lost: resend
            future = client.call_async(GetParameters.Request(names=names))
            rclpy.spin_until_future_complete(helper, future, timeout_sec=3)
            if future.done():
                values = future.result().values
                return dict(zip(names, (parameter_value_to_python(v) for v in values)))
            client.remove_pending_request(future)
        raise AssertionError(f"{node_name}/get_parameters did not answer")
    finally:
        helper.destroy_node()


def topic_is_subscribed(topic: str, timeout: float = 20.0) -> bool:
    import rclpy
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    helper = rclpy.create_node("launch_test_publisher")
    try:
        pub = helper.create_publisher(Image, topic, qos_profile_sensor_data)
        deadline = time.monotonic() + timeout
        while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        return pub.get_subscription_count() > 0
    finally:
        helper.destroy_node()


def _run_launch_case(path, overrides, expected_params, subscribed_topic, monkeypatch, tmp_path):
    from posecrafter_ros.ros.launcher import NodeProcess

    description = load_description(path, monkeypatch)
    _, config, kw, args, namespace = node_ros_args(description, overrides)
    assert kw["package"] == "posecrafter_ros" and kw["executable"] == "posecrafter_node"
    node = NodeProcess(args, log_path=tmp_path / "node.log")
    try:
        node_name = f"{namespace.rstrip('/')}/{kw['name']}" if namespace else f"/{kw['name']}"
        values = get_parameters(node_name, list(expected_params))
        assert values == expected_params, node.log()
        assert topic_is_subscribed(
            subscribed_topic
        ), f"{subscribed_topic} not subscribed:\n{node.log()}"
    finally:
        assert node.stop() == 0, node.log()
    return description


@requires_ros
def test_node_alone_launch_file(monkeypatch, tmp_path, rclpy_context):
    unique = uuid.uuid4().hex[:8]  # concurrent test sessions may share a DDS domain
    _run_launch_case(
        LAUNCH_DIR / "posecrafter.launch.py",
        {"namespace": f"/launch_{unique}", "image_topic": f"/cam_{unique}/image_raw"},
        {
            "profile": "cpu",
            "max_concurrent_requests": 2,
            "request_timeout_sec": 30.0,
            "buffer.max_frames": 120,
        },
        f"/cam_{unique}/image_raw",
        monkeypatch,
        tmp_path,
    )


@requires_ros
def test_slam_launch_file_remaps_and_includes(monkeypatch, tmp_path, rclpy_context):
    slam = tmp_path / "fake_slam.launch.py"
    description = _run_launch_case(
        LAUNCH_DIR / "posecrafter_with_slam.launch.py",
        {
            "namespace": f"/launch_{uuid.uuid4().hex[:8]}",
            "publish_tf": "true",
            "slam_launch": str(slam),
        },
        {"profile": "cpu", "publish_tf": True, "use_sim_time": False},
        "/camera/color/image_raw",
        monkeypatch,
        tmp_path,
    )
    include = next(e for e in description.args[0] if type(e).__name__ == "IncludeLaunchDescription")
    source = include.args[0]
    assert isinstance(source.args[0], LaunchConfiguration) and source.args[0].name == "slam_launch"
    condition = include.kwargs["condition"].args[0]
    assert resolve(condition, {"slam_launch": str(slam)}) == "True"
    assert resolve(condition, {"slam_launch": ""}) == "False"


def _launch_ros_importable() -> bool:
    try:
        import launch_ros  # noqa: F401
    except ImportError:
        return False
    return shutil.which("ros2") is not None


@pytest.mark.skipif(
    not _launch_ros_importable(),
    reason="launch_ros / ros2cli exist only on a ROS machine (not on PyPI)",
)
def test_real_ros2_launch(tmp_path):
    proc = subprocess.Popen(
        ["ros2", "launch", "posecrafter_ros", "posecrafter.launch.py", "namespace:=/real_launch"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        out = ""
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            out += line
            if "ready: profile" in line:
                break
        assert "ready: profile 'cpu'" in out, out
    finally:
        proc.terminate()
        proc.wait(30)
