"""posecrafter_ros: relative pose between keyframes that barely overlap (PoseCrafter)."""

# The rosidl-generated interfaces (posecrafter_ros.msg / .srv / .action) may be installed in
# another site-packages directory than this source tree (a venv built by `make setup`);
# extend the package path so both halves import as one package.
__path__ = __import__("pkgutil").extend_path(__path__, __name__)

__version__ = "0.1.0"
