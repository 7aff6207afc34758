"""Start posecrafter_node next to a SLAM stack, fed by the SLAM camera's topics.

  ros2 launch posecrafter_ros posecrafter_with_slam.launch.py \
      slam_launch:=/opt/ros/jazzy/share/rtabmap_launch/launch/rtabmap.launch.py \
      image_topic:=/camera/color/image_raw camera_info_topic:=/camera/color/camera_info

`slam_launch` is any launch file (empty = do not start one: attach to a running stack).
The node buffers the same images the SLAM front end sees, so a loop-closure candidate can
be checked with two stamps; `publish_tf:=true` puts results on /tf under `<A frame>_posecrafter`.
"""

from pathlib import Path

from launch_ros.actions import Node

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription
from launch.conditions import IfCondition
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PythonExpression

try:
    from ament_index_python.packages import get_package_share_directory

    CONFIG_DIR = Path(get_package_share_directory("posecrafter_ros")) / "config"
except Exception:  # running from a source checkout
    CONFIG_DIR = Path(__file__).resolve().parent.parent / "config"


def generate_launch_description() -> LaunchDescription:
    slam_launch = LaunchConfiguration("slam_launch")
    args = [
        DeclareLaunchArgument(
            "slam_launch", default_value="", description="SLAM launch file to include ('' = none)"
        ),
        DeclareLaunchArgument(
            "params_file", default_value=str(CONFIG_DIR / "cpu.yaml"), description="node parameters"
        ),
        DeclareLaunchArgument(
            "namespace", default_value="", description="namespace of posecrafter_node"
        ),
        DeclareLaunchArgument(
            "image_topic", default_value="/camera/color/image_raw", description="SLAM camera images"
        ),
        DeclareLaunchArgument(
            "camera_info_topic",
            default_value="/camera/color/camera_info",
            description="their camera_info",
        ),
        DeclareLaunchArgument(
            "keyframes_topic",
            default_value="/slam/keyframes",
            description="posecrafter_ros/Keyframe from the SLAM front end",
        ),
        DeclareLaunchArgument(
            "publish_tf", default_value="false", description="publish results on /tf"
        ),
        DeclareLaunchArgument(
            "use_sim_time", default_value="false", description="use /clock (bag replay)"
        ),
        DeclareLaunchArgument("log_level", default_value="info", description="node log level"),
    ]
    slam = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(slam_launch),
        condition=IfCondition(PythonExpression(["'", slam_launch, "' != ''"])),
        launch_arguments={"use_sim_time": LaunchConfiguration("use_sim_time")}.items(),
    )
    node = Node(
        package="posecrafter_ros",
        executable="posecrafter_node",
        name="posecrafter",
        namespace=LaunchConfiguration("namespace"),
        output="screen",
        parameters=[
            LaunchConfiguration("params_file"),
            {
                "publish_tf": LaunchConfiguration("publish_tf"),
                "use_sim_time": LaunchConfiguration("use_sim_time"),
            },
        ],
        remappings=[
            ("image", LaunchConfiguration("image_topic")),
            ("camera_info", LaunchConfiguration("camera_info_topic")),
            ("keyframes", LaunchConfiguration("keyframes_topic")),
        ],
        arguments=["--ros-args", "--log-level", LaunchConfiguration("log_level")],
    )
    return LaunchDescription(args + [slam, node])
