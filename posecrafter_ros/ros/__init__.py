"""Thin ROS 2 layer: message conversions, the node, and a client. Translates only."""
