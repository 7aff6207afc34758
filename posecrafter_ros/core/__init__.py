"""ROS-free core: types, geometry, matching, selection, synthesis, reconstruction, pipeline.

Nothing under this package imports rclpy or message types; heavy optional dependencies
(torch, kornia, diffusers) are imported inside the functions that use them.
"""
