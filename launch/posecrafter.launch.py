"""Start posecrafter_node alone.

  ros2 launch posecrafter_ros posecrafter.launch.py [params_file:=.../gpu.yaml] \
      [image_topic:=/camera/color/image_raw] [camera_info_topic:=/camera/color/camera_info]
"""

from pathlib import Path

from launch_ros.actions import Node

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration

try:
    from ament_index_python.packages import get_package_share_directory

    CONFIG_DIR = Path(get_package_share_directory("posecrafter_ros")) / "config"
except Exception:  # running from a source checkout
    CONFIG_DIR = Path(__file__).resolve().parent.parent / "config"


def generate_launch_description() -> LaunchDescription:
    args = [
        DeclareLaunchArgument(
            "params_file",
            default_value=str(CONFIG_DIR / "cpu.yaml"),
            description="node parameters (config/cpu.yaml or config/gpu.yaml)",
        ),
        DeclareLaunchArgument("namespace", default_value="", description="namespace of the node"),
        DeclareLaunchArgument(
            "image_topic", default_value="image", description="images filling the keyframe buffer"
        ),
        DeclareLaunchArgument(
            "camera_info_topic", default_value="camera_info", description="their camera_info"
        ),
        DeclareLaunchArgument(
            "keyframes_topic",
            default_value="keyframes",
            description="posecrafter_ros/Keyframe messages",
        ),
        DeclareLaunchArgument("log_level", default_value="info", description="node log level"),
    ]
    node = Node(
        package="posecrafter_ros",
        executable="posecrafter_node",
        name="posecrafter",
        namespace=LaunchConfiguration("namespace"),
        output="screen",
        parameters=[LaunchConfiguration("params_file")],
        remappings=[
            ("image", LaunchConfiguration("image_topic")),
            ("camera_info", LaunchConfiguration("camera_info_topic")),
            ("keyframes", LaunchConfiguration("keyframes_topic")),
        ],
        arguments=["--ros-args", "--log-level", LaunchConfiguration("log_level")],
    )
    return LaunchDescription(args + [node])
