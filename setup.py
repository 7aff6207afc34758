"""pip install . -> the ROS-free library and its command-line tools.

On a ROS 2 machine, colcon builds this package with ament_cmake (CMakeLists.txt), which
generates the interfaces and installs this same Python package beside them.
"""

from setuptools import find_packages, setup

setup(
    name="posecrafter_ros",
    version="0.1.0",
    description="Relative pose between keyframes that barely overlap (PoseCrafter) for ROS 2",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["posecrafter_ros", "posecrafter_ros.*"]),
    # Packages live at the repository root: with this mapping setuptools' default (lenient)
    # editable install is a plain .pth to the root, the generated interfaces in site-packages
    # stay importable beside it (posecrafter_ros/__init__.py extends __path__).
    package_dir={"": "."},
    package_data={
        "posecrafter_ros": [
            "py.typed",
            "profiles/*.yaml",
            "models/lvdm/assets/*",
            "core/matching/trust/*.json",
        ]
    },
    install_requires=[
        "numpy",
        "scipy",
        "opencv-python-headless",
        "poselib",
        "pyyaml",
        "pillow",
        "threadpoolctl",
    ],
    extras_require={
        "learned": ["torch", "kornia>=0.9", "safetensors"],
        "models": ["torch", "safetensors", "diffusers", "einops"],
        "eval": ["rosbags>=0.11", "matplotlib", "tqdm"],
        "ray": ["ray>=2.40"],
        "test": ["pytest", "pytest-timeout", "hypothesis"],
    },
    entry_points={
        "console_scripts": [
            "posecrafter_node = posecrafter_ros.ros.node:main",
            "posecrafter_lifecycle_node = posecrafter_ros.ros.lifecycle_node:main",
            "posecrafter-query = posecrafter_ros.ros.query:main",
            "posecrafter-eval = posecrafter_ros.cli.eval:main",
            "posecrafter-bag = posecrafter_ros.ros.bag:main",
            "posecrafter-parity = posecrafter_ros.cli.parity:main",
        ]
    },
)
