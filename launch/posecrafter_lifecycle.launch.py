"""Start posecrafter_lifecycle_node (a managed node) and Nav2's lifecycle manager for it.

  ros2 launch posecrafter_ros posecrafter_lifecycle.launch.py [params_file:=.../gpu.yaml] \
      [use_lifecycle_manager:=true] [autostart:=true]

The node starts unconfigured. With use_lifecycle_manager:=true, Nav2's lifecycle manager
(nav2_lifecycle_manager must be installed) configures (loads the models) and activates it.
Otherwise add "posecrafter" to the node_names of your own lifecycle manager, or by hand:
  ros2 lifecycle set /posecrafter configure && ros2 lifecycle set /posecrafter activate
"""

from pathlib import Path

from launch_ros.actions import Node

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration

try:
    from ament_index_python.packages import get_package_share_directory

    CONFIG_DIR = Path(get_package_share_directory("posecrafter_ros")) / "config"
except Exception:  # running from a source checkout
    CONFIG_DIR = Path(__file__).resolve().parent.parent / "config"

NODE_NAME = "posecrafter"


def generate_launch_description() -> LaunchDescription:
    args = [
        DeclareLaunchArgument(
            "params_file",
            default_value=str(CONFIG_DIR / "cpu.yaml"),
            description="node parameters (config/cpu.yaml or config/gpu.yaml)",
        ),
        DeclareLaunchArgument("namespace", default_value="", description="namespace of the nodes"),
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
        DeclareLaunchArgument(
            "use_lifecycle_manager",
            default_value="false",
            description="start nav2_lifecycle_manager to bring the node up",
        ),
        DeclareLaunchArgument(
            "autostart",
            default_value="true",
            description="the lifecycle manager configures and activates the node at start",
        ),
        DeclareLaunchArgument("log_level", default_value="info", description="node log level"),
    ]
    node = Node(
        package="posecrafter_ros",
        executable="posecrafter_lifecycle_node",
        name=NODE_NAME,
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
    manager = Node(
        package="nav2_lifecycle_manager",
        executable="lifecycle_manager",
        name="lifecycle_manager_posecrafter",
        namespace=LaunchConfiguration("namespace"),
        output="screen",
        # bond_timeout 0: the node does not run a bond heartbeat (bondpy), so no bond is asked for.
        parameters=[
            {
                "node_names": [NODE_NAME],
                "autostart": LaunchConfiguration("autostart"),
                "bond_timeout": 0.0,
            }
        ],
        condition=IfCondition(LaunchConfiguration("use_lifecycle_manager")),
    )
    return LaunchDescription(args + [node, manager])
